"""In-process graphs and iterative plans: one CrewAI kickoff per *ready wave*.

A CrewAI crew is sequential and cannot change its tasks once kicked off, so two kinds of
run are not one crew here:

- a plan whose steps declare ``depends_on`` (not a plain chain): a failed step must stop
  only what depends on it and let independent branches finish, as on the distributed
  backends (``step_scheduler``);
- ``--dynamic-iterative``: between steps the same ``IterativePlan`` as the distributed
  coordinator revises the steps not started yet.

So the run is a loop of kickoffs. Each runs the next wave (the steps whose dependencies
are all done; one step for a chain) through the normal in-process path
(``CrewAIExecutionBackend._kickoff``: task callbacks, budgets, one fallback retry), built
over a *window* plan: the finished steps (not run again; their outputs are handed over as
inputs) followed by the wave, every step naming its dependencies explicitly so the window
means what the whole plan means. Progress lines carry the step's number in the whole plan
and are those of the distributed coordinator: ``waits on`` when the graph is shown,
``not run: needs failed step`` for the dependents of a failure.

A failed step (after its fallback retry) stops its dependents; the rest of its wave and
every independent branch still run, then the run is ``failed`` with the first failure's
error. A cancel or a spent budget (steps' tokens and, for an iterative run, the
replanner's) ends the run at once with that status, every finished step kept. No revision
is asked for once a step has failed. There is no run store in-process, so such a run
cannot be ``--resume``d (the distributed backends can).
"""

from __future__ import annotations

import logging
import time
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from agentic_orchestration.errors import (
    EXIT_BUDGET_EXCEEDED,
    EXIT_INTERRUPTED,
    BudgetExceeded,
    RunCancelled,
)
from agentic_orchestration.orchestration.backends.base import (
    StepResult,
    WorkflowExecutionResult,
    keep_partial_results,
    partial_step_results,
)
from agentic_orchestration.orchestration.budget import RunBudget
from agentic_orchestration.orchestration.execution_fallback import run_with_fallback
from agentic_orchestration.orchestration.step_graph import StepGraph

if TYPE_CHECKING:
    from agentic_orchestration.catalogs import Catalog, WorkflowConfig
    from agentic_orchestration.orchestration.backends.base import RunOptions
    from agentic_orchestration.orchestration.backends.crewai import CrewAIExecutionBackend
    from agentic_orchestration.orchestration.progress import ProgressReporter
    from agentic_orchestration.planning.replanner import IterativePlan

logger = logging.getLogger(__name__)

__all__ = ["run_graph", "window_plan"]


def window_plan(plan: WorkflowConfig, done: list[str], wave: list[str]) -> WorkflowConfig:
    """``plan`` cut to the finished steps ``done`` then the ``wave``, deps made explicit."""
    deps = StepGraph.from_steps(plan.steps).deps
    by_id = {s.id: s for s in plan.steps}
    steps = [by_id[i].model_copy(update={"depends_on": list(deps[i])}) for i in [*done, *wave]]
    return plan.model_copy(update={"steps": steps})


class _PlanIndexReporter:
    """The run's reporter, with each step line numbered by the step's place in the whole
    plan (a window numbers its steps by their place in the window)."""

    def __init__(self, reporter: ProgressReporter, plan: WorkflowConfig) -> None:
        self._reporter = reporter
        self._index = {s.id: k for k, s in enumerate(plan.steps)}

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._reporter, name)
        if not callable(method):
            return method

        def call(*args: Any, **kwargs: Any) -> Any:
            if len(args) >= 2 and isinstance(args[0], int) and args[1] in self._index:
                args = (self._index[args[1]], *args[1:])
            return method(*args, **kwargs)

        return call


def run_graph(backend: CrewAIExecutionBackend, config: WorkflowConfig, *,
              options: RunOptions, catalog: Catalog) -> WorkflowExecutionResult:
    """Run ``config`` (or ``options.replan``'s plan) wave by wave; see the module doc."""
    from agentic_orchestration.orchestration.backends.crewai import ExecutionTimings
    from agentic_orchestration.orchestration.runner import build_workflow

    iterative: IterativePlan | None = options.replan
    started = time.perf_counter()
    backend.last_timings = timings = ExecutionTimings()
    reporter = backend._reporter(options)
    plan = iterative.plan if iterative is not None else config
    reporter.run_started(options.run_id, len(plan.steps), backend.name, steps=plan.steps)
    budget = RunBudget.from_settings().start()
    if iterative is not None:
        iterative.budget = budget  # the replanner's tokens count too
    _show_graph(reporter, plan)
    results: list[StepResult] = []  # every step that ran, in finish order
    outputs: dict[str, str] = {}
    done: list[str] = []
    failed: list[WorkflowExecutionResult] = []
    blocked: dict[str, str] = {}  # step id -> the failed step it needs
    providers: list[str] = []
    outcome: WorkflowExecutionResult | None = None
    try:
        while outcome is None:
            plan = iterative.plan if iterative is not None else config
            graph = StepGraph.from_steps(plan.steps)
            tried = {r.step_id for r in results if not r.ok} | set(blocked)
            wave = graph.ready(set(done), tried)
            if not wave:
                break
            outcome = _stopped(options, budget)
            if outcome is not None:
                break
            window = window_plan(plan, done, wave)
            catalog.check_workflow(window)
            reporter.set_total(len(plan.steps))
            numbered: Any = _PlanIndexReporter(reporter, plan)

            def run_once(overrides: Any, start_index: int, _prior: str, *,
                         window: WorkflowConfig = window, first: int = len(done),
                         numbered: Any = numbered) -> WorkflowExecutionResult:
                # The wave's inputs come from ``outputs`` (the tracker), never ``_prior``.
                began = time.perf_counter()
                built = build_workflow(window, catalog, overrides=overrides,
                                       start_index=max(start_index, first))
                timings.build += time.perf_counter() - began
                result = backend._kickoff(built, options=options, reporter=numbered,
                                          timings=timings, budget=budget, outputs=outputs)
                outputs.update({r.step_id: r.result_text or "" for r in result.step_results
                                if r.ok})
                return result

            result = run_with_fallback(
                window, catalog, run_once, error_sink=options.execution_error_sink,
                on_fallback=lambda p: reporter.fallback(p.provider.id, p.start_index,
                                                        p.failed_step_id))
            results += result.step_results
            providers += result.providers_tried
            done += [r.step_id for r in result.step_results if r.ok]
            if result.status in ("cancelled", "budget_exceeded") or (
                    not result.ok and all(r.ok for r in result.step_results)):
                outcome = result  # stopped, or failed with no step to blame: the run ends
            elif not result.ok:  # the rest of the wave runs next time round
                failed.append(result)
                _block_dependents(reporter, graph, result, blocked)
            elif iterative is not None and not failed:
                revision = iterative.revise([r for r in results if r.ok])
                if revision is not None:
                    changed = revision.valid and revision.changed and not revision.done
                    reporter.replanned(revision.round, iterative.max_rounds,
                                       revision.summary(),
                                       steps=iterative.plan.steps if changed else None)
        if outcome is None and budget.exceeded:  # spent by the last replanning round
            outcome = _stopped(options, budget)
    except BaseException as exc:
        reporter.run_finished(options.run_id, False)
        if not isinstance(exc, Exception):  # Ctrl-C: the finished waves travel with it
            keep_partial_results(exc, [*results, *partial_step_results(exc)])
        raise
    finally:
        budget.stop()
    timings.total = time.perf_counter() - started
    providers = list(dict.fromkeys(p for p in providers if p))
    outcome = outcome or (failed[0] if failed else None)
    if outcome is not None:
        if outcome.status == "budget_exceeded":
            reporter.budget_exceeded(budget.exceeded)
        outcome = replace(outcome, step_results=results, run_id=options.run_id,
                          backend=backend.name, providers_tried=providers)
        return backend._finish(outcome, options=options, reporter=reporter)
    plan = iterative.plan if iterative is not None else config
    last = StepGraph.from_steps(plan.steps).order()[-1]
    final = WorkflowExecutionResult(exit_code=0, status="ok", result_text=outputs.get(last),
                                    error=None, step_results=results, run_id=options.run_id,
                                    backend=backend.name, providers_tried=providers)
    return backend._finish(final, options=options, reporter=reporter)


def _stopped(options: RunOptions, budget: RunBudget) -> WorkflowExecutionResult | None:
    """The outcome of a run cancelled or out of budget between waves, else None."""
    if budget.exceeded or budget.check():
        return WorkflowExecutionResult(exit_code=EXIT_BUDGET_EXCEEDED, status="budget_exceeded",
                                       result_text=None, error=BudgetExceeded(budget.exceeded))
    if options.cancel is not None and options.cancel.cancelled:
        return WorkflowExecutionResult(exit_code=EXIT_INTERRUPTED, status="cancelled",
                                       result_text=None,
                                       error=RunCancelled(options.cancel.reason or "cancelled"))
    return None


def _show_graph(reporter: ProgressReporter, plan: WorkflowConfig) -> None:
    """``waits on`` lines for a graph, as the distributed coordinator prints them."""
    graph = StepGraph.from_steps(plan.steps)
    if graph.is_chain:
        return
    for index, step_id in enumerate(graph.ids):
        if graph.deps[step_id]:
            reporter.step_waits(index, step_id, list(graph.deps[step_id]))


def _block_dependents(reporter: ProgressReporter, graph: StepGraph,
                      result: WorkflowExecutionResult, blocked: dict[str, str]) -> None:
    """Mark (and report) what depends on the step ``result`` failed on."""
    failure = next((r for r in result.step_results if not r.ok), None)
    if failure is None:
        return
    logger.warning("step %s failed; its dependents do not run, independent steps do",
                   failure.step_id)
    for step_id in graph.downstream(failure.step_id):
        if step_id not in blocked:
            blocked[step_id] = failure.step_id
            reporter.step_not_run(graph.ids.index(step_id), step_id, failure.step_id)
