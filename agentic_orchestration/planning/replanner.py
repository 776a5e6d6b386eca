"""Replanning between steps (``--dynamic-iterative``): keep, revise or extend what is left.

After a step (or a wave of parallel steps) finishes, the replanner shows the planner model
the goal, the finished steps with their results, and the steps not started yet, and asks for
a *revision*: ``{"done": bool, "reason": str, "steps": [...]}`` where ``steps`` lists every
step still to run, each with an ``id``. Repeating a pending step's id keeps or revises it,
a new id adds one, a pending step left out is removed; ``done`` ends the plan (the finished
results answer the goal).

Why it is built this way:

- Same output path as the planner (``DynamicPlanner``: provider, client, a JSON-Schema
  ``response_format``, one repair turn), so the embedded base model still produces valid
  revisions under its grammar. The schema's ``id`` is an ``enum`` of the pending ids and a
  few fresh ones, so a finished step's id cannot even be written: finished steps can never
  be changed. ``depends_on`` may name finished or revised steps; unknown ids, self
  references and cycles go through the repair turn (``plan_validation``).
- A small base model (the embedded Gemma, prompted as documents) gets a *pinned* revision,
  as the planner pins its plans (``DynamicPlanner._skeleton``): either ``done`` with no
  steps, or exactly the pending steps, ids and agents fixed, texts free. Unpinned, it wrote
  up to ``AGENTIC_MAX_PLAN_STEPS`` steps at about 3-13 tokens/s under the grammar (a
  ``max_tokens`` of 80 + 180 per step), often ``done: false`` with no steps, which cost
  a repair turn on top: measured, 2 calls, 1343 generated tokens and 480 s against 43 s
  for its plan (looping step ids, plan kept). Pinned, a round generates what a plan does
  and costs about as much (median 0.74 of a planning call, ``bench_replan_local.py``).
  Such a model can end the plan early or rewrite what is left, not add steps.
- Every round records the tokens its calls spent (``prompt_tokens``/``completion_tokens``,
  as the server reports them); ``IterativePlan.budget`` counts them toward
  ``AGENTIC_RUN_MAX_TOKENS``.
- An answer still invalid after the repair, or a failed call, keeps the current plan: the
  run goes on with what it had (recorded as an invalid revision), because losing finished
  work to a bad replanner answer is worse than running the plan as planned.
- ``IterativePlan`` holds the run's current plan and its revisions; backends call
  ``revise(results)`` when no step is running, and listeners (run store, session, progress)
  record each revision. ``AGENTIC_MAX_REPLANS`` bounds the rounds: past it the current plan
  runs to its end unrevised.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from agentic_orchestration import settings
from agentic_orchestration.catalogs.models import StepConfig, WorkflowConfig
from agentic_orchestration.errors import AgenticError
from agentic_orchestration.planning._prompt import build_replan_prompt, repair_prompt
from agentic_orchestration.planning._revision import (
    REASON_MAX_CHARS,
    build_revision_schema,
    fresh_ids,
    keep_repeated_texts,
)
from agentic_orchestration.planning.plan_schema import NAME_MAX_CHARS
from agentic_orchestration.planning.plan_validation import (
    _max_steps,
    dependency_problems,
    normalise_plan,
    parse_answer,
    safe_text,
    schema_problems,
    validate_plan,
)

if TYPE_CHECKING:
    from agentic_orchestration.catalogs.catalog import Catalog
    from agentic_orchestration.orchestration.backends.base import StepResult
    from agentic_orchestration.orchestration.budget import RunBudget
    from agentic_orchestration.planning.dynamic_planner import DynamicPlanner

logger = logging.getLogger(__name__)

__all__ = ["IterativePlan", "Replanner", "Revision", "build_revision_schema"]

_REPAIR_ECHO_CHARS = 2000
#: Fields of a step whose change makes it "revised" rather than "kept".
_STEP_FIELDS = ("agent_provider", "mcp_providers", "description", "expected_output",
                "depends_on")


@dataclass
class Revision:
    """One replanning round: what the replanner decided and what changed.

    ``valid`` is False when no usable answer came back (after the repair turn) or the call
    failed; the plan then stays as it was and ``error`` says why.
    """

    round: int
    done: bool = False
    valid: bool = True
    reason: str = ""
    kept: list[str] = field(default_factory=list)
    revised: list[str] = field(default_factory=list)
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    error: str | None = None
    seconds: float = 0.0
    #: LLM calls this round made: 1, or 2 when the repair turn was needed.
    attempts: int = 0
    #: Tokens those calls spent (what the server reported; 0 when it did not).
    prompt_tokens: int = 0
    completion_tokens: int = 0
    #: True when the answer was pinned to the pending steps (a base model, see above).
    pinned: bool = False
    provider_id: str = ""
    #: The whole plan after this round (the same plan when nothing changed).
    plan: WorkflowConfig | None = None

    @property
    def changed(self) -> bool:
        return bool(self.revised or self.added or self.removed)

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def summary(self) -> str:
        """``kept a; revised b; added c; removed d (reason)``: the progress line's text."""
        if not self.valid:
            return f"invalid answer, plan kept ({self.error})"
        parts = [f"{name} {', '.join(ids)}" for name, ids in (
            ("kept", self.kept), ("revised", self.revised), ("added", self.added),
            ("removed", self.removed)) if ids]
        head = "done" if self.done else "; ".join(parts) or "nothing left"
        if self.done and self.removed:
            head += f"; removed {', '.join(self.removed)}"
        return f"{head} ({self.reason})" if self.reason else head

    def to_dict(self) -> dict[str, Any]:
        """The record kept in ``run.json`` and in the session (``SessionRecord.revisions``):
        which steps changed and why, plus the changed steps themselves."""
        changed = set(self.revised) | set(self.added)
        steps = [s.model_dump(mode="json", exclude_none=True) for s in
                 (self.plan.steps if self.plan is not None else []) if s.id in changed]
        return {"round": self.round, "done": self.done, "valid": self.valid,
                "reason": self.reason, "kept": self.kept, "revised": self.revised,
                "added": self.added, "removed": self.removed, "error": self.error,
                "seconds": round(self.seconds, 3), "attempts": self.attempts,
                "provider": self.provider_id, "prompt_tokens": self.prompt_tokens,
                "completion_tokens": self.completion_tokens,
                "steps": steps}


class Replanner:
    """Asks the planner model for a revision of a running plan; see the module docstring.

    Args:
        catalog: The filtered catalog revisions may use.
        planner: The ``DynamicPlanner`` whose provider and client answer (default: one on
            ``AGENTIC_PLANNER_PROVIDER`` or the best available agent, like the planner).
        max_steps: Most steps left after a revision; default ``AGENTIC_MAX_PLAN_STEPS``.
    """

    def __init__(self, catalog: Catalog, *, planner: DynamicPlanner | None = None,
                 max_steps: int | None = None) -> None:
        from agentic_orchestration.planning.dynamic_planner import DynamicPlanner

        self.catalog = catalog
        self.max_steps = max_steps if max_steps is not None else _max_steps()
        self.planner = planner or DynamicPlanner(catalog, max_steps=self.max_steps)

    @property
    def provider_id(self) -> str:
        return self.planner.provider_id

    @property
    def pinned(self) -> bool:
        """Whether revisions are pinned to the pending steps: the planner model is the
        embedded base model prompted as documents (the condition under which the planner
        pins its plans too)."""
        if self.planner.provider.entry.type != "local":
            return False
        from agentic_orchestration.providers.local_model import local_prompt_style

        return local_prompt_style() == "document"

    def revise(self, goal: str, plan: WorkflowConfig, results: list[StepResult], *,
               round_no: int, rounds: int, used_ids: set[str] | None = None) -> Revision:
        """One round: the revision of ``plan`` given the finished ``results``.

        Never raises for a bad answer or a failed call: the revision is then ``valid=False``
        and carries the current plan.
        """
        started = time.perf_counter()
        revision = Revision(round=round_no, provider_id=self.provider_id, plan=plan)
        outputs = {r.step_id: r.result_text or "" for r in results if r.ok}
        finished = [s for s in plan.steps if s.id in outputs]
        pending = [s for s in plan.steps if s.id not in outputs]
        fresh = fresh_ids({s.id for s in plan.steps} | (used_ids or set()), self.max_steps)
        revision.pinned = self.pinned
        if revision.pinned:
            if not pending:  # nothing a pinned answer could change: the plan is over
                revision.done, revision.reason = True, "no step left to revise"
                return revision
            fresh = []
        ids = [s.id for s in pending] + fresh
        schema = build_revision_schema(
            self.catalog, finished=[s.id for s in finished], ids=ids,
            max_steps=self.max_steps,
            pinned=[(s.id, s.agent_provider) for s in pending] if revision.pinned else None)
        # The answer's size bounds the call: a pinned one holds the pending steps only.
        from agentic_orchestration.planning.dynamic_planner import (
            _TOKENS_FIXED,
            _TOKENS_PER_STEP,
        )

        max_tokens = _TOKENS_FIXED + _TOKENS_PER_STEP * (
            len(pending) if revision.pinned else self.max_steps)
        prompt = build_replan_prompt(goal, self.catalog,
                                     finished=[(s, outputs[s.id]) for s in finished],
                                     pending=pending, new_ids=fresh, max_steps=self.max_steps,
                                     round_no=round_no, rounds=rounds)
        messages = [{"role": "user", "content": prompt}]
        try:
            client, url = self.planner._client()
            for attempt in (1, 2):
                revision.attempts = attempt
                answer = self.planner._complete(client, url, messages, schema,
                                                max_tokens=max_tokens, usage=revision)
                data, problems = parse_answer(answer)
                if not problems and revision.pinned:
                    keep_repeated_texts(data, pending)
                if not problems:
                    problems = self._problems(data, schema, finished, pending)
                if not problems:
                    self._apply(revision, data, plan, finished, pending)
                    break
                logger.warning("replanner %s answer %d invalid: %s", self.provider_id,
                               attempt, "; ".join(problems))
                revision.valid, revision.error = False, "; ".join(problems)
                messages += [
                    {"role": "assistant", "content": (answer or "")[:_REPAIR_ECHO_CHARS]},
                    {"role": "user", "content": repair_prompt(problems)},
                ]
        except AgenticError as exc:  # the call failed (PlanError): keep the plan
            logger.warning("replanner %s failed: %s", self.provider_id, exc)
            revision.valid, revision.error = False, str(exc)
        revision.seconds = time.perf_counter() - started
        return revision

    def _problems(self, data: Any, schema: dict[str, Any], finished: list[StepConfig],
                  pending: list[StepConfig]) -> list[str]:
        """Problems of a parsed revision; empty when it can be applied."""
        if not isinstance(data, dict):
            return [f"the answer must be a JSON object, got {type(data).__name__}"]
        problems: list[str] = []
        covered: set[tuple[Any, ...]] = set()
        steps = data.get("steps") if isinstance(data.get("steps"), list) else None
        if data.get("done") is False and steps == []:
            problems.append("done is false but no steps remain: add the steps still needed, "
                            "or set done to true")
        if data.get("done") is not True and steps:
            finished_ids = [s.id for s in finished]
            answer_ids = [s.get("id") if isinstance(s, dict) else None for s in steps]
            for index, step_id in enumerate(answer_ids):
                if step_id in finished_ids:
                    problems.append(f"{step_id} is finished and cannot change; leave it out")
                    covered.add(("steps", index, "id"))
                elif step_id in answer_ids[:index]:
                    problems.append(f"step id {step_id!r} appears twice; ids are unique")
                    covered.add(("steps", index, "id"))
            # Agents, tools, texts, repeats: the planner's own checks on the bare steps.
            bare = [{k: v for k, v in s.items() if k not in ("id", "depends_on")}
                    if isinstance(s, dict) else s for s in steps]
            plan_problems = validate_plan({"steps": bare}, self.catalog,
                                          max_steps=self.max_steps)
            problems += plan_problems
            covered.add(("steps",))
            if not problems:
                declared = {s["id"]: s["depends_on"] for s in steps
                            if isinstance(s.get("depends_on"), list)}
                problems += [p for p, _ in dependency_problems(
                    [s["id"] for s in steps], declared, finished=tuple(finished_ids))]
        elif data.get("done") is True:
            covered.add(("steps",))  # ignored when done
        problems += schema_problems(data, schema, covered=covered)
        return problems

    def _apply(self, revision: Revision, data: dict[str, Any], plan: WorkflowConfig,
               finished: list[StepConfig], pending: list[StepConfig]) -> None:
        """Fill ``revision`` from a valid answer: the new plan and what changed."""
        revision.valid, revision.error = True, None
        revision.done = bool(data["done"])
        revision.reason = " ".join(str(data.get("reason", "")).split())[:REASON_MAX_CHARS]
        answer = [] if revision.done else normalise_plan(data)[0]["steps"]
        before = {s.id: s for s in pending}
        new_steps = [StepConfig(
            id=s["id"], agent_provider=s["agent_provider"], mcp_providers=s["mcp_providers"],
            description=safe_text(s["description"]),
            expected_output=safe_text(s["expected_output"]) or "A clear, complete answer.",
            depends_on=(list(dict.fromkeys(s["depends_on"]))
                        if isinstance(s.get("depends_on"), list) else None),
        ) for s in answer]
        for step in new_steps:
            old = before.get(step.id)
            if old is None:
                revision.added.append(step.id)
            elif all(getattr(old, f) == getattr(step, f) for f in _STEP_FIELDS):
                revision.kept.append(step.id)
            else:
                revision.revised.append(step.id)
        answered = {s.id for s in new_steps}
        revision.removed = [s.id for s in pending if s.id not in answered]
        # Finished steps keep their place and get explicit dependencies: an absent
        # depends_on means "the step written before", which the new order may change.
        from agentic_orchestration.orchestration.step_graph import dependencies_of

        deps = dependencies_of(plan.steps)
        frozen = [s.model_copy(update={"depends_on": list(deps[s.id])}) for s in finished]
        revision.plan = plan.model_copy(update={"steps": [*frozen, *new_steps]})
        WorkflowConfig.model_validate(revision.plan.model_dump())  # graph checked again


class IterativePlan:
    """The current plan of an iterative run, its revisions, and who hears about them.

    Args:
        plan: The plan the run starts from (or, on ``--resume``, the last recorded one).
        replanner: Answers each round.
        goal: The user's goal (default ``plan.topic``).
        max_rounds: Most rounds; default ``AGENTIC_MAX_REPLANS``.
        revisions: Records of earlier rounds (``--resume``); they count toward the limit.
    """

    def __init__(self, plan: WorkflowConfig, replanner: Replanner, *, goal: str = "",
                 max_rounds: int | None = None,
                 revisions: list[dict[str, Any]] | None = None) -> None:
        self.plan = plan
        self.replanner = replanner
        self.goal = goal or plan.topic
        self.max_rounds = (max_rounds if max_rounds is not None
                           else settings.get_int("AGENTIC_MAX_REPLANS", minimum=0))
        self.records: list[dict[str, Any]] = list(revisions or [])
        self.listeners: list[Callable[[Revision], None]] = []
        #: The running run's budget (set by the backend): each round's tokens count.
        self.budget: RunBudget | None = None
        self.used_ids = {s.id for s in plan.steps} | {
            i for r in self.records for key in ("removed", "added") for i in r.get(key, [])}

    @property
    def rounds(self) -> int:
        return len(self.records)

    def revise(self, results: list[StepResult]) -> Revision | None:
        """One round after ``results`` (every finished step so far); None when the limit
        is reached (the plan then runs to its end as it is)."""
        if self.rounds >= self.max_rounds:
            return None
        revision = self.replanner.revise(self.goal, self.plan, results,
                                         round_no=self.rounds + 1, rounds=self.max_rounds,
                                         used_ids=self.used_ids)
        if revision.valid and revision.plan is not None:
            self.plan = revision.plan
            self.used_ids |= {s.id for s in revision.plan.steps}
        if self.budget is not None and revision.tokens:
            self.budget.add_tokens(revision.tokens)  # may trip it: the run then stops
        logger.info("replan %d/%d by %s in %.1fs: %s", revision.round, self.max_rounds,
                    revision.provider_id, revision.seconds, revision.summary())
        self.records.append(revision.to_dict())
        for listener in self.listeners:
            listener(revision)
        return revision

    def meta(self) -> dict[str, Any]:
        """What ``run.json`` keeps to resume the run iteratively."""
        return {"goal": self.goal, "max_replans": self.max_rounds,
                "name": self.plan.name[:NAME_MAX_CHARS]}
