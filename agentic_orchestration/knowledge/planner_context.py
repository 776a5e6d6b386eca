"""The knowledge base's two hooks into a run: past results for the planner, and indexing.

``planner_context(goal)`` builds the block of past results the dynamic planner sees: the
``AGENTIC_KB_RESULTS`` past runs most relevant to the goal, each as its goal and an excerpt
of its best-matching output, the whole block within ``AGENTIC_KB_CONTEXT_CHARS``
characters. Bounded because every character is prompt (prefill time on a CPU model, money
on an API), and a plan needs the gist of what worked before, not whole answers. The run ids
it used come back with it, so the plan can record them (``WorkflowConfig.kb_context``).

A past run is shown only when it shares at least two meaningful words with the goal (one
when the goal has only one): BM25 ranks any run containing any word of the goal, and a
planner shown an unrelated answer copies from it.

``index_finished_run(record)`` is what the CLI calls once a run's session is saved.

Both are best effort: a missing, locked or broken knowledge base is logged and the run goes
on. Planning and running must never fail because of it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from agentic_orchestration import settings
from agentic_orchestration.errors import AgenticError
from agentic_orchestration.knowledge.store import KnowledgeBase, SearchHit

logger = logging.getLogger(__name__)

__all__ = ["KBContext", "format_context", "index_finished_run", "kb_enabled",
           "planner_context"]

HEADER = ("Results of past runs on similar goals (from the knowledge base; reuse what "
          "helps, but plan for the goal below):")
#: Below this many characters an excerpt says nothing useful; fewer runs are shown instead.
MIN_EXCERPT_CHARS = 80


@dataclass(frozen=True)
class KBContext:
    """The planner's past-results block and the runs it came from (both empty when none)."""

    text: str = ""
    run_ids: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.text)


def kb_enabled() -> bool:
    """``AGENTIC_KB`` (on by default)."""
    return settings.get_bool("AGENTIC_KB")


def _relevant(hit: SearchHit, n_terms: int) -> bool:
    return hit.matched_terms >= min(2, n_terms)


def _clip(text: str, limit: int) -> str:
    flat = " ".join(text.split())
    if len(flat) <= limit:
        return flat
    return flat[: max(0, limit - 3)].rstrip() + "..."


def format_context(hits: list[SearchHit], budget: int) -> KBContext:
    """The block for ``hits`` (best first) in at most ``budget`` characters.

    Each run gets one line, ``- Past goal "...": <excerpt>``; the budget is shared evenly,
    and runs that would get less than ``MIN_EXCERPT_CHARS`` are left out (the best kept).
    """
    for shown in range(len(hits), 0, -1):
        room = budget - len(HEADER) - 1
        share = room // shown
        lines = []
        for hit in hits[:shown]:
            goal = _clip(hit.goal, max(20, share // 4))
            prefix = f'- Past goal "{goal}": '
            excerpt_room = share - len(prefix) - 1  # the newline
            if excerpt_room < MIN_EXCERPT_CHARS:
                break
            lines.append(prefix + _clip(hit.text, excerpt_room))
        else:
            text = "\n".join([HEADER, *lines])
            if len(text) <= budget:
                return KBContext(text, [hit.run_id for hit in hits[:shown]])
    return KBContext()


def planner_context(goal: str, *, kb: KnowledgeBase | None = None,
                    results: int | None = None, budget: int | None = None) -> KBContext:
    """Past results for ``goal``, bounded (see the module docstring); empty when off.

    Args:
        goal: The goal about to be planned.
        kb: The knowledge base; default the configured one.
        results: Most past runs shown; default ``AGENTIC_KB_RESULTS``.
        budget: Characters of the whole block; default ``AGENTIC_KB_CONTEXT_CHARS``.
    """
    if not kb_enabled():
        return KBContext()
    results = results if results is not None else settings.get_int("AGENTIC_KB_RESULTS")
    budget = budget if budget is not None else settings.get_int("AGENTIC_KB_CONTEXT_CHARS")
    if budget <= 0:
        return KBContext()
    from agentic_orchestration.knowledge._query import query_terms

    kb = kb if kb is not None else KnowledgeBase()
    try:
        hits = kb.search(goal, k=results)
    except AgenticError as exc:
        logger.warning("knowledge base not used for this plan: %s", exc)
        return KBContext()
    n_terms = len(query_terms(goal))
    context = format_context([h for h in hits if _relevant(h, n_terms)], budget)
    if context:
        logger.info("planner gets %d past run(s) from the knowledge base: %s",
                    len(context.run_ids), ", ".join(context.run_ids))
    return context


def index_finished_run(record: Any, *, kb: KnowledgeBase | None = None) -> int:
    """Index a finished run's outputs (``AGENTIC_KB=0``: nothing); never raises.

    Returns:
        Documents written (0 when off, unchanged, nothing to index, or on an error).
    """
    if not kb_enabled():
        return 0
    kb = kb if kb is not None else KnowledgeBase()
    try:
        return kb.index_run(record)
    except Exception as exc:  # the run's answer is kept already; the index is a bonus
        logger.warning("knowledge base: run %s not indexed: %s",
                       getattr(record, "run_id", "?"), exc)
        return 0
