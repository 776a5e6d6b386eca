"""Session records: built from a run, stored (database + JSON mirror, mode 0600), reloaded
equal, secrets masked. The database itself is tested in test_sessions_db.py."""

from __future__ import annotations

import json
import os
import re
import stat
from pathlib import Path

import pytest

import agentic_orchestration._fs as fs_module
from agentic_orchestration.catalogs import WorkflowConfig
from agentic_orchestration.errors import ConfigError
from agentic_orchestration.orchestration.backends.base import (
    ArtifactRef,
    StepResult,
    StepTiming,
    TokenUsage,
    WorkflowExecutionResult,
)
from agentic_orchestration.sessions import (
    SessionRecord,
    list_sessions,
    load_session,
    save_session,
    sessions_dir,
    start_session,
    update_session,
)

PLAN = WorkflowConfig.model_validate({
    "name": "dynamic",
    "topic": "write a script",
    "steps": [{"agent_provider": "local", "description": "Write {topic}"}],
})


def _execution(run_id: str, *, text: str = "done", error: str | None = None
               ) -> WorkflowExecutionResult:
    step = StepResult(
        run_id=run_id, step_id="step_1", exit_code=1 if error else 0, result_text=text,
        error=error, agent_provider_id="local",
        timing=StepTiming(started_at="2024-01-01T00:00:00Z", finished_at="2024-01-01T00:00:02Z",
                          duration_seconds=2.0),
        usage=TokenUsage(prompt_tokens=10, completion_tokens=5, total_tokens=15),
    )
    return WorkflowExecutionResult(exit_code=step.exit_code, result_text=text,
                                   error=RuntimeError(error) if error else None,
                                   step_results=[step], run_id=run_id, backend="inprocess")


def _full_record(run_id: str = "run-1") -> SessionRecord:
    record = start_session("write a script", mode="dynamic", run_id=run_id)
    return update_session(
        record, plan=PLAN, route="planner:local", execution=_execution(run_id),
        artifacts=[ArtifactRef(relative_path="main.py", mime="text/x-python")],
    )


def test_record_is_filled_from_plan_execution_and_artifacts(tmp_path: Path) -> None:
    record = _full_record()
    assert record.session_id == record.run_id == "run-1"
    assert record.plan is not None and record.plan["steps"][0]["id"] == "step_1"
    assert record.last_execution_backend == "inprocess"
    assert record.exit_code == 0 and record.result_text == "done" and record.error is None
    assert record.steps == [{
        "step_id": "step_1", "agent_provider_id": "local", "status": "ok", "exit_code": 0,
        "result_text": "done", "error": None, "recoverable": False,
        "timing": {"started_at": "2024-01-01T00:00:00Z", "finished_at": "2024-01-01T00:00:02Z",
                   "duration_seconds": 2.0},
        "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
        "artifacts": [], "k8s": None, "kind": "write", "attempts": 1, "attempt_log": [],
    }]
    assert record.artifacts == ["main.py"]
    assert record.artifacts_dir == str(tmp_path / "artifacts" / "run-1")


def test_failed_run_keeps_the_error_text() -> None:
    record = start_session("g", mode="workflow", run_id="run-2")
    update_session(record, execution=_execution("run-2", error="model timed out"),
                   backend="subprocess")
    assert record.exit_code == 1 and record.error == "model timed out"
    assert record.steps[0]["error"] == "model timed out"
    assert record.last_execution_backend == "subprocess"


def test_saved_record_reloads_equal_with_mode_0600_and_no_temp_left(tmp_path: Path) -> None:
    record = _full_record()
    path = save_session(record)
    assert path == tmp_path / "sessions" / "sessions.sqlite3"
    mirror = tmp_path / "sessions" / "run-1.json"
    for file in (path, mirror):
        assert stat.S_IMODE(file.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert sorted(os.listdir(path.parent)) == ["run-1.json", "sessions.sqlite3"]
    assert json.loads(mirror.read_text())["schema_version"] == "0.1"
    assert load_session("run-1") == record


def test_saving_again_replaces_the_record() -> None:
    record = start_session("g", mode="dynamic", run_id="run-3")
    save_session(record)
    update_session(record, route="router:research")
    save_session(record)
    assert load_session("run-3").route == "router:research"
    assert sorted(os.listdir(sessions_dir())) == ["run-3.json", "sessions.sqlite3"]


def test_failed_write_keeps_the_old_record_and_leaves_no_temp_file(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    record = start_session("g", mode="dynamic", run_id="run-4")
    save_session(record)
    path = sessions_dir() / "run-4.json"
    before = path.read_text()
    update_session(record, route="router:other")

    def broken_replace(src: str, dst: str) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(fs_module.os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk full"):
        save_session(record)
    assert path.read_text() == before
    assert sorted(os.listdir(path.parent)) == ["run-4.json", "sessions.sqlite3"]
    assert load_session("run-4").route is None  # the database kept the old record too


def test_default_folder_is_under_home(monkeypatch: pytest.MonkeyPatch,
                                      isolated_env: Path) -> None:
    monkeypatch.delenv("AGENTIC_SESSIONS_PATH")
    path = save_session(start_session("g", mode="dynamic", run_id="run-5"))
    assert path == isolated_env / ".local/share/agentic-orchestration/sessions/sessions.sqlite3"
    assert (path.parent / "run-5.json").is_file()


def test_api_key_that_leaked_into_the_answer_is_not_in_the_file(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    key = "sk-test-0123456789abcdef"
    token = "hf_abcdefghijklmnop"
    monkeypatch.setenv("OPENAI_API_KEY", key)
    monkeypatch.setenv("MY_SERVICE_TOKEN", token)
    monkeypatch.setenv("SHORT_KEY", "abc")  # too short to mask: would hit ordinary words
    monkeypatch.setenv("PLAIN_SETTING", "not-a-secret-value")
    record = start_session(f"use {token}", mode="dynamic", run_id="run-6")
    update_session(record, execution=_execution(
        "run-6", text=f"Your key is {key}. abc. not-a-secret-value", error=f"401 for {key}"))
    database = save_session(record)
    text = (database.parent / "run-6.json").read_text()
    assert key.encode() not in database.read_bytes() and token.encode() not in database.read_bytes()
    assert key not in text and token not in text
    assert "Your key is ***." in text and "use ***" in text and "401 for ***" in text
    assert "abc." in text and "not-a-secret-value" in text
    assert record.result_text is not None and key in record.result_text  # memory untouched


def test_list_sessions_newest_first_skipping_broken_files(tmp_path: Path) -> None:
    older = start_session("a", mode="dynamic", run_id="run-a")
    newer = start_session("b", mode="workflow", run_id="run-b")
    older.created_at, newer.created_at = "2024-01-01T00:00:00Z", "2024-02-01T00:00:00Z"
    save_session(older)
    save_session(newer)
    (tmp_path / "sessions" / "broken.json").write_text("{not json")
    (tmp_path / "sessions" / "other.json").write_text(json.dumps({"schema_version": "9"}))
    assert [r.session_id for r in list_sessions()] == ["run-b", "run-a"]


def test_list_sessions_without_folder_is_empty() -> None:
    assert list_sessions() == []


def test_load_errors_name_the_problem(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with pytest.raises(ConfigError, match="no session 'missing'"):
        load_session("missing")
    for bad in ("../etc/passwd", "a/b", ".hidden", ""):
        with pytest.raises(ConfigError, match="not a valid session id"):
            load_session(bad)


def test_json_files_that_are_not_records_are_named_and_not_imported(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    folder = tmp_path / "sessions"
    folder.mkdir()
    (folder / "old.json").write_text(json.dumps({"schema_version": "9", "session_id": "old"}))
    (folder / "partial.json").write_text(json.dumps({"schema_version": "0.1"}))
    with pytest.raises(ConfigError, match="no session 'old'"):
        load_session("old")
    assert re.search(r"old\.json: schema_version '9'", caplog.text)
    assert re.search(r"partial\.json: not a session record", caplog.text)


def test_unknown_mode_is_rejected() -> None:
    with pytest.raises(ValueError, match="mode"):
        start_session("g", mode="chat", run_id="r")


def test_run_id_is_generated_when_not_given() -> None:
    record = start_session("g", mode="dynamic")
    assert record.run_id and record.session_id == record.run_id
