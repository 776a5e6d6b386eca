"""The web UI's Starlette app: a few pages (one static single-page app) and a JSON API.

API (every error is JSON ``{"error": "..."}`` with a 4xx naming what was wrong; an
unexpected error is a 500 with a generic message, its traceback only in the server log):

- ``GET /api/config``: backends, the default one, workflows, whether stats exist.
- ``GET /api/runs?status=&q=&limit=&offset=``: runs newest first (this server's live runs
  first, then the sessions database).
- ``POST /api/runs`` ``{"goal", "workflow"?, "backend"?}``: start a run (201).
- ``GET /api/runs/{id}``: one run: its live state and its session record.
- ``POST /api/runs/{id}/cancel``: cancel a running run (202; 409 when it has ended).
- ``GET /api/runs/{id}/events``: its events as server-sent events (the run's typed events,
  ``orchestration.events``, as ``runs`` reads them from its events file, then ``exit``);
  ``Last-Event-ID`` (a reconnecting browser sends it) or ``?after=N`` replays what was
  missed.
- ``GET /api/runs/{id}/artifacts/{path}``: download a file the run saved.
- ``GET /api/stats``: per provider (and kind of step) learning statistics.
- ``GET /api/catalog?backend=``: agents and MCP servers, available or filtered out and why,
  and the static workflows with their steps and whether each backend can run them.
- ``POST /api/plan`` ``{"goal", "workflow"?, "backend"?}``: the plan ``--plan-only`` makes
  (200), nothing run; 400 for bad input as a run, 422 when it cannot plan.

Auth (``auth.TokenAuth``) wraps everything when ``AGENTIC_WEB_TOKEN`` is set.
"""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from agentic_orchestration.errors import AgenticError
from agentic_orchestration.redaction import redact_text
from agentic_orchestration.web import _catalog, _sessions
from agentic_orchestration.web.auth import TokenAuth
from agentic_orchestration.web.runs import RunManager

logger = logging.getLogger(__name__)

__all__ = ["STATIC_DIR", "create_app"]

STATIC_DIR = Path(__file__).resolve().parent / "static"
#: SSE comment sent this often on an idle stream, so proxies and browsers keep it open.
KEEPALIVE_SECONDS = 15.0
_FIELDS = ("goal", "workflow", "backend")


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def _backends() -> tuple[list[str], str]:
    from agentic_orchestration import settings

    spec = settings.spec("AGENTIC_EXECUTION_BACKEND")
    return list(spec.choices or ()), str(settings.value("AGENTIC_EXECUTION_BACKEND"))


def _workflows() -> dict[str, str]:
    """Static workflow name -> description (the config dir's ``workflows/``)."""
    from agentic_orchestration.catalogs.config_loader import load_workflows

    return {name: config.description for name, config in sorted(load_workflows().items())}


def _stats_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("agentic_orchestration.sessions.learning") is not None


def _manager(request: Request) -> RunManager:
    return request.app.state.runs


def _validated_body(data: Any) -> dict[str, str | None]:
    """The start-run body, checked; HTTPException(400) naming the bad field."""
    if not isinstance(data, dict):
        raise HTTPException(400, "body: expected a JSON object with a 'goal'")
    unknown = sorted(set(data) - set(_FIELDS))
    if unknown:
        raise HTTPException(400, f"{unknown[0]}: unknown field (known: {', '.join(_FIELDS)})")
    body: dict[str, str | None] = {}
    for name in _FIELDS:
        value = data.get(name)
        if value is not None and not isinstance(value, str):
            raise HTTPException(400, f"{name}: must be a string")
        body[name] = value.strip() if value and value.strip() else None
    if body["workflow"] is None and body["goal"] is None:
        raise HTTPException(400, "goal: give a goal (or pick a workflow)")
    backends, _ = _backends()
    if body["backend"] is not None and body["backend"] not in backends:
        raise HTTPException(400, f"backend: unknown backend {body['backend']!r} "
                                 f"(known: {', '.join(backends)})")
    if body["workflow"] is not None:
        known = _workflows()
        if body["workflow"] not in known:
            raise HTTPException(400, f"workflow: unknown workflow {body['workflow']!r} "
                                     f"(known: {', '.join(known) or 'none'})")
    return body


# --- pages ----------------------------------------------------------------------------------

async def page(request: Request) -> Response:
    """Every page is the one app; its script draws the view the path names."""
    return FileResponse(STATIC_DIR / "index.html", headers={"Cache-Control": "no-store"})


# --- API ------------------------------------------------------------------------------------

async def api_config(request: Request) -> Response:
    backends, default = _backends()
    try:
        workflows = _workflows()
        workflow_error = None
    except Exception as exc:  # a broken catalog must not hide the page
        workflows, workflow_error = {}, str(exc)
    return JSONResponse({"backends": backends, "default_backend": default,
                         "workflows": [{"name": k, "description": v}
                                       for k, v in workflows.items()],
                         "workflow_error": workflow_error,
                         "stats_available": _stats_available()})


def _int_param(request: Request, name: str, default: int, *, lo: int, hi: int) -> int:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise HTTPException(400, f"{name}: not a number: {raw!r}") from None
    if not lo <= value <= hi:
        raise HTTPException(400, f"{name}: must be between {lo} and {hi}")
    return value


async def api_runs(request: Request) -> Response:
    status = request.query_params.get("status") or None
    text = (request.query_params.get("q") or "").strip() or None
    limit = _int_param(request, "limit", 50, lo=1, hi=500)
    offset = _int_param(request, "offset", 0, lo=0, hi=10**9)
    live = [r.summary() for r in _manager(request).runs() if not r.done]
    if status:
        live = [r for r in live if r["status"] == status]
    if text:
        live = [r for r in live if text.lower() in (r["goal"] + r["run_id"]).lower()]
    live_ids = {r["run_id"] for r in live}
    stored = await asyncio.to_thread(_sessions.list_runs, status=status, text=text,
                                     limit=limit, offset=offset)
    total = await asyncio.to_thread(_sessions.count_runs, status=status, text=text)
    runs = (live if offset == 0 else []) + [r for r in stored if r["run_id"] not in live_ids]
    return JSONResponse({"runs": runs, "total": total + len(live), "limit": limit,
                         "offset": offset})


async def api_start(request: Request) -> Response:
    try:
        data = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        return _error(400, "body: not valid JSON")
    body = await asyncio.to_thread(_validated_body, data)
    run = await asyncio.to_thread(_manager(request).start, goal=body["goal"] or "",
                                  workflow=body["workflow"], backend=body["backend"])
    return JSONResponse({"run": run.summary()}, status_code=201,
                        headers={"Location": f"/runs/{run.run_id}"})


async def api_run(request: Request) -> Response:
    run_id = request.path_params["run_id"]
    live = _manager(request).get(run_id)
    record = await asyncio.to_thread(_sessions.get_record, run_id)
    if live is None and record is None:
        return _error(404, f"no run {run_id!r}")
    summary = live.summary() if live is not None else _summary_of(record)
    if live is not None and live.done and record is not None:
        summary["status"] = live.status
    return JSONResponse({"run": summary, "session": record,
                         "events": live.events_after(0) if live is not None else [],
                         "log_tail": list(live.log_tail) if live is not None else []})


def _summary_of(record: dict[str, Any]) -> dict[str, Any]:
    return {"run_id": record["run_id"], "session_id": record["session_id"],
            "goal": record.get("goal"), "status": record.get("status"),
            "backend": record.get("last_execution_backend"), "route": record.get("route"),
            "created_at": record.get("created_at"), "exit_code": record.get("exit_code"),
            "error": record.get("error"), "step_count": len(record.get("steps") or []),
            "live": False}


async def api_cancel(request: Request) -> Response:
    run_id = request.path_params["run_id"]
    manager = _manager(request)
    live = manager.get(run_id)
    if live is None:
        record = await asyncio.to_thread(_sessions.get_record, run_id)
        if record is None:
            return _error(404, f"no run {run_id!r}")
        return _error(409, f"run {run_id!r} was not started by this server or has ended "
                           f"({record.get('status')}); it cannot be cancelled from here")
    if not await asyncio.to_thread(manager.cancel, run_id):
        return _error(409, f"run {run_id!r} has already ended ({live.status})")
    return JSONResponse({"run": live.summary()}, status_code=202)


async def api_events(request: Request) -> Response:
    run_id = request.path_params["run_id"]
    live = _manager(request).get(run_id)
    if live is None:
        record = await asyncio.to_thread(_sessions.get_record, run_id)
        if record is None:
            return _error(404, f"no run {run_id!r}")
        final = {"kind": "exit", "id": 1, "status": record.get("status"),
                 "exit_code": record.get("exit_code"), "error": record.get("error")}
        body = f"id: 1\nevent: exit\ndata: {json.dumps(final)}\n\n"
        return Response(body, media_type="text/event-stream")
    raw_after = request.headers.get("last-event-id") or request.query_params.get("after") or "0"
    try:
        after = int(raw_after)
    except ValueError:
        return _error(400, f"after: not an event id: {raw_after!r}")

    async def stream():
        last = after
        yield "retry: 1000\n\n"
        while True:
            events = await live.next_events(last, timeout=KEEPALIVE_SECONDS)
            for event in events:
                last = event["id"]
                yield f"id: {last}\nevent: {event['kind']}\ndata: {json.dumps(event)}\n\n"
            if live.done and last >= len(live.events):
                return
            if not events:
                yield ": keepalive\n\n"

    return StreamingResponse(stream(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})


async def api_artifact(request: Request) -> Response:
    run_id, rel = request.path_params["run_id"], request.path_params["path"]
    record = await asyncio.to_thread(_sessions.get_record, run_id)
    if record is None:
        return _error(404, f"no run {run_id!r}")
    folder = record.get("artifacts_dir")
    if not folder or rel not in (record.get("artifacts") or []):
        return _error(404, f"run {run_id!r} saved no file {rel!r}")
    root = Path(folder).resolve()
    path = (root / rel).resolve()
    if not path.is_relative_to(root) or not path.is_file():
        return _error(404, f"file {rel!r} of run {run_id!r} is not on disk any more")
    return FileResponse(path, filename=path.name)


async def api_stats(request: Request) -> Response:
    if not _stats_available():
        return _error(404, "learning statistics are not available in this version")
    rows = await asyncio.to_thread(_sessions.provider_stats)
    return JSONResponse({"stats": rows})


async def api_catalog(request: Request) -> Response:
    backends, default = _backends()
    backend = (request.query_params.get("backend") or "").strip() or default
    if backend not in backends:
        return _error(400, f"backend: unknown backend {backend!r} (known: {', '.join(backends)})")
    try:
        return JSONResponse(await asyncio.to_thread(_catalog.catalog, backend))
    except AgenticError as exc:  # a broken catalog file: say which, as the CLI does
        logger.warning("catalog: %s", exc)
        return _error(500, f"catalog: {exc}")


async def api_plan(request: Request) -> Response:
    try:
        data = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        return _error(400, "body: not valid JSON")
    body = await asyncio.to_thread(_validated_body, data)
    manager = _manager(request)
    preview = await asyncio.to_thread(
        _catalog.preview_plan, manager.command, manager.env, goal=body["goal"] or "",
        workflow=body["workflow"], backend=body["backend"])
    if preview.plan is None:
        return JSONResponse({"error": f"no plan: {preview.error}",
                             "exit_code": preview.exit_code}, status_code=422)
    return JSONResponse({"plan": preview.plan})


async def api_not_found(request: Request) -> Response:
    return _error(404, f"no API endpoint {request.method} {request.url.path}")


# --- errors ---------------------------------------------------------------------------------

async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if request.url.path.startswith("/api/"):
        return _error(exc.status_code, str(exc.detail))
    return Response(str(exc.detail), status_code=exc.status_code, media_type="text/plain")


async def _agentic_error(request: Request, exc: Exception) -> Response:
    """A setting or file the server cannot use (a sessions folder that cannot be made):
    the one line the CLI would print, in the reply and the log, and no traceback. Handled
    here, not by the ``Exception`` handler, whose middleware re-raises to the server."""
    message = redact_text(str(exc))
    logger.error("%s %s failed: %s", request.method, request.url.path, message)
    return _error(500, message)


async def _server_error(request: Request, exc: Exception) -> Response:
    logger.exception("%s %s failed", request.method, request.url.path)
    return _error(500, "internal error (details in the server log)")


# --- the app --------------------------------------------------------------------------------

def create_app(*, runs: RunManager | None = None, token: str | None = None) -> Starlette:
    """The web UI.

    Args:
        runs: The run manager (tests pass one with a custom command or environment).
        token: Require it on every request (``auth.TokenAuth``); None: no check.
    """
    import contextlib

    manager = runs if runs is not None else RunManager()

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette):
        yield
        await asyncio.to_thread(manager.shutdown)

    routes = [
        Route("/", page),
        Route("/runs/{run_id}", page),
        Route("/stats", page),
        Route("/catalog", page),
        Route("/api/config", api_config),
        Route("/api/runs", api_runs, methods=["GET"]),
        Route("/api/runs", api_start, methods=["POST"]),
        Route("/api/runs/{run_id}", api_run),
        Route("/api/runs/{run_id}/cancel", api_cancel, methods=["POST"]),
        Route("/api/runs/{run_id}/events", api_events),
        Route("/api/runs/{run_id}/artifacts/{path:path}", api_artifact),
        Route("/api/stats", api_stats),
        Route("/api/catalog", api_catalog),
        Route("/api/plan", api_plan, methods=["POST"]),
        Route("/api/{rest:path}", api_not_found, methods=["GET", "POST", "PUT", "DELETE"]),
        Mount("/static", StaticFiles(directory=STATIC_DIR), name="static"),
    ]
    app = Starlette(routes=routes, lifespan=lifespan,
                    exception_handlers={HTTPException: _http_error, AgenticError: _agentic_error,
                                        Exception: _server_error})
    app.state.runs = manager
    if token:
        app.add_middleware(TokenAuth, token=token)
    return app
