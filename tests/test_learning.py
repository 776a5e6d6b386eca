"""Learning from sessions: statistics, the fallback order they produce, planner hints, --stats.

Sessions are real records in a real SQLite database; the catalog is a real YAML catalog;
the planner talks to the scripted LLM server, whose recorded request shows the prompt.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from agentic_orchestration.catalogs import load_catalog
from agentic_orchestration.catalogs.models import WorkflowConfig
from agentic_orchestration.cli.main import main
from agentic_orchestration.orchestration.backends.base import (
    RecoveryHint,
    StepResult,
    StepSpec,
    StepTiming,
    TaskSpec,
    TokenUsage,
    WorkflowExecutionResult,
)
from agentic_orchestration.orchestration.execution_fallback import plan_fallback
from agentic_orchestration.orchestration.step_recovery import provider_recovery
from agentic_orchestration.planning import DynamicPlanner
from agentic_orchestration.sessions import save_session, start_session, update_session
from agentic_orchestration.sessions.learning import (
    chain_order,
    order_chain,
    planner_hints,
    provider_stats,
    step_kind,
)
from agentic_orchestration.testing import ScriptedLLMServer
from tests.conftest import write_catalog

CODE = "Write the code for: {topic}"
FACTS = "List the key facts about: {topic}"
_counter = iter(range(10_000))


def seed(provider: str, description: str, outcomes: list[tuple[str, float, int]]) -> None:
    """One session per outcome: (``ok``/``recoverable``/``failed``/``cancelled``, seconds,
    tokens), finished in the order given (the last is the newest)."""
    for status, seconds, tokens in outcomes:
        n = next(_counter)
        run_id = f"run-{n:04d}"
        record = start_session("goal", mode="dynamic", run_id=run_id)
        record.plan = {"name": "p", "topic": "bees", "steps": [
            {"id": "step_1", "agent_provider": provider, "description": description}]}
        step = StepResult(
            run_id=run_id, step_id="step_1", agent_provider_id=provider,
            exit_code={"ok": 0, "cancelled": 130}.get(status, 1),
            recoverable=status == "recoverable",
            error=None if status == "ok" else f"{status} failure",
            timing=StepTiming(started_at="x", finished_at=f"2024-01-01T00:00:{n:04d}Z",
                              duration_seconds=seconds),
            usage=TokenUsage(total_tokens=tokens))
        update_session(record, execution=WorkflowExecutionResult(
            exit_code=step.exit_code, result_text="r", error=None, step_results=[step],
            run_id=run_id, backend="inprocess"))
        save_session(record)


def stats_by_key():
    return {(s.provider, s.kind): s for s in provider_stats()}


@pytest.mark.parametrize(("description", "kind"), [
    (CODE, "code"), ("Review the code for bugs and return the fixed code", "code"),
    (FACTS, "explain"), ("Compare the options on those facts and recommend one", "compare"),
    ("Write the final text from the notes: {topic}", "write"),
])
def test_kind_of_a_step_comes_from_its_own_words(description: str, kind: str) -> None:
    assert step_kind(description) == kind
    # The topic (here a code-ish goal) does not change a step's kind.
    assert step_kind(description.replace("{topic}", "a python script"),
                     topic="a python script") == kind


def test_statistics_per_provider_and_kind() -> None:
    seed("a", CODE, [("ok", 1.0, 10), ("ok", 2.0, 20), ("recoverable", 9.0, 5),
                     ("ok", 10.0, 30)])
    seed("a", FACTS, [("failed", 1.0, 0), ("cancelled", 1.0, 0)])
    stats = stats_by_key()
    code = stats[("a", "code")]
    assert (code.runs, code.ok, code.recoverable_failures, code.failures) == (4, 3, 1, 1)
    assert code.success_rate == 0.75
    assert (code.p50_seconds, code.p90_seconds) == (2.0, 10.0)  # successful attempts only
    assert code.total_tokens == 65
    overall = stats[("a", None)]
    assert (overall.runs, overall.ok, overall.failures) == (5, 3, 2)  # cancelled left out
    assert stats[("a", "explain")].runs == 1


def test_window_keeps_only_the_newest_attempts(monkeypatch: pytest.MonkeyPatch) -> None:
    seed("a", CODE, [("failed", 1.0, 0), ("failed", 1.0, 0), ("ok", 1.0, 0), ("ok", 3.0, 0)])
    monkeypatch.setenv("AGENTIC_LEARNING_WINDOW", "2")
    code = stats_by_key()[("a", "code")]
    assert (code.runs, code.success_rate) == (2, 1.0)


AGENTS = textwrap.dedent("""\
    - {{id: alpha, type: openai, model: m-alpha, openai_base_url: {url}, role: Coder,
       goal: g., backstory: b., priority: 1}}
    - {{id: beta, type: openai, model: m-beta, openai_base_url: {url}, role: Coder,
       goal: g., backstory: b., priority: 2}}
    - {{id: gamma, type: openai, model: m-gamma, openai_base_url: {url}, role: Coder,
       goal: g., backstory: b., priority: 3}}
    - {{id: delta, type: openai, model: m-delta, openai_base_url: {url}, role: Coder,
       goal: g., backstory: b., priority: 4}}
""")


@pytest.fixture
def catalog(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    root = write_catalog(tmp_path / "config", base_url="http://127.0.0.1:9/v1",
                         agents=AGENTS.format(url="http://127.0.0.1:9/v1"))
    monkeypatch.setenv("AGENTIC_CONFIG_DIR", str(root))
    loaded = load_catalog()
    loaded.chain_order = chain_order()
    return loaded


def ids(entries) -> list[str]:
    return [e.id for e in entries]


def test_without_history_the_chain_is_the_catalog_order(catalog) -> None:
    assert ids(catalog.fallback_chain(catalog.agents["alpha"], step_description=CODE)) == [
        "beta", "gamma", "delta"]


def test_fallback_chain_is_ordered_by_success_for_that_kind(catalog) -> None:
    seed("beta", CODE, [("recoverable", 1, 0)] * 2 + [("ok", 1, 0)])  # 33 %
    seed("gamma", CODE, [("ok", 1, 0)] * 3)  # 100 %
    seed("delta", CODE, [("ok", 1, 0)] * 2)  # too few: neutral 0.5, between them
    seed("beta", FACTS, [("ok", 1, 0)] * 5)  # beta is good at another kind
    chain = catalog.fallback_chain(catalog.agents["alpha"], step_description=CODE, topic="x")
    assert ids(chain) == ["gamma", "delta", "beta"]
    # For a facts step beta's own record (100 % of 5) counts; gamma falls back to its
    # overall rate (100 % of 3) and ties with beta: catalog order decides.
    fresh = load_catalog()
    fresh.chain_order = chain_order()
    assert ids(fresh.fallback_chain(fresh.agents["alpha"], step_description=FACTS)) == [
        "beta", "gamma", "delta"]


def test_learning_off_keeps_the_catalog_order(catalog, monkeypatch: pytest.MonkeyPatch) -> None:
    seed("gamma", CODE, [("ok", 1, 0)] * 3)
    seed("beta", CODE, [("failed", 1, 0)] * 3)
    monkeypatch.setenv("AGENTIC_LEARNING", "0")
    assert chain_order() is None
    catalog.chain_order = chain_order()
    assert ids(catalog.fallback_chain(catalog.agents["alpha"], step_description=CODE)) == [
        "beta", "gamma", "delta"]


def test_order_is_deterministic_and_stable_on_ties(catalog) -> None:
    chain = [catalog.agents[i] for i in ("beta", "gamma", "delta")]
    assert ids(order_chain(chain, "code", [], min_runs=1)) == ["beta", "gamma", "delta"]


def test_workflow_fallback_and_step_recovery_take_the_learned_order(catalog) -> None:
    seed("beta", CODE, [("failed", 1, 0)] * 3)
    seed("gamma", CODE, [("ok", 1, 0)] * 3)
    config = WorkflowConfig.model_validate({"name": "w", "topic": "t", "steps": [
        {"agent_provider": "alpha", "description": CODE}]})
    plan = plan_fallback(config, catalog, "step_1")
    assert plan is not None and plan.provider.id == "gamma"
    spec = StepSpec(run_id="r", step_id="step_1", step_index=0, workflow_name="w", topic="t",
                    task=TaskSpec(description="Write the code for: t", expected_output="c"),
                    agent_provider=catalog.agents["alpha"].model_dump(mode="json"))
    failed = StepResult(run_id="r", step_id="step_1", exit_code=1, recoverable=True,
                        recovery_hint=RecoveryHint.PROVIDER_FALLBACK)
    following = provider_recovery(catalog)(spec, failed, 1)
    assert following is not None and following.agent_provider["id"] == "gamma"


def test_planner_hints_are_bounded_and_name_reliable_providers(catalog) -> None:
    seed("gamma", CODE, [("ok", 4.0, 0)] * 3)
    seed("beta", CODE, [("failed", 1, 0)] * 2 + [("ok", 2.0, 0)])
    seed("delta", CODE, [("ok", 1, 0)])  # below the minimum: not shown
    text = planner_hints(catalog, "Write a Python script that sorts a list")
    lines = text.strip().splitlines()
    assert lines[0].startswith("Reliability in past runs")
    assert lines[1] == "- gamma: 100% of 3 steps succeeded; code steps: 100% of 3; typical 4 s"
    assert lines[2].startswith("- beta: 33% of 3 steps succeeded")
    assert len(lines) == 3 and "delta" not in text
    assert len(planner_hints(catalog, "x", max_lines=1).strip().splitlines()) == 2


def test_the_planner_prompt_carries_the_hints(tmp_path: Path, scripted_llm: ScriptedLLMServer,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    root = write_catalog(tmp_path / "cfg", base_url=scripted_llm.base_url)
    monkeypatch.setenv("AGENTIC_CONFIG_DIR", str(root))
    monkeypatch.setenv("AGENTIC_KB", "0")
    seed("fake_writer", CODE, [("ok", 2.0, 0)] * 3)
    scripted_llm.enqueue(json.dumps({"name": "n", "steps": [{
        "agent_provider": "fake_writer", "mcp_providers": [], "description": "Write it.",
        "expected_output": "Text."}]}))
    DynamicPlanner(load_catalog()).plan("Write a haiku about the sea")
    prompt = scripted_llm.user_texts()[0]
    assert "Reliability in past runs" in prompt
    assert "- fake_writer: 100% of 3 steps succeeded" in prompt
    assert prompt.index("Reliability") < prompt.index("Rules:")


def test_stats_command_prints_the_numbers(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--stats"]) == 0
    assert "no step history yet" in capsys.readouterr().out
    seed("a", CODE, [("ok", 1.0, 10), ("ok", 2.0, 20), ("recoverable", 9.0, 5),
                     ("ok", 10.0, 30)])
    assert main(["--stats"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[1].split() == ["PROVIDER", "KIND", "RUNS", "OK", "%", "RECOV", "FAIL", "P50",
                              "s", "P90", "s", "TOKENS"]
    assert out[2].split() == ["a", "all", "4", "75%", "1", "1", "2.0", "10.0", "65"]
    assert out[3].split() == ["code", "4", "75%", "1", "1", "2.0", "10.0", "65"]
    assert main(["--stats", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data[0]["provider"] == "a" and data[0]["success_rate"] == 0.75
