"""Run budgets (AGENTIC_RUN_MAX_TOKENS, AGENTIC_RUN_MAX_SECONDS): a spent budget stops the
run through the cancel path, keeps what finished, ends ``budget_exceeded`` (exit 5), and
``--resume`` continues with a new budget.

The coordinator is driven through ``ScriptedLauncher`` (steps that report token usage, or
hang until terminated); the in-process backend runs real CrewAI against the scripted LLM.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from agentic_orchestration.errors import EXIT_BUDGET_EXCEEDED, BudgetExceeded
from agentic_orchestration.orchestration.backends.base import (
    RunOptions,
    StepResult,
    StepSpec,
    TaskSpec,
    TokenUsage,
)
from agentic_orchestration.orchestration.budget import RunBudget
from agentic_orchestration.orchestration.run_store import FileSystemRunStore
from agentic_orchestration.orchestration.step_coordinator import StepCoordinator
from agentic_orchestration.testing.launcher import Outcome, ScriptedLauncher

RUN = "run-budget"
AGENT = {"id": "primary", "type": "openai", "role": "r", "goal": "g", "backstory": "b",
         "model": "m", "openai_base_url": "http://a/v1"}


def specs(n: int = 3) -> list[StepSpec]:
    return [StepSpec(run_id=RUN, step_id=f"s{i + 1}", step_index=i, workflow_name="w",
                     task=TaskSpec(description=f"Do {i + 1}.", expected_output="t"),
                     agent_provider=AGENT) for i in range(n)]


def used(tokens: int, text: str):
    def play(spec: StepSpec) -> StepResult:
        return StepResult(run_id=spec.run_id, step_id=spec.step_id, result_text=text,
                          usage=TokenUsage(total_tokens=tokens))
    return play


def run(script: dict[str, list[Outcome]], store: FileSystemRunStore, *,
        resume: bool = False):
    launcher = ScriptedLauncher(script, store=store)
    result = StepCoordinator(backend_name="fake").run_workflow(
        specs(), launcher=launcher, run_store=store, run_options=RunOptions(run_id=RUN),
        resume=resume, timeout=120.0)
    return result, launcher


@pytest.fixture
def store(tmp_path: Path) -> FileSystemRunStore:
    return FileSystemRunStore(tmp_path / "store")


def test_budget_from_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    assert not RunBudget.from_settings().limited
    monkeypatch.setenv("AGENTIC_RUN_MAX_TOKENS", "10")
    budget = RunBudget.from_settings()
    assert budget.max_tokens == 10 and budget.add_tokens(4) == ""
    assert "token budget spent: 12 of 10" in budget.add_tokens(8)


def test_token_budget_stops_the_run_and_keeps_what_finished(
        store: FileSystemRunStore, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("AGENTIC_RUN_MAX_TOKENS", "50")
    result, launcher = run({"s1": [used(60, "first")]}, store)

    assert (result.status, result.exit_code) == ("budget_exceeded", EXIT_BUDGET_EXCEEDED)
    assert isinstance(result.error, BudgetExceeded) and "60 of 50" in str(result.error)
    assert [s.step_id for s in launcher.received] == ["s1"]
    stored = store.read_result(RUN, "s1")
    assert stored is not None and stored.ok and stored.result_text == "first"
    out = capsys.readouterr().out
    assert "(progress) budget exceeded: token budget spent: 60 of 50 tokens" in out
    assert out.rstrip().endswith("(progress) run run-budget finished: budget_exceeded")

    monkeypatch.setenv("AGENTIC_RUN_MAX_TOKENS", "500")  # --resume with a new budget
    again, launcher = run({}, store, resume=True)
    assert again.ok and [s.step_id for s in launcher.received] == ["s2", "s3"]
    assert launcher.received[0].prior_output == "first"


def test_time_budget_terminates_the_running_step(
        store: FileSystemRunStore, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENTIC_RUN_MAX_SECONDS", "1")
    result, launcher = run({"s2": ["hang"]}, store)

    assert result.status == "budget_exceeded" and "time budget spent" in str(result.error)
    assert launcher.handles[1].terminated  # stopped through its handle, not waited out
    assert [r.ok for r in result.step_results] == [True, False]
    assert result.step_results[1].cancelled
    assert store.read_result(RUN, "s1") is not None and store.read_result(RUN, "s1").ok
    assert store.read_result(RUN, "s3") is None

    monkeypatch.delenv("AGENTIC_RUN_MAX_SECONDS")
    again, launcher = run({}, store, resume=True)
    assert again.ok and [s.step_id for s in launcher.received] == ["s2", "s3"]


# -- in-process, real CrewAI ------------------------------------------------------------------

FLOW = """\
name: two
steps:
  - id: first
    agent_provider: fake_researcher
    description: "FIRST list facts about {topic}"
  - id: second
    agent_provider: fake_writer
    description: "SECOND write about {topic}"
"""


def test_in_process_token_budget_stops_mid_step_after_an_llm_call(
        tmp_path: Path, fake_config: Path, scripted_llm, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    from agentic_orchestration.cli.main import main

    scripted_llm.add_rule("SECOND", "Final Answer: the text")
    scripted_llm.add_rule("FIRST", "Final Answer: fact one, fact two")
    flow = tmp_path / "two.yaml"
    flow.write_text(textwrap.dedent(FLOW))
    monkeypatch.setenv("AGENTIC_RUN_STORE_PATH", str(tmp_path / "store"))

    from agentic_orchestration.catalogs import load_catalog, load_workflow
    from agentic_orchestration.orchestration.backends.crewai import CrewAIExecutionBackend

    config = load_workflow(str(flow)).with_topic("the sea")
    free = CrewAIExecutionBackend(progress_stream=None).execute_config(
        config, options=RunOptions(emit_progress_lines=False), catalog=load_catalog())
    assert free.ok
    first_tokens = free.step_results[0].usage.total_tokens  # type: ignore[union-attr]
    assert first_tokens > 0
    calls = len(scripted_llm.requests)

    # Enough for the first step, not for the second one's first LLM reply.
    monkeypatch.setenv("AGENTIC_RUN_MAX_TOKENS", str(first_tokens + 1))
    capsys.readouterr()
    code = main(["--workflow", str(flow), "the sea"])
    out = capsys.readouterr().out

    assert code == EXIT_BUDGET_EXCEEDED
    assert len(scripted_llm.requests) == calls + 2  # first's call, then second's one call
    assert "(progress) step 1/2 first finished" in out
    assert "(progress) step 2/2 second failed: step second: cancelled: token budget spent" in out
    assert "(progress) budget exceeded: token budget spent" in out
    assert "finished: budget_exceeded" in out
    assert "=== Final answer ===" not in out  # an unfinished run has no answer
    from agentic_orchestration.sessions.orchestrator_session import load_session

    run_id = out.split("(progress) run ", 1)[1].split(" ", 1)[0]
    record = load_session(run_id)
    assert (record.status, record.exit_code) == ("budget_exceeded", EXIT_BUDGET_EXCEEDED)
    assert [s["step_id"] for s in record.steps if s["exit_code"] == 0] == ["first"]
