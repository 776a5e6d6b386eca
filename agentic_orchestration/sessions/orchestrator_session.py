"""One record per run: what was asked, how it was planned and routed, what came out.

A session lets a user (and the web UI) look back at a run after the terminal is gone: the
goal, the plan that ran, each step's provider, kind, attempts, timing and token use, the
answer, and the files saved. Records are kept in the sessions database
(``store.SessionStore``: SQLite in ``AGENTIC_SESSIONS_PATH``), and by default mirrored as
``{AGENTIC_SESSIONS_PATH}/{session_id}.json`` (``AGENTIC_SESSIONS_JSON``) for people and
tools that read files.

This module builds and changes records in memory; ``save_session``/``load_session`` go
through the store. Three rules keep them trustworthy:

- Written in one SQLite transaction (the mirror atomically: temp file, fsync,
  ``os.replace``), so a crash or a concurrent reader never sees half a record. Folder 0700,
  files 0600: goals and answers can be private.
- Secrets never land on disk: the store masks every secret value in play wherever it
  appears (the registry of ``agentic_orchestration.redaction``), because an LLM or an
  exception message can echo a key into ``result_text`` or ``error``.
- A record names the process that runs it (``pid``, ``host``, ``pid_start``), so a run
  killed with SIGKILL is seen as ``interrupted`` by the next reader (``_liveness``).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agentic_orchestration import settings
from agentic_orchestration.errors import ConfigError
from agentic_orchestration.sessions import _attempts

if TYPE_CHECKING:
    from agentic_orchestration.orchestration.backends.base import (
        ArtifactRef,
        StepResult,
        WorkflowExecutionResult,
    )

logger = logging.getLogger(__name__)

__all__ = [
    "FINAL_STATUSES",
    "MODES",
    "SESSION_SCHEMA_VERSION",
    "STATUSES",
    "SessionRecord",
    "end_session",
    "list_sessions",
    "load_session",
    "record_step",
    "save_session",
    "session_path",
    "sessions_dir",
    "start_session",
    "status_for",
    "update_session",
]

SESSION_SCHEMA_VERSION = "0.1"
MODES = ("dynamic", "dynamic-iterative", "workflow")
#: What a session keeps of each step (the rest of ``StepResult`` is in the run store).
STEP_FIELDS = (
    "step_id", "agent_provider_id", "exit_code", "result_text", "error", "recoverable",
    "timing", "usage", "artifacts", "k8s",
)
#: A session id is one file name: no separators, no leading dot (temp files use one).
_SESSION_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
STATUS_RUNNING, STATUS_OK, STATUS_FAILED, STATUS_INTERRUPTED, STATUS_CANCELLED = (
    "running", "ok", "failed", "interrupted", "cancelled")
#: A run stopped when a budget was spent (exit 5): final, like ``failed``.
STATUS_BUDGET_EXCEEDED = "budget_exceeded"
FINAL_STATUSES = frozenset({STATUS_OK, STATUS_FAILED, STATUS_INTERRUPTED, STATUS_CANCELLED,
                            STATUS_BUDGET_EXCEEDED})
#: Every status a session can have, in the order lists and filters show them.
STATUSES = (STATUS_RUNNING, STATUS_OK, STATUS_FAILED, STATUS_CANCELLED, STATUS_INTERRUPTED,
            STATUS_BUDGET_EXCEEDED)


@dataclass(kw_only=True)
class SessionRecord:
    """Everything kept about one run. Field names are the JSON keys."""

    schema_version: str = SESSION_SCHEMA_VERSION
    session_id: str
    created_at: str
    updated_at: str
    goal: str
    mode: str
    #: How the plan was chosen: ``router:<workflow>``, ``planner:<provider>``, ``workflow:<name>``.
    route: str | None = None
    #: The WorkflowConfig that ran, as ``model_dump(mode="json")``.
    plan: dict[str, Any] | None = None
    last_execution_backend: str | None = None
    run_id: str
    #: Run store folder of the run, when a backend kept one (for resuming later).
    run_store: str | None = None
    exit_code: int | None = None
    #: ``running`` until the run ends, then ``ok``, ``failed`` or ``interrupted`` (Ctrl-C,
    #: SIGTERM). Records from before this field have none.
    status: str | None = None
    result_text: str | None = None
    #: The run-level error (planning failed, no provider, a bad setting, interrupted...);
    #: step errors are in ``steps``.
    error: str | None = None
    steps: list[dict[str, Any]] = field(default_factory=list)
    #: Saved files, relative to ``artifacts_dir``.
    artifacts: list[str] = field(default_factory=list)
    artifacts_dir: str | None = None
    #: The coordinator process (``_liveness``): a ``running`` record whose process is gone
    #: is ``interrupted``.
    pid: int | None = None
    host: str | None = None
    pid_start: int | None = None
    #: Plan revisions of an iterative run, oldest first (JSON objects; iterative planning).
    revisions: list[dict[str, Any]] = field(default_factory=list)
    #: Room for later features: JSON values keyed by feature name (e.g. ``"kb"``, ``"qa"``).
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, source: str = "session") -> SessionRecord:
        """Build a record from its JSON; unknown keys (a newer minor version) are ignored.

        Raises:
            ConfigError: another schema version or a required field is missing.
        """
        version = data.get("schema_version")
        if version != SESSION_SCHEMA_VERSION:
            raise ConfigError(
                f"{source}: schema_version {version!r} is not supported "
                f"(this version reads {SESSION_SCHEMA_VERSION!r})"
            )
        known = {f.name for f in fields(cls)}
        try:
            return cls(**{k: v for k, v in data.items() if k in known})
        except TypeError as exc:
            raise ConfigError(f"{source}: not a session record ({exc})") from None


def start_session(
    goal: str, *, mode: str, run_id: str | None = None, session_id: str | None = None
) -> SessionRecord:
    """A new record for a run; ``session_id`` defaults to ``run_id`` (generated if None)."""
    from agentic_orchestration.orchestration.backends.base import new_run_id, utc_now

    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, not {mode!r}")
    from agentic_orchestration.sessions._liveness import current_process

    run_id = run_id or new_run_id()
    now = utc_now()
    pid, host, pid_start = current_process()
    return SessionRecord(
        session_id=session_id or run_id,
        created_at=now,
        updated_at=now,
        goal=goal,
        mode=mode,
        run_id=run_id,
        status=STATUS_RUNNING,
        pid=pid,
        host=host,
        pid_start=pid_start,
    )


def update_session(
    record: SessionRecord,
    *,
    plan: Any | None = None,
    route: str | None = None,
    execution: WorkflowExecutionResult | None = None,
    backend: str | None = None,
    artifacts: Iterable[ArtifactRef | str] | None = None,
    artifacts_dir: Path | str | None = None,
    run_store: Path | str | None = None,
) -> SessionRecord:
    """Fill in what is known so far (arguments left None are unchanged); returns ``record``.

    Args:
        plan: a WorkflowConfig (or its dict) that ran or is about to run.
        route: how the plan was chosen, e.g. ``router:research`` or ``planner:local``.
        execution: the run's outcome; sets exit code, answer, error and per-step summaries.
        backend: backend name; default ``execution.backend``.
        artifacts: saved files (``ArtifactRef`` or relative paths).
        artifacts_dir: their folder; default ``artifacts_dir_for(run_id)`` when files given.
        run_store: the run store folder, when the backend kept one.
    """
    from agentic_orchestration.orchestration.backends.base import utc_now

    if plan is not None:
        record.plan = plan.model_dump(mode="json") if hasattr(plan, "model_dump") else dict(plan)
    if route is not None:
        record.route = route
    if execution is not None:
        record.exit_code = execution.exit_code
        record.status = (execution.status if execution.status in (
                             STATUS_CANCELLED, STATUS_BUDGET_EXCEEDED)
                         else status_for(execution.exit_code))
        record.result_text = execution.result_text
        record.error = _error_text(execution.error)
        kinds = _step_kinds(record.plan)
        attempts_root = record.run_store if run_store is None else str(run_store)
        before = {s.get("step_id"): s for s in record.steps}  # attempts reported so far
        record.steps = [_attempts.after(_step_summary(step, kind=kinds.get(step.step_id),
                                                      attempts_root=attempts_root),
                                        before.get(step.step_id))
                        for step in execution.step_results]
        record.run_id = execution.run_id or record.run_id
        record.last_execution_backend = execution.backend or record.last_execution_backend
    if backend is not None:
        record.last_execution_backend = backend
    if artifacts is not None:
        record.artifacts = [getattr(a, "relative_path", a) for a in artifacts]
        if artifacts_dir is None and record.artifacts_dir is None and record.artifacts:
            from agentic_orchestration.output.output_artifacts import artifacts_dir_for

            artifacts_dir = artifacts_dir_for(record.run_id)
    if artifacts_dir is not None:
        record.artifacts_dir = str(artifacts_dir)
    if run_store is not None:
        record.run_store = str(run_store)
    record.updated_at = utc_now()
    return record


def record_step(record: SessionRecord, step: StepResult) -> SessionRecord:
    """Put one step's summary into ``record`` while the run goes on (status unchanged).

    A later attempt of the same step replaces the earlier one as the step's summary, and
    joins it in the step's ``attempt_log`` (``_attempts.after``: in-process runs too).
    """
    from agentic_orchestration.orchestration.backends.base import utc_now

    kinds = _step_kinds(record.plan)
    summary = _step_summary(step, kind=kinds.get(step.step_id),
                            attempts_root=record.run_store)
    summary = _attempts.after(summary, next(
        (s for s in record.steps if s.get("step_id") == step.step_id), None))
    record.steps = [s for s in record.steps if s.get("step_id") != step.step_id] + [summary]
    record.updated_at = utc_now()
    return record


def status_for(exit_code: int) -> str:
    """``ok``, ``interrupted`` (exit 130) or ``failed``."""
    from agentic_orchestration.errors import EXIT_INTERRUPTED

    if exit_code == 0:
        return STATUS_OK
    return STATUS_INTERRUPTED if exit_code == EXIT_INTERRUPTED else STATUS_FAILED


def end_session(record: SessionRecord, exc: BaseException) -> SessionRecord:
    """Record that the run ended by raising ``exc`` (not saved; see ``save_session``).

    Exit code and ``error`` as the CLI reports them: an ``AgenticError``'s own code, 130
    for Ctrl-C or SIGTERM, 1 for anything else. Steps already recorded are kept.
    """
    from agentic_orchestration.errors import (
        EXIT_INTERRUPTED,
        EXIT_STEP_FAILED,
        AgenticError,
        interrupt_reason,
    )
    from agentic_orchestration.orchestration.backends.base import utc_now

    if isinstance(exc, KeyboardInterrupt):
        record.exit_code, record.error = EXIT_INTERRUPTED, interrupt_reason(exc)
    elif isinstance(exc, AgenticError):
        record.exit_code, record.error = exc.exit_code, _error_text(exc)
    else:
        record.exit_code = EXIT_STEP_FAILED
        record.error = f"{type(exc).__name__}: {exc}"
    record.status = status_for(record.exit_code)
    record.result_text = None
    record.updated_at = utc_now()
    return record


def sessions_dir() -> Path:
    """``AGENTIC_SESSIONS_PATH`` (default ``~/.local/share/agentic-orchestration/sessions``)."""
    path = settings.get_path("AGENTIC_SESSIONS_PATH")
    assert path is not None  # the variable has a non-empty default
    return path


def check_session_id(session_id: str) -> str:
    """``session_id`` when it could be a plain file name; ConfigError naming it otherwise."""
    if not _SESSION_ID.match(session_id or ""):
        raise ConfigError(f"{session_id!r} is not a valid session id (a run id such as "
                          f"20261121T063154Z-986ca6b3)")
    return session_id


def session_path(session_id: str) -> Path:
    """The record's JSON mirror file; ConfigError when the id could not be a file name."""
    return sessions_dir() / f"{check_session_id(session_id)}.json"


def save_session(record: SessionRecord) -> Path:
    """Store ``record`` (secrets masked) in the sessions database; returns the database
    file. Also writes the JSON mirror unless ``AGENTIC_SESSIONS_JSON=0``."""
    from agentic_orchestration.sessions.store import SessionStore

    return SessionStore().save(record)


def load_session(session_id: str) -> SessionRecord:
    """Read a saved record. ConfigError (naming the id and the database) when missing."""
    from agentic_orchestration.sessions.store import SessionStore

    return SessionStore().get(session_id)


def list_sessions(*, limit: int = 10_000) -> list[SessionRecord]:
    """Saved records, newest first (``SessionStore.list`` for pages and filters)."""
    from agentic_orchestration.sessions.store import SessionStore

    if not sessions_dir().is_dir():
        return []
    return SessionStore().records(limit=limit)


def _step_kinds(plan: Mapping[str, Any] | None) -> dict[str, str]:
    """step id -> kind of step (``learning.step_kind`` of its description)."""
    from agentic_orchestration.sessions.learning import step_kind

    steps = (plan or {}).get("steps") or []
    return {s["id"]: step_kind(s.get("description") or "") for s in steps
            if isinstance(s, Mapping) and s.get("id")}


def _step_summary(step: StepResult, *, kind: str | None = None,
                  attempts_root: str | None = None) -> dict[str, Any]:
    data = step.to_dict()
    summary = {key: data.get(key) for key in STEP_FIELDS}
    summary["status"] = ("ok" if step.ok else STATUS_CANCELLED if step.cancelled
                         else STATUS_FAILED)
    summary["kind"] = kind
    log = _attempts.from_run_store(attempts_root, step.step_id)
    if log:
        log[-1]["status"] = summary["status"]
    summary["attempts"] = max(1, len(log))
    summary["attempt_log"] = log
    return summary


def _error_text(error: BaseException | None) -> str | None:
    if error is None:
        return None
    return str(error) or type(error).__name__
