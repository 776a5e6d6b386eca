"""Logging: JSON lines with run/step ids, text prefixes, secret masking, env validation."""

from __future__ import annotations

import io
import json
import logging
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from agentic_orchestration.errors import ConfigError
from agentic_orchestration.log import (
    NOISY_LOGGERS,
    StepLoggerAdapter,
    configure_logging,
    redact_secrets,
    redact_text,
)

SECRET = "sk-live-abcdef0123456789"


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    """configure_logging changes process-wide state; put it back after each test."""
    root = logging.getLogger()
    watched = [logging.getLogger(n) for n in ("agentic_orchestration", *NOISY_LOGGERS)]
    handlers, root_level = list(root.handlers), root.level
    levels = [lg.level for lg in watched]
    yield
    root.handlers[:] = handlers
    root.setLevel(root_level)
    for lg, level in zip(watched, levels, strict=True):
        lg.setLevel(level)


def _lines(stream: io.StringIO) -> list[str]:
    return stream.getvalue().splitlines()


def test_json_lines_parse_and_carry_run_and_step_ids() -> None:
    stream = io.StringIO()
    configure_logging(level="INFO", fmt="json", stream=stream)
    log = logging.getLogger("agentic_orchestration.test")
    step_log = StepLoggerAdapter(log, run_id="run-1", step_id="step_2")
    step_log.info("step %s started", "step_2", extra={"attempt": 1})
    StepLoggerAdapter(log, run_id="run-1").warning("run-level line")
    log.info("plain line")
    first, second, third = (json.loads(line) for line in _lines(stream))
    assert first["message"] == "step step_2 started"
    assert (first["run_id"], first["step_id"]) == ("run-1", "step_2")
    assert first["level"] == "INFO" and first["logger"] == "agentic_orchestration.test"
    assert first["ts"].endswith("+00:00")
    assert second["run_id"] == "run-1" and "step_id" not in second
    assert "run_id" not in third and third["message"] == "plain line"


def test_bind_keeps_the_run_and_changes_the_step() -> None:
    stream = io.StringIO()
    configure_logging(level="INFO", fmt="json", stream=stream)
    run_log = StepLoggerAdapter(logging.getLogger("agentic_orchestration.x"), run_id="r9")
    run_log.bind(step_id="s3").info("hello")
    entry = json.loads(_lines(stream)[0])
    assert (entry["run_id"], entry["step_id"]) == ("r9", "s3")


def test_text_lines_have_the_run_step_prefix() -> None:
    stream = io.StringIO()
    configure_logging(level="INFO", fmt="text", stream=stream)
    log = logging.getLogger("agentic_orchestration.test")
    StepLoggerAdapter(log, run_id="run-1", step_id="step_2").info("working")
    log.info("no context")
    first, second = _lines(stream)
    assert first.endswith("INFO agentic_orchestration.test: [run-1/step_2] working")
    assert second.endswith("agentic_orchestration.test: no context")


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_secret_values_are_masked_in_every_line(fmt: str, monkeypatch: pytest.MonkeyPatch
                                                ) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    stream = io.StringIO()
    configure_logging(level="INFO", fmt=fmt, stream=stream)
    log = logging.getLogger("agentic_orchestration.test")
    log.info("calling with key %s", SECRET)
    try:
        raise RuntimeError(f"401 Unauthorized for key {SECRET}")
    except RuntimeError:
        log.exception("request failed")
    output = stream.getvalue()
    assert SECRET not in output
    assert output.count("***") == 2
    if fmt == "json":
        entries = [json.loads(line) for line in _lines(stream) if line.startswith("{")]
        assert "401 Unauthorized for key ***" in entries[1]["exc"]


def test_format_and_level_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENTIC_LOG_FORMAT", "JSON")
    monkeypatch.setenv("AGENTIC_LOG_LEVEL", "info")
    stream = io.StringIO()
    configure_logging(stream=stream)
    logging.getLogger("agentic_orchestration.test").info("hi")
    logging.getLogger("agentic_orchestration.test").debug("hidden")
    assert [json.loads(line)["message"] for line in _lines(stream)] == ["hi"]


def test_bad_log_format_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENTIC_LOG_FORMAT", "xml")
    with pytest.raises(ConfigError, match=r"AGENTIC_LOG_FORMAT='xml'.*text or json"):
        configure_logging()


def test_bad_log_level_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENTIC_LOG_LEVEL", "LOUD")
    with pytest.raises(ConfigError, match="AGENTIC_LOG_LEVEL='LOUD'"):
        configure_logging()


def test_default_level_hides_info_of_our_loggers() -> None:
    stream = io.StringIO()
    configure_logging(stream=stream)
    logging.getLogger("agentic_orchestration.test").info("hidden")
    logging.getLogger("agentic_orchestration.test").warning("shown")
    assert len(_lines(stream)) == 1 and "shown" in stream.getvalue()


def test_noisy_libraries_are_quiet_unless_debug() -> None:
    stream = io.StringIO()
    configure_logging(level="INFO", stream=stream)
    logging.getLogger("httpx").info("HTTP Request: POST /v1/chat")
    logging.getLogger("crewai.agent").info("crew chatter")
    logging.getLogger("crewai.llm").warning("approximate token count")
    logging.getLogger("LiteLLM").error("litellm error still shown")
    assert stream.getvalue().count("\n") == 1 and "litellm error" in stream.getvalue()

    stream = io.StringIO()
    configure_logging(level="DEBUG", stream=stream)
    logging.getLogger("httpx").info("HTTP Request: POST /v1/chat")
    assert "HTTP Request" in stream.getvalue()


def test_configuring_twice_keeps_one_handler() -> None:
    stream = io.StringIO()
    configure_logging(level="INFO", stream=io.StringIO())
    configure_logging(level="INFO", stream=stream)
    ours = [h for h in logging.getLogger().handlers if getattr(h, "_agentic_handler", False)]
    assert len(ours) == 1
    logging.getLogger("agentic_orchestration.t").info("once")
    assert len(_lines(stream)) == 1 and "once" in stream.getvalue()


def test_redact_secrets_walks_nested_values_and_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("A_SECRET", "abcdefgh")
    monkeypatch.setenv("DB_PASSWORD", "abcdefgh-longer")  # contains the other: longest first
    data = {"k": ["x abcdefgh-longer y", ("abcdefgh",)], "abcdefgh": 3, "n": None}
    assert redact_secrets(data) == {"k": ["x *** y", ("***",)], "***": 3, "n": None}
    assert redact_text("nothing here") == "nothing here"
    assert redact_text("abcdefg", environ={"X_TOKEN": "abcdefg"}) == "abcdefg"  # 7 chars


def test_importing_log_stays_cheap() -> None:
    code = ("import sys, agentic_orchestration.log as m; "
            "heavy = [n for n in ('pydantic', 'crewai', 'yaml') if n in sys.modules]; "
            "print(','.join(heavy))")
    repo = Path(__file__).resolve().parent.parent
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=repo, env={"PYTHONPATH": str(repo), "PATH": ""})
    assert out.stdout.strip() == ""
