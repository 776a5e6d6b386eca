"""``--dynamic-iterative``: plan, run a step, let the replanner keep, revise or extend the rest.

Real CrewAI in-process and real worker processes on the subprocess backend; the only fake is
the LLM's reply (``ScriptedLLMServer``). The planner, the replanner and each step are told
apart by rules on their prompts: the replanner's prompt starts "Revise a running plan", the
planner's "Plan the work", and each step's description carries a keyword (ALPHA, BRAVO...).
Later prompts carry earlier outputs and step texts, so the more specific rules come first.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from agentic_orchestration.catalogs import load_catalog
from agentic_orchestration.cli.main import main
from agentic_orchestration.orchestration.backends.base import StepResult
from agentic_orchestration.planning.plan_validation import plan_from_data, validate_plan
from agentic_orchestration.planning.replanner import Replanner
from agentic_orchestration.sessions.orchestrator_session import list_sessions
from agentic_orchestration.testing import HTTPErrorReply

PLAN = {"name": "tea-notes", "steps": [
    {"agent_provider": "fake_researcher", "mcp_providers": [],
     "description": "ALPHA: gather facts about {topic}", "expected_output": "Facts."},
    {"agent_provider": "fake_writer", "mcp_providers": [],
     "description": "BRAVO: draft a long text about {topic}", "expected_output": "A draft."},
]}
REVISED = {"agent_provider": "fake_writer", "mcp_providers": [],
           "description": "BRAVO2: draft a short text about {topic}",
           "expected_output": "A short draft."}
ADDED = {"agent_provider": "fake_writer", "mcp_providers": [],
         "description": "CHARLIE: polish the draft with the facts",
         "expected_output": "The final text.", "depends_on": ["step_1", "step_2"]}
ROUND_1 = {"done": False, "reason": "the facts call for a short text",
           "steps": [{"id": "step_2", **REVISED}, {"id": "step_3", **ADDED}]}
ROUND_2 = {"done": False, "reason": "the polish step still fits",
           "steps": [{"id": "step_3", **ADDED}]}
DONE = {"done": True, "reason": "the polished text answers the goal", "steps": []}
WORKERS = {"AGENTIC_EXECUTION_BACKEND": "subprocess", "AGENTIC_SUBPROCESS_WORKERS": "1",
           "AGENTIC_SUBPROCESS_WARM": "0"}


def script(llm, revisions: list) -> list:
    """Rules for planner, replanner (answers ``revisions`` in order, then done) and the
    steps; the list returned collects the replanner's prompts (``.queue``: what is left)."""
    asked: _Asked = _Asked()
    queue = asked.queue = [r if isinstance(r, str) else json.dumps(r) for r in revisions]

    def replan(request):
        asked.append(request["messages"][-1]["content"])
        return queue.pop(0) if queue else json.dumps(DONE)

    llm.add_rule(r"Revise a running plan|That plan is invalid", replan)
    llm.add_rule(r"^Plan the work", json.dumps(PLAN))
    llm.add_rule(r"CHARLIE", "The polished text.")
    llm.add_rule(r"BRAVO2", "A short draft using Fact one.")
    llm.add_rule(r"BRAVO", "A long draft.")
    llm.add_rule(r"ALPHA", "Fact one. Fact two.")
    return asked


class _Asked(list):
    queue: list[str]


def run_json(tmp_path: Path) -> dict:
    [run_dir] = [p for p in (tmp_path / "store").iterdir() if p.is_dir()]
    return json.loads((run_dir / "run.json").read_text())


@pytest.fixture
def iterative_env(tmp_path: Path, fake_config: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENTIC_RUN_STORE_PATH", str(tmp_path / "store"))
    monkeypatch.setenv("AGENTIC_KB", "0")


@pytest.mark.parametrize("backend", ["inprocess", "subprocess"])
def test_replanning_run_revises_and_extends_its_plan_then_stops_when_done(
        backend, iterative_env, tmp_path, scripted_llm, monkeypatch, capsys):
    if backend == "subprocess":
        for name, value in WORKERS.items():
            monkeypatch.setenv(name, value)
    asked = script(scripted_llm, [ROUND_1, ROUND_2, DONE])
    events_file = tmp_path / "events.jsonl"
    monkeypatch.setenv("AGENTIC_EVENTS_FILE", str(events_file))

    code = main(["--dynamic-iterative", "tea"])

    out = capsys.readouterr().out
    assert code == 0, out
    assert "The polished text." in out
    events = [json.loads(line) for line in events_file.read_text().splitlines()]
    plans = [[s["id"] for s in e["steps"]] for e in events if e["kind"] == "plan"]
    # the first plan, then the one round that changed it (round 2 kept, round 3 done)
    assert plans == [["step_1", "step_2"], ["step_1", "step_2", "step_3"]]
    lines = [line for line in out.splitlines() if line.startswith("(progress) replan")]
    assert lines == [
        "(progress) replan 1/3: revised step_2; added step_3 (the facts call for a short text)",
        "(progress) replan 2/3: kept step_3 (the polish step still fits)",
        "(progress) replan 3/3: done (the polished text answers the goal)",
    ]
    assert len(asked) == 3
    assert "Fact one. Fact two." in asked[0] and "BRAVO: draft a long text" in asked[0]
    texts = scripted_llm.user_texts()
    assert not any("BRAVO:" in t and "Revise" not in t and "Plan the work" not in t
                   for t in texts), "the revised step must run in its new form only"
    polish = [t for t in texts if "CHARLIE" in t and "Revise" not in t]
    assert polish and "Fact one. Fact two." in polish[0] and "A short draft" in polish[0]
    [record] = list_sessions()
    assert record.mode == "dynamic-iterative" and record.status == "ok"
    assert [r["round"] for r in record.revisions] == [1, 2, 3]
    assert record.revisions[0]["revised"] == ["step_2"]
    assert record.revisions[0]["added"] == ["step_3"]
    assert record.revisions[0]["reason"] == "the facts call for a short text"
    assert record.revisions[2]["done"] is True
    assert [s["id"] for s in record.plan["steps"]] == ["step_1", "step_2", "step_3"]
    assert [s["step_id"] for s in record.steps] == ["step_1", "step_2", "step_3"]
    if backend == "subprocess":
        meta = run_json(tmp_path)
        assert meta["step_ids"] == ["step_1", "step_2", "step_3"]
        assert meta["plan"]["steps"][1]["description"].startswith("BRAVO2")
        assert [r["round"] for r in meta["revisions"]] == [1, 2, 3]
        assert meta["iterative"]["goal"] == "tea"


def test_replanning_stops_at_max_replans(iterative_env, scripted_llm, monkeypatch, capsys):
    monkeypatch.setenv("AGENTIC_MAX_REPLANS", "1")
    asked = script(scripted_llm, [ROUND_1, DONE])

    code = main(["--dynamic-iterative", "tea"])

    out = capsys.readouterr().out
    assert code == 0, out
    assert len(asked) == 1  # no second round: the revised plan ran to its end
    assert "(progress) replan 1/1: revised step_2; added step_3" in out
    assert "The polished text." in out
    assert len(list_sessions()[0].revisions) == 1


def test_invalid_replanner_answer_gets_a_repair_then_the_plan_is_kept(
        iterative_env, scripted_llm, monkeypatch, capsys):
    monkeypatch.setenv("AGENTIC_MAX_REPLANS", "1")
    bad = {"done": False, "reason": "x", "steps": [
        {"id": "step_2", **{**REVISED, "agent_provider": "nobody"}}]}
    asked = script(scripted_llm, [bad, "not json at all"])

    code = main(["--dynamic-iterative", "tea"])

    out = capsys.readouterr().out
    assert code == 0, out
    assert len(asked) == 2 and "unknown agent_provider 'nobody'" in asked[1]
    assert "(progress) replan 1/1: invalid answer, plan kept" in out
    assert "A long draft." in out  # the original step_2 ran
    [revision] = list_sessions()[0].revisions
    assert revision["valid"] is False and "not valid JSON" in revision["error"]


def test_resume_of_an_iterative_run_continues_from_the_last_plan(
        iterative_env, tmp_path, scripted_llm, monkeypatch, capsys):
    for name, value in WORKERS.items():
        monkeypatch.setenv(name, value)
    asked = script(scripted_llm, [ROUND_1])
    scripted_llm.rules.insert(0, (re.compile("BRAVO2"), HTTPErrorReply(401, "bad key")))
    assert main(["--dynamic-iterative", "tea"]) == 1
    capsys.readouterr()
    meta = run_json(tmp_path)
    assert meta["step_ids"] == ["step_1", "step_2", "step_3"] and len(meta["revisions"]) == 1

    del scripted_llm.rules[0]
    scripted_llm.requests.clear()
    asked.clear()
    asked.queue += [json.dumps(ROUND_2), json.dumps(DONE)]
    code = main(["--resume", meta["run_id"]])

    out = capsys.readouterr().out
    assert code == 0, out
    texts = scripted_llm.user_texts()
    assert not any("ALPHA" in t and "Revise" not in t for t in texts)  # step_1 kept
    assert any("BRAVO2" in t and "Revise" not in t for t in texts)
    assert "(progress) replan 2/3: kept step_3" in out and "The polished text." in out, out
    assert [r["round"] for r in run_json(tmp_path)["revisions"]] == [1, 2, 3]
    assert len(list_sessions()[0].revisions) == 3


# -- the planner's depends_on and the replanner's checks, without CrewAI ------------------

def test_planner_depends_on_is_validated_and_kept(fake_config):
    catalog = load_catalog()
    steps = [dict(PLAN["steps"][0]), dict(PLAN["steps"][1]), {**REVISED}]
    steps[2]["depends_on"] = ["step_1"]
    config = plan_from_data({"steps": steps}, catalog, goal="tea")
    assert [s.depends_on for s in config.steps] == [None, None, ["step_1"]]
    for needs, wanted in ((["step_9"], "unknown step 'step_9'"),
                          (["step_3"], "step_3 depends on itself")):
        steps[2]["depends_on"] = needs
        problems = validate_plan({"steps": steps}, catalog, max_steps=6)
        assert problems and wanted in "; ".join(problems)
    steps[0]["depends_on"] = ["step_3"]  # step_1 -> step_3 -> step_2 -> step_1
    steps[2]["depends_on"] = None
    assert "dependency cycle" in "; ".join(validate_plan({"steps": steps}, catalog,
                                                          max_steps=6))


def test_replanner_repairs_a_bad_dependency_and_never_changes_finished_steps(
        fake_config, scripted_llm):
    catalog = load_catalog()
    plan = plan_from_data(PLAN, catalog, goal="tea")
    self_ref = {"done": False, "reason": "r", "steps": [
        {"id": "step_1", **REVISED}, {"id": "step_3", **{**ADDED, "depends_on": ["step_3"]}}]}
    scripted_llm.enqueue(json.dumps(self_ref), json.dumps(ROUND_1))
    finished = [StepResult(run_id="r", step_id="step_1", result_text="Fact one.")]

    revision = Replanner(catalog).revise("tea", plan, finished, round_no=1, rounds=3)

    repair = scripted_llm.user_texts()[1]
    assert "step_1 is finished and cannot change" in repair
    assert revision.valid and revision.revised == ["step_2"] and revision.added == ["step_3"]
    assert revision.plan is not None
    assert revision.plan.steps[0].description == plan.steps[0].description
    assert revision.plan.steps[2].depends_on == ["step_1", "step_2"]


# -- the replanner's tokens count toward AGENTIC_RUN_MAX_TOKENS -------------------------------

@pytest.mark.parametrize("backend", ["inprocess", "subprocess"])
def test_replanning_tokens_count_toward_the_run_token_budget(
        backend, iterative_env, tmp_path, scripted_llm, monkeypatch, capsys):
    """The scripted server reports usage (prompt words, reply words). A budget one token
    above what step_1 spends lets step_1 finish; the first round's tokens then spend it,
    so the run stops before step_2 starts (``budget_exceeded``, exit 5)."""
    from agentic_orchestration.errors import EXIT_BUDGET_EXCEEDED

    if backend == "subprocess":
        for name, value in WORKERS.items():
            monkeypatch.setenv(name, value)
    monkeypatch.setenv("AGENTIC_MAX_REPLANS", "1")
    script(scripted_llm, [ROUND_1, ROUND_1])
    assert main(["--dynamic-iterative", "tea"]) == 0  # unlimited: what each part spends
    capsys.readouterr()
    [free] = list_sessions()
    step_1 = next(s for s in free.steps if s["step_id"] == "step_1")["usage"]["total_tokens"]
    [round_1] = free.revisions
    assert step_1 > 0 and round_1["prompt_tokens"] > 0 and round_1["completion_tokens"] > 0

    monkeypatch.setenv("AGENTIC_RUN_MAX_TOKENS", str(step_1 + 1))
    scripted_llm.requests.clear()
    code = main(["--dynamic-iterative", "tea"])

    out = capsys.readouterr().out
    assert code == EXIT_BUDGET_EXCEEDED, out
    assert "(progress) replan 1/1: revised step_2; added step_3" in out
    assert "(progress) budget exceeded: token budget spent" in out
    texts = scripted_llm.user_texts()
    assert not any("BRAVO2" in t and "Revise" not in t for t in texts)  # step_2 never ran
    record = next(r for r in list_sessions() if r.run_id != free.run_id)
    assert record.status == "budget_exceeded"
    assert [s["step_id"] for s in record.steps] == ["step_1"]
    assert record.revisions[0]["prompt_tokens"] == round_1["prompt_tokens"]


# -- a revision may add a step on the embedded model: workers get its URL up front ----------

LOCAL_AGENT = """\
- id: local_writer
  type: local
  role: Writer
  goal: Write text.
  backstory: Clear.
  planner_hint: writing, offline
  priority: 50
"""


def test_workers_get_the_local_model_url_when_a_revision_may_add_a_local_step(
        tmp_path, scripted_llm, bundled_model_path, monkeypatch):
    """The decision, without starting the model: ``ensure_local_server`` is replaced by a
    stub that only says it was asked (the workers' environment is fixed at launch)."""
    from conftest import write_catalog

    import agentic_orchestration.providers.local_model as local_model
    from agentic_orchestration.orchestration.backends.distributed import worker_env
    from agentic_orchestration.orchestration.iterative import may_add_local_steps
    from agentic_orchestration.orchestration.workflow_materializer import build_step_specs
    from agentic_orchestration.planning import DynamicPlanner
    from agentic_orchestration.planning.replanner import IterativePlan

    monkeypatch.setenv("AGENTIC_LOCAL_MODEL_PATH", str(bundled_model_path))
    monkeypatch.delenv("AGENTIC_LOCAL_LLM_URL", raising=False)
    started: list[str] = []
    monkeypatch.setattr(local_model, "ensure_local_server",
                        lambda: started.append("yes") or "http://127.0.0.1:9/v1")

    def iterative_on(agents_extra: str, *, rounds: int = 2) -> tuple[IterativePlan, list]:
        base = write_catalog(tmp_path / f"c{len(agents_extra)}{rounds}",
                             base_url=scripted_llm.base_url)
        agents = base / "agent_providers" / "agents.yaml"
        agents.write_text(agents.read_text() + agents_extra)
        monkeypatch.setenv("AGENTIC_CONFIG_DIR", str(base))
        catalog = load_catalog()
        plan = plan_from_data(PLAN, catalog, goal="tea")  # both steps on fake (openai) agents
        replanner = Replanner(catalog, planner=DynamicPlanner(catalog, provider="fake_writer"))
        specs = build_step_specs(plan, catalog, run_id="r", run_store_path=str(tmp_path))
        return IterativePlan(plan, replanner, max_rounds=rounds), specs

    iterative, specs = iterative_on(LOCAL_AGENT)
    assert any(a.id == "local_writer" for a in iterative.replanner.catalog.available_agents)
    assert may_add_local_steps(iterative)
    assert "AGENTIC_LOCAL_LLM_URL" not in worker_env(specs)  # the plan alone needs no model
    env = worker_env(specs, may_add_local=True)
    assert env["AGENTIC_LOCAL_LLM_URL"] == "http://127.0.0.1:9/v1" and started == ["yes"]

    iterative.records = [{"round": 1}, {"round": 2}]  # no revision left to make
    assert not may_add_local_steps(iterative)
    assert not may_add_local_steps(iterative_on("")[0])  # no local agent to choose


def test_resume_of_an_in_process_iterative_run_is_one_clear_line_and_exit_2(
        iterative_env, scripted_llm, monkeypatch, capsys):
    monkeypatch.setenv("AGENTIC_MAX_REPLANS", "1")
    script(scripted_llm, [DONE])
    assert main(["--dynamic-iterative", "tea"]) == 0
    capsys.readouterr()
    [record] = list_sessions()
    assert record.last_execution_backend == "inprocess"

    assert main(["--resume", record.run_id]) == 2

    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"error: run {record.run_id} ran in-process, which keeps no run store: it "
                   "cannot be resumed (run it with --execution-backend subprocess to make it "
                   "resumable)"]


def test_a_pinned_revision_fixes_ids_and_agents_and_keeps_a_repeated_text(
        fake_config, scripted_llm, monkeypatch):
    """The embedded base model's revisions are pinned to the pending steps (here forced:
    the fake catalog has no base model). A step whose text repeats the one before keeps
    its own text instead of costing a repair turn; a step the pinned form has no room for
    is refused; the call is bounded by the pending steps, not AGENTIC_MAX_PLAN_STEPS."""
    from agentic_orchestration.planning.dynamic_planner import _TOKENS_FIXED, _TOKENS_PER_STEP

    monkeypatch.setattr(Replanner, "pinned", property(lambda self: True))
    catalog = load_catalog()
    plan = plan_from_data({"steps": [*PLAN["steps"], {**REVISED}]}, catalog, goal="tea")
    copied = {"agent_provider": "fake_writer", "mcp_providers": [],
              "description": "BRAVO3: write it all", "expected_output": "Text."}
    answer = {"done": False, "reason": "tighter", "steps": [
        {"id": "step_2", **copied}, {"id": "step_3", **copied}]}
    scripted_llm.enqueue(json.dumps(answer))
    finished = [StepResult(run_id="r", step_id="step_1", result_text="Fact one.")]

    revision = Replanner(catalog).revise("tea", plan, finished, round_no=1, rounds=3)

    assert revision.valid and revision.pinned and revision.attempts == 1
    assert (revision.revised, revision.kept, revision.added) == (["step_2"], ["step_3"], [])
    assert revision.plan is not None
    assert revision.plan.steps[2].description == plan.steps[2].description
    [request] = scripted_llm.requests
    assert request["max_tokens"] == _TOKENS_FIXED + 2 * _TOKENS_PER_STEP
    assert revision.prompt_tokens > 0 and revision.completion_tokens > 0
    rules = request["messages"][0]["content"]  # the prompt offers what the grammar allows
    assert "new id" not in rules and "id and agent unchanged" in rules

    extra = {**answer, "steps": [*answer["steps"][:1], {"id": "step_3", **REVISED},
                                 {"id": "step_4", **ADDED}]}
    scripted_llm.requests.clear()
    scripted_llm.enqueue(json.dumps(extra), json.dumps(extra))
    refused = Replanner(catalog).revise("tea", plan, finished, round_no=1, rounds=3)
    assert not refused.valid and refused.attempts == 2 and refused.plan is plan
