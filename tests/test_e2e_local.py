"""A whole goal on the real embedded model: plan, execute, answer, session. No key, no network."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.slow
@pytest.mark.backend_inprocess
def test_main_py_runs_a_goal_on_the_embedded_model(local_model, tmp_path):
    env = {
        **os.environ,
        # Bounded so the test takes seconds, not minutes, on 2 cores.
        "AGENTIC_LOCAL_MAX_TOKENS": "48",
        "AGENTIC_MAX_PLAN_STEPS": "2",
    }
    proc = subprocess.run(
        [sys.executable, str(REPO / "main.py"), "--dynamic",
         "Explain why the sky is blue in two sentences", "--no-router"],
        capture_output=True, text=True, env=env, timeout=600, cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    started = [line for line in lines if " started [agent local_" in line]
    finished = [line for line in lines
                if line.startswith("(progress) step ") and " finished in " in line]
    assert 1 <= len(started) == len(finished) <= 2
    answer = proc.stdout.split("=== Final answer ===", 1)[1].split("\nRun ", 1)[0]
    assert answer.strip()

    sessions = list((tmp_path / "sessions").glob("*.json"))
    assert len(sessions) == 1
    record = json.loads(sessions[0].read_text())
    assert record["route"].startswith("planner:local_")
    assert record["exit_code"] == 0 and record["last_execution_backend"] == "inprocess"
    assert len(record["steps"]) == len(record["plan"]["steps"]) == len(started)
    assert all(step["result_text"] for step in record["steps"])
    assert all(step["agent_provider_id"].startswith("local_") for step in record["steps"])
