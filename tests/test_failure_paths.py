"""Every bad path is one clear line and a documented exit code, and loses nothing.

Issue 7 item 6: a broken ``run.json`` on ``--resume``, an ``AGENTIC_*_PATH`` under a regular
file, a planning failure, an unset MCP ``${VAR}`` (the same on both backends), and SIGTERM
to the coordinator, to a cold worker and to a warm zygote's forked step.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from flows import GATHER_DRAFT_FLOW

from agentic_orchestration.cli.main import main
from agentic_orchestration.errors import (
    EXIT_BAD_INPUT,
    EXIT_INTERRUPTED,
    EXIT_PLAN_FAILED,
    ConfigError,
)
from agentic_orchestration.orchestration.run_store import FileSystemRunStore, load_run_meta

REPO = Path(__file__).resolve().parent.parent
WORKERS = {"AGENTIC_EXECUTION_BACKEND": "subprocess", "AGENTIC_SUBPROCESS_WORKERS": "1"}
RUN = "20260101T000000Z-0badc0de"

FLOW = GATHER_DRAFT_FLOW

GOOD_PLAN = {"name": "wf", "steps": [
    {"id": "gather", "agent_provider": "fake_researcher", "description": "GATHER {topic}"}]}


def good_meta(**changes: Any) -> dict[str, Any]:
    meta: dict[str, Any] = {"schema_version": "0.1", "run_id": RUN, "backend": "subprocess",
                            "created_at": "2026-01-01T00:00:00.000+00:00", "plan": GOOD_PLAN,
                            "step_ids": ["gather"], "fingerprint": "abc"}
    meta.update(changes)
    return {k: v for k, v in meta.items() if v is not DROP}


DROP = object()


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "store"
    monkeypatch.setenv("AGENTIC_RUN_STORE_PATH", str(path))
    return path


@pytest.fixture
def flow(tmp_path: Path, fake_config: Path, scripted_llm, store: Path) -> Path:
    path = tmp_path / "flow.yaml"
    path.write_text(FLOW)
    scripted_llm.add_rule(r"DRAFT", "A draft.")
    scripted_llm.add_rule(r"GATHER", "Fact one.")
    return path


def sessions(tmp_path: Path) -> list[dict[str, Any]]:
    return [json.loads(p.read_text()) for p in sorted((tmp_path / "sessions").glob("*.json"))]


def one_error_line(err: str) -> str:
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert lines and lines[-1].startswith("error: "), err
    return lines[-1]


def main_py(*args: str, env: dict[str, str] | None = None, **kwargs: Any) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(REPO / "main.py"), *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, **(env or {})}, **kwargs)


def stall(scripted_llm, pattern: str, seconds: float = 20) -> threading.Event:
    """The LLM call of the step matching ``pattern`` hangs; the event says it began."""
    reached = threading.Event()

    def hang(request: dict[str, Any]) -> str:
        reached.set()
        time.sleep(seconds)
        return "late"

    scripted_llm.rules = [r for r in scripted_llm.rules if pattern not in r[0].pattern]
    scripted_llm.add_rule(pattern, hang)
    return reached


def wait_for(predicate, timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError("condition not met in time")


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


# -- --resume with a broken run.json ------------------------------------------------------


@pytest.mark.parametrize(("extra", "named"), [
    (["another goal"], "a goal"), (["--workflow", "wf", "tea"], "a goal, --workflow"),
    (["--dynamic", "x", "--plan-only"], "--dynamic, --plan-only"),
])
def test_resume_with_a_goal_or_plan_flags_is_refused_naming_them(
        store: Path, tmp_path: Path, extra: list[str], named: str, capsys) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--resume", RUN, *extra])
    assert exited.value.code == EXIT_BAD_INPUT
    assert f"--resume continues the run's recorded plan and goal: drop {named}" in (
        capsys.readouterr().err)
    assert sessions(tmp_path) == []


@pytest.mark.parametrize(("meta", "field"), [
    (good_meta(plan=DROP), "plan"),
    (good_meta(plan={"name": "wf", "steps": []}), "plan.steps"),
    (good_meta(backend=5), "backend"),
    (good_meta(backend=DROP), "backend"),
    (good_meta(plan={"name": "wf", "steps": [{"agent_provider": "x"}]}), "plan.steps[0]"),
    (good_meta(run_id="another-run"), "run_id"),
    (good_meta(schema_version="9"), "schema_version"),
    (good_meta(step_ids="gather"), "step_ids"),
])
def test_resume_with_a_broken_run_json_is_exit_2_naming_file_and_field(
        store: Path, tmp_path: Path, meta: dict[str, Any], field: str, capsys) -> None:
    (store / RUN).mkdir(parents=True)
    (store / RUN / "run.json").write_text(json.dumps(meta))
    assert main(["--resume", RUN]) == EXIT_BAD_INPUT
    line = one_error_line(capsys.readouterr().err)
    assert str(store / RUN / "run.json") in line and f"field {field}" in line, line
    with pytest.raises(ConfigError, match=r"run\.json"):
        load_run_meta(FileSystemRunStore(store), RUN)
    assert sessions(tmp_path) == []  # nothing to resume, nothing recorded


def test_resume_of_a_run_json_that_is_not_json_names_the_file(store: Path, capsys) -> None:
    (store / RUN).mkdir(parents=True)
    (store / RUN / "run.json").write_text('{"plan": ')
    assert main(["--resume", RUN]) == EXIT_BAD_INPUT
    assert "run.json" in one_error_line(capsys.readouterr().err)


# -- output folders that cannot be folders ------------------------------------------------


@pytest.mark.parametrize("variable", ["AGENTIC_SESSIONS_PATH", "AGENTIC_ARTIFACTS_PATH",
                                      "AGENTIC_RUN_STORE_PATH"])
def test_a_path_under_a_regular_file_is_exit_2_before_planning(
        variable: str, tmp_path: Path, fake_config: Path, scripted_llm,
        monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    monkeypatch.setenv(variable, str(blocker / "sub"))
    for name, value in WORKERS.items():
        monkeypatch.setenv(name, value)
    assert main(["--dynamic", "Tell me about tea", "--no-router"]) == EXIT_BAD_INPUT
    line = one_error_line(capsys.readouterr().err)
    assert variable in line and str(blocker) in line, line
    assert scripted_llm.requests == []  # checked before the planner's LLM call


def test_resume_checks_the_run_store_path_first(tmp_path: Path, monkeypatch, capsys) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv("AGENTIC_RUN_STORE_PATH", str(blocker))
    assert main(["--resume", RUN]) == EXIT_BAD_INPUT
    assert "AGENTIC_RUN_STORE_PATH" in one_error_line(capsys.readouterr().err)


# -- a session for every failure after a run id exists ------------------------------------


def test_planning_failure_records_a_failed_session(fake_config, scripted_llm, tmp_path,
                                                   capsys) -> None:
    scripted_llm.enqueue("not json", "still not json")
    assert main(["--dynamic", "Tell me about tea", "--no-router"]) == EXIT_PLAN_FAILED
    one_error_line(capsys.readouterr().err)
    [record] = sessions(tmp_path)
    assert (record["status"], record["exit_code"]) == ("failed", EXIT_PLAN_FAILED)
    assert record["error"] and record["goal"] == "Tell me about tea"
    assert record["plan"] is None and record["steps"] == []


def test_a_workflow_naming_an_unknown_agent_records_a_failed_session(
        fake_config, tmp_path, capsys) -> None:
    wf = tmp_path / "bad.yaml"
    wf.write_text("steps:\n  - agent_provider: nobody\n    description: Write {topic}\n")
    assert main(["--workflow", str(wf), "tea"]) == EXIT_BAD_INPUT
    assert "nobody" in one_error_line(capsys.readouterr().err)
    [record] = sessions(tmp_path)
    assert record["status"] == "failed" and "nobody" in record["error"]


# -- an unset MCP ${VAR}: the same on both backends ----------------------------------------

MCP_WITH_VAR = """\
- id: search_x
  streamable_http:
    url: http://127.0.0.1:9/mcp
    headers: {Authorization: "Bearer ${UNSET_MCP_TOKEN}"}
"""


@pytest.mark.parametrize("backend", [{"AGENTIC_EXECUTION_BACKEND": "inprocess"}, WORKERS])
def test_unset_mcp_variable_is_exit_2_before_any_step_on_both_backends(
        backend: dict[str, str], flow: Path, fake_config: Path, store: Path, tmp_path: Path,
        scripted_llm, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    (fake_config / "mcp_providers" / "mcps.yaml").write_text(MCP_WITH_VAR)
    flow.write_text(FLOW.replace("agent_provider: fake_researcher",
                                 "agent_provider: fake_researcher\n    mcp_providers: [search_x]"))
    monkeypatch.delenv("UNSET_MCP_TOKEN", raising=False)
    for name, value in backend.items():
        monkeypatch.setenv(name, value)
    assert main(["--workflow", str(flow), "tea"]) == EXIT_BAD_INPUT
    line = one_error_line(capsys.readouterr().err)
    assert "'search_x'" in line and "UNSET_MCP_TOKEN" in line, line
    assert scripted_llm.requests == []
    assert not list(store.rglob("result.json")) and not list(store.rglob("*-spec.json"))
    [record] = sessions(tmp_path)
    assert (record["status"], record["exit_code"]) == ("failed", EXIT_BAD_INPUT)
    assert "UNSET_MCP_TOKEN" in record["error"] and record["steps"] == []


# -- SIGTERM -------------------------------------------------------------------------------


def _cmdline(pid: int) -> list[bytes]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return []


def _is_zygote(pid: int) -> bool:
    return any(part.endswith(b"_warm_worker") for part in _cmdline(pid))


def worker_pids(root: int, step_id: str) -> list[int]:
    """Live step workers under ``root`` (only ours: other runs may share the machine):
    cold ``--execute-step`` processes of ``step_id`` and children forked by a warm zygote."""
    parents: dict[int, int] = {}
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                parents[int(proc.name)] = int(
                    (proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
    found = []
    for pid, ppid in parents.items():
        ancestor = ppid
        while ancestor not in (0, 1, root) and ancestor in parents:
            ancestor = parents[ancestor]
        if ancestor != root or not alive(pid):
            continue
        cmd = _cmdline(pid)
        cold = b"--execute-step" in cmd and step_id.encode() in cmd
        if cold or (_is_zygote(ppid) and _is_zygote(pid)):
            found.append(pid)
    return found


@pytest.mark.backend_subprocess
def test_sigterm_to_the_coordinator_acts_like_ctrl_c(flow, tmp_path, store, scripted_llm):
    reached = stall(scripted_llm, "DRAFT")
    proc = main_py("--workflow", str(flow), "tea",
                   env={**WORKERS, "AGENTIC_SUBPROCESS_WARM": "0"})
    assert reached.wait(120)
    workers = wait_for(lambda: worker_pids(proc.pid, "draft"))
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == EXIT_INTERRUPTED, out + err
    assert "Traceback" not in err and "interrupted by SIGTERM" in err
    wait_for(lambda: not [pid for pid in workers if alive(pid)], timeout=5)
    [run_dir] = [p for p in store.iterdir() if p.is_dir()]
    assert json.loads((run_dir / "gather" / "result.json").read_text())["exit_code"] == 0
    assert not (run_dir / "draft" / "result.json").exists()  # resume runs it again
    [record] = sessions(tmp_path)
    assert (record["status"], record["exit_code"]) == ("interrupted", EXIT_INTERRUPTED)
    assert record["error"] == "interrupted by SIGTERM"
    assert [s["step_id"] for s in record["steps"]] == ["gather"]
    assert record["steps"][0]["result_text"] == "Fact one."


@pytest.mark.backend_inprocess
def test_sigterm_to_an_in_process_run_records_it_as_interrupted(flow, tmp_path, scripted_llm):
    # In-process, CrewAI's event loop waits for the LLM call in flight before the interrupt
    # unwinds (as for Ctrl-C): keep the stall short.
    reached = stall(scripted_llm, "DRAFT", seconds=4)
    proc = main_py("--workflow", str(flow), "tea", env={"AGENTIC_EXECUTION_BACKEND": "inprocess"})
    assert reached.wait(120)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == EXIT_INTERRUPTED, out + err
    assert "Traceback" not in err
    [record] = sessions(tmp_path)
    assert (record["status"], record["error"]) == ("interrupted", "interrupted by SIGTERM")
    assert [s["step_id"] for s in record["steps"]] == ["gather"]


def write_worker_spec(tmp_path: Path, store: Path, base_url: str) -> Path:
    spec = {
        "schema_version": "0.1", "run_id": RUN, "step_id": "draft", "step_index": 0,
        "workflow_name": "hand-made", "topic": "tea",
        "task": {"description": "DRAFT a text about tea", "expected_output": "text"},
        "agent_provider": {"id": "fake_writer", "type": "openai", "model": "fake-model",
                           "openai_base_url": base_url, "role": "Writer", "goal": "Write.",
                           "backstory": "Clear."},
        "mcp_providers": [], "prior_output": "", "inputs": {},
        "paths": {"run_store": str(store), "artifacts_dir": ""},
    }
    path = tmp_path / "draft-spec.json"
    path.write_text(json.dumps(spec))
    return path


def assert_interrupted_result(store: Path) -> None:
    result = json.loads((store / RUN / "draft" / "result.json").read_text())
    assert result["exit_code"] == EXIT_INTERRUPTED
    assert result["error"] == "interrupted by SIGTERM"
    assert (result["recoverable"], result["recovery_hint"]) == (True, "worker_retry")


@pytest.mark.backend_subprocess
def test_sigterm_to_a_cold_worker_writes_an_interrupted_result(tmp_path, store, scripted_llm):
    reached = stall(scripted_llm, "DRAFT")
    spec = write_worker_spec(tmp_path, store, scripted_llm.base_url)
    proc = main_py("--execute-step", str(spec), "--run-id", RUN, "--step-id", "draft")
    assert reached.wait(120)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == EXIT_INTERRUPTED, out + err
    assert "Traceback" not in err
    assert_interrupted_result(store)


@pytest.mark.backend_subprocess
@pytest.mark.parametrize("target", ["child", "zygote"])
def test_sigterm_to_a_warm_step_or_its_zygote_writes_an_interrupted_result(
        target: str, tmp_path, store, scripted_llm):
    from agentic_orchestration.orchestration.backends.warm_launcher import WarmLauncher

    reached = stall(scripted_llm, "DRAFT")
    spec = write_worker_spec(tmp_path, store, scripted_llm.base_url)
    warm = WarmLauncher(preload=False)
    try:
        from agentic_orchestration.orchestration.backends.base import StepSpec
        from agentic_orchestration.orchestration.backends.launcher import StepExit

        handle = warm.launch(StepSpec.model_validate_json(spec.read_text()), spec_path=spec,
                             log_path=tmp_path / "draft.log")
        assert reached.wait(120), (tmp_path / "draft.log").read_text()
        assert warm.zygote_pid is not None
        os.kill(int(handle.ref) if target == "child" else warm.zygote_pid, signal.SIGTERM)
        assert handle.wait(30) == StepExit("exited", exit_code=EXIT_INTERRUPTED), (
            tmp_path / "draft.log").read_text()
        assert_interrupted_result(store)
    finally:
        warm.close()


@pytest.mark.backend_subprocess
def test_a_worker_stopped_by_sigterm_is_retried_by_the_coordinator(flow, store, scripted_llm):
    calls = {"n": 0}
    coordinator: list[subprocess.Popen] = []

    def sigterm_worker_once(request: dict[str, Any]) -> str:
        calls["n"] += 1
        if calls["n"] == 1:
            for pid in worker_pids(coordinator[0].pid, "draft"):
                os.kill(pid, signal.SIGTERM)
            time.sleep(2)
        return "A draft."

    scripted_llm.rules = [r for r in scripted_llm.rules if "DRAFT" not in r[0].pattern]
    scripted_llm.add_rule("DRAFT", sigterm_worker_once)
    proc = main_py("--workflow", str(flow), "tea", env=WORKERS)  # warm: forked children
    coordinator.append(proc)
    out, err = proc.communicate(timeout=180)
    assert proc.returncode == 0, out + err
    [run_dir] = [p for p in store.iterdir() if p.is_dir()]
    first, second = (json.loads(p.read_text())
                     for p in sorted((run_dir / "draft" / "attempts").glob("*.json")))
    assert first["error"] == "interrupted by SIGTERM" and second["exit_code"] == 0
