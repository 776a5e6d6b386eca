"""The sessions database: every run in one SQLite file, safe for many writers and readers.

``{AGENTIC_SESSIONS_PATH}/sessions.sqlite3`` (folder 0700, file 0600) in WAL mode: readers
(the web UI, ``--sessions``) never block the runs writing, and a process killed mid-write
leaves the last committed state, never half a record. Every write is one short
``BEGIN IMMEDIATE`` transaction under a 60 s busy timeout, so concurrent runs queue for a
few milliseconds instead of failing (tested with 20 writer processes). ``synchronous=NORMAL``:
a killed process loses nothing committed; a power cut may lose the last commits, never
the file. Keep the folder on a local disk: WAL needs shared memory, which NFS and most
ReadWriteMany volumes do not give (a Kubernetes coordinator keeps its sessions on its own
ReadWriteOnce volume).

Tables: ``sessions`` (one row per run: the masked record as JSON plus the columns lists and
filters need), ``steps`` (one row per *attempt* of a step, the learning statistics' input),
``imported_files`` (which ``{run_id}.json`` files were imported, by name, mtime and size, so
the import is idempotent and cheap). Each save bumps ``seq``: ``changes(after_seq)`` is a
feed of what changed since a reader last looked.

API for the other packages (stable):

- ``SessionStore(path=None)``: ``save(record)``, ``get(run_id)``, ``list(status=, text=,
  limit=, offset=)`` -> ``SessionSummary`` rows, ``count(...)``, ``step_rows(provider=,
  kind=, limit=)`` -> ``StepRow``, ``changes(after_seq)``, ``reap_interrupted()``.
- ``on_session_finished(callback)``: ``callback(record)`` runs in the saving process after a
  run reaches a final status (ok, failed, cancelled, interrupted), e.g. to index its outputs
  in the knowledge base. A callback error is logged, never raised into the run. For runs
  finished by other processes, poll ``changes(after_seq)``.
- The record keeps room for later features: ``revisions`` (plan revisions of an iterative
  run, a list of JSON objects) and ``extra`` (any JSON object, by feature name).

The JSON import and the ``running`` -> ``interrupted`` rule are in ``_legacy_json`` and
``_liveness``; the row types and the finish hooks in ``_records`` (re-exported here).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from agentic_orchestration.errors import ConfigError
from agentic_orchestration.redaction import redact_obj
from agentic_orchestration.sessions._liveness import process_alive
from agentic_orchestration.sessions._records import (
    SessionSummary,
    StepRow,
    on_session_finished,
)
from agentic_orchestration.sessions._records import run_hooks as _run_hooks
from agentic_orchestration.sessions._rows import (
    SCHEMA,
    SCHEMA_VERSION,
    filters,
    mark_interrupted,
    row_status,
    upsert_record,
)
from agentic_orchestration.sessions.orchestrator_session import (
    FINAL_STATUSES,
    STATUS_RUNNING,
    SessionRecord,
    check_session_id,
    sessions_dir,
)

logger = logging.getLogger(__name__)

__all__ = [
    "DB_NAME",
    "SessionStore",
    "SessionSummary",
    "StepRow",
    "on_session_finished",
]

DB_NAME = "sessions.sqlite3"
BUSY_TIMEOUT_SECONDS = 60.0

_ready_lock = threading.Lock()
_ready: set[str] = set()

_SUMMARY_COLUMNS = ("session_id", "run_id", "seq", "created_at", "updated_at", "status",
                    "goal", "mode", "route", "backend", "exit_code", "error", "step_count",
                    "pid", "host")


class SessionStore:
    """The sessions database at ``path`` (default ``{AGENTIC_SESSIONS_PATH}/sessions.sqlite3``).

    Cheap to create: the schema is made (and old JSON records imported) once per process
    per file, and each call opens its own short connection, so one store may be shared by
    threads (the web server) and by forked processes.

    Args:
        path: The database file; its folder holds the legacy ``{run_id}.json`` files too.
        json_mirror: Also write each record as ``{folder}/{session_id}.json`` (default
            ``AGENTIC_SESSIONS_JSON``).
    """

    def __init__(self, path: Path | str | None = None, *,
                 json_mirror: bool | None = None) -> None:
        self.path = Path(path) if path is not None else sessions_dir() / DB_NAME
        self.folder = self.path.parent
        if json_mirror is None:
            from agentic_orchestration import settings

            json_mirror = settings.get_bool("AGENTIC_SESSIONS_JSON")
        self.json_mirror = json_mirror

    def __repr__(self) -> str:
        return f"SessionStore({str(self.path)!r})"

    # --- connections ---------------------------------------------------------------------

    @contextlib.contextmanager
    def _connect(self, *, create: bool = True) -> Iterator[sqlite3.Connection]:
        self._ensure_ready(create=create)
        try:
            conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_SECONDS,
                                   isolation_level=None)
        except sqlite3.Error as exc:
            raise ConfigError(f"{self.path}: cannot open the sessions database ({exc})") from None
        try:
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA foreign_keys = ON")
            conn.execute("PRAGMA synchronous = NORMAL")
            yield conn
        except sqlite3.DatabaseError as exc:
            if isinstance(exc, sqlite3.OperationalError) and "locked" in str(exc):
                raise
            raise ConfigError(f"{self.path}: sessions database error ({exc})") from None
        finally:
            conn.close()

    @contextlib.contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One ``BEGIN IMMEDIATE`` transaction: the write lock is taken up front, so two
        writers queue on the busy timeout instead of one failing on a lock upgrade."""
        with self._connect() as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    def _ensure_ready(self, *, create: bool = True) -> None:
        """Schema made and JSON records imported (once per process); with ``create``
        False, FileNotFoundError instead of creating a database where there is nothing."""
        if str(self.path) not in _ready:
            if not create and not self.path.exists() and not self._has_json_files():
                raise FileNotFoundError(self.path)
            self._prepare()

    def _has_json_files(self) -> bool:
        return self.folder.is_dir() and any(
            not p.name.startswith(".") for p in self.folder.glob("*.json"))

    def _prepare(self) -> None:
        """Create folder (0700), file (0600), WAL mode and schema; import JSON records."""
        from agentic_orchestration.sessions._legacy_json import import_json_files

        with _ready_lock:
            if str(self.path) in _ready:
                return
            try:
                self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
                # Created 0600 before SQLite touches it; SQLite gives -wal/-shm the same mode.
                os.close(os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600))
            except OSError as exc:
                raise ConfigError(f"{self.path}: cannot create the sessions database "
                                  f"({exc.strerror or exc}); point AGENTIC_SESSIONS_PATH at a "
                                  "folder you can write") from None
            try:
                conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_SECONDS,
                                       isolation_level=None)
                try:
                    self._init_schema(conn)
                finally:
                    conn.close()
            except sqlite3.DatabaseError as exc:
                raise ConfigError(f"{self.path}: not a usable sessions database ({exc}); "
                                  f"move it away or point AGENTIC_SESSIONS_PATH elsewhere"
                                  ) from None
            _ready.add(str(self.path))
        import_json_files(self)

    def _init_schema(self, conn: sqlite3.Connection) -> None:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise ConfigError(f"{self.path}: sessions database schema {version} is newer than "
                              f"this version reads ({SCHEMA_VERSION})")
        if conn.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
            conn.execute("PRAGMA journal_mode = WAL")
        if version < SCHEMA_VERSION:
            conn.execute("BEGIN IMMEDIATE")
            for statement in filter(str.strip, SCHEMA.split(";")):
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            conn.execute("COMMIT")

    # --- writing -------------------------------------------------------------------------

    def save(self, record: SessionRecord) -> Path:
        """Store ``record`` (secrets masked): insert or replace its row and step rows.

        Returns the database file. Runs the ``on_session_finished`` callbacks when the
        record reaches a final status it did not have before.
        """
        data = redact_obj(record.to_dict())
        check_session_id(data["session_id"])
        self._ensure_ready()  # import old files before this save adds its own mirror
        ledger = None
        if self.json_mirror:
            ledger = self._write_mirror(data)
        with self._write() as conn:
            before = conn.execute("SELECT status FROM sessions WHERE session_id = ?",
                                  (data["session_id"],)).fetchone()
            upsert_record(conn, data)
            if ledger is not None:
                conn.execute("INSERT OR REPLACE INTO imported_files VALUES (?, ?, ?, ?)",
                             ledger)
        status = row_status(data)
        if status in FINAL_STATUSES and (before is None or before["status"] != status):
            _run_hooks(SessionRecord.from_dict(data))
        logger.debug("session %s saved (%s) in %s", data["session_id"], status, self.path)
        return self.path

    def _write_mirror(self, data: dict[str, Any]) -> tuple[str, int, int] | None:
        """``{session_id}.json`` (0600, atomic), recorded as already imported."""
        from agentic_orchestration._fs import atomic_write_json

        self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        path = atomic_write_json(self.folder / f"{data['session_id']}.json", data, mode=0o600)
        info = path.stat()
        return path.name, info.st_mtime_ns, info.st_size, "mirror"

    def reap_interrupted(self) -> list[str]:
        """Mark ``running`` sessions of this host whose process is gone ``interrupted``.

        The rule (``_liveness``): same host, and the recorded pid is dead or belongs to a
        process with another start time. Sessions without a pid (written before pids
        were recorded) or from another host are left alone. Returns the ids marked.
        """
        import socket

        from agentic_orchestration.orchestration.backends.base import utc_now

        host = socket.gethostname()
        with self._connect() as conn:
            rows = conn.execute(
                "SELECT session_id, pid, pid_start FROM sessions "
                "WHERE status = ? AND host = ? AND pid IS NOT NULL",
                (STATUS_RUNNING, host)).fetchall()
        dead = [r["session_id"] for r in rows if r["pid"] != os.getpid()
                and not process_alive(r["pid"], r["pid_start"])]
        marked = []
        for session_id in dead:
            with self._write() as conn:
                row = conn.execute("SELECT record FROM sessions WHERE session_id = ? AND "
                                   "status = ?", (session_id, STATUS_RUNNING)).fetchone()
                if row is None:  # another reader marked it meanwhile
                    continue
                record = SessionRecord.from_dict(json.loads(row["record"]))
                mark_interrupted(record, host=host, now=utc_now())
                data = redact_obj(record.to_dict())
                upsert_record(conn, data)
            marked.append(session_id)
            logger.warning("session %s: process %s on %s is gone; marked interrupted",
                           session_id, record.pid, host)
            if self.json_mirror:
                self._write_mirror(data)
            _run_hooks(SessionRecord.from_dict(data))
        return marked

    # --- reading -------------------------------------------------------------------------

    def get(self, run_id: str) -> SessionRecord:
        """The full record of a run (by session id or run id).

        Raises:
            ConfigError: the id is malformed, or no such session (the message names both
                the id and the database).
        """
        check_session_id(run_id)
        self.reap_interrupted()
        with self._connect() as conn:
            row = conn.execute(
                "SELECT record FROM sessions WHERE session_id = ? OR run_id = ? "
                "ORDER BY session_id = ? DESC LIMIT 1", (run_id, run_id, run_id)).fetchone()
        if row is None:
            raise ConfigError(f"no session {run_id!r} in {self.path} "
                              f"(main.py --sessions lists them)")
        return SessionRecord.from_dict(json.loads(row["record"]), source=str(self.path))

    def list(self, *, status: str | None = None, text: str | None = None, limit: int = 50,
             offset: int = 0) -> list[SessionSummary]:
        """Sessions newest first, filtered by ``status`` and by ``text`` (a case-insensitive
        substring of goal, run id, route, backend or error)."""
        self.reap_interrupted()
        where, params = filters(status, text)
        columns = ", ".join(_SUMMARY_COLUMNS)
        with self._connect() as conn:
            rows = conn.execute(
                f"SELECT {columns} FROM sessions {where} "  # noqa: S608 - fixed columns
                "ORDER BY created_at DESC, session_id DESC LIMIT ? OFFSET ?",
                (*params, max(0, limit), max(0, offset))).fetchall()
        return [SessionSummary(**dict(row)) for row in rows]

    def count(self, *, status: str | None = None, text: str | None = None) -> int:
        """How many sessions ``list`` would page through with these filters."""
        where, params = filters(status, text)
        with self._connect() as conn:
            return conn.execute(f"SELECT count(*) FROM sessions {where}",  # noqa: S608
                                params).fetchone()[0]

    def records(self, *, status: str | None = None, text: str | None = None,
                limit: int = 50, offset: int = 0) -> list[SessionRecord]:
        """Like ``list`` but the full records."""
        where, params = filters(status, text)
        with self._connect() as conn:
            rows = conn.execute(
                f"SELECT record FROM sessions {where} "  # noqa: S608
                "ORDER BY created_at DESC, session_id DESC LIMIT ? OFFSET ?",
                (*params, max(0, limit), max(0, offset))).fetchall()
        return [SessionRecord.from_dict(json.loads(r["record"])) for r in rows]

    def step_rows(self, *, provider: str | None = None, kind: str | None = None,
                  limit: int | None = None) -> list[StepRow]:
        """Step attempts, newest first; ``cancelled`` ones included (callers skip them)."""
        clauses, params = [], []
        if provider is not None:
            clauses.append("provider = ?")
            params.append(provider)
        if kind is not None:
            clauses.append("kind = ?")
            params.append(kind)
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        sql = (f"SELECT session_id, step_id, attempt, final, kind, provider, status, "  # noqa: S608
               f"recoverable, finished_at, duration_seconds, total_tokens, error FROM steps "
               f"{where} ORDER BY finished_at DESC, session_id DESC, position DESC, "
               f"attempt DESC")
        if limit is not None:
            sql += " LIMIT ?"
            params.append(max(0, limit))
        try:
            with self._connect(create=False) as conn:
                rows = conn.execute(sql, params).fetchall()
        except FileNotFoundError:  # no history yet: reading must not create anything
            return []
        return [StepRow(**{**dict(r), "final": bool(r["final"]),
                           "recoverable": bool(r["recoverable"])}) for r in rows]

    def changes(self, after_seq: int = 0, *, limit: int = 100) -> list[tuple[int, str, str]]:
        """``(seq, session_id, status)`` of sessions saved after ``after_seq``, oldest first:
        a reader remembers the last ``seq`` it saw and asks again later."""
        with self._connect() as conn:
            rows = conn.execute("SELECT seq, session_id, status FROM sessions WHERE seq > ? "
                                "ORDER BY seq LIMIT ?", (after_seq, limit)).fetchall()
        return [(r["seq"], r["session_id"], r["status"]) for r in rows]

