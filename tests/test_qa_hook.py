"""QA hook: rules and reviewer verdicts, the one retry on a failed check, on both paths
(in-process CrewAI against the scripted LLM; the coordinator with ``ScriptedLauncher``),
and the verdict in the session (real CrewAI; only the LLM replies are scripted)."""

from __future__ import annotations

import json
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agentic_orchestration.catalogs import WorkflowConfig, load_catalog
from agentic_orchestration.cli.main import main
from agentic_orchestration.orchestration._qa_rules import check_rules
from agentic_orchestration.orchestration.backends.base import (
    RunOptions,
    StepResult,
    StepSpec,
    TaskSpec,
)
from agentic_orchestration.orchestration.backends.crewai import CrewAIExecutionBackend
from agentic_orchestration.orchestration.qa_hook import (
    QAVerdict,
    check,
    parse_review,
    pop_verdicts,
    record_verdicts,
)
from agentic_orchestration.orchestration.run_store import FileSystemRunStore
from agentic_orchestration.orchestration.step_coordinator import StepCoordinator
from agentic_orchestration.sessions import list_sessions
from agentic_orchestration.testing import ScriptedLLMServer
from agentic_orchestration.testing.fake_llm import last_user_text
from agentic_orchestration.testing.launcher import ScriptedLauncher
from tests.conftest import write_catalog

pytestmark = pytest.mark.filterwarnings("ignore::ImportWarning")

RETRY_MARK = "quality check of your previous answer failed"
REVIEW_MARK = "Quality check of one step's answer"


def two_steps(expected: str = "Bullet points of facts.") -> WorkflowConfig:
    return WorkflowConfig.model_validate({
        "name": "qa", "topic": "bees",
        "steps": [
            {"agent_provider": "fake_researcher", "description": "STEP-ONE facts on {topic}.",
             "expected_output": expected},
            {"agent_provider": "fake_writer", "description": "STEP-TWO write it up.",
             "expected_output": "The final text."},
        ]})


def run_inprocess(config: WorkflowConfig, run_id: str = "run-qa") -> Any:
    backend = CrewAIExecutionBackend(live_progress=False)
    return backend.execute_config(config, options=RunOptions(run_id=run_id, quiet=True,
                                                             emit_progress_lines=False),
                                  catalog=load_catalog())


# --- the checks -----------------------------------------------------------------------------


@pytest.mark.parametrize(("answer", "expected", "problem"), [
    ("  ...  ", "A clear answer.", "empty"),
    ("Bees dance and smell.", "Bullet points of facts.", "asked for a list"),
    ("- bees dance\n- bees smell", "Five tips for beekeepers.", "asked for 5 tips, found 2"),
    ("def f(): pass", "The code in a fenced block.", "no fenced code block"),
    ("not json at all", "A JSON object with the totals.", "does not parse as JSON"),
    (" ".join(["word"] * 150), "A summary under 100 words.", "150 words, asked for at most 100"),
    ("One. Two. Three. Four.", "One sentence.", "one sentence"),
])
def test_rules_name_what_is_missing(answer: str, expected: str, problem: str) -> None:
    problems = check_rules(answer, expected)
    assert problems and problem in "; ".join(problems)


@pytest.mark.parametrize(("answer", "expected"), [
    ("- bees dance\n- bees smell\n* they sting", "Bullet points of facts."),
    ("1. one\n2. two\n3. three\n4. four\n5. five", "Five tips for beekeepers."),
    ("Here:\n```python\ndef f():\n    return 1\n```", "A Python function in a fenced block."),
    ('```json\n{"total": 3}\n```', "A JSON object with the totals."),
    ("The liver filters blood.", "Explain the function of the liver."),  # not code
    (" ".join(["word"] * 95), "About 80-100 words."),
])
def test_rules_pass_answers_of_the_shape_asked(answer: str, expected: str) -> None:
    assert check_rules(answer, expected) == []


def test_reviewer_reply_parsing() -> None:
    assert parse_review("PASS: the list covers it") == ("pass", "the list covers it")
    assert parse_review("Verdict - FAIL. It has no dates.") == ("fail", "It has no dates")
    assert parse_review("I think it passes") == ("pass", "I think it")
    assert parse_review("Looks fine to me")[0] == "error"


def test_verdicts_are_recorded_once_into_the_session_steps() -> None:
    from agentic_orchestration.orchestration import qa_hook

    qa_hook._remember("run-x", "step_1", QAVerdict("rules", "fail", "no list", 2, "no list"))
    record = type("R", (), {"run_id": "run-x", "steps": [{"step_id": "step_1"},
                                                         {"step_id": "step_2"}]})()
    record_verdicts(record)
    assert record.steps[0]["qa"] == {"mode": "rules", "verdict": "fail", "reason": "no list",
                                     "attempts": 2, "first_reason": "no list"}
    assert "qa" not in record.steps[1]
    assert pop_verdicts("run-x") == {}


# --- in-process -----------------------------------------------------------------------------


@pytest.mark.backend_inprocess
def test_off_by_default_no_check_no_retry(fake_config: Path, scripted_llm: ScriptedLLMServer
                                          ) -> None:
    scripted_llm.add_rule("STEP-ONE", "Bees dance.")  # not a list: rules would fail it
    scripted_llm.add_rule("STEP-TWO", "Final text.")
    result = run_inprocess(two_steps())
    assert result.ok and len(scripted_llm.requests) == 2
    assert pop_verdicts("run-qa") == {}


@pytest.mark.backend_inprocess
def test_inprocess_failed_rules_check_retries_once_and_hands_on_the_retry(
        fake_config: Path, scripted_llm: ScriptedLLMServer,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENTIC_QA", "rules")
    scripted_llm.add_rule(RETRY_MARK, "- bees dance\n- bees use pheromones")
    scripted_llm.add_rule("STEP-ONE", "Bees dance and use pheromones.")
    scripted_llm.add_rule("STEP-TWO", "Final text.")
    result = run_inprocess(two_steps())
    assert result.ok
    texts = scripted_llm.user_texts()
    assert len(texts) == 3 and RETRY_MARK in texts[1]
    assert "asked for a list" in texts[1]  # the reason goes back to the agent
    assert result.step_results[0].result_text == "- bees dance\n- bees use pheromones"
    assert "- bees use pheromones" in texts[2]  # step 2 got the retried answer
    verdicts = pop_verdicts("run-qa")
    assert verdicts["step_1"].to_dict() == {
        "mode": "rules", "verdict": "pass", "reason": "", "attempts": 2,
        "first_reason": "asked for a list, the answer has no list items"}
    assert verdicts["step_2"].verdict == "pass" and verdicts["step_2"].attempts == 1


@pytest.mark.backend_inprocess
def test_inprocess_second_failure_keeps_the_step_and_records_fail(
        fake_config: Path, scripted_llm: ScriptedLLMServer,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENTIC_QA", "rules")
    scripted_llm.add_rule("STEP-ONE", "Still no list, sorry.")
    scripted_llm.add_rule("STEP-TWO", "Final text.")
    result = run_inprocess(two_steps())
    assert result.ok and len(scripted_llm.requests) == 3  # one retry, not more
    verdict = pop_verdicts("run-qa")["step_1"]
    assert (verdict.verdict, verdict.attempts) == ("fail", 2)


@pytest.fixture
def reviewer_llm() -> Iterator[ScriptedLLMServer]:
    with ScriptedLLMServer() as server:
        yield server


@pytest.mark.backend_inprocess
def test_reviewer_runs_on_the_planner_provider_and_its_fail_retries(
        tmp_path: Path, scripted_llm: ScriptedLLMServer, reviewer_llm: ScriptedLLMServer,
        monkeypatch: pytest.MonkeyPatch) -> None:
    agents = textwrap.dedent(f"""\
        - id: fake_researcher
          type: openai
          model: fake-model
          openai_base_url: {scripted_llm.base_url}
          role: Researcher
          goal: Find facts.
          backstory: Careful.
          priority: 10
        - id: fake_writer
          type: openai
          model: fake-model
          openai_base_url: {scripted_llm.base_url}
          role: Writer
          goal: Write text.
          backstory: Clear.
          priority: 11
        - id: judge
          type: openai
          model: judge-model
          openai_base_url: {reviewer_llm.base_url}
          role: Judge
          goal: Judge.
          backstory: Fair.
          priority: 90
        """)
    monkeypatch.setenv("AGENTIC_CONFIG_DIR", str(write_catalog(
        tmp_path / "config", base_url=scripted_llm.base_url, agents=agents)))
    monkeypatch.setenv("AGENTIC_PLANNER_PROVIDER", "judge")
    monkeypatch.setenv("AGENTIC_QA", "reviewer")
    verdicts = ["FAIL: the facts do not mention the dance", "PASS: the dance is there",
                "PASS: a clear final text"]
    reviewer_llm.add_rule(REVIEW_MARK, lambda request: verdicts.pop(0))
    scripted_llm.add_rule(RETRY_MARK, "Bees do the waggle dance.")
    scripted_llm.add_rule("STEP-ONE", "Bees are insects.")
    scripted_llm.add_rule("STEP-TWO", "Final text.")
    result = run_inprocess(two_steps(expected="Facts about how bees dance."))
    assert result.ok and verdicts == []
    assert len(reviewer_llm.requests) == 3 and len(scripted_llm.requests) == 3
    first_review = last_user_text(reviewer_llm.requests[0])
    assert "Bees are insects." in first_review and "Facts about how bees dance." in first_review
    assert "the facts do not mention the dance" in scripted_llm.user_texts()[1]
    step_1 = pop_verdicts("run-qa")["step_1"]
    assert (step_1.mode, step_1.verdict, step_1.attempts) == ("reviewer", "pass", 2)


@pytest.mark.backend_inprocess
def test_reviewer_down_is_an_error_verdict_not_a_failed_step(
        fake_config: Path, scripted_llm: ScriptedLLMServer,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENTIC_QA", "reviewer")
    monkeypatch.setenv("AGENTIC_PLANNER_PROVIDER", "no_such_provider")
    scripted_llm.add_rule("STEP-ONE", "Bees dance.")
    scripted_llm.add_rule("STEP-TWO", "Final text.")
    result = run_inprocess(two_steps())
    assert result.ok and len(scripted_llm.requests) == 2
    verdict = pop_verdicts("run-qa")["step_1"]
    assert verdict.verdict == "error" and "no_such_provider" in verdict.reason


# --- distributed (the coordinator) ----------------------------------------------------------


def specs(expected: str = "Bullet points of facts.") -> list[StepSpec]:
    agent = {"id": "primary", "type": "openai", "model": "m", "openai_base_url": "http://a/v1",
             "role": "R", "goal": "g", "backstory": "b"}
    return [StepSpec(run_id="run-d", step_id=f"step_{i}", step_index=i - 1, workflow_name="w",
                     task=TaskSpec(description=f"Do part {i}.",
                                   expected_output=expected if i == 1 else "text"),
                     agent_provider=agent) for i in (1, 2)]


def coordinate(launcher: ScriptedLauncher, store: FileSystemRunStore) -> Any:
    launcher.store = store
    return StepCoordinator(backend_name="fake").run_workflow(
        specs(), launcher=launcher, run_store=store,
        run_options=RunOptions(run_id="run-d", emit_progress_lines=False), timeout=60.0)


def test_coordinator_failed_check_relaunches_once_with_the_reason(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENTIC_QA", "rules")
    store = FileSystemRunStore(tmp_path / "store")
    launcher = ScriptedLauncher({"step_1": ["No list here.", "- one fact\n- two facts"],
                                 "step_2": ["done"]})
    result = coordinate(launcher, store)
    assert result.ok
    assert [s.step_id for s in launcher.received] == ["step_1", "step_1", "step_2"]
    assert RETRY_MARK in launcher.received[1].task.description
    assert "- two facts" in launcher.received[2].task.description  # the retried answer
    stored = store.read_result("run-d", "step_1")
    assert stored is not None and stored.result_text == "- one fact\n- two facts"
    verdict = pop_verdicts("run-d")["step_1"]
    assert (verdict.verdict, verdict.attempts) == ("pass", 2)


def test_coordinator_keeps_the_first_answer_when_the_retry_fails(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENTIC_QA", "rules")
    store = FileSystemRunStore(tmp_path / "store")
    broken = StepResult(run_id="run-d", step_id="step_1", exit_code=1, error="HTTP 500")
    launcher = ScriptedLauncher({"step_1": ["No list here.", broken], "step_2": ["done"]})
    result = coordinate(launcher, store)
    assert result.ok and result.step_results[0].result_text == "No list here."
    stored = store.read_result("run-d", "step_1")  # written back over the failed retry
    assert stored is not None and stored.ok and stored.result_text == "No list here."
    verdict = pop_verdicts("run-d")["step_1"]
    assert verdict.verdict == "fail" and verdict.first_reason == "the retry gave no answer"


def test_check_rejects_an_unknown_mode() -> None:
    with pytest.raises(ValueError, match="no QA check"):
        check("x", expected_output="y", mode="sometimes")


# --- the CLI and the session ----------------------------------------------------------------


@pytest.mark.backend_inprocess
def test_cli_run_records_the_verdict_on_the_session_step(
        fake_config: Path, scripted_llm: ScriptedLLMServer,
        monkeypatch: pytest.MonkeyPatch, capsys: Any) -> None:
    monkeypatch.setenv("AGENTIC_QA", "rules")
    plan = {"name": "p", "steps": [
        {"agent_provider": "fake_researcher", "mcp_providers": [],
         "description": "Collect facts about tea", "expected_output": "Bullet points of facts"},
        {"agent_provider": "fake_writer", "mcp_providers": [],
         "description": "Write about tea", "expected_output": "text"}]}
    scripted_llm.enqueue(json.dumps(plan))
    scripted_llm.add_rule("Collect facts", "- tea is a drink\n- tea has caffeine")
    scripted_llm.add_rule("Write about tea", "Tea is a drink with caffeine.")
    assert main(["--dynamic", "Tell me about tea", "--no-router", "--quiet"]) == 0
    (record,) = list_sessions()
    assert [s.get("qa", {}).get("verdict") for s in record.steps] == ["pass", "pass"]
    assert record.steps[0]["qa"]["mode"] == "rules"
