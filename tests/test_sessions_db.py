"""The sessions database: WAL, private files, JSON import, crash safety, many writers.

Real SQLite files and real processes: a run killed with SIGKILL, 20 writer processes.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from agentic_orchestration.errors import EXIT_BAD_INPUT, ConfigError
from agentic_orchestration.orchestration.backends.base import (
    K8sInfo,
    StepResult,
    StepTiming,
    TokenUsage,
    WorkflowExecutionResult,
)
from agentic_orchestration.sessions import (
    SessionStore,
    _records,
    load_session,
    on_session_finished,
    save_session,
    start_session,
    update_session,
)
from agentic_orchestration.sessions import store as store_module

REPO = Path(__file__).resolve().parent.parent
PLAN = {"name": "dynamic", "topic": "t", "steps": [
    {"id": "step_1", "agent_provider": "coder", "description": "Write the code for: {topic}",
     "expected_output": "code"}]}


def _record(run_id: str, *, goal: str = "a goal", status_code: int | None = None,
            k8s: bool = False):
    record = start_session(goal, mode="dynamic", run_id=run_id)
    record.plan = PLAN
    if status_code is not None:
        step = StepResult(
            run_id=run_id, step_id="step_1", exit_code=status_code, result_text="out",
            agent_provider_id="coder", recoverable=status_code != 0,
            error=None if status_code == 0 else "HTTP 503",
            timing=StepTiming(started_at="2024-01-01T00:00:00Z",
                              finished_at="2024-01-01T00:00:03Z", duration_seconds=3.0),
            usage=TokenUsage(total_tokens=42),
            k8s=K8sInfo(pod_name="run-step-1-abc", node_name="kind-worker") if k8s else None)
        update_session(record, execution=WorkflowExecutionResult(
            exit_code=status_code, result_text="out", error=None, step_results=[step],
            run_id=run_id, backend="kubernetes" if k8s else "subprocess"))
    return record


def test_database_is_wal_private_and_holds_the_whole_record(tmp_path: Path) -> None:
    record = _record("run-1", status_code=0, k8s=True)
    path = save_session(record)
    assert path == tmp_path / "sessions" / "sessions.sqlite3"
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    loaded = load_session("run-1")
    assert loaded == record
    assert loaded.status == "ok" and loaded.last_execution_backend == "kubernetes"
    [step] = loaded.steps
    assert step["k8s"]["pod_name"] == "run-step-1-abc"
    assert step["k8s"]["node_name"] == "kind-worker"
    assert step["kind"] == "code" and step["attempts"] == 1
    assert step["usage"]["total_tokens"] == 42 and step["timing"]["duration_seconds"] == 3.0
    [row] = SessionStore().step_rows()
    assert (row.provider, row.kind, row.status, row.total_tokens) == ("coder", "code", "ok", 42)


def test_list_filters_by_status_and_text_newest_first() -> None:
    for index, (run_id, code, goal) in enumerate([
            ("run-a", 0, "history of the bicycle"), ("run-b", 1, "Bicycle repair guide"),
            ("run-c", 0, "a haiku about the sea")]):
        record = _record(run_id, goal=goal, status_code=code)
        record.created_at = f"2024-01-0{index + 1}T00:00:00Z"
        save_session(record)
    store = SessionStore()
    assert [s.run_id for s in store.list()] == ["run-c", "run-b", "run-a"]
    assert [s.run_id for s in store.list(text="BICYCLE")] == ["run-b", "run-a"]
    assert [s.run_id for s in store.list(status="failed")] == ["run-b"]
    assert [s.run_id for s in store.list(status="ok", text="bicycle")] == ["run-a"]
    assert [s.run_id for s in store.list(limit=1, offset=1)] == ["run-b"]
    assert store.count(text="bicycle") == 2 and store.count() == 3
    assert [s.run_id for s in store.list(text="100%_")] == []  # LIKE wildcards are literal


def test_changes_feed_and_finish_hook(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[tuple[str, str | None]] = []
    monkeypatch.setattr(_records, "_finish_hooks", [])
    on_session_finished(lambda record: seen.append((record.run_id, record.status)))
    record = _record("run-h")
    save_session(record)  # running: not finished
    assert seen == []
    store = SessionStore()
    [(first_seq, _, status)] = store.changes()
    assert status == "running"
    update_session(record, execution=WorkflowExecutionResult(
        exit_code=0, result_text="x", error=None, run_id="run-h", backend="inprocess"))
    save_session(record)
    save_session(record)  # saved again with the same final status: no second call
    assert seen == [("run-h", "ok")]
    assert [c[2] for c in store.changes(first_seq)] == ["ok"]
    # A run a budget stopped is finished too (exit 5): the hooks run for it.
    spent = _record("run-b")
    save_session(spent)
    update_session(spent, execution=WorkflowExecutionResult(
        exit_code=5, result_text="", error="run token budget spent", run_id="run-b",
        backend="inprocess", status="budget_exceeded"))
    save_session(spent)
    assert seen[-1] == ("run-b", "budget_exceeded")
    assert [s.run_id for s in store.list(status="budget_exceeded")] == ["run-b"]


def test_the_cli_and_the_web_filter_offer_every_session_status() -> None:
    from agentic_orchestration.cli.main import _build_parser
    from agentic_orchestration.sessions.orchestrator_session import STATUSES

    [status] = [a for a in _build_parser()._actions if a.dest == "status"]
    assert tuple(status.choices) == STATUSES
    page = (Path(__file__).resolve().parent.parent / "agentic_orchestration" / "web" / "static"
            / "index.html").read_text()
    assert all(f"<option>{s}</option>" in page for s in STATUSES)


def test_json_records_are_imported_once_and_nothing_is_lost(tmp_path: Path) -> None:
    folder = tmp_path / "sessions"
    folder.mkdir()
    legacy = {"schema_version": "0.1", "session_id": "old-1", "run_id": "old-1",
              "created_at": "2023-05-01T00:00:00Z", "updated_at": "2023-05-01T00:01:00Z",
              "goal": "an old goal", "mode": "dynamic", "exit_code": 0, "result_text": "old",
              "steps": [{"step_id": "step_1", "agent_provider_id": "local", "exit_code": 0,
                         "status": "ok", "timing": {"duration_seconds": 4.0}}],
              "some_future_field": 1}
    (folder / "old-1.json").write_text(json.dumps(legacy))
    pre_status = {k: v for k, v in legacy.items() if k != "exit_code"}
    (folder / "old-2.json").write_text(json.dumps({**pre_status, "session_id": "old-2",
                                                   "run_id": "old-2"}))
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    store = SessionStore()
    assert [s.run_id for s in store.list()] == ["old-2", "old-1"]
    old = store.get("old-1")
    assert old.result_text == "old" and old.status is None  # the record as it was
    assert store.list(status="ok")[0].run_id == "old-1"  # status derived from exit code
    assert store.list(status="interrupted")[0].run_id == "old-2"  # never finished
    assert [r.provider for r in store.step_rows()] == ["local", "local"]
    # A second import (a new process) changes nothing; the files are untouched.
    store_module._ready.clear()
    from agentic_orchestration.sessions._legacy_json import import_json_files

    assert import_json_files(store) == 0
    assert store.count() == 2 and len(store.step_rows()) == 2
    assert {p.name: p.read_bytes() for p in folder.iterdir() if p.suffix == ".json"} == before


def test_a_newer_database_row_is_not_replaced_by_an_older_file(tmp_path: Path) -> None:
    record = _record("run-n", status_code=0)
    save_session(record)
    mirror = tmp_path / "sessions" / "run-n.json"
    stale = json.loads(mirror.read_text())
    stale.update(updated_at="2000-01-01T00:00:00Z", result_text="stale")
    mirror.write_text(json.dumps(stale))
    store_module._ready.clear()
    assert SessionStore().get("run-n").result_text == "out"


def test_bad_ids_and_a_broken_database_are_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not a valid session id") as info:
        SessionStore().get("../x")
    assert info.value.exit_code == EXIT_BAD_INPUT
    with pytest.raises(ConfigError, match=r"no session 'nope' in .*sessions\.sqlite3"):
        SessionStore().get("nope")
    broken = tmp_path / "broken" / "sessions.sqlite3"
    broken.parent.mkdir()
    broken.write_bytes(b"this is not a database" * 100)
    with pytest.raises(ConfigError, match="not a usable sessions database"):
        SessionStore(broken).list()
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")  # a parent that is a file: fails for root too
    with pytest.raises(ConfigError, match=r"cannot create the sessions database .*"
                       r"AGENTIC_SESSIONS_PATH"):
        SessionStore(blocker / "sessions" / "sessions.sqlite3").list()


def test_reading_history_never_creates_a_database(tmp_path: Path) -> None:
    assert SessionStore().step_rows() == []
    assert not (tmp_path / "sessions").exists()


_KILLED_RUN = textwrap.dedent("""
    import sys, time
    from agentic_orchestration.sessions import save_session, start_session
    record = start_session("a goal", mode="dynamic", run_id=sys.argv[1])
    save_session(record)
    print("saved", flush=True)
    time.sleep(600)
""")


def test_a_run_killed_with_sigkill_is_read_back_as_interrupted(tmp_path: Path) -> None:
    child = subprocess.Popen([sys.executable, "-c", _KILLED_RUN, "run-k"], cwd=REPO,
                             stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "saved"
        store = SessionStore()
        [alive] = store.list()
        assert alive.status == "running" and alive.pid == child.pid  # its process is there
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    [summary] = store.list()
    assert summary.status == "interrupted"
    record = store.get("run-k")
    assert record.status == "interrupted" and record.exit_code == 130
    assert f"pid {child.pid}" in (record.error or "")
    mirror = json.loads((tmp_path / "sessions" / "run-k.json").read_text())
    assert mirror["status"] == "interrupted"


def test_a_reused_pid_does_not_keep_a_dead_run_running() -> None:
    record = _record("run-p")
    record.pid, record.pid_start = os.getppid(), 1  # alive, but started at another time
    save_session(record)
    assert SessionStore().get("run-p").status == "interrupted"


_WRITER = textwrap.dedent("""
    import sys
    from agentic_orchestration.sessions import save_session, start_session, update_session
    from agentic_orchestration.orchestration.backends.base import (
        StepResult, WorkflowExecutionResult)
    writer = sys.argv[1]
    for n in range(5):
        run_id = f"w{writer}-{n}"
        record = start_session(f"goal of writer {writer}", mode="dynamic", run_id=run_id)
        save_session(record)
        step = StepResult(run_id=run_id, step_id="step_1", agent_provider_id=f"p{writer}")
        update_session(record, execution=WorkflowExecutionResult(
            exit_code=0, result_text="done", error=None, step_results=[step], run_id=run_id,
            backend="inprocess"))
        save_session(record)
""")


def test_twenty_concurrent_writer_processes_lose_nothing() -> None:
    writers = [subprocess.Popen([sys.executable, "-c", _WRITER, str(i)], cwd=REPO,
                                stderr=subprocess.PIPE, text=True) for i in range(20)]
    errors = [w.communicate(timeout=300)[1] for w in writers]
    assert [w.returncode for w in writers] == [0] * 20, errors
    store = SessionStore()
    summaries = store.list(limit=1000)
    assert len(summaries) == 100 and {s.status for s in summaries} == {"ok"}
    assert {s.run_id for s in summaries} == {f"w{i}-{n}" for i in range(20) for n in range(5)}
    assert len(store.step_rows()) == 100
    assert len({seq for seq, _, _ in store.changes(limit=1000)}) == 100


def test_cli_lists_and_shows_sessions_and_names_a_bad_id(
        capsys: pytest.CaptureFixture[str]) -> None:
    from agentic_orchestration.cli.main import main

    for run_id, code, goal in (("run-x", 0, "history of the bicycle"),
                               ("run-y", 1, "a haiku about the sea")):
        save_session(_record(run_id, goal=goal, status_code=code, k8s=run_id == "run-x"))
    assert main(["--sessions"]) == 0
    out = capsys.readouterr().out
    assert "run-x" in out and "run-y" in out
    assert main(["--sessions", "BICYCLE", "--status", "ok"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2 and lines[1].split()[:4] == ["run-x", "ok", "kubernetes", "1"]
    assert main(["--session", "run-x"]) == 0
    out = capsys.readouterr().out
    assert "run run-x: ok (exit 0)" in out and "goal: history of the bicycle" in out
    assert "step_1 [ok] coder kind=code attempts=1 3.0s tokens=42" in out
    assert "k8s: pod_name=run-step-1-abc, node_name=kind-worker" in out
    assert main(["--session", "run-x", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["run_id"] == "run-x"
    for bad, message in (("no-such-run", "error: no session 'no-such-run' in "),
                         ("../../etc", "error: '../../etc' is not a valid session id")):
        assert main(["--session", bad]) == EXIT_BAD_INPUT
        captured = capsys.readouterr()
        assert captured.err.startswith(message) and captured.err.count("\n") == 1
        assert "Traceback" not in captured.err


@pytest.mark.backend_inprocess
def test_a_cli_run_is_recorded_with_its_process_and_a_failed_plan_too(
        fake_config, scripted_llm, capsys: pytest.CaptureFixture[str]) -> None:
    from agentic_orchestration.cli.main import main
    from agentic_orchestration.errors import EXIT_PLAN_FAILED

    scripted_llm.enqueue("not json", "still not json")
    assert main(["--dynamic", "plan this", "--no-router"]) == EXIT_PLAN_FAILED
    [summary] = SessionStore().list()
    assert summary.status == "failed" and summary.pid == os.getpid()
    assert summary.exit_code == EXIT_PLAN_FAILED and "no valid plan" in (summary.error or "")
