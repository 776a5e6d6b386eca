"""The subprocess backend end to end: real `main.py` coordinator and worker processes,
the scripted LLM server, the filesystem run store. Faults, resume, parity, sessions."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from flows import GATHER_DRAFT_FLOW

from agentic_orchestration.testing import HTTPErrorReply

REPO = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.backend_subprocess

FLOW = GATHER_DRAFT_FLOW + """\
  - id: polish
    agent_provider: fake_writer
    description: "POLISH the draft about {topic}"
"""


@pytest.fixture
def flow(tmp_path: Path, fake_config: Path, scripted_llm, monkeypatch) -> Path:
    path = tmp_path / "flow.yaml"
    path.write_text(FLOW)
    monkeypatch.setenv("AGENTIC_RUN_STORE_PATH", str(tmp_path / "store"))
    # Rules match case-insensitively anywhere in the prompt, and later prompts carry earlier
    # outputs: check the later steps' keywords first.
    scripted_llm.add_rule(r"POLISH", "The polished text.")
    scripted_llm.add_rule(r"DRAFT", "A draft using Fact one.")
    scripted_llm.add_rule(r"GATHER", "Fact one. Fact two.")
    return path


def _sigint_default() -> None:
    # A test command started in the background by a non-interactive shell inherits SIGINT
    # ignored, and Python then never turns SIGINT into KeyboardInterrupt: give the CLI the
    # terminal's default, as a user's Ctrl-C has.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def main_py(*args: str, env: dict[str, str] | None = None, **kwargs) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(REPO / "main.py"), *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, **(env or {})}, preexec_fn=_sigint_default,
                            **kwargs)


def finish(proc: subprocess.Popen, timeout: float = 180) -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out, err


WORKERS = {"AGENTIC_EXECUTION_BACKEND": "subprocess", "AGENTIC_SUBPROCESS_WORKERS": "1"}


def replace_draft_rule(scripted_llm, reply) -> None:
    scripted_llm.rules = [r for r in scripted_llm.rules if "DRAFT" not in r[0].pattern]
    scripted_llm.add_rule(r"DRAFT", reply)


def stall_draft(scripted_llm) -> threading.Event:
    """The draft step's LLM call hangs for 20 s; the event is set when it starts."""
    reached = threading.Event()

    def stall(request):
        reached.set()
        time.sleep(20)
        return "late"

    replace_draft_rule(scripted_llm, stall)
    return reached


def session_of(tmp_path: Path) -> dict:
    sessions = sorted((tmp_path / "sessions").glob("*.json"))
    assert len(sessions) == 1
    return json.loads(sessions[0].read_text())


def run_dirs(tmp_path: Path) -> list[Path]:
    return [p for p in (tmp_path / "store").iterdir() if p.is_dir()]


@pytest.mark.parametrize("warm", ["1", "0"])
def test_workflow_runs_one_worker_per_step(flow, tmp_path, scripted_llm, warm):
    code, out, err = finish(main_py("--workflow", str(flow), "tea",
                                    env={**WORKERS, "AGENTIC_SUBPROCESS_WARM": warm}))
    assert code == 0, out + err
    assert "The polished text." in out
    assert out.count("(progress) step ") == 6  # started + finished for 3 steps
    [run_dir] = run_dirs(tmp_path)
    for step in ("gather", "draft", "polish"):
        result = json.loads((run_dir / step / "result.json").read_text())
        assert result["exit_code"] == 0 and result["step_id"] == step
        spec = json.loads((run_dir / f"{step}-spec.json").read_text())
        assert spec["run_id"] == run_dir.name
    draft_spec = json.loads((run_dir / "draft-spec.json").read_text())
    assert "Fact one. Fact two." in draft_spec["task"]["description"]
    assert draft_spec["prior_output"] == "Fact one. Fact two."
    record = session_of(tmp_path)
    assert record["last_execution_backend"] == "subprocess"
    assert record["run_id"] == run_dir.name and record["run_store"] == str(run_dir)


def test_without_workers_flag_runs_in_process(flow, tmp_path):
    code, out, err = finish(main_py("--workflow", str(flow), "tea",
                                    env={"AGENTIC_EXECUTION_BACKEND": "subprocess"}))
    assert code == 0, out + err
    assert session_of(tmp_path)["last_execution_backend"] == "inprocess"
    assert not (tmp_path / "store").exists()


@pytest.mark.backend_inprocess
def test_parity_inprocess_and_subprocess_give_same_step_outputs(flow, tmp_path, scripted_llm):
    outputs = {}
    for backend_env in ({"AGENTIC_EXECUTION_BACKEND": "inprocess"}, WORKERS):
        scripted_llm.requests.clear()
        code, out, err = finish(main_py("--workflow", str(flow), "tea", env=backend_env))
        assert code == 0, out + err
        prompts = scripted_llm.user_texts()
        outputs[backend_env["AGENTIC_EXECUTION_BACKEND"]] = prompts
        session = sorted((tmp_path / "sessions").glob("*.json"))[-1]
        session.rename(session.with_suffix(".done"))
    assert outputs["inprocess"] == outputs["subprocess"]


def test_hanging_worker_is_killed_and_retried(flow, tmp_path, scripted_llm):
    calls = {"n": 0}

    def hang_once(request):
        calls["n"] += 1
        if calls["n"] == 1:
            time.sleep(30)  # far past the step timeout: the worker is killed meanwhile
        return "A draft using Fact one."

    replace_draft_rule(scripted_llm, hang_once)
    started = time.monotonic()
    code, out, err = finish(main_py("--workflow", str(flow), "tea",
                                    env={**WORKERS, "AGENTIC_STEP_TIMEOUT_SECONDS": "4",
                                         "AGENTIC_LLM_TIMEOUT_SECONDS": "60"}))
    assert code == 0, out + err
    assert time.monotonic() - started < 25
    [run_dir] = run_dirs(tmp_path)
    attempts = sorted((run_dir / "draft" / "attempts").glob("*.json"))
    assert len(attempts) == 2
    first = json.loads(attempts[0].read_text())
    assert first["exit_code"] != 0 and "timed out" in first["error"]
    assert json.loads((run_dir / "draft" / "result.json").read_text())["exit_code"] == 0


def _worker_pids(step_id: str) -> list[int]:
    pids = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                cmd = (proc / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if b"--execute-step" in cmd and step_id.encode() in cmd:
                pids.append(int(proc.name))
    return pids


def test_sigkilled_worker_becomes_failed_attempt_then_retry(flow, tmp_path, scripted_llm):
    calls = {"n": 0}

    def kill_worker_once(request):
        calls["n"] += 1
        if calls["n"] == 1:
            for pid in _worker_pids("draft"):
                os.kill(pid, signal.SIGKILL)
            time.sleep(1)
        return "A draft using Fact one."

    replace_draft_rule(scripted_llm, kill_worker_once)
    code, out, err = finish(main_py("--workflow", str(flow), "tea",
                                    env={**WORKERS, "AGENTIC_SUBPROCESS_WARM": "0"}))
    assert code == 0, out + err
    [run_dir] = run_dirs(tmp_path)
    first = json.loads(sorted((run_dir / "draft" / "attempts").glob("*.json"))[0].read_text())
    assert first["exit_code"] != 0 and "signal" in first["error"]


def test_failed_step_then_resume_skips_finished_steps(flow, tmp_path, scripted_llm):
    replace_draft_rule(scripted_llm, HTTPErrorReply(401, "bad key"))
    code, out, err = finish(main_py("--workflow", str(flow), "tea", env=WORKERS))
    assert code == 1, out + err
    [run_dir] = run_dirs(tmp_path)
    assert not (run_dir / "polish").exists()

    replace_draft_rule(scripted_llm, "A draft using Fact one.")
    scripted_llm.requests.clear()
    code, out, err = finish(main_py("--resume", run_dir.name, env=WORKERS))
    assert code == 0, out + err
    asked = scripted_llm.user_texts()
    assert not any("GATHER" in text for text in asked)
    assert any("DRAFT" in text and "Fact one. Fact two." in text for text in asked)
    assert json.loads((run_dir / "polish" / "result.json").read_text())["exit_code"] == 0
    assert session_of(tmp_path)["exit_code"] == 0


def test_killed_coordinator_run_can_be_resumed(flow, tmp_path, scripted_llm):
    reached = stall_draft(scripted_llm)
    proc = main_py("--workflow", str(flow), "tea", env=WORKERS, start_new_session=True)
    assert reached.wait(120)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=30)
    [run_dir] = run_dirs(tmp_path)
    assert json.loads((run_dir / "gather" / "result.json").read_text())["exit_code"] == 0
    assert not (run_dir / "draft" / "result.json").exists()

    replace_draft_rule(scripted_llm, "A draft using Fact one.")
    code, out, err = finish(main_py("--resume", run_dir.name, env=WORKERS))
    assert code == 0, out + err
    assert "The polished text." in out


def test_ctrl_c_stops_workers_and_keeps_finished_steps(flow, tmp_path, scripted_llm):
    reached = stall_draft(scripted_llm)
    proc = main_py("--workflow", str(flow), "tea",
                   env={**WORKERS, "AGENTIC_SUBPROCESS_WARM": "0"})
    assert reached.wait(120)
    workers = _worker_pids("draft")
    assert workers
    proc.send_signal(signal.SIGINT)
    code, out, err = finish(proc, timeout=30)
    assert code == 130, out + err
    time.sleep(0.5)
    assert not [pid for pid in workers if Path(f"/proc/{pid}").exists()
                and "zombie" not in Path(f"/proc/{pid}/status").read_text()]
    [run_dir] = run_dirs(tmp_path)
    assert json.loads((run_dir / "gather" / "result.json").read_text())["exit_code"] == 0


def test_execute_step_bad_spec_exits_2(tmp_path):
    spec = tmp_path / "spec.json"
    spec.write_text("{not json")
    proc = main_py("--execute-step", str(spec), "--run-id", "r1", "--step-id", "s1")
    code, _, err = finish(proc, timeout=60)
    assert code == 2
    assert err.count("\n") == 1 and "spec.json" in err
