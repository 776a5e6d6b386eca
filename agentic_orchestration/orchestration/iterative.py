"""Iterative plans on the distributed backends: the coordinator's reviser hook, fed by a
replanner (``planning.replanner.IterativePlan``).

``step_scheduler.GraphRun`` calls the reviser whenever no step is running and a step has
finished since the last call. ``spec_reviser`` asks the ``IterativePlan`` for a revision,
prints its ``(progress) replan`` line, records it in ``run.json`` (the latest plan, its step
ids and fingerprint, and the ``revisions`` list, so ``--resume`` continues from the last
recorded plan), and turns the steps still to run into step specs with the same
materializer as the first plan (so a revised step resolves exactly as a planned one).
In-process runs use the same ``IterativePlan`` between kickoffs
(``backends._crewai_graph``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from agentic_orchestration.catalogs import WorkflowConfig
    from agentic_orchestration.orchestration.backends.base import StepResult, StepSpec
    from agentic_orchestration.orchestration.run_store import RunStore
    from agentic_orchestration.orchestration.step_scheduler import Reviser
    from agentic_orchestration.planning.replanner import IterativePlan

logger = logging.getLogger(__name__)

__all__ = ["may_add_local_steps", "record_plan", "spec_reviser"]


def may_add_local_steps(iterative: IterativePlan) -> bool:
    """Whether a revision of this run may add a step on the embedded ``local`` model.

    The coordinator starts the embedded model and gives workers its URL
    (``AGENTIC_LOCAL_LLM_URL``) when the launcher is made, from the first plan's steps; a
    worker environment cannot change afterwards (a warm zygote or a pod template is fixed).
    So an iterative run decides up front: revisions are left to make, they are free to
    choose agents (not pinned to the pending steps, ``Replanner.pinned``), and the
    replanner's catalog offers a ``local`` agent.
    """
    if iterative.rounds >= iterative.max_rounds or iterative.replanner.pinned:
        return False
    return any(a.type == "local" for a in iterative.replanner.catalog.available_agents)


def record_plan(store: RunStore, run_id: str, iterative: IterativePlan,
                specs: list[StepSpec] | None = None) -> None:
    """Put the iterative run's latest plan and its revisions into ``run.json``."""
    from agentic_orchestration.orchestration.workflow_materializer import (
        step_specs_resolution_fingerprint,
    )

    meta = dict(store.read_run_meta(run_id))
    meta["plan"] = iterative.plan.model_dump(mode="json")
    meta["step_ids"] = [s.id for s in iterative.plan.steps]
    if specs is not None:
        meta["fingerprint"] = step_specs_resolution_fingerprint(specs)
    meta["iterative"] = iterative.meta()
    meta["revisions"] = list(iterative.records)
    store.write_run_meta(run_id, meta)


def spec_reviser(iterative: IterativePlan, *, store: RunStore, run_id: str,
                 materialize: Callable[[WorkflowConfig], list[StepSpec]]) -> Reviser:
    """The coordinator's reviser for ``iterative``; see the module docstring."""

    def revise(results: list[StepResult], pending: list[StepSpec],
               reporter: Any) -> list[StepSpec] | None:
        revision = iterative.revise(results)
        if revision is None:  # AGENTIC_MAX_REPLANS reached: the plan runs as it is
            return None
        changed = revision.valid and revision.changed and not revision.done
        reporter.replanned(revision.round, iterative.max_rounds, revision.summary(),
                           steps=iterative.plan.steps if changed else None)
        if not (revision.valid and (revision.changed or revision.done)):
            record_plan(store, run_id, iterative)
            return None
        done = {r.step_id for r in results if r.ok}
        specs = materialize(iterative.plan)
        record_plan(store, run_id, iterative, specs)
        return [s for s in specs if s.step_id not in done]

    return revise
