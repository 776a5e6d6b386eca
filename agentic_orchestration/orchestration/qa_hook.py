"""QA hook: an optional check of each finished step against its ``expected_output``.

Off by default; ``AGENTIC_QA`` turns it on:

- ``rules``: deterministic checks of the shape asked for (``_qa_rules``: an answer at all, a
  list, a code fence, JSON, word bounds), free and repeatable;
- ``reviewer``: a CrewAI reviewer agent on the planner's provider (``AGENTIC_PLANNER_PROVIDER``
  or the best available) reads the task, the criteria and the answer and replies
  ``PASS`` or ``FAIL`` with a reason.

A failed check runs the step once more with the reason appended to its task, and the second
answer is checked again. Once, because a second failure says the criteria or the model are
the problem, and more loops only spend tokens. The step keeps its answer either way (the
retried one when it is not blank): the verdict is a quality signal recorded for the user
and the web UI, not a reason to throw the run's work away. A check that cannot run (the
reviewer's LLM is down) is an ``error`` verdict, logged, and never fails the step.

Where verdicts go: ``StepResult`` (schema v0.1) forbids extra fields, so a verdict is kept
in this process per (run id, step id) and ``record_verdicts(record)`` copies it into the
session's step summaries as ``qa``. Both execution paths check in this process: in-process
in the task callback (``review_inprocess_step``), distributed in the coordinator after a
worker's result is read (``review_distributed_step``), so no verdict crosses a process.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from agentic_orchestration import settings
from agentic_orchestration.orchestration._qa_rules import check_rules

if TYPE_CHECKING:
    from agentic_orchestration.orchestration.backends.base import StepResult, StepSpec

logger = logging.getLogger(__name__)

__all__ = ["QAVerdict", "check", "pop_verdicts", "qa_mode", "record_verdicts", "retry_task",
           "review_distributed_step", "review_inprocess_step"]

MODES = ("off", "rules", "reviewer")
#: How much of an answer the reviewer reads: enough to judge, bounded in tokens.
REVIEW_ANSWER_CHARS = 6000
_VERDICT = re.compile(r"\b(PASS|FAIL)(?:ED|ES)?\b")

_lock = threading.Lock()
_verdicts: dict[tuple[str, str], QAVerdict] = {}


@dataclass(frozen=True)
class QAVerdict:
    """One step's QA outcome: ``pass``, ``fail`` or ``error`` (the check could not run)."""

    mode: str
    verdict: str
    reason: str = ""
    #: Checks made: 1, or 2 when a failed check ran the step again.
    attempts: int = 1
    #: The first check's reason when the step was run again.
    first_reason: str = ""

    @property
    def failed(self) -> bool:
        return self.verdict == "fail"

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"mode": self.mode, "verdict": self.verdict,
                                "reason": self.reason, "attempts": self.attempts}
        if self.first_reason:
            data["first_reason"] = self.first_reason
        return data


def qa_mode() -> str:
    """``AGENTIC_QA``: ``off`` (default), ``rules`` or ``reviewer``."""
    return str(settings.value("AGENTIC_QA") or "off").lower()


# --- checking ---------------------------------------------------------------------------------


def check(text: str, *, expected_output: str, description: str = "",
          mode: str | None = None) -> QAVerdict:
    """Check one answer against its criteria with ``mode`` (default ``AGENTIC_QA``)."""
    mode = mode or qa_mode()
    if mode == "rules":
        problems = check_rules(text, expected_output)
        return QAVerdict(mode, "fail" if problems else "pass", "; ".join(problems))
    if mode == "reviewer":
        try:
            return _review(text, expected_output=expected_output, description=description)
        except Exception as exc:  # the reviewer's LLM failing must not fail the step
            logger.warning("QA reviewer could not check the step: %s", exc)
            return QAVerdict(mode, "error", f"reviewer failed: {type(exc).__name__}: {exc}")
    raise ValueError(f"no QA check for mode {mode!r}")


def parse_review(reply: str) -> tuple[str, str]:
    """``("pass"|"fail"|"error", reason)`` from a reviewer's reply (first PASS/FAIL wins)."""
    text = (reply or "").strip()
    found = _VERDICT.search(text) or re.search(r"\b(pass|fail)(?:es|ed|s)?\b", text, re.I)
    if found is None:
        return "error", f"the reviewer gave no PASS/FAIL: {text[:200]!r}"
    reason = text[found.end():].strip(" \t\n:.-\u2013\u2014") or text[:found.start()].strip()
    return found.group(1).lower(), " ".join(reason.split())[:500]


def _review(text: str, *, expected_output: str, description: str) -> QAVerdict:
    from crewai import Agent, Task

    from agentic_orchestration.redaction import redact_text

    provider = _reviewer_provider()
    provider.before_task("qa-review")
    agent = Agent(role="Quality reviewer",
                  goal="Decide whether an answer meets the criteria it was given.",
                  backstory="You check work strictly against its stated criteria and "
                            "nothing else.",
                  llm=provider.llm(), max_retry_limit=0, verbose=False)
    task = Task(
        description=(
            "Quality check of one step's answer.\n\n"
            f"Task given to the step:\n{description[:1500]}\n\n"
            f"Criteria (expected output):\n{expected_output}\n\n"
            f"Answer to check:\n{redact_text(text[:REVIEW_ANSWER_CHARS])}\n\n"
            "Does the answer meet the criteria? Reply with PASS or FAIL, a colon, and one "
            "sentence saying why."),
        expected_output="PASS or FAIL, a colon, and the reason in one sentence.",
        agent=agent, context=[])
    try:
        reply = str(task.execute_sync(agent=agent).raw or "")
    finally:
        provider.after_task("qa-review")
    verdict, reason = parse_review(reply)
    return QAVerdict("reviewer", verdict, reason)


def _reviewer_provider() -> Any:
    """The planner's provider (``AGENTIC_PLANNER_PROVIDER`` or the catalog's best)."""
    from agentic_orchestration.catalogs import load_catalog
    from agentic_orchestration.planning.dynamic_planner import DynamicPlanner

    return DynamicPlanner(load_catalog(include_workflows=False)).provider


def retry_task(description: str, verdict: QAVerdict, expected_output: str) -> str:
    """The task text of the QA retry: the original, then why the first answer failed."""
    return (f"{description}\n\nA quality check of your previous answer failed: "
            f"{verdict.reason or 'no reason given'}. Answer the task again so that the answer "
            f"meets this: {expected_output}")


# --- the two execution paths ------------------------------------------------------------------


def _remember(run_id: str, step_id: str, verdict: QAVerdict) -> None:
    with _lock:
        _verdicts[(run_id, step_id)] = verdict
    log = logger.warning if verdict.verdict != "pass" else logger.info
    log("step %s QA (%s): %s%s", step_id, verdict.mode, verdict.verdict,
        f" - {verdict.reason}" if verdict.reason else "")


def _with_retry(first_text: str, *, expected: str, description: str, mode: str,
                rerun: Callable[[str], str | None]) -> tuple[str, QAVerdict]:
    """Check, and on a failure run once more (``rerun(task_text)`` -> new answer or None)."""
    first = check(first_text, expected_output=expected, description=description, mode=mode)
    if not first.failed:
        return first_text, first
    logger.warning("QA failed (%s); running the step once more", first.reason)
    try:
        again = rerun(retry_task(description, first, expected))
    except Exception as exc:  # the retry failing keeps the first answer
        logger.warning("QA retry failed: %s; the first answer is kept", exc)
        again = None
    if not (again or "").strip():
        return first_text, QAVerdict(mode, "fail", first.reason, 2,
                                     "the retry gave no answer")
    second = check(again or "", expected_output=expected, description=description,
                   mode=mode)
    return again or "", QAVerdict(mode, second.verdict, second.reason, 2, first.reason)


def review_inprocess_step(built: Any, k: int, output: Any, text: str, *, run_id: str) -> str:
    """In-process (``_StepTracker``): check step ``k``'s answer; on a failed check run its
    agent once more on the same task plus the reason. Returns the answer to keep (also
    written back to ``output.raw``, which CrewAI hands on as the task's output)."""
    mode = qa_mode()
    if mode == "off":
        return text
    step, task, agent = built.steps[k], built.tasks[k], built.agents[k]

    def rerun(description: str) -> str | None:
        original = task.description
        task.description = description
        try:
            tools = None
            crew = getattr(built, "crew", None)
            if crew is not None and hasattr(crew, "_prepare_tools"):  # MCP tools, as CrewAI
                tools = crew._prepare_tools(agent, task, list(task.tools or agent.tools or []))
            result = agent.execute_task(task=task, context=None, tools=tools)
        finally:
            task.description = original
        return str(getattr(result, "raw", result) or "")

    kept, verdict = _with_retry(text, expected=str(task.expected_output),
                                description=str(task.description), mode=mode, rerun=rerun)
    _remember(run_id, step.id, verdict)
    if kept != text and hasattr(output, "raw"):
        output.raw = kept
    return kept


def review_distributed_step(spec: StepSpec, result: StepResult, *,
                            rerun: Callable[[StepSpec], StepResult],
                            keep: Callable[[StepResult], Any]) -> StepResult:
    """Coordinator: check a worker's ok ``result``; on a failed check launch the step once
    more (``rerun(spec)``, the coordinator's own attempt) with the reason in its task.

    Returns the result to keep; when it is not the last one written (the retry failed),
    ``keep(result)`` writes it back as the step's ``result.json``.
    """
    mode = qa_mode()
    if mode == "off" or not result.ok:
        return result
    holder: dict[str, StepResult] = {}

    def run_again(description: str) -> str | None:
        task = spec.task.model_copy(update={"description": description})
        again = rerun(spec.model_copy(update={"task": task}))
        holder["result"] = again
        return again.result_text if again.ok else None

    kept, verdict = _with_retry(result.result_text or "", expected=spec.task.expected_output,
                                description=spec.task.description, mode=mode,
                                rerun=run_again)
    _remember(spec.run_id, spec.step_id, verdict)
    again = holder.get("result")
    if again is not None and again.ok and kept == again.result_text:
        return again
    if again is not None:
        keep(result)  # the retry wrote a failed result.json; the first answer stands
    return result


# --- the session ------------------------------------------------------------------------------


def pop_verdicts(run_id: str) -> dict[str, QAVerdict]:
    """The verdicts of ``run_id``'s steps (step id -> verdict), forgotten here."""
    with _lock:
        keys = [key for key in _verdicts if key[0] == run_id]
        return {key[1]: _verdicts.pop(key) for key in keys}


def record_verdicts(record: Any) -> None:
    """Copy the run's verdicts into its session step summaries (``step["qa"]``)."""
    verdicts = pop_verdicts(record.run_id)
    for step in record.steps:
        verdict = verdicts.get(step.get("step_id"))
        if verdict is not None:
            step["qa"] = verdict.to_dict()
