"""Knowledge base: past runs' outputs indexed with SQLite FTS5, fed to the planner.

- ``KnowledgeBase`` (``store``): ``index_run(record)`` (idempotent), ``search(text, k)``
  (BM25, one hit per past run), in one private SQLite file (``kb_path()``).
- ``planner_context(goal)``: the bounded block of past results the planner sees, with the
  run ids it used; ``index_finished_run(record)``: what the CLI calls after a run.

Light on purpose (stdlib ``sqlite3`` only): the planner imports it before every plan.
"""

from agentic_orchestration.knowledge.planner_context import (
    KBContext,
    format_context,
    index_finished_run,
    kb_enabled,
    planner_context,
)
from agentic_orchestration.knowledge.store import KB_FILE_NAME, KnowledgeBase, SearchHit, kb_path

__all__ = [
    "KB_FILE_NAME",
    "KBContext",
    "KnowledgeBase",
    "SearchHit",
    "format_context",
    "index_finished_run",
    "kb_enabled",
    "kb_path",
    "planner_context",
]
