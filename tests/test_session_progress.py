"""A session keeps each step as it finishes, so a coordinator killed with SIGKILL mid-run
leaves a session that reads back ``interrupted`` with its finished steps in it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from flows import GATHER_DRAFT_FLOW

from agentic_orchestration.sessions import SessionStore

REPO = Path(__file__).resolve().parent.parent

FLOW = GATHER_DRAFT_FLOW


@pytest.mark.parametrize("backend", ["inprocess", "subprocess"])
def test_sigkilled_run_keeps_its_finished_steps(backend, tmp_path, fake_config,
                                                 scripted_llm) -> None:
    flow = tmp_path / "flow.yaml"
    flow.write_text(FLOW)
    reached, release = threading.Event(), threading.Event()

    def stall(request):
        reached.set()
        release.wait(60)
        return "late"

    scripted_llm.add_rule(r"DRAFT", stall)
    scripted_llm.add_rule(r"GATHER", "Fact one.")
    proc = subprocess.Popen(
        [sys.executable, str(REPO / "main.py"), "--workflow", str(flow), "tea"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        env={**os.environ, "AGENTIC_EXECUTION_BACKEND": backend,
             "AGENTIC_SUBPROCESS_WORKERS": "1", "AGENTIC_SUBPROCESS_WARM": "0",
             "AGENTIC_RUN_STORE_PATH": str(tmp_path / "store")})
    try:
        assert reached.wait(180), "the draft step never reached the LLM"
        os.killpg(proc.pid, signal.SIGKILL)  # coordinator and its workers, no clean-up
        proc.wait(30)
    finally:
        release.set()
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)

    [summary] = SessionStore().list()
    record = SessionStore().get(summary.run_id)
    assert record.status == "interrupted"
    assert [(s["step_id"], s["status"]) for s in record.steps] == [("gather", "ok")]
    assert record.steps[0]["result_text"] == "Fact one."
