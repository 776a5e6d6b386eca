"""``_StepTracker``: the in-process backend's per-step bookkeeping inside one crew kickoff.

Split from ``crewai`` (which builds and runs the crew) because it is the part that mirrors
the distributed coordinator between steps: close the finished step (timing, token usage,
files, ``after_task``, progress), hand its output to the steps that depend on it, check
cancel and the run budget, open the next step. See ``crewai``'s module docstring.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

from agentic_orchestration.errors import BudgetExceeded, RunCancelled, StepFailed
from agentic_orchestration.orchestration.backends.base import (
    EXIT_CANCELLED,
    ArtifactRef,
    RecoveryHint,
    StepResult,
    StepTiming,
    TokenUsage,
    utc_now,
)
from agentic_orchestration.orchestration.execution_fallback import (
    classify_exception,
    error_text,
)
from agentic_orchestration.orchestration.qa_hook import review_inprocess_step
from agentic_orchestration.orchestration.step_context import prepare_step_inputs
from agentic_orchestration.orchestration.step_graph import StepGraph

if TYPE_CHECKING:
    from agentic_orchestration.orchestration.backends.base import RunOptions
    from agentic_orchestration.orchestration.backends.crewai import ExecutionTimings
    from agentic_orchestration.orchestration.backends.launcher import CancelToken
    from agentic_orchestration.orchestration.budget import RunBudget
    from agentic_orchestration.orchestration.progress import ProgressReporter
    from agentic_orchestration.orchestration.runner import BuiltWorkflow

logger = logging.getLogger(__name__)

__all__ = ["StepTracker"]


def _usage_counters(agent: Any) -> dict[str, int]:
    summary = getattr(getattr(agent, "llm", None), "get_token_usage_summary", None)
    if summary is None:
        return {}
    usage = summary()
    return {k: int(getattr(usage, k, 0) or 0)
            for k in ("prompt_tokens", "completion_tokens", "total_tokens")}


class StepTracker:
    """Per-step bookkeeping for one kickoff; ``on_task_done`` is every task's callback."""

    def __init__(self, built: BuiltWorkflow, run_id: str, reporter: ProgressReporter,
                 timings: ExecutionTimings) -> None:
        self.built = built
        self.run_id = run_id
        self.reporter = reporter
        self.timings = timings
        self.results: list[StepResult] = []
        self.current: int | None = None  # position in built.steps of the running step
        self._started_at = ""
        self._started = 0.0
        self._usage_before: dict[str, int] = {}
        #: ``RunOptions.cancel``: checked between tasks (``_on_task_done``).
        self.cancel: CancelToken | None = None
        #: ``RunOptions``: told about each step result as soon as it is recorded.
        self.options: RunOptions | None = None
        #: ``RunOptions.artifacts_dir``: each finished step's files are saved there at once.
        self.artifacts_dir: str | None = None
        #: Checked after every LLM call and between steps (None: no budget).
        self.budget: RunBudget | None = None
        #: step id -> output, of this kickoff and of earlier attempts (fallback retry).
        self.outputs: dict[str, str] = {}
        self.deps = StepGraph.from_steps(built.config.steps).deps

    def inputs_of(self, k: int) -> list[tuple[str, str | None]]:
        """(dependency id, output) of step ``k``'s dependencies, for its task text."""
        return [(d, self.outputs.get(d)) for d in self.deps.get(self.built.steps[k].id, ())]

    def spent_by_running_step(self) -> int:
        k = self.current
        if k is None or not self._started:
            return 0
        after = _usage_counters(self.built.agents[k]).get("total_tokens", 0)
        return after - self._usage_before.get("total_tokens", 0)

    def spent(self) -> int:
        return sum(r.usage.total_tokens for r in self.results if r.usage)

    def check_budget(self, *_: Any) -> None:
        """After every LLM call (agents' ``step_callback``) and between steps."""
        budget = self.budget
        if budget is None:
            return
        budget.tokens = self.spent()
        reason = budget.check(running_tokens=self.spent_by_running_step())
        if reason:
            k = self.current
            raise BudgetExceeded(reason, step_id=self.built.steps[k].id if k is not None
                                 else None)

    def _record(self, result: StepResult) -> None:
        """Keep ``result`` and tell ``RunOptions.on_step_result`` at once."""
        self.results.append(result)
        if self.options is not None:
            self.options.step_result_recorded(result)

    def _index(self, k: int) -> int:
        return self.built.start_index + k

    def start(self, k: int) -> None:
        self.current = k
        step, provider = self.built.steps[k], self.built.providers[k]
        self.reporter.step_started(self._index(k), step.id, provider.id)
        self._usage_before = _usage_counters(self.built.agents[k])
        self._started = 0.0
        provider.before_task(step.id)
        self._started_at = utc_now()
        self._started = time.perf_counter()

    def _close(self, k: int) -> tuple[StepTiming, TokenUsage, float]:
        seconds = time.perf_counter() - self._started
        after = _usage_counters(self.built.agents[k])
        usage = TokenUsage(**{key: after.get(key, 0) - self._usage_before.get(key, 0)
                              for key in ("prompt_tokens", "completion_tokens", "total_tokens")})
        timing = StepTiming(started_at=self._started_at, finished_at=utc_now(),
                            duration_seconds=round(seconds, 4))
        self.current = None
        self._started = 0.0
        self.timings.steps += 1
        try:
            self.built.providers[k].after_task(self.built.steps[k].id)
        except Exception:  # a hook must not turn a finished step into a failed one
            logger.exception("after_task of %s failed", self.built.providers[k].id)
        return timing, usage, seconds

    def on_task_done(self, output: Any) -> None:
        began = time.perf_counter()
        try:
            self._on_task_done(output)
        finally:
            self.timings.callbacks += time.perf_counter() - began

    def _on_task_done(self, output: Any) -> None:
        k = self.current
        if k is None:  # not ours (crew re-used elsewhere); nothing to account
            return
        step = self.built.steps[k]
        text = str(getattr(output, "raw", "") or "")
        if not text.strip():
            raise StepFailed("the agent returned an empty answer", step_id=step.id,
                             recoverable=True, recovery_hint=RecoveryHint.PROVIDER_FALLBACK)
        text = review_inprocess_step(self.built, k, output, text, run_id=self.run_id)  # QA
        timing, usage, seconds = self._close(k)
        self.outputs[step.id] = text
        result = StepResult(
            run_id=self.run_id, step_id=step.id, exit_code=0, result_text=text,
            agent_provider_id=self.built.entries[k].id, timing=timing, usage=usage,
            artifacts=_save_step_files(text, self.artifacts_dir, step.id),
        )
        self._record(result)
        self.reporter.step_finished(self._index(k), step.id, seconds, result=result)
        cancel = self.cancel
        if cancel is not None and cancel.cancelled and k + 1 < len(self.built.tasks):
            # CrewAI cannot stop a kickoff mid-task; between tasks, raising from the task
            # callback ends the crew with the finished steps kept.
            raise RunCancelled(cancel.reason, step_id=self.built.steps[k + 1].id)
        if k + 1 < len(self.built.tasks):
            self.check_budget()  # between steps: a spent budget starts nothing new
            self.built.tasks[k + 1].description = prepare_step_inputs(
                self.built.base_descriptions[k + 1], self.inputs_of(k + 1))
            self.start(k + 1)

    def stopped(self, error: RunCancelled) -> None:
        """A cancel or a budget stopped the running step: record it as stopped (exit 130,
        not retried), so the run keeps what finished and says what did not."""
        k = self.current
        if k is None:
            return
        timing, usage = None, None
        if self._started:
            timing, usage, _ = self._close(k)
        self.current = None
        step = self.built.steps[k]
        result = StepResult(
            run_id=self.run_id, step_id=step.id, exit_code=EXIT_CANCELLED,
            error=str(error), agent_provider_id=self.built.entries[k].id, timing=timing,
            usage=usage)
        self._record(result)
        self.reporter.step_failed(self._index(k), step.id, str(error), result=result)

    def fail(self, exc: BaseException) -> StepFailed:
        """Record the running step as failed; return the run's error."""
        verdict = classify_exception(exc)
        message = error_text(exc)
        k = self.current
        if k is None:  # raised after the last step closed: no step to blame
            error = StepFailed(message, recoverable=False)
            error.__cause__ = exc
            return error
        step = self.built.steps[k]
        timing: StepTiming | None = None
        usage: TokenUsage | None = None
        if self._started:  # False when before_task itself raised
            timing, usage, _ = self._close(k)
        self.current = None
        result = StepResult(
            run_id=self.run_id, step_id=step.id, exit_code=1, error=message,
            recoverable=verdict.recoverable, recovery_hint=verdict.hint,
            agent_provider_id=self.built.entries[k].id, timing=timing, usage=usage,
        )
        self._record(result)
        self.reporter.step_failed(self._index(k), step.id, message, result=result)
        if isinstance(exc, StepFailed):
            return exc
        error = StepFailed(message, step_id=step.id, recoverable=verdict.recoverable,
                           recovery_hint=verdict.hint)
        error.__cause__ = exc
        return error

    def providers_used(self) -> list[str]:
        count = len(self.results)
        return list(dict.fromkeys(e.id for e in self.built.entries[:count]))


def _save_step_files(text: str, artifacts_dir: str | None, step_id: str) -> list[ArtifactRef]:
    """Save the files ``text`` names under ``artifacts_dir``; their refs (none when unset).

    Done when the step finishes, where it ran, so a run stopped later keeps them and a
    worker on another machine saves them where its spec says. A failed write is logged,
    never fatal: the step's answer matters more.
    """
    if not artifacts_dir:
        return []
    from agentic_orchestration.output.output_artifacts import save_extracted_files

    try:
        return list(save_extracted_files(text, artifacts_dir))
    except OSError as exc:
        logger.error("step %s: cannot save its files under %s: %s", step_id, artifacts_dir,
                     exc.strerror or exc)
        return []
