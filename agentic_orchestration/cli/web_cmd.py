"""``main.py --web [--host HOST] [--port PORT]``: serve the web UI until Ctrl-C or SIGTERM.

Loopback (``AGENTIC_WEB_HOST``, 127.0.0.1) by default. Any other address needs
``AGENTIC_WEB_TOKEN``: without it the command refuses to start (exit 2), since whoever
reaches the port could start runs. Runs still going when the server stops are cancelled.
"""

from __future__ import annotations

from agentic_orchestration.errors import EXIT_OK, ConfigError

__all__ = ["serve_command"]


def serve_command(*, host: str | None = None, port: int | None = None) -> int:
    from agentic_orchestration import settings
    from agentic_orchestration.web.runs import RunManager
    from agentic_orchestration.web.server import create_app
    from agentic_orchestration.web.serving import bind, is_loopback, url_of, uvicorn_server

    host = host or str(settings.value("AGENTIC_WEB_HOST"))
    port = port if port is not None else int(settings.value("AGENTIC_WEB_PORT"))
    if not 0 <= port <= 65535:
        raise ConfigError(f"--port {port}: must be between 0 and 65535")
    token = settings.value("AGENTIC_WEB_TOKEN") or None
    if not is_loopback(host) and not token:
        raise ConfigError(f"--web on {host} (not loopback) needs AGENTIC_WEB_TOKEN: anyone "
                          f"who reaches the port could start runs")
    from agentic_orchestration.sessions.orchestrator_session import sessions_dir

    # Every page reads the sessions: a folder that cannot be one fails here, not per request.
    settings.check_folder_path("AGENTIC_SESSIONS_PATH", sessions_dir())
    sock = bind(host, port)
    runs = RunManager()
    server = uvicorn_server(create_app(runs=runs, token=token))
    hint = " (open it once with ?token=TOKEN)" if token else ""
    print(f"Web UI on {url_of(host, sock.getsockname()[1])}{hint}; Ctrl-C stops it",
          flush=True)
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()
        # The app's shutdown does this too, but SIGTERM (as Ctrl-C) can unwind past it; the
        # runs are in their own sessions and would outlive the server otherwise.
        runs.shutdown()
    return EXIT_OK
