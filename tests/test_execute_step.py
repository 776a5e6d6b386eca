"""The ``--execute-step`` worker against the scripted OpenAI-compatible server.

Specs are built by hand (as a coordinator would write them) so these tests pin the worker
side of the contract: what is rejected with exit 2 and no result.json, and what result.json
holds on success and on each kind of failure.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from agentic_orchestration.errors import StepSpecError
from agentic_orchestration.log import NOISY_LOGGERS
from agentic_orchestration.mcp.resolution import resolve_workflow_mcp_refs
from agentic_orchestration.orchestration.backends.base import StepSpec
from agentic_orchestration.orchestration.execute_step import (
    execute_step_main,
    load_step_spec,
    step_workflow,
)
from agentic_orchestration.orchestration.run_store import FileSystemRunStore
from agentic_orchestration.testing import HTTPErrorReply, ScriptedLLMServer

REPO = Path(__file__).resolve().parent.parent
RESULT_SCHEMA = json.loads(
    (REPO / "agentic_orchestration" / "schemas" / "step_result.v0.1.json").read_text())
RUN, STEP = "run-1", "step_1"
ANSWER = "Bees dance to share where the flowers are."

worker = pytest.mark.backend_subprocess


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    """execute_step_main configures process-wide logging; undo it after each test."""
    root = logging.getLogger()
    watched = [logging.getLogger(n) for n in ("agentic_orchestration", *NOISY_LOGGERS)]
    handlers, root_level, levels = list(root.handlers), root.level, [w.level for w in watched]
    yield
    root.handlers[:] = handlers
    root.setLevel(root_level)
    for lg, level in zip(watched, levels, strict=True):
        lg.setLevel(level)


def make_spec(store: Path, base_url: str, **changes: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "schema_version": "0.1", "run_id": RUN, "step_id": STEP, "step_index": 0,
        "workflow_name": "hand-made", "topic": "honeybees",
        "task": {"description": "WORKER-TASK: explain how honeybees communicate.",
                 "expected_output": "Two sentences."},
        "agent_provider": {"id": "fake_worker", "type": "openai", "model": "fake-model",
                           "openai_base_url": base_url, "role": "Bee Persona",
                           "goal": "Explain bees.", "backstory": "Keeps hives."},
        "mcp_providers": [], "prior_output": "", "inputs": {"topic": "honeybees"},
        "paths": {"run_store": str(store), "artifacts_dir": str(store / RUN / "artifacts")},
    }
    spec.update(changes)
    return spec


def write_spec(path: Path, spec: dict[str, Any] | str) -> Path:
    path.write_text(spec if isinstance(spec, str) else json.dumps(spec))
    return path


def read_result(store: Path) -> dict[str, Any]:
    path = store / RUN / STEP / "result.json"
    assert path.is_file(), f"no result.json at {path}"
    data = json.loads(path.read_text())
    jsonschema.validate(data, RESULT_SCHEMA)
    return data


@pytest.fixture
def store(tmp_path: Path) -> Path:
    return tmp_path / "store"


# --- success ------------------------------------------------------------------------------


@worker
def test_in_process_call_writes_a_valid_result(
    tmp_path: Path, store: Path, scripted_llm: ScriptedLLMServer,
    capsys: pytest.CaptureFixture[str],
) -> None:
    scripted_llm.add_rule("WORKER-TASK", ANSWER)
    spec = write_spec(tmp_path / "spec.json", make_spec(store, scripted_llm.base_url))
    assert execute_step_main(spec, run_id=RUN, step_id=STEP) == 0
    data = read_result(store)
    assert (data["run_id"], data["step_id"], data["exit_code"]) == (RUN, STEP, 0)
    assert data["result_text"] == ANSWER and data["error"] is None
    assert data["agent_provider_id"] == "fake_worker"
    timing = data["timing"]
    assert timing["started_at"] <= timing["finished_at"] and timing["duration_seconds"] > 0
    assert data["usage"]["total_tokens"] > 0
    # The persona and the task went to the LLM through the in-process CrewAI code (G3).
    prompt = json.dumps(scripted_llm.requests[-1]["messages"])
    assert "Bee Persona" in prompt and "explain how honeybees communicate" in prompt
    out = capsys.readouterr()
    assert "(progress)" not in out.out  # the coordinator prints progress, not the worker


@worker
def test_separate_process_runs_the_step(
    tmp_path: Path, store: Path, scripted_llm: ScriptedLLMServer,
) -> None:
    scripted_llm.add_rule("WORKER-TASK", ANSWER)
    spec = write_spec(tmp_path / "spec.json", make_spec(store, scripted_llm.base_url))
    code = ("import sys; from agentic_orchestration.orchestration.execute_step import "
            f"execute_step_main; sys.exit(execute_step_main({str(spec)!r}, "
            f"run_id={RUN!r}, step_id={STEP!r}))")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr
    assert read_result(store)["result_text"] == ANSWER
    assert len(scripted_llm.requests) == 1  # the child, not this process, called the server
    assert "(progress)" not in done.stdout


# --- failures that still write result.json ------------------------------------------------


@worker
def test_provider_http_500_is_a_recoverable_failure(
    tmp_path: Path, store: Path, scripted_llm: ScriptedLLMServer,
) -> None:
    scripted_llm.add_rule("WORKER-TASK", HTTPErrorReply(500, "upstream exploded"))
    spec = write_spec(tmp_path / "spec.json", make_spec(store, scripted_llm.base_url))
    assert execute_step_main(spec, run_id=RUN, step_id=STEP) == 1
    data = read_result(store)
    assert data["exit_code"] == 1 and data["result_text"] is None
    assert data["recoverable"] is True and data["recovery_hint"] == "provider_fallback"
    assert "500" in data["error"] or "InternalServerError" in data["error"]
    assert data["timing"] is not None


@worker
def test_missing_api_key_variable_fails_unrecoverably_and_names_it(
    tmp_path: Path, store: Path, scripted_llm: ScriptedLLMServer,
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.delenv("WORKER_TEST_API_KEY", raising=False)
    spec_data = make_spec(store, scripted_llm.base_url)
    spec_data["agent_provider"]["api_key_env"] = "WORKER_TEST_API_KEY"
    spec = write_spec(tmp_path / "spec.json", spec_data)
    assert execute_step_main(spec, run_id=RUN, step_id=STEP) == 1
    data = read_result(store)
    assert data["exit_code"] == 1 and data["recoverable"] is False
    assert data["recovery_hint"] is None
    assert "WORKER_TEST_API_KEY" in data["error"]
    assert data["agent_provider_id"] == "fake_worker"
    assert scripted_llm.requests == []
    assert "Traceback" not in capsys.readouterr().err


@worker
def test_unset_mcp_variable_fails_the_step_naming_it(
    tmp_path: Path, store: Path, scripted_llm: ScriptedLLMServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """MCP refs from the spec reach build_workflow, which expands ${VAR} in the worker."""
    monkeypatch.delenv("WORKER_MCP_TOKEN", raising=False)
    mcp = {"id": "search_x", "resolved": {"streamable_http": {
        "url": "http://127.0.0.1:9/mcp", "headers": {"Authorization": "${WORKER_MCP_TOKEN}"}}}}
    spec = write_spec(tmp_path / "spec.json",
                      make_spec(store, scripted_llm.base_url, mcp_providers=[mcp]))
    assert execute_step_main(spec, run_id=RUN, step_id=STEP) == 1
    data = read_result(store)
    assert "WORKER_MCP_TOKEN" in data["error"] and data["recoverable"] is False


@worker
def test_store_comes_from_env_when_the_spec_names_none(
    tmp_path: Path, scripted_llm: ScriptedLLMServer, monkeypatch: pytest.MonkeyPatch,
) -> None:
    env_store = tmp_path / "env-store"
    monkeypatch.setenv("AGENTIC_RUN_STORE_PATH", str(env_store))
    spec_data = make_spec(tmp_path / "unused", scripted_llm.base_url,
                          paths={"run_store": "", "artifacts_dir": ""})
    spec_data["agent_provider"]["api_key_env"] = "WORKER_UNSET_KEY"  # fails fast, no LLM
    spec = write_spec(tmp_path / "spec.json", spec_data)
    assert execute_step_main(spec, run_id=RUN, step_id=STEP) == 1
    assert read_result(env_store)["exit_code"] == 1
    assert not (tmp_path / "unused").exists()


@worker
def test_explicit_run_store_argument_wins(
    tmp_path: Path, store: Path, scripted_llm: ScriptedLLMServer,
) -> None:
    scripted_llm.add_rule("WORKER-TASK", ANSWER)
    spec = write_spec(tmp_path / "spec.json", make_spec(store, scripted_llm.base_url))
    other = tmp_path / "other"
    rc = execute_step_main(spec, run_id=RUN, step_id=STEP, run_store=FileSystemRunStore(other))
    assert rc == 0 and read_result(other)["result_text"] == ANSWER
    assert not store.exists()


# --- logging ------------------------------------------------------------------------------


@worker
def test_json_log_lines_carry_run_and_step_ids_and_no_key(
    tmp_path: Path, store: Path, scripted_llm: ScriptedLLMServer,
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    secret = "sk-worker-secret-0123456789"
    monkeypatch.setenv("AGENTIC_LOG_FORMAT", "json")
    monkeypatch.setenv("AGENTIC_LOG_LEVEL", "INFO")
    monkeypatch.setenv("WORKER_TEST_API_KEY", secret)
    scripted_llm.add_rule("WORKER-TASK", ANSWER)
    spec_data = make_spec(store, scripted_llm.base_url)
    spec_data["agent_provider"]["api_key_env"] = "WORKER_TEST_API_KEY"
    spec = write_spec(tmp_path / "spec.json", spec_data)
    assert execute_step_main(spec, run_id=RUN, step_id=STEP) == 0
    err = capsys.readouterr().err
    records = [json.loads(line) for line in err.splitlines()]  # every line is one JSON object
    assert len(records) >= 2
    assert all((r["run_id"], r["step_id"]) == (RUN, STEP) for r in records)
    messages = " | ".join(r["message"] for r in records)
    assert "step started" in messages and "step finished" in messages
    assert secret not in err
    assert secret not in (store / RUN / STEP / "result.json").read_text()


# --- rejected specs: exit 2, one line, nothing written ------------------------------------


def _bad_spec(tmp_path: Path, store: Path, case: str) -> tuple[Path, str, str]:
    """(spec path, --run-id, text the error line must contain) for one broken spec."""
    path = tmp_path / "spec.json"
    good = make_spec(store, "http://127.0.0.1:9/v1")
    if case == "missing":
        return path, RUN, "file not found"
    if case == "bad_json":
        return write_spec(path, '{"schema_version": "0.1", '), RUN, "not valid JSON"
    if case == "schema_version":
        return write_spec(path, {**good, "schema_version": "0.2"}), RUN, "schema_version"
    if case == "unknown_field":
        return write_spec(path, {**good, "surprise": 1}), RUN, "'surprise' was unexpected"
    if case == "nested_field":
        return (write_spec(path, {**good, "task": {"description": "x"}}), RUN,
                "field task: 'expected_output' is a required property")
    if case == "run_id_mismatch":
        return write_spec(path, good), "run-2", "does not match --run-id 'run-2'"
    if case == "unsafe_step_id":
        return (write_spec(path, {**good, "step_id": "../escape"}), RUN,
                "field step_id: invalid step_id")
    if case == "agent_entry":
        agent = {**good["agent_provider"], "temperature": 2}
        return (write_spec(path, {**good, "agent_provider": agent}), RUN,
                "field agent_provider.temperature")
    raise AssertionError(case)


@pytest.mark.parametrize("case", ["missing", "bad_json", "schema_version", "unknown_field",
                                  "nested_field", "run_id_mismatch", "unsafe_step_id",
                                  "agent_entry"])
def test_bad_spec_exits_2_with_one_line_and_writes_nothing(
    tmp_path: Path, store: Path, case: str, capsys: pytest.CaptureFixture[str],
) -> None:
    path, run_id, expected = _bad_spec(tmp_path, store, case)
    step_id = "../escape" if case == "unsafe_step_id" else STEP
    assert execute_step_main(path, run_id=run_id, step_id=step_id) == 2
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"error: step spec {path}: "), lines[0]
    assert expected in lines[0]
    assert not store.exists()


def test_load_step_spec_returns_the_model(tmp_path: Path, store: Path) -> None:
    path = write_spec(tmp_path / "spec.json", make_spec(store, "http://127.0.0.1:9/v1"))
    spec = load_step_spec(path, run_id=RUN, step_id=STEP)
    assert isinstance(spec, StepSpec) and spec.task.expected_output == "Two sentences."
    with pytest.raises(StepSpecError, match="--step-id 'step_2'"):
        load_step_spec(path, run_id=RUN, step_id="step_2")


def test_mcp_transport_error_names_the_nested_field(tmp_path: Path, store: Path) -> None:
    bad = {"id": "m", "resolved": {"websocket": {"url": "ws://x"}}}
    path = write_spec(tmp_path / "spec.json",
                      make_spec(store, "http://127.0.0.1:9/v1", mcp_providers=[bad]))
    with pytest.raises(StepSpecError, match=r"field mcp_providers\[0\]\.resolved: "):
        load_step_spec(path, run_id=RUN, step_id=STEP)


def test_step_workflow_rebuilds_the_catalog_entries_exactly(store: Path) -> None:
    """G3: the worker's catalog resolves back to the very refs the coordinator sent."""
    refs = [
        {"id": "fetch_url", "resolved": {"stdio": {"command": "python", "args": ["-m", "x"],
                                                   "env": {"K": "${VAR}"}}}},
        {"id": "search_x", "resolved": {"streamable_http": {"url": "https://s.example/mcp",
                                                            "headers": {}}}},
    ]
    spec = StepSpec.model_validate(make_spec(store, "http://h/v1", mcp_providers=refs))
    config, catalog = step_workflow(spec)
    (step,) = config.steps
    assert (step.id, step.agent_provider, step.mcp_providers) == (
        STEP, "fake_worker", ["fetch_url", "search_x"])
    assert step.description == spec.task.description and config.topic == "honeybees"
    assert resolve_workflow_mcp_refs(catalog.resolve_step_mcps(step)) == refs
    assert catalog.resolve_step_agent(step).model_dump(exclude_defaults=True) == (
        spec.agent_provider)


def test_interrupt_still_writes_a_result(
    tmp_path: Path, store: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Ctrl-C in a worker: the coordinator reads exit 130 from result.json, not a crash."""
    from agentic_orchestration.orchestration import execute_step

    def interrupted(spec: StepSpec) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(execute_step, "run_step", interrupted)
    spec = write_spec(tmp_path / "spec.json", make_spec(store, "http://127.0.0.1:9/v1"))
    assert execute_step_main(spec, run_id=RUN, step_id=STEP) == 130
    data = read_result(store)
    assert (data["exit_code"], data["error"], data["recoverable"]) == (130, "interrupted", False)


@worker
def test_unwritable_store_is_one_error_line_and_exit_1(
    tmp_path: Path, scripted_llm: ScriptedLLMServer, capsys: pytest.CaptureFixture[str],
) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the store folder should be")
    spec_data = make_spec(blocker, scripted_llm.base_url)
    spec_data["agent_provider"]["api_key_env"] = "WORKER_UNSET_KEY"
    spec = write_spec(tmp_path / "spec.json", spec_data)
    assert execute_step_main(spec, run_id=RUN, step_id=STEP) == 1
    err = capsys.readouterr().err.splitlines()
    assert err[-1].startswith("error: cannot write result.json: "), err
