"""The coordinator's run loop: a plan graph scheduled onto a launcher (see ``step_coordinator``).

Steps whose dependencies are done start at once, up to ``AGENTIC_MAX_PARALLEL_STEPS``,
each in its own thread that owns the step's attempts (launch, wait, retry); the run's
thread only schedules and collects. A plain chain therefore runs exactly as it always did:
one step at a time, in written order, each getting the previous output.

Policies:

- A failed step (after its retries) stops everything that depends on it; steps that do
  not depend on it still run and finish. The run is ``failed`` (the first failure's error),
  and ``--resume`` reruns only what did not finish.
- Cancel (``RunOptions.cancel``) and a spent budget (``budget.RunBudget``) both cancel the
  run's internal ``CancelToken``: running steps are terminated through their handles,
  nothing new starts, finished steps are kept. The status says which (``cancelled`` or
  ``budget_exceeded``).
- Ctrl-C / SIGTERM in the run's thread, or raised by a launcher in a step's thread: the
  other running steps are terminated and write nothing, then the interrupt propagates.
- ``reviser`` (iterative plans): called whenever no step is running and at least one
  finished since the last call; it may replace the steps not started yet.

Resume trusts a step whose stored ``result.json`` is ok and whose dependencies are all
trusted; every other step's stored result is cleared before anything runs, so an
interrupted rerun never leaves an "ok" computed from an older input.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from agentic_orchestration import settings
from agentic_orchestration.errors import StepSpecError
from agentic_orchestration.orchestration.backends.launcher import CancelToken
from agentic_orchestration.orchestration.step_context import prepare_step_inputs
from agentic_orchestration.orchestration.step_graph import StepGraph, dependencies_of

if TYPE_CHECKING:
    from agentic_orchestration.orchestration.backends.base import StepResult, StepSpec
    from agentic_orchestration.orchestration.budget import RunBudget

logger = logging.getLogger(__name__)

__all__ = ["GraphRun", "Reviser", "graph_of"]

#: ``reviser(finished results, steps not started, progress reporter) -> new steps not
#: started, or None`` (``orchestration.iterative.spec_reviser`` builds one from a replanner).
Reviser = Callable[["list[StepResult]", "list[StepSpec]", Any], "list[StepSpec] | None"]


@dataclass(frozen=True)
class _Node:
    id: str
    depends_on: list[str] | None


def graph_of(steps: list[StepSpec]) -> StepGraph:
    """The graph of ``steps`` (a spec's ``depends_on``; None: the spec before it)."""
    nodes = [_Node(s.step_id, s.depends_on) for s in steps]
    return StepGraph([n.id for n in nodes], dependencies_of(nodes))


def with_inputs(spec: StepSpec, outputs: list[tuple[str, str | None]]) -> StepSpec:
    """``spec`` with its dependencies' outputs in ``task.description`` (labelled when
    several) and in ``prior_output`` (the texts, joined, for a reader of the spec)."""
    description = prepare_step_inputs(spec.task.description, outputs)
    task = spec.task.model_copy(update={"description": description})
    prior = "\n\n".join(text for _, text in outputs if text)
    return spec.model_copy(update={"task": task, "prior_output": prior})


class GraphRun:
    """State of one ``run_workflow`` call; ``run_step(index, spec)`` runs one step's
    attempts (the coordinator's ``_Run``), this class decides what runs when."""

    def __init__(self, steps: list[StepSpec], *, run_step: Callable[[int, StepSpec],
                 StepResult], reporter, store, stop: CancelToken,
                 budget: RunBudget | None = None, reviser: Reviser | None = None,
                 max_parallel: int | None = None) -> None:
        self.steps = list(steps)
        self.graph = graph_of(self.steps)
        self._run_step = run_step
        self.reporter = reporter
        self.store = store
        self.stop = stop
        self.budget = budget
        self.reviser = reviser
        self.max_parallel = max_parallel or settings.get_int("AGENTIC_MAX_PARALLEL_STEPS",
                                                             minimum=1)
        self.results: list[StepResult] = []  # final result per step, in finish order
        self.outputs: dict[str, str] = {}
        self.done: set[str] = set()
        self.failed: dict[str, StepResult] = {}
        self.not_run: set[str] = set()
        self.skipped: set[str] = set()  # trusted on resume, not run again
        self.interrupted = threading.Event()
        self._inbox: queue.Queue[tuple[str, StepResult | None, BaseException | None]] = (
            queue.Queue())
        self._running: dict[str, threading.Thread] = {}
        self._finished_since_review = 0

    # -- the loop -------------------------------------------------------------------------
    def execute(self, *, resume: bool) -> None:
        if resume:
            self._skip_done()
        for spec in self.steps:
            if spec.step_id not in self.done:
                # A rerun invalidates every stored result it may recompute (its input
                # changes); clearing first means a crash can never leave a stale "ok".
                self.store.clear_result(spec.run_id, spec.step_id)
        self._show_graph()
        try:
            while True:
                self._maybe_revise()
                self._start_ready()
                if not self._running:
                    return
                self._collect(self._next_message())
        except BaseException:
            self._abort()
            raise

    def _next_message(self) -> tuple[str, StepResult | None, BaseException | None]:
        while True:  # a timeout keeps Ctrl-C deliverable to this thread
            try:
                return self._inbox.get(timeout=0.5)
            except queue.Empty:
                continue

    def _start_ready(self) -> None:
        if self.stop.cancelled:
            return
        started = set(self._running) | set(self.failed) | self.not_run
        for step_id in self.graph.ready(self.done, started):
            if len(self._running) >= self.max_parallel:
                break
            self._start(step_id)
        self.reporter.running_at_once([s for s in self.graph.ids if s in self._running])

    def _start(self, step_id: str) -> None:
        index = self.graph.ids.index(step_id)
        base = self.steps[index]
        spec = with_inputs(base, [(d, self.outputs.get(d)) for d in self.graph.deps[step_id]])

        def body() -> None:
            try:
                result = self._run_step(index, spec)
            except BaseException as exc:  # handed to the run's thread, which re-raises
                self._inbox.put((step_id, None, exc))
            else:
                self._inbox.put((step_id, result, None))

        thread = threading.Thread(target=body, name=f"step-{step_id}", daemon=True)
        self._running[step_id] = thread
        thread.start()

    def _collect(self, message: tuple[str, StepResult | None, BaseException | None]) -> None:
        step_id, result, exc = message
        self._running.pop(step_id).join()
        if exc is not None:
            raise exc
        assert result is not None
        self.results.append(result)
        self._finished_since_review += 1
        if result.ok:
            self.done.add(step_id)
            self.outputs[step_id] = result.result_text or ""
            if self.budget is not None:
                usage = result.usage
                self.budget.add_tokens(usage.total_tokens if usage else 0)
            return
        if result.cancelled:
            return
        self.failed[step_id] = result
        for blocked in self.graph.downstream(step_id):
            if blocked in self.not_run:
                continue
            self.not_run.add(blocked)
            if not self.graph.is_chain:
                self.reporter.step_not_run(self.graph.ids.index(blocked), blocked, step_id)

    def _abort(self) -> None:
        """Interrupted: terminate running steps (they record nothing) and wait for them."""
        self.interrupted.set()
        self.stop.cancel("interrupted")
        for thread in list(self._running.values()):
            thread.join(30.0)

    # -- resume, graph lines, revisions ---------------------------------------------------
    def _skip_done(self) -> None:
        """Trust each step with an ok stored result whose dependencies are trusted."""
        for step_id in self.graph.order():
            spec = self.steps[self.graph.ids.index(step_id)]
            if not all(d in self.done for d in self.graph.deps[step_id]):
                continue
            try:
                stored = self.store.read_result(spec.run_id, step_id)
            except StepSpecError as exc:  # unreadable: running it again is the safe answer
                logger.warning("resume: %s; step %s runs again", exc, step_id)
                continue
            if stored is None or not stored.ok or not (stored.result_text or "").strip():
                continue
            logger.info("resume: step %s already done", step_id)
            self.reporter.step_skipped(self.graph.ids.index(step_id), step_id)
            self.results.append(stored)
            self.skipped.add(step_id)
            self.done.add(step_id)
            self.outputs[step_id] = stored.result_text or ""

    def _show_graph(self) -> None:
        if self.graph.is_chain:
            return
        for index, step_id in enumerate(self.graph.ids):
            needs = list(self.graph.deps[step_id])
            if needs and step_id not in self.done:
                self.reporter.step_waits(index, step_id, needs)

    def _maybe_revise(self) -> None:
        if (self.reviser is None or self._running or not self._finished_since_review
                or self.stop.cancelled or self.failed):
            return
        self._finished_since_review = 0
        pending = [s for s in self.steps if s.step_id not in self.done]
        revised = self.reviser([r for r in self.results if r.ok], pending, self.reporter)
        if revised is None:
            return
        kept = [s for s in self.steps if s.step_id in self.done]
        for spec in revised:  # whatever a revised or new step id stored before is stale
            self.store.clear_result(spec.run_id, spec.step_id)
        self.steps = kept + list(revised)
        self.graph = graph_of(self.steps)
        self.reporter.set_total(len(self.steps))
        self.not_run.clear()

    # -- the outcome ----------------------------------------------------------------------
    def final_output(self) -> str | None:
        """The answer: the output of the last step in run order, when every step is done."""
        if len(self.done) < len(self.graph.ids):
            return None
        return self.outputs.get(self.graph.order()[-1])
