"""The web UI: start a run, watch its steps live, cancel it, look back at every run.

``main.py --web`` serves it (``cli``). Each run is a ``main.py`` child process whose
coordinator writes typed events to a file the server follows (``orchestration.events``,
``runs``); they become server-sent events with replay on reconnect; past runs
and the learning statistics come from the sessions database. The page is plain HTML, CSS
and JavaScript under ``static/``, no build step and nothing fetched from elsewhere.

Starlette and uvicorn are imported by ``server`` and ``cli`` only, so importing this
package stays light.
"""

from agentic_orchestration.web.runs import LiveRun, RunManager

__all__ = ["LiveRun", "RunManager", "create_app"]


def create_app(**kwargs):
    """``server.create_app`` (imported on call: Starlette only when serving)."""
    from agentic_orchestration.web.server import create_app as _create_app

    return _create_app(**kwargs)
