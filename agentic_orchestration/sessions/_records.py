"""What the sessions database hands back besides full records, and who hears of a run's end.

Split from ``store`` (which owns the SQLite file, its writes and its queries) so the row
types a history page or the learning statistics read, and the ``on_session_finished``
hooks the knowledge base registers, stand on their own; ``store`` re-exports them, so
``from agentic_orchestration.sessions.store import StepRow, on_session_finished`` keeps
working.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from agentic_orchestration.sessions.orchestrator_session import SessionRecord

logger = logging.getLogger(__name__)

__all__ = ["SessionSummary", "StepRow", "on_session_finished", "run_hooks"]


@dataclass(frozen=True)
class SessionSummary:
    """One row of a session list: what a history page shows, without the full record."""

    session_id: str
    run_id: str
    seq: int
    created_at: str
    updated_at: str
    status: str
    goal: str
    mode: str | None
    route: str | None
    backend: str | None
    exit_code: int | None
    error: str | None
    step_count: int
    pid: int | None
    host: str | None


@dataclass(frozen=True)
class StepRow:
    """One attempt of one step: what the learning statistics are computed from.

    ``status`` is ``ok``, ``failed`` or ``cancelled``; ``final`` says whether this attempt
    was the step's last (its outcome is the step's).
    """

    session_id: str
    step_id: str
    attempt: int
    final: bool
    kind: str | None
    provider: str | None
    status: str
    recoverable: bool
    finished_at: str | None
    duration_seconds: float | None
    total_tokens: int | None
    error: str | None


_finish_hooks: list[Callable[[SessionRecord], None]] = []


def on_session_finished(callback: Callable[[SessionRecord], None]) -> Callable[..., None]:
    """Call ``callback(record)`` after a run reaches a final status (see ``store``).

    The record passed is the masked one as stored. Returns ``callback`` (usable as a
    decorator); registering the same callable twice has no effect.
    """
    if callback not in _finish_hooks:
        _finish_hooks.append(callback)
    return callback


def run_hooks(record: SessionRecord) -> None:
    """Each ``on_session_finished`` callback; an error is logged, never raised into a run."""
    for callback in list(_finish_hooks):
        try:
            callback(record)
        except Exception:
            logger.exception("session %s: on_session_finished callback %r failed",
                             record.session_id, callback)
