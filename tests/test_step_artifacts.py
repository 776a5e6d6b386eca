"""Artifacts belong to the step: the step that names a file saves it where it runs, under
``paths.artifacts_dir``, and lists it in its ``StepResult.artifacts``; the CLI only gathers
the lists. Same records on the in-process and the subprocess backend."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from agentic_orchestration.orchestration.backends.base import StepSpec, TaskSpec
from agentic_orchestration.orchestration.execute_step import run_step

REPO = Path(__file__).resolve().parent.parent

FLOW = """\
steps:
  - id: gather
    agent_provider: fake_researcher
    description: "GATHER notes about {topic}"
  - id: write
    agent_provider: fake_writer
    description: "WRITE the guide about {topic}"
"""

NOTES = "Notes:\n```markdown notes/facts.md\n# Facts\nTea is a drink.\n```\n"
GUIDE = ("Guide:\n```python brew.py\nprint('steep 3 minutes')\n```\n"
         "```text ../../escape.txt\nnope\n```\n")


def _run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(REPO / "main.py"), *args], capture_output=True,
                          text=True, env={**os.environ, **env}, timeout=240, check=False)


@pytest.mark.backend_inprocess
@pytest.mark.backend_subprocess
@pytest.mark.parametrize("backend", ["inprocess", "subprocess"])
def test_each_step_saves_and_lists_its_own_files(backend, tmp_path, fake_config,
                                                 scripted_llm) -> None:
    flow = tmp_path / "flow.yaml"
    flow.write_text(FLOW)
    scripted_llm.add_rule(r"WRITE the guide", GUIDE)
    scripted_llm.add_rule(r"GATHER notes", NOTES)
    proc = _run(["--workflow", str(flow), "tea", "--execution-backend", backend],
                {"AGENTIC_RUN_STORE_PATH": str(tmp_path / "store"),
                 "AGENTIC_SUBPROCESS_WORKERS": "1"})
    assert proc.returncode == 0, proc.stderr[-2000:]

    [session_file] = (tmp_path / "sessions").glob("*.json")
    record = json.loads(session_file.read_text())
    assert record["last_execution_backend"] == backend
    run_dir = tmp_path / "artifacts" / record["run_id"]
    steps = {s["step_id"]: s["artifacts"] for s in record["steps"]}
    assert steps == {
        "gather": [{"relative_path": "notes/facts.md", "mime": "text/markdown"}],
        "write": [{"relative_path": "brew.py", "mime": "text/x-python"}],
    }
    assert record["artifacts"] == ["notes/facts.md", "brew.py"]
    assert record["artifacts_dir"] == str(run_dir)
    assert (run_dir / "notes" / "facts.md").read_text() == "# Facts\nTea is a drink.\n"
    assert (run_dir / "brew.py").read_text() == "print('steep 3 minutes')\n"
    # The unsafe name was refused by the step, not written anywhere.
    assert not list(tmp_path.rglob("escape.txt"))
    assert f"Saved 2 file(s) under {run_dir}" in proc.stdout
    if backend == "subprocess":  # the worker recorded them in its own result.json
        result = json.loads((tmp_path / "store" / record["run_id"] / "gather" / "result.json")
                            .read_text())
        assert result["artifacts"] == [{"relative_path": "notes/facts.md",
                                        "mime": "text/markdown"}]


def test_worker_saves_under_the_spec_folder_and_nowhere_without_one(tmp_path, scripted_llm):
    def spec(artifacts_dir: str) -> StepSpec:
        return StepSpec(
            run_id="run-a", step_id="s1", step_index=0, workflow_name="w",
            task=TaskSpec(description="GATHER notes", expected_output="notes"),
            agent_provider={"id": "fake", "type": "openai", "model": "fake-model",
                            "openai_base_url": scripted_llm.base_url, "role": "r",
                            "goal": "g", "backstory": "b"},
            paths={"run_store": str(tmp_path / "store"), "artifacts_dir": artifacts_dir})

    scripted_llm.add_rule(r"GATHER notes", NOTES)
    target = tmp_path / "elsewhere" / "files"
    result = run_step(spec(str(target)))
    assert result.ok, result.error
    assert [a.relative_path for a in result.artifacts] == ["notes/facts.md"]
    assert (target / "notes" / "facts.md").is_file()

    before = sorted(p for p in tmp_path.rglob("*") if p.is_file())
    result = run_step(spec(""))
    assert result.ok and result.artifacts == []
    assert sorted(p for p in tmp_path.rglob("*") if p.is_file()) == before
