"""Import the ``{run_id}.json`` session files into the database, once, losing nothing.

Before the database, each run was one JSON file in ``AGENTIC_SESSIONS_PATH``; the store
still writes that file as a mirror. On first use in a process, every ``*.json`` file of the
folder whose (name, mtime, size) is not yet in ``imported_files`` is read:

- a record with no row yet is inserted; one whose row is older (``updated_at``) replaces
  it; a row at least as new is kept (it is the same record or a newer save of it);
- a file that is not a session record (broken JSON, another schema version) is left where
  it is, logged once, and recorded so it is not read again until it changes.

So importing twice changes nothing, a file the database already holds costs one ``stat``,
and the files themselves are never modified or removed.
"""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING

from agentic_orchestration.errors import ConfigError
from agentic_orchestration.redaction import redact_obj

if TYPE_CHECKING:
    from agentic_orchestration.sessions.store import SessionStore

logger = logging.getLogger(__name__)

__all__ = ["import_json_files"]


def import_json_files(store: SessionStore) -> int:
    """Import new or changed JSON records of ``store.folder``; returns how many were
    inserted or replaced. One transaction, so concurrent first uses import once."""
    from agentic_orchestration.sessions._rows import upsert_record
    from agentic_orchestration.sessions.orchestrator_session import SessionRecord

    files = sorted(p for p in store.folder.glob("*.json") if not p.name.startswith("."))
    if not files:
        return 0
    imported = 0
    with store._write() as conn:
        known = {row["name"]: (row["mtime_ns"], row["size"]) for row in
                 conn.execute("SELECT name, mtime_ns, size FROM imported_files")}
        for path in files:
            try:
                info = path.stat()
            except OSError:  # removed meanwhile
                continue
            if known.get(path.name) == (info.st_mtime_ns, info.st_size):
                continue
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
                if not isinstance(data, dict):
                    raise ConfigError(f"{path}: not a session record (expected a JSON object)")
                record = SessionRecord.from_dict(data, source=str(path))
            except (OSError, ValueError, ConfigError) as exc:
                logger.warning("session file not imported: %s", exc)
                outcome = f"skipped: {exc}"[:500]
            else:
                row = conn.execute("SELECT updated_at FROM sessions WHERE session_id = ?",
                                   (record.session_id,)).fetchone()
                if row is None or row["updated_at"] < record.updated_at:
                    upsert_record(conn, redact_obj(record.to_dict()))
                    imported += 1
                outcome = "imported"
            conn.execute("INSERT OR REPLACE INTO imported_files VALUES (?, ?, ?, ?)",
                         (path.name, info.st_mtime_ns, info.st_size, outcome))
    if imported:
        logger.info("imported %d JSON session record(s) from %s", imported, store.folder)
    return imported
