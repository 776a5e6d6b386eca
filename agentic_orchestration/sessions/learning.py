"""Learning from past runs: how reliable each agent provider is, per kind of step.

Computed from the sessions database (``SessionStore.step_rows``: one row per attempt of a
step), never stored, so it always reflects what is there. Three uses:

- ``provider_stats``: per provider, and per provider and kind of step, over its last
  ``AGENTIC_LEARNING_WINDOW`` attempts: runs (attempts), success rate, latency p50/p90
  (seconds, successful attempts, nearest-rank), recoverable failures, tokens. Cancelled
  attempts are left out: the user stopped them, the provider did not fail.
  ``main.py --stats`` prints them.
- ``planner_hints``: a short block for the planner prompt (at most ``MAX_HINT_LINES``
  providers, available ones with enough history), so the plan prefers reliable providers
  for steps like the goal.
- ``order_chain``: the fallback chain ordered by them (``Catalog.chain_order``).

**Kind of a step.** The planner's own goal kinds (``planning._prompt.goal_kind``: ``code``,
``compare``, ``plan``, ``write``, ``explain``) applied to the step's description with the
``{topic}`` placeholder (or the topic text itself) removed: the step's own words decide, so
"Write the code for: {topic}" is ``code`` and "Compare the options..." is ``compare``
whatever the goal was.

**Fallback order rule** (deterministic). A provider's score is its success rate for the
failed step's kind when it has at least ``AGENTIC_LEARNING_MIN_RUNS`` attempts of that kind
in the window, else its success rate over all kinds when it has that many, else 0.5 (no
evidence either way). The chain is sorted by score, highest first; equal scores keep the
catalog order (``priority``, then id). When no provider in the chain has enough history the
chain is exactly the catalog's. ``AGENTIC_LEARNING=0`` turns hints and ordering off.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from agentic_orchestration import settings

if TYPE_CHECKING:
    from agentic_orchestration.catalogs import Catalog
    from agentic_orchestration.catalogs.models import AgentProviderEntry
    from agentic_orchestration.sessions.store import SessionStore, StepRow

logger = logging.getLogger(__name__)

__all__ = [
    "MAX_HINT_LINES",
    "NEUTRAL_SCORE",
    "ProviderStats",
    "chain_order",
    "learning_enabled",
    "order_chain",
    "planner_hints",
    "provider_stats",
    "step_kind",
]

MAX_HINT_LINES = 6
NEUTRAL_SCORE = 0.5
_TOPIC = re.compile(r"\{topic\}")


@dataclass(frozen=True)
class ProviderStats:
    """One provider's record, over all kinds (``kind`` None) or one kind of step."""

    provider: str
    kind: str | None
    runs: int
    ok: int
    recoverable_failures: int
    failures: int
    p50_seconds: float | None
    p90_seconds: float | None
    total_tokens: int

    @property
    def success_rate(self) -> float:
        return self.ok / self.runs if self.runs else 0.0

    @property
    def mean_tokens(self) -> float | None:
        return self.total_tokens / self.runs if self.runs else None

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "success_rate": self.success_rate,
                "mean_tokens": self.mean_tokens}


def learning_enabled() -> bool:
    return settings.get_bool("AGENTIC_LEARNING")


def step_kind(description: str, topic: str = "") -> str:
    """The kind of a step from its own words (see the module docstring)."""
    from agentic_orchestration.planning._prompt import goal_kind

    text = _TOPIC.sub(" ", description)
    if topic.strip():
        text = text.replace(topic.strip(), " ")
    return goal_kind(text)


def _percentile(values: Sequence[float], fraction: float) -> float | None:
    """Nearest-rank percentile (a value that occurred), None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


def _summarise(provider: str, kind: str | None, rows: list[StepRow]) -> ProviderStats:
    ok = [r for r in rows if r.status == "ok"]
    durations = [r.duration_seconds for r in ok if r.duration_seconds is not None]
    return ProviderStats(
        provider=provider, kind=kind, runs=len(rows), ok=len(ok),
        recoverable_failures=sum(1 for r in rows if r.status != "ok" and r.recoverable),
        failures=len(rows) - len(ok),
        p50_seconds=_percentile(durations, 0.5), p90_seconds=_percentile(durations, 0.9),
        total_tokens=sum(r.total_tokens or 0 for r in rows),
    )


def provider_stats(store: SessionStore | None = None, *, window: int | None = None
                   ) -> list[ProviderStats]:
    """Per provider (``kind`` None) and per provider and kind, each over its newest
    ``window`` attempts (default ``AGENTIC_LEARNING_WINDOW``); sorted by provider, the
    all-kinds row first."""
    from agentic_orchestration.sessions.store import SessionStore

    store = store if store is not None else SessionStore()
    window = window if window is not None else settings.get_int("AGENTIC_LEARNING_WINDOW")
    groups: dict[tuple[str, str | None], list[StepRow]] = {}
    for row in store.step_rows():  # newest first
        if row.status == "cancelled" or not row.provider:
            continue
        for key in ((row.provider, None), (row.provider, row.kind or "unknown")):
            bucket = groups.setdefault(key, [])
            if len(bucket) < window:
                bucket.append(row)
    stats = [_summarise(p, k, rows) for (p, k), rows in groups.items()]
    return sorted(stats, key=lambda s: (s.provider, s.kind is not None, s.kind or ""))


def _index(stats: Iterable[ProviderStats]) -> dict[tuple[str, str | None], ProviderStats]:
    return {(s.provider, s.kind): s for s in stats}


def _score(index: dict[tuple[str, str | None], ProviderStats], provider: str,
           kind: str | None, min_runs: int) -> float | None:
    for key in ((provider, kind), (provider, None)) if kind else ((provider, None),):
        found = index.get(key)
        if found is not None and found.runs >= min_runs:
            return found.success_rate
    return None


def order_chain(chain: Sequence[AgentProviderEntry], kind: str | None,
                stats: Iterable[ProviderStats], *, min_runs: int | None = None
                ) -> list[AgentProviderEntry]:
    """``chain`` sorted by the rule in the module docstring (a new list; stable)."""
    min_runs = min_runs if min_runs is not None else settings.get_int(
        "AGENTIC_LEARNING_MIN_RUNS")
    index = _index(stats)
    scores = [_score(index, entry.id, kind, min_runs) for entry in chain]
    if all(score is None for score in scores):
        return list(chain)
    ranked = sorted(range(len(chain)), key=lambda i: (
        -(NEUTRAL_SCORE if scores[i] is None else scores[i]), i))
    return [chain[i] for i in ranked]


ChainOrder = Callable[[list["AgentProviderEntry"], str, str], list["AgentProviderEntry"]]


def chain_order(store: SessionStore | None = None) -> ChainOrder | None:
    """The ``Catalog.chain_order`` hook: ``(chain, step_description, topic) -> chain``;
    None when learning is off. Statistics are read once per hook, at its first use."""
    if not learning_enabled():
        return None
    cache: list[list[ProviderStats]] = []

    def order(chain: list[AgentProviderEntry], step_description: str = "",
              topic: str = "") -> list[AgentProviderEntry]:
        if not cache:
            try:
                cache.append(provider_stats(store))
            except Exception as exc:  # learning must never stop a fallback
                logger.warning("fallback order: no statistics (%s); catalog order kept", exc)
                cache.append([])
        kind = step_kind(step_description, topic) if step_description else None
        ordered = order_chain(chain, kind, cache[0])
        if [e.id for e in ordered] != [e.id for e in chain]:
            logger.info("fallback chain for a %s step ordered by past runs: %s", kind,
                        ", ".join(e.id for e in ordered))
        return ordered

    return order


def planner_hints(catalog: Catalog, goal: str, *, store: SessionStore | None = None,
                  max_lines: int = MAX_HINT_LINES) -> str:
    """The planner's reliability block, or "" (learning off, no history, error).

    Only available providers with at least ``AGENTIC_LEARNING_MIN_RUNS`` attempts are
    shown, most reliable first, with their rate for steps of the goal's kind when known.
    """
    if not learning_enabled():
        return ""
    from agentic_orchestration.planning._prompt import goal_kind

    try:
        stats = provider_stats(store)
    except Exception as exc:  # a planner must still plan without its history
        logger.warning("planner hints left out: %s", exc)
        return ""
    min_runs = settings.get_int("AGENTIC_LEARNING_MIN_RUNS")
    index, kind = _index(stats), goal_kind(goal)
    lines = []
    for entry in catalog.available_agents:
        overall = index.get((entry.id, None))
        if overall is None or overall.runs < min_runs:
            continue
        text = f"- {entry.id}: {overall.success_rate:.0%} of {overall.runs} steps succeeded"
        same = index.get((entry.id, kind))
        if same is not None and same.runs >= min_runs:
            text += f"; {kind} steps: {same.success_rate:.0%} of {same.runs}"
        if overall.p50_seconds is not None:
            text += f"; typical {overall.p50_seconds:.0f} s"
        lines.append((-overall.success_rate, text))
    if not lines:
        return ""
    lines.sort(key=lambda item: item[0])
    shown = "\n".join(text for _, text in lines[:max_lines])
    return ("Reliability in past runs (prefer reliable agents for similar steps):\n"
            f"{shown}\n\n")
