"""Sessions: every run's record in a SQLite database (and a JSON mirror), secrets masked,
and what the project learns from them (``learning``).

Other packages use ``SessionStore`` (lists, one record, step rows, a change feed) and
``on_session_finished`` (a callback after each run ends); see ``store``.
"""

from agentic_orchestration.sessions.orchestrator_session import (
    FINAL_STATUSES,
    MODES,
    SESSION_SCHEMA_VERSION,
    SessionRecord,
    check_session_id,
    end_session,
    list_sessions,
    load_session,
    save_session,
    session_path,
    sessions_dir,
    start_session,
    update_session,
)
from agentic_orchestration.sessions.store import (
    DB_NAME,
    SessionStore,
    SessionSummary,
    StepRow,
    on_session_finished,
)

__all__ = [
    "DB_NAME",
    "FINAL_STATUSES",
    "MODES",
    "SESSION_SCHEMA_VERSION",
    "SessionRecord",
    "SessionStore",
    "SessionSummary",
    "StepRow",
    "check_session_id",
    "end_session",
    "list_sessions",
    "load_session",
    "on_session_finished",
    "save_session",
    "session_path",
    "sessions_dir",
    "start_session",
    "update_session",
]
