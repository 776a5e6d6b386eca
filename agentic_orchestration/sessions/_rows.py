"""SQL of the sessions database: the schema and how a record becomes rows.

Kept apart from ``store`` (connections, locking, the public API) so each stays readable.
A record's columns are derived from its masked JSON only; the JSON itself is stored whole
in ``sessions.record``, so a field added later is kept even before it gets a column.
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from agentic_orchestration.sessions.orchestrator_session import (
    STATUS_INTERRUPTED,
    SessionRecord,
    status_for,
)

__all__ = ["SCHEMA", "SCHEMA_VERSION", "filters", "mark_interrupted", "row_status",
           "upsert_record"]

SCHEMA_VERSION = 1

SCHEMA = """
CREATE TABLE IF NOT EXISTS sessions (
    session_id TEXT PRIMARY KEY,
    run_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    status TEXT NOT NULL,
    goal TEXT NOT NULL,
    mode TEXT,
    route TEXT,
    backend TEXT,
    exit_code INTEGER,
    error TEXT,
    step_count INTEGER NOT NULL,
    pid INTEGER,
    host TEXT,
    pid_start INTEGER,
    record TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS sessions_created ON sessions (created_at DESC, session_id DESC);
CREATE INDEX IF NOT EXISTS sessions_status ON sessions (status, created_at DESC);
CREATE INDEX IF NOT EXISTS sessions_run_id ON sessions (run_id);
CREATE UNIQUE INDEX IF NOT EXISTS sessions_seq ON sessions (seq);
CREATE TABLE IF NOT EXISTS steps (
    session_id TEXT NOT NULL REFERENCES sessions (session_id) ON DELETE CASCADE,
    position INTEGER NOT NULL,
    attempt INTEGER NOT NULL,
    final INTEGER NOT NULL,
    step_id TEXT NOT NULL,
    kind TEXT,
    provider TEXT,
    status TEXT NOT NULL,
    recoverable INTEGER NOT NULL,
    finished_at TEXT,
    duration_seconds REAL,
    total_tokens INTEGER,
    error TEXT,
    PRIMARY KEY (session_id, position, attempt)
);
CREATE INDEX IF NOT EXISTS steps_provider ON steps (provider, kind, finished_at DESC);
CREATE TABLE IF NOT EXISTS imported_files (
    name TEXT PRIMARY KEY, mtime_ns INTEGER NOT NULL, size INTEGER NOT NULL,
    outcome TEXT NOT NULL
);
"""

def filters(status: str | None, text: str | None) -> tuple[str, list[Any]]:
    clauses, params = [], []
    if status:
        clauses.append("status = ?")
        params.append(status)
    if text:
        like = "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        clauses.append("(" + " OR ".join(f"{c} LIKE ? ESCAPE '\\'" for c in (
            "goal", "run_id", "route", "backend", "error")) + ")")
        params.extend([like] * 5)
    return (f"WHERE {' AND '.join(clauses)}" if clauses else ""), params


def row_status(data: dict[str, Any]) -> str:
    """The status column: the record's, or for a record from before ``status`` existed,
    derived from its exit code (``interrupted`` when it never got one)."""
    if data.get("status"):
        return str(data["status"])
    code = data.get("exit_code")
    return status_for(code) if isinstance(code, int) else STATUS_INTERRUPTED


def mark_interrupted(record: SessionRecord, *, host: str, now: str) -> None:
    from agentic_orchestration.errors import EXIT_INTERRUPTED

    record.status = STATUS_INTERRUPTED
    record.exit_code = EXIT_INTERRUPTED
    record.error = (f"the run's process (pid {record.pid} on {host}) ended without "
                    f"finishing the run (killed?)")
    record.updated_at = now


def upsert_record(conn: sqlite3.Connection, data: dict[str, Any]) -> None:
    """Insert or replace one (already masked) record and its step rows, in ``conn``'s
    transaction."""
    seq = conn.execute("SELECT coalesce(max(seq), 0) + 1 FROM sessions").fetchone()[0]
    steps = data.get("steps") or []
    conn.execute("DELETE FROM sessions WHERE session_id = ?", (data["session_id"],))
    conn.execute(
        "INSERT INTO sessions (session_id, run_id, seq, created_at, updated_at, status, goal, "
        "mode, route, backend, exit_code, error, step_count, pid, host, pid_start, record) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (data["session_id"], data.get("run_id") or data["session_id"], seq,
         data.get("created_at") or "", data.get("updated_at") or "", row_status(data),
         data.get("goal") or "", data.get("mode"), data.get("route"),
         data.get("last_execution_backend"), data.get("exit_code"), data.get("error"),
         len(steps), data.get("pid"), data.get("host"), data.get("pid_start"),
         json.dumps(data, ensure_ascii=False)))
    conn.executemany(
        "INSERT OR REPLACE INTO steps VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [(data["session_id"], position, *row) for position, step in enumerate(steps)
         for row in _attempt_rows(step)])


def _attempt_rows(step: dict[str, Any]) -> list[tuple[Any, ...]]:
    """(attempt, final, step_id, kind, provider, status, recoverable, finished_at,
    duration, tokens, error) per attempt: from ``attempt_log`` when the backend kept one,
    else the step itself as its only attempt."""
    log = step.get("attempt_log") or [{**step, "attempt": 1}]
    rows = []
    for index, attempt in enumerate(log):
        timing = attempt.get("timing") or {}
        usage = attempt.get("usage") or {}
        rows.append((
            attempt.get("attempt") or index + 1, index == len(log) - 1, step.get("step_id"),
            step.get("kind"), attempt.get("agent_provider_id"),
            attempt.get("status") or ("ok" if attempt.get("exit_code") == 0 else "failed"),
            bool(attempt.get("recoverable")), timing.get("finished_at"),
            timing.get("duration_seconds"), usage.get("total_tokens"), attempt.get("error"),
        ))
    return rows


