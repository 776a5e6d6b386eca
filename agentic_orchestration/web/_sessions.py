"""What the web UI reads of past runs: the sessions database (``sessions.store``).

Kept apart from the run manager so the pages only ever see plain JSON-ready dicts, masked
again on the way out (records are stored masked, but a secret registered in this server's
environment after the run was saved would otherwise still show).
"""

from __future__ import annotations

import logging
from typing import Any

from agentic_orchestration.errors import ConfigError
from agentic_orchestration.redaction import redact_obj

logger = logging.getLogger(__name__)

__all__ = ["count_runs", "get_record", "list_runs", "provider_stats"]


def _store():
    from agentic_orchestration.sessions.store import SessionStore

    return SessionStore()


def _summary(row) -> dict[str, Any]:
    return {"run_id": row.run_id, "session_id": row.session_id, "goal": row.goal,
            "status": row.status, "backend": row.backend, "route": row.route,
            "mode": row.mode, "created_at": row.created_at, "updated_at": row.updated_at,
            "exit_code": row.exit_code, "error": row.error, "step_count": row.step_count,
            "live": False}


def list_runs(*, status: str | None = None, text: str | None = None, limit: int = 50,
              offset: int = 0) -> list[dict[str, Any]]:
    """Session summaries newest first (filters as ``SessionStore.list``)."""
    rows = _store().list(status=status or None, text=text or None, limit=limit, offset=offset)
    return redact_obj([_summary(row) for row in rows])


def count_runs(*, status: str | None = None, text: str | None = None) -> int:
    return _store().count(status=status or None, text=text or None)


def get_record(run_id: str) -> dict[str, Any] | None:
    """The full session record of ``run_id`` as a dict, or None when there is none yet."""
    try:
        record = _store().get(run_id)
    except ConfigError:
        return None
    return redact_obj(record.to_dict())


def provider_stats() -> list[dict[str, Any]]:
    """The learning statistics (``sessions.learning.provider_stats``), one dict per row."""
    from agentic_orchestration.sessions.learning import provider_stats as compute

    return [row.to_dict() for row in compute(_store())]
