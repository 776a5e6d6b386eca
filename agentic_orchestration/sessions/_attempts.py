"""Every attempt of a step in the session, whichever backend ran it.

Distributed backends keep each attempt in the run store (``<step>/attempts/<n>.json``), so
a step's ``attempt_log`` is read from there (``from_run_store``). The in-process backend
keeps no run store, but it reports every attempt as it ends (``RunOptions.on_step_result``:
a recoverable failure, then the fallback provider's retry), while its final result lists
only the last attempt of each step. ``after`` keeps what was reported: a later attempt of
a step is added to the log of the earlier ones instead of replacing them, so the session,
the learning statistics (one row per attempt) and the web UI's timeline count the failed
first attempt that the fallback recovered. A step that ran once keeps an empty log, as
before (its summary is its only attempt).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from agentic_orchestration._fs import read_json_object
from agentic_orchestration.errors import ConfigError

logger = logging.getLogger(__name__)

__all__ = ["after", "from_run_store"]

_FAILED = "failed"


def from_run_store(attempts_root: str | None, step_id: str) -> list[dict[str, Any]]:
    """Every attempt of a step as the run store kept it (distributed backends), each as
    provider, status, error, recoverable, timing and usage; [] when there is none."""
    if not attempts_root:
        return []
    folder = Path(attempts_root) / step_id / "attempts"
    try:
        names = sorted(folder.glob("*.json"), key=lambda p: int(p.stem)
                       if p.stem.isdigit() else 0)
    except OSError:
        return []
    log = []
    for path in names:
        try:
            data = read_json_object(path, what="step attempt")
        except ConfigError as exc:
            logger.warning("attempt not recorded in the session: %s", exc)
            continue
        if data is None or not path.stem.isdigit():
            continue
        code = data.get("exit_code")
        log.append({
            "attempt": int(path.stem), "agent_provider_id": data.get("agent_provider_id"),
            "exit_code": code, "error": data.get("error"),
            "recoverable": bool(data.get("recoverable")),
            "status": "ok" if code == 0 else _FAILED, "timing": data.get("timing"),
            "usage": data.get("usage"),
        })
    return log


def _entry(summary: dict[str, Any], attempt: int) -> dict[str, Any]:
    return {"attempt": attempt, "agent_provider_id": summary.get("agent_provider_id"),
            "exit_code": summary.get("exit_code"), "error": summary.get("error"),
            "recoverable": bool(summary.get("recoverable")), "status": summary.get("status"),
            "timing": summary.get("timing"), "usage": summary.get("usage")}


def after(summary: dict[str, Any], previous: dict[str, Any] | None) -> dict[str, Any]:
    """``summary`` (a step's new summary) with the attempts ``previous`` (the same step's
    summary already in the session) recorded before it, when no run store kept a log.

    The same attempt reported twice (the final result after ``on_step_result``) is not
    counted again: it is recognised by its timing.
    """
    if summary.get("attempt_log") or previous is None:
        return summary
    log = [dict(a) for a in previous.get("attempt_log") or []]
    if not log:
        if _same_attempt(previous, summary):
            return summary
        log = [_entry(previous, 1)]
    if not _same_attempt(log[-1], summary):
        log.append(_entry(summary, len(log) + 1))
    log[-1]["status"] = summary.get("status")
    return {**summary, "attempt_log": log, "attempts": len(log)}


def _same_attempt(earlier: dict[str, Any], later: dict[str, Any]) -> bool:
    timing = earlier.get("timing")
    return bool(timing) and timing == later.get("timing") and (
        earlier.get("agent_provider_id") == later.get("agent_provider_id"))
