"""The run events (``orchestration.events``): both backends write the same typed events
through ``ProgressReporter`` to ``AGENTIC_EVENTS_FILE``, every attempt of a step with its
provider, times, tokens and output, secrets masked; the ``(progress)`` lines stay as
they were. Real ``main.py`` runs, real CrewAI, the scripted LLM server.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import write_catalog
from flows import GATHER_DRAFT_FLOW

from agentic_orchestration.orchestration.backends.base import RunOptions
from agentic_orchestration.orchestration.events import EventSink, read_events
from agentic_orchestration.orchestration.progress import ProgressReporter
from agentic_orchestration.testing import HTTPErrorReply, ScriptedLLMServer

REPO = Path(__file__).resolve().parent.parent
SECRET = "sk-events-secret-0123456789"
FLOW = GATHER_DRAFT_FLOW


AGENTS = """\
- {{id: fake_researcher, type: openai, model: m1, openai_base_url: "{main}",
   role: Researcher, goal: g, backstory: b, priority: 10}}
- {{id: fake_writer, type: openai, model: m2, openai_base_url: "{writer}",
   role: Writer, goal: g, backstory: b, priority: 11}}
"""


def _run(tmp_path: Path, root: Path, backend: str
         ) -> tuple[subprocess.CompletedProcess[str], Path]:
    flow = tmp_path / "flow.yaml"
    flow.write_text(FLOW)
    events_file = tmp_path / "events.jsonl"
    done = subprocess.run(
        [sys.executable, str(REPO / "main.py"), "--workflow", str(flow), "tea"],
        capture_output=True, text=True, timeout=600, check=False,
        env={**os.environ, "AGENTIC_CONFIG_DIR": str(root), "AGENTIC_EXECUTION_BACKEND": backend,
             "AGENTIC_SUBPROCESS_WORKERS": "1", "AGENTIC_SUBPROCESS_WARM": "0",
             "AGENTIC_RUN_STORE_PATH": str(tmp_path / "store"),
             "AGENTIC_EVENTS_FILE": str(events_file), "EVENTS_TEST_API_KEY": SECRET})
    return done, events_file


@pytest.mark.parametrize("backend", ["inprocess", "subprocess"])
def test_both_backends_write_every_attempt_as_typed_events(
        backend: str, tmp_path: Path, scripted_llm: ScriptedLLMServer) -> None:
    with ScriptedLLMServer() as writer_llm:  # its own endpoint, so the fallback leaves it
        root = write_catalog(tmp_path / "config", base_url=scripted_llm.base_url,
                             agents=AGENTS.format(main=scripted_llm.base_url,
                                                  writer=writer_llm.base_url))
        writer_llm.add_rule("DRAFT", HTTPErrorReply(500, "writer down"))
        scripted_llm.add_rule("DRAFT", "A text.")
        scripted_llm.add_rule("GATHER", f"Fact one; the key is {SECRET}.")
        done, events_file = _run(tmp_path, root, backend)
    assert done.returncode == 0, done.stderr[-2000:]
    text = events_file.read_text()
    assert SECRET not in text
    events = [json.loads(line) for line in text.splitlines()]
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    run_id = events[0]["run_id"]
    assert all(e["run_id"] == run_id for e in events)
    kinds = [(e["kind"], e.get("step_id"), e.get("attempt")) for e in events]
    assert kinds == [
        ("run_started", None, None), ("plan", None, None),
        ("step_started", "gather", 1), ("step_finished", "gather", 1),
        ("step_started", "draft", 1), ("step_failed", "draft", 1),
        ("step_retried", "draft", 2),
        ("step_started", "draft", 2), ("step_finished", "draft", 2),
        ("run_finished", None, None)]
    assert events[0]["backend"] == backend and events[0]["total"] == 2
    assert [(s["id"], s["provider"]) for s in events[1]["steps"]] == [
        ("gather", "fake_researcher"), ("draft", "fake_writer")]
    gather, failed, retried, draft_done = events[3], events[5], events[6], events[8]
    assert gather["output"] == "Fact one; the key is ***." and gather["status"] == "ok"
    assert gather["tokens"]["total"] > 0 and gather["provider"] == "fake_researcher"
    assert gather["started_at"] < gather["ended_at"] and gather["seconds"] > 0
    assert failed["status"] == "failed" and "500" in failed["error"]
    assert failed["provider"] == "fake_writer"
    assert retried["provider"] == draft_done["provider"] == "fake_researcher"
    assert draft_done["output"] == "A text." and events[-1]["status"] == "ok"
    # Every event with a line says what the (progress) line on stdout says.
    printed = [line[len("(progress) "):] for line in done.stdout.splitlines()
               if line.startswith("(progress) ")]
    assert [e["line"] for e in events if "line" in e] == printed


def test_no_events_without_the_variable_or_for_a_worker(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch,
                                                        capsys) -> None:
    assert EventSink.from_env() is None
    reporter = ProgressReporter(RunOptions(run_id="r1"), live=False)
    reporter.run_started("r1", 1, "inprocess")
    assert reporter.events is None
    path = tmp_path / "events.jsonl"
    monkeypatch.setenv("AGENTIC_EVENTS_FILE", str(path))
    worker = ProgressReporter(RunOptions(run_id="r1", emit_progress_lines=False), live=False)
    worker.run_started("r1", 1, "inprocess")  # a worker's own run: its coordinator reports
    assert not path.exists()
    capsys.readouterr()
    monkeypatch.setenv("AGENTIC_PROGRESS", "0")  # lines off; events are for machines
    quiet = ProgressReporter(RunOptions(run_id="r1"), live=False)
    quiet.run_started("r1", 1, "inprocess")
    quiet.step_started(0, "s", "p")
    quiet.step_failed(0, "s", "cancelled: stop")
    assert "(progress)" not in capsys.readouterr().out
    events, offset = read_events(path)
    assert [(e["kind"], e.get("status")) for e in events] == [
        ("run_started", None), ("step_started", None), ("step_failed", "cancelled")]
    assert offset == path.stat().st_size


def test_a_reader_takes_whole_lines_only(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    path.write_text('{"kind": "a"}\nnot json\n{"kind": "b"')  # "b" is still being written
    events, offset = read_events(path)
    assert [e["kind"] for e in events] == ["a"]
    with path.open("a") as handle:
        handle.write("}\n")
    more, end = read_events(path, offset=offset)
    assert [e["kind"] for e in more] == ["b"] and end == path.stat().st_size
    assert read_events(tmp_path / "missing.jsonl") == ([], 0)
    assert re.fullmatch(r"\d+", str(end))
