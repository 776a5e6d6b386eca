"""The knowledge base: past runs' outputs in SQLite, searched with FTS5 and ranked by BM25.

One file (``AGENTIC_KB_PATH``, default ``knowledge.sqlite3`` in ``AGENTIC_SESSIONS_PATH``),
mode 0600 in a 0700 folder: goals and answers can be private. SQLite because it is in the
standard library, FTS5 and its BM25 ranking come with it, and WAL mode lets the web UI
search while a run writes. No server, no extra package.

Tables: ``kb_docs`` (one row per indexed output: run, step, kind, goal, provider, text),
``kb_fts`` (an FTS5 index over ``goal`` and ``text``, kept in step with ``kb_docs`` by
triggers), ``kb_runs`` (a digest of what was indexed per run, so indexing the same record
again changes nothing).

``search`` returns past *runs*, each with its best-matching output: a run's steps share
its goal, so without this the top 3 would often be three steps of one run.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import sqlite3
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from agentic_orchestration import settings
from agentic_orchestration.errors import ConfigError
from agentic_orchestration.knowledge._documents import Document, documents_from_record
from agentic_orchestration.knowledge._query import fts_query, query_terms

logger = logging.getLogger(__name__)

__all__ = ["KB_FILE_NAME", "KnowledgeBase", "SearchHit", "kb_path"]

KB_FILE_NAME = "knowledge.sqlite3"
SCHEMA_VERSION = "1"  # kb_meta.schema_version
_SCHEMA = """
CREATE TABLE IF NOT EXISTS kb_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS kb_docs (
    id INTEGER PRIMARY KEY,
    run_id TEXT NOT NULL,
    step_id TEXT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('final', 'step')),
    goal TEXT NOT NULL,
    provider TEXT NOT NULL,
    created_at TEXT NOT NULL,
    text TEXT NOT NULL,
    UNIQUE (run_id, step_id)
);
CREATE TABLE IF NOT EXISTS kb_runs (
    run_id TEXT PRIMARY KEY, digest TEXT NOT NULL, indexed_at TEXT NOT NULL
);
CREATE VIRTUAL TABLE IF NOT EXISTS kb_fts USING fts5(
    goal, text, content='kb_docs', content_rowid='id',
    tokenize='porter unicode61 remove_diacritics 2'
);
CREATE TRIGGER IF NOT EXISTS kb_docs_ai AFTER INSERT ON kb_docs BEGIN
    INSERT INTO kb_fts(rowid, goal, text) VALUES (new.id, new.goal, new.text);
END;
CREATE TRIGGER IF NOT EXISTS kb_docs_ad AFTER DELETE ON kb_docs BEGIN
    INSERT INTO kb_fts(kb_fts, rowid, goal, text) VALUES ('delete', old.id, old.goal, old.text);
END;
INSERT OR IGNORE INTO kb_meta (key, value) VALUES ('schema_version', '1');
"""

#: bm25() weights the ``goal`` column 2 and ``text`` 1: a past goal worded like the new one is
#: the strongest sign of a related run (benchmarks/bench_kb_recall.py measures it).
_SEARCH = """
SELECT d.run_id, d.step_id, d.kind, d.goal, d.provider, d.created_at, d.text,
       -bm25(kb_fts, 2.0, 1.0) AS score,
       snippet(kb_fts, 1, '[', ']', ' ... ', 16) AS snippet
FROM kb_fts JOIN kb_docs d ON d.id = kb_fts.rowid
WHERE kb_fts MATCH ?
ORDER BY score DESC, d.created_at DESC
LIMIT ?
"""


@dataclass(frozen=True)
class SearchHit:
    """A past run and its output that best matches the query."""

    run_id: str
    step_id: str
    kind: str
    goal: str
    provider: str
    created_at: str
    text: str
    #: BM25 relevance (higher is better; only comparable within one search).
    score: float
    #: The matching part of ``text``, query words in ``[brackets]``.
    snippet: str
    #: How many of the query's meaningful words the output or its goal contains.
    matched_terms: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def kb_path() -> Path:
    """``AGENTIC_KB_PATH``, else ``knowledge.sqlite3`` in ``AGENTIC_SESSIONS_PATH``."""
    explicit = settings.get_path("AGENTIC_KB_PATH")
    if explicit is not None:
        return explicit
    sessions = settings.get_path("AGENTIC_SESSIONS_PATH")
    assert sessions is not None  # the variable has a non-empty default
    return sessions / KB_FILE_NAME


class KnowledgeBase:
    """One knowledge base file. Cheap to create: nothing is opened until it is used.

    Args:
        path: The SQLite file; default ``kb_path()``.
    """

    def __init__(self, path: Path | str | None = None) -> None:
        self.path = Path(path) if path is not None else kb_path()

    def exists(self) -> bool:
        return self.path.is_file()

    # --- connections ------------------------------------------------------------------------

    @contextlib.contextmanager
    def _connect(self, *, create: bool) -> Iterator[sqlite3.Connection]:
        """A connection with the schema in place; ConfigError naming the file otherwise."""
        if create:
            self._create_file()
        try:
            conn = sqlite3.connect(self.path, timeout=10.0, isolation_level=None)
        except sqlite3.Error as exc:
            raise self._error(exc) from None
        try:
            conn.execute("PRAGMA busy_timeout = 10000")
            if create:
                # WAL: readers (the web UI, a planner) never wait for a run indexing. NORMAL
                # sync is safe from corruption in WAL mode; a power cut may lose the last
                # run's index, which the next index_run of that record puts back.
                conn.execute("PRAGMA journal_mode = WAL")
                conn.execute("PRAGMA synchronous = NORMAL")
                conn.executescript(_SCHEMA)
            yield conn
        except sqlite3.Error as exc:
            raise self._error(exc) from None
        finally:
            conn.close()

    def _create_file(self) -> None:
        """Create the folder (0700) and an empty file (0600) before SQLite opens it.

        SQLite gives its journal and WAL files the database file's permission bits, so a
        file created private here keeps every companion file private too.
        """
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd = os.open(self.path, os.O_CREAT | os.O_RDWR, 0o600)
            os.close(fd)
        except OSError as exc:
            raise ConfigError(f"knowledge base {self.path}: cannot create it: "
                              f"{exc.strerror or exc} (set AGENTIC_KB_PATH to a file in a "
                              f"writable folder)") from None

    def _error(self, exc: sqlite3.Error) -> ConfigError:
        text = str(exc)
        if "fts5" in text.lower():
            text += " (this Python's SQLite was built without FTS5)"
        return ConfigError(f"knowledge base {self.path}: {text}")

    # --- writing ----------------------------------------------------------------------------

    def index_run(self, record: Any) -> int:
        """Index the outputs of one finished run (a ``SessionRecord`` or its dict).

        Idempotent: indexing the same record again changes nothing; a record whose outputs
        changed (a resumed run) replaces that run's documents.

        Returns:
            Documents written (0 when the run has none or nothing changed).

        Raises:
            ConfigError: The file cannot be created or is not a knowledge base.
        """
        return self.index_runs([record])

    def index_runs(self, records: Iterable[Any]) -> int:
        """``index_run`` for many records over one connection (imports, benchmarks).

        Each run is its own transaction, so a failure keeps the runs indexed before it.
        """
        written = 0
        with self._connect(create=True) as conn:
            for record in records:
                written += _index_one(conn, documents_from_record(record))
        return written

    # --- reading ----------------------------------------------------------------------------

    def search(self, text: str, k: int = 10) -> list[SearchHit]:
        """The ``k`` past runs most relevant to ``text``, best first, one hit per run.

        An empty knowledge base (no file yet) or a text without meaningful words gives no
        hits; nothing is created by searching.

        Raises:
            ConfigError: The file exists but is not a readable knowledge base.
        """
        terms = query_terms(text)
        if not terms or k < 1 or not self.exists():
            return []
        with self._connect(create=False) as conn:
            if not _has_schema(conn):
                raise ConfigError(f"knowledge base {self.path}: not a knowledge base file "
                                  "(no kb_fts table)")
            hits = self._best_per_run(conn, fts_query(terms), k)
            return [_with_coverage(conn, hit, terms) for hit in hits]

    def _best_per_run(self, conn: sqlite3.Connection, query: str, k: int) -> list[SearchHit]:
        limit = max(50, k * 8)
        while True:
            rows = conn.execute(_SEARCH, (query, limit)).fetchall()
            best: dict[str, SearchHit] = {}
            for row in rows:
                if row[0] not in best:
                    best[row[0]] = SearchHit(*row[:7], score=round(float(row[7]), 6),
                                             snippet=" ".join(str(row[8]).split()))
                    if len(best) == k:
                        return list(best.values())
            if len(rows) < limit:
                return list(best.values())
            limit *= 4  # many hits from few runs: look further down the ranking

    def count(self) -> tuple[int, int]:
        """``(runs, documents)`` indexed (0, 0 when there is no file yet)."""
        if not self.exists():
            return 0, 0
        with self._connect(create=False) as conn:
            if not _has_schema(conn):
                return 0, 0
            runs = conn.execute("SELECT COUNT(*) FROM kb_runs").fetchone()[0]
            docs = conn.execute("SELECT COUNT(*) FROM kb_docs").fetchone()[0]
            return int(runs), int(docs)


def _index_one(conn: sqlite3.Connection, docs: list[Document]) -> int:
    if not docs:
        return 0
    from agentic_orchestration.orchestration.backends.base import utc_now

    run_id, digest = docs[0].run_id, _digest(docs)
    conn.execute("BEGIN IMMEDIATE")
    try:
        row = conn.execute("SELECT digest FROM kb_runs WHERE run_id = ?", (run_id,)).fetchone()
        if row is not None and row[0] == digest:
            conn.execute("COMMIT")
            return 0
        conn.execute("DELETE FROM kb_docs WHERE run_id = ?", (run_id,))
        conn.executemany(
            "INSERT INTO kb_docs (run_id, step_id, kind, goal, provider, created_at, text) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            [(d.run_id, d.step_id, d.kind, d.goal, d.provider, d.created_at, d.text)
             for d in docs])
        conn.execute("INSERT OR REPLACE INTO kb_runs (run_id, digest, indexed_at) "
                     "VALUES (?, ?, ?)", (run_id, digest, utc_now()))
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    logger.info("knowledge base: run %s indexed (%d outputs)", run_id, len(docs))
    return len(docs)


def _has_schema(conn: sqlite3.Connection) -> bool:
    row = conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'kb_fts'").fetchone()
    return row is not None


def _with_coverage(conn: sqlite3.Connection, hit: SearchHit, terms: list[str]) -> SearchHit:
    """``hit`` with ``matched_terms`` counted by FTS5 itself (same stemming as the search)."""
    row = conn.execute("SELECT id FROM kb_docs WHERE run_id = ? AND step_id = ?",
                       (hit.run_id, hit.step_id)).fetchone()
    if row is None:
        return hit
    matched = sum(
        1 for term in terms
        if conn.execute("SELECT 1 FROM kb_fts WHERE kb_fts MATCH ? AND rowid = ?",
                        (fts_query([term]), row[0])).fetchone() is not None)
    return SearchHit(**{**hit.to_dict(), "matched_terms": matched})


def _digest(docs: list[Document]) -> str:
    payload = json.dumps([asdict(d) for d in docs], sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()
