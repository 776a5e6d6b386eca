"""Session records: one JSON file per run, written atomically, secrets masked."""

from agentic_orchestration.sessions.orchestrator_session import (
    MODES,
    SESSION_SCHEMA_VERSION,
    SessionRecord,
    end_session,
    list_sessions,
    load_session,
    save_session,
    session_path,
    sessions_dir,
    start_session,
    update_session,
)

__all__ = [
    "MODES",
    "SESSION_SCHEMA_VERSION",
    "SessionRecord",
    "end_session",
    "list_sessions",
    "load_session",
    "save_session",
    "session_path",
    "sessions_dir",
    "start_session",
    "update_session",
]
