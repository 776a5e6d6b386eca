"""Steps that depend on steps: the graph rules, and the coordinator running a graph.

The coordinator is driven through ``testing.ScriptedLauncher`` (the launcher seam) with a
real run store; the diamond on real subprocess workers (warm and cold) is at the end.
"""

from __future__ import annotations

import re
import threading
from pathlib import Path

import pytest
from pydantic import ValidationError

from agentic_orchestration.catalogs import WorkflowConfig
from agentic_orchestration.errors import from_validation_error
from agentic_orchestration.orchestration.backends.base import (
    RunOptions,
    StepResult,
    StepSpec,
    TaskSpec,
)
from agentic_orchestration.orchestration.run_store import FileSystemRunStore
from agentic_orchestration.orchestration.step_context import prepare_step_inputs
from agentic_orchestration.orchestration.step_coordinator import StepCoordinator
from agentic_orchestration.orchestration.step_graph import (
    GraphError,
    StepGraph,
    check_dependencies,
    topological_order,
)
from agentic_orchestration.testing.launcher import Outcome, ScriptedLauncher

RUN = "run-graph"
AGENT = {"id": "primary", "type": "openai", "role": "r", "goal": "g", "backstory": "b",
         "model": "m", "openai_base_url": "http://a/v1"}


def step(id_: str, depends_on: list[str] | None = None) -> dict:
    return {"id": id_, "agent_provider": "primary", "description": f"Do {id_}.",
            **({"depends_on": depends_on} if depends_on is not None else {})}


# -- the rules ------------------------------------------------------------------------------


@pytest.mark.parametrize(("steps", "message"), [
    ([step("a", ["a"])], "step 'a' depends on itself"),
    ([step("a"), step("b", ["nope"])], "step 'b' depends on unknown step 'nope'"),
    ([step("a", ["c"]), step("b", ["a"]), step("c", ["b"])],
     "step 'a' is in a dependency cycle: a -> c -> b -> a"),
])
def test_bad_dependencies_are_rejected_at_load_naming_the_step(
        steps: list[dict], message: str) -> None:
    with pytest.raises(ValidationError) as caught:
        WorkflowConfig(name="w", steps=steps)
    assert message in from_validation_error(caught.value)


def test_absent_depends_on_means_the_previous_step() -> None:
    config = WorkflowConfig(name="w", steps=[step("a"), step("b"), step("c", [])])
    graph = StepGraph.from_steps(config.steps)
    assert graph.deps == {"a": (), "b": ("a",), "c": ()}
    assert StepGraph.from_steps(WorkflowConfig(name="w", steps=[step("a"), step("b")]).steps
                                ).is_chain


def test_topological_order_keeps_the_written_order_where_it_can() -> None:
    deps = {"d": ("b", "c"), "b": ("a",), "a": (), "c": ("a",)}
    check_dependencies(deps)
    assert topological_order(deps) == ["a", "b", "c", "d"]
    assert topological_order({"x": (), "y": ("x",), "z": ()}) == ["x", "y", "z"]
    graph = StepGraph(["a", "b", "c", "d"], {"a": (), "b": ("a",), "c": ("a",),
                                             "d": ("b", "c")})
    assert graph.downstream("b") == ["d"] and graph.downstream("a") == ["b", "c", "d"]
    assert graph.critical_path() == 3
    with pytest.raises(GraphError) as caught:
        check_dependencies({"a": ("b",), "b": ("a",)})
    assert caught.value.step_id == "a"


def test_a_workflow_file_with_a_cycle_is_exit_2_naming_the_step(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from agentic_orchestration.cli.main import main

    path = tmp_path / "loop.yaml"
    path.write_text("name: loop\nsteps:\n"
                    "  - {id: a, agent_provider: x, description: A, depends_on: [b]}\n"
                    "  - {id: b, agent_provider: x, description: B, depends_on: [a]}\n")
    assert main(["--workflow", str(path), "--plan-only"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "step 'a' is in a dependency cycle" in err, err


def test_several_inputs_are_labelled_and_share_the_limit() -> None:
    text = prepare_step_inputs("Merge.", [("b", "B" * 50), ("c", "C" * 50)], max_chars=40)
    assert "--- Output of step b ---" in text and "--- End of output of step c ---" in text
    assert text.count("B") <= 21 and "truncated" in text  # 20 each, plus the note's letters


# -- the coordinator on a graph -------------------------------------------------------------


def specs(graph: dict[str, list[str] | None]) -> list[StepSpec]:
    return [StepSpec(run_id=RUN, step_id=sid, step_index=i, workflow_name="w",
                     task=TaskSpec(description=f"Do {sid}.", expected_output="text"),
                     agent_provider=AGENT, depends_on=deps)
            for i, (sid, deps) in enumerate(graph.items())]


DIAMOND = {"a": None, "b": ["a"], "c": ["a"], "d": ["b", "c"]}


def run(script: dict[str, list[Outcome]], store: FileSystemRunStore, plan: dict, *,
        resume: bool = False, max_parallel: str | None = None,
        monkeypatch: pytest.MonkeyPatch | None = None):
    if max_parallel is not None and monkeypatch is not None:
        monkeypatch.setenv("AGENTIC_MAX_PARALLEL_STEPS", max_parallel)
    launcher = ScriptedLauncher(script, store=store)
    result = StepCoordinator(backend_name="fake").run_workflow(
        specs(plan), launcher=launcher, run_store=store,
        run_options=RunOptions(run_id=RUN), resume=resume, timeout=60.0)
    return result, launcher.received


@pytest.fixture
def store(tmp_path: Path) -> FileSystemRunStore:
    return FileSystemRunStore(tmp_path / "store")


def _together(barrier: threading.Barrier, text: str):
    """An outcome that only finishes once the other side of ``barrier`` is running too."""
    def play(spec: StepSpec) -> StepResult:
        barrier.wait(timeout=20)  # BrokenBarrierError -> launch raises -> the step fails
        return StepResult(run_id=spec.run_id, step_id=spec.step_id, result_text=text)
    return play


def test_diamond_runs_b_and_c_at_once_and_d_gets_both_outputs(
        store: FileSystemRunStore, capsys: pytest.CaptureFixture[str]) -> None:
    both = threading.Barrier(2)
    result, received = run({"b": [_together(both, "from B")], "c": [_together(both, "from C")]},
                           store, DIAMOND)

    assert result.ok, result.error
    assert received[0].step_id == "a" and received[-1].step_id == "d"
    d = received[-1]
    assert "--- Output of step b ---\nfrom B" in d.task.description
    assert "--- Output of step c ---\nfrom C" in d.task.description
    assert "OUT-1" not in d.task.description  # only its own dependencies
    assert result.result_text == "OUT-4"
    lines = [x for x in capsys.readouterr().out.splitlines() if x.startswith("(progress)")]
    assert "(progress) step 4/4 d waits on b, c" in lines
    assert "(progress) running at once: b, c" in lines
    assert store.read_spec(RUN, "d").depends_on == ["b", "c"]


def test_one_step_at_a_time_when_the_limit_is_1(
        store: FileSystemRunStore, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    result, received = run({}, store, DIAMOND, max_parallel="1", monkeypatch=monkeypatch)
    assert result.ok and [s.step_id for s in received] == ["a", "b", "c", "d"]
    assert "running at once" not in capsys.readouterr().out


def test_a_failed_branch_stops_what_depends_on_it_and_lets_the_rest_finish(
        store: FileSystemRunStore, capsys: pytest.CaptureFixture[str]) -> None:
    plan = {"a": None, "b": ["a"], "d": ["b"], "c": ["a"], "e": ["c"]}
    boom = StepResult(run_id=RUN, step_id="b", exit_code=1, error="boom")
    result, received = run({"b": [boom]}, store, plan)

    assert result.status == "failed" and result.exit_code == 1
    assert result.error is not None and getattr(result.error, "step_id", None) == "b"
    assert sorted(s.step_id for s in received) == ["a", "b", "c", "e"]
    assert {r.step_id: r.ok for r in result.step_results} == {
        "a": True, "b": False, "c": True, "e": True}
    assert result.result_text is None
    assert store.read_result(RUN, "d") is None and not store.spec_path(RUN, "d").exists()
    assert "(progress) step 3/5 d not run: needs failed step b" in capsys.readouterr().out

    # --resume reruns only what did not finish: b, then d.
    again, received = run({}, store, plan, resume=True)
    assert again.ok, again.error
    assert [s.step_id for s in received] == ["b", "d"]
    assert {r.step_id for r in again.step_results} == {"a", "b", "c", "d", "e"}


def test_resume_trusts_nothing_downstream_of_a_step_that_runs_again(
        store: FileSystemRunStore) -> None:
    assert run({}, store, DIAMOND)[0].ok
    store.clear_result(RUN, "b")  # b must run again: d's input changes, c's does not
    result, received = run({}, store, DIAMOND, resume=True)
    assert result.ok and [s.step_id for s in received] == ["b", "d"]


def test_chain_progress_is_unchanged(store: FileSystemRunStore,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    assert run({}, store, {"a": None, "b": None})[0].ok
    lines = [x for x in capsys.readouterr().out.splitlines() if x.startswith("(progress)")]
    assert not any(re.search(r"waits on|running at once", x) for x in lines)


# -- a real diamond on the subprocess backend -----------------------------------------------

DIAMOND_FLOW = """\
steps:
  - id: a
    agent_provider: fake_researcher
    description: "ALPHA facts about {topic}"
  - id: b
    agent_provider: fake_writer
    description: "BRAVO angle on {topic}"
  - id: c
    agent_provider: fake_writer
    depends_on: [a]
    description: "CHARLIE angle on {topic}"
  - id: d
    agent_provider: fake_writer
    depends_on: [b, c]
    description: "DELTA merges both angles on {topic}"
"""


@pytest.mark.backend_subprocess
@pytest.mark.parametrize("warm", ["1", "0"])
def test_diamond_on_real_workers_overlaps_b_and_c_and_d_sees_both(
        warm: str, tmp_path: Path, fake_config: Path, scripted_llm,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """B and C's LLM calls must be in flight together (a barrier in the fake LLM: run one
    after the other, it breaks and the steps fail); their recorded timings then overlap."""
    import json
    import os
    import subprocess
    import sys

    both = threading.Barrier(2)

    def together(text: str):
        def reply(request: dict) -> str:
            both.wait(timeout=90)
            return text
        return reply

    scripted_llm.add_rule(r"DELTA", "Final Answer: merged B and C")
    scripted_llm.add_rule(r"CHARLIE", together("Final Answer: angle C"))
    scripted_llm.add_rule(r"BRAVO", together("Final Answer: angle B"))
    scripted_llm.add_rule(r"ALPHA", "Final Answer: facts A")
    flow = tmp_path / "diamond.yaml"
    flow.write_text(DIAMOND_FLOW)
    store = tmp_path / "store"
    env = {**os.environ, "AGENTIC_RUN_STORE_PATH": str(store),
           "AGENTIC_EXECUTION_BACKEND": "subprocess", "AGENTIC_SUBPROCESS_WORKERS": "1",
           "AGENTIC_SUBPROCESS_WARM": warm}
    proc = subprocess.run([sys.executable, str(Path(__file__).parent.parent / "main.py"),
                           "--workflow", str(flow), "the sea"], capture_output=True,
                          text=True, env=env, timeout=400)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "merged B and C" in proc.stdout
    assert "(progress) running at once: b, c" in proc.stdout
    assert "(progress) step 4/4 d waits on b, c" in proc.stdout
    (run_dir,) = [p for p in store.iterdir() if p.is_dir()]
    timing = {s: json.loads((run_dir / s / "result.json").read_text())["timing"]
              for s in "abcd"}
    b, c, d = timing["b"], timing["c"], timing["d"]
    assert b["started_at"] < c["finished_at"] and c["started_at"] < b["finished_at"]
    assert d["started_at"] >= max(b["finished_at"], c["finished_at"])
    d_spec = json.loads((run_dir / "d-spec.json").read_text())
    assert "--- Output of step b ---\nangle B" in d_spec["task"]["description"]
    assert "--- Output of step c ---\nangle C" in d_spec["task"]["description"]
    asked = [t for t in scripted_llm.user_texts() if "DELTA" in t]
    assert asked and "angle B" in asked[-1] and "angle C" in asked[-1]


def test_widest_level_bounds_the_steps_that_can_run_at_once() -> None:
    chain = StepGraph(["a", "b", "c"], {"a": (), "b": ("a",), "c": ("b",)})
    diamond = StepGraph(["a", "b", "c", "d"],
                        {"a": (), "b": ("a",), "c": ("a",), "d": ("b", "c")})
    fan = StepGraph(["a", "b", "c"], {"a": (), "b": (), "c": ()})
    assert (chain.widest_level(), diamond.widest_level(), fan.widest_level()) == (1, 2, 3)
