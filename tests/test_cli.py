"""The command line: flags, listings, exit codes, and a whole run on the scripted LLM."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from agentic_orchestration.cli.main import main
from agentic_orchestration.errors import EXIT_BAD_INPUT, EXIT_PLAN_FAILED, EXIT_STEP_FAILED
from agentic_orchestration.testing import HTTPErrorReply

REPO = Path(__file__).resolve().parent.parent

PLAN = {"name": "two-steps", "steps": [
    {"agent_provider": "fake_researcher", "mcp_providers": [],
     "description": "Collect facts about tea", "expected_output": "facts"},
    {"agent_provider": "fake_writer", "mcp_providers": [],
     "description": "Write about tea", "expected_output": "text"},
]}


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(REPO / "main.py"), *args], capture_output=True,
                          text=True, env={**os.environ, **(env or {})}, timeout=120)


def test_help_is_fast_and_does_not_import_crewai():
    proc = subprocess.run([sys.executable, "-X", "importtime", str(REPO / "main.py"), "--help"],
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0
    assert "--execution-backend" in proc.stdout and "exit codes" in proc.stdout
    imported = [line.split("|")[-1].strip() for line in proc.stderr.splitlines() if "|" in line]
    assert not [m for m in imported if m.startswith(("crewai", "pydantic", "yaml"))]


def test_no_goal_is_bad_input(capsys):
    assert main([]) == EXIT_BAD_INPUT


def test_list_agents_shows_available_and_reasons(capsys, local_model):
    assert main(["--list-agents", "--list-mcps", "--list-workflows"]) == 0
    out = capsys.readouterr().out
    assert "local_researcher" in out and "available" in out
    assert "openai_researcher" in out and "required env not set: OPENAI_API_KEY" in out
    assert "search_brave" in out and "BRAVE_API_KEY" in out
    # The bundled GGUF has no chat template: the listing says it is prompted as a base model.
    assert f"embedded model: {local_model.name}, prompts: document" in out
    assert "research_report" in out


def test_bad_catalog_exits_2_naming_file(tmp_path, monkeypatch, capsys):
    (tmp_path / "agent_providers").mkdir()
    (tmp_path / "agent_providers" / "x.yaml").write_text("- id: a\n  type: local\n")
    monkeypatch.setenv("AGENTIC_CONFIG_DIR", str(tmp_path))
    assert main(["--list-agents"]) == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert err.startswith("error: file ") and "x.yaml" in err and "'role'" in err
    assert "Traceback" not in err


def test_unknown_backend_fails_before_planning(fake_config, scripted_llm, capsys):
    assert main(["--dynamic", "anything", "--execution-backend", "nomad"]) == EXIT_BAD_INPUT
    assert "known: inprocess, subprocess, kubernetes" in capsys.readouterr().err
    assert scripted_llm.requests == []


def test_plan_only_prints_plan_json(fake_config, scripted_llm, capsys):
    scripted_llm.enqueue(json.dumps(PLAN))
    assert main(["--dynamic", "Tell me about tea", "--plan-only", "--no-router"]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert [s["agent_provider"] for s in plan["steps"]] == ["fake_researcher", "fake_writer"]
    assert plan["topic"] == "Tell me about tea"
    assert len(scripted_llm.requests) == 1


def test_unplannable_goal_exits_3(fake_config, scripted_llm, capsys):
    scripted_llm.enqueue("not json", "still not json")
    assert main(["--dynamic", "x", "--plan-only", "--no-router"]) == EXIT_PLAN_FAILED


@pytest.mark.backend_inprocess
def test_whole_run_saves_answer_files_and_session(fake_config, scripted_llm, tmp_path, capsys):
    scripted_llm.enqueue(json.dumps(PLAN))
    scripted_llm.add_rule(r"Collect facts", "Tea is a drink.")
    scripted_llm.add_rule(r"Write about tea",
                          "Here it is:\n```text tea.txt\nTea is a drink.\n```\n")
    code = main(["--dynamic", "Tell me about tea", "--no-router"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "=== Final answer ===" in out and "(progress)" in out
    saved = list((tmp_path / "artifacts").rglob("tea.txt"))
    assert len(saved) == 1 and saved[0].read_text().strip() == "Tea is a drink."
    sessions = list((tmp_path / "sessions").glob("*.json"))
    assert len(sessions) == 1
    record = json.loads(sessions[0].read_text())
    assert record["last_execution_backend"] == "inprocess"
    assert record["goal"] == "Tell me about tea"
    assert [s["step_id"] for s in record["steps"]] == ["step_1", "step_2"]


@pytest.mark.backend_inprocess
def test_failed_step_exits_1_and_keeps_session(fake_config, scripted_llm, tmp_path,
                                               monkeypatch, capsys):
    monkeypatch.setenv("AGENTIC_FALLBACK", "0")
    scripted_llm.enqueue(json.dumps(PLAN))
    scripted_llm.add_rule(r"Collect facts", HTTPErrorReply(500, "model crashed"))
    assert main(["--dynamic", "Tell me about tea", "--no-router"]) == EXIT_STEP_FAILED
    sessions = list((tmp_path / "sessions").glob("*.json"))
    assert len(sessions) == 1
    assert json.loads(sessions[0].read_text())["exit_code"] == EXIT_STEP_FAILED


def test_workflow_needing_topic_without_goal_is_bad_input(capsys):
    assert main(["--workflow", "research_report"]) == EXIT_BAD_INPUT
    assert "give a goal" in capsys.readouterr().err


def test_workflow_file_path_plan_only(tmp_path, fake_config, capsys):
    wf = tmp_path / "mine.yaml"
    wf.write_text("steps:\n  - agent_provider: fake_writer\n    description: Write {topic}\n")
    assert main(["--workflow", str(wf), "a poem", "--plan-only"]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert plan["name"] == "mine" and plan["topic"] == "a poem"


def test_kubernetes_backend_without_its_settings_says_which(capsys):
    proc = run_cli("--dynamic", "x", "--execution-backend", "kubernetes")
    assert proc.returncode == EXIT_BAD_INPUT
    assert "error: AGENTIC_K8S_WORKER_IMAGE is unset" in proc.stderr
