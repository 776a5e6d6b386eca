"""The in-process CrewAI backend end to end, against scripted OpenAI-compatible servers."""

from __future__ import annotations

import re
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import write_catalog

from agentic_orchestration.catalogs import WorkflowConfig, load_catalog
from agentic_orchestration.errors import ConfigError, StepFailed
from agentic_orchestration.orchestration.backends.base import RunOptions
from agentic_orchestration.orchestration.backends.crewai import CrewAIExecutionBackend
from agentic_orchestration.orchestration.backends.factory import execution_backend_from_env
from agentic_orchestration.orchestration.step_context import PRIOR_OUTPUT_END, PRIOR_OUTPUT_START
from agentic_orchestration.providers.agent_providers import AgentProvider
from agentic_orchestration.testing import HTTPErrorReply, ScriptedLLMServer
from agentic_orchestration.testing.fake_llm import message_text

pytestmark = [
    pytest.mark.backend_inprocess,
    # `import crewai` trips an ImportWarning (crewai.rag's __setattr__ guard); harmless.
    pytest.mark.filterwarnings("ignore::ImportWarning"),
]

REPLIES = [("STEP-ONE", "alpha facts about bees"), ("STEP-TWO", "beta outline"),
           ("STEP-THREE", "gamma final text")]


def three_steps(agents: tuple[str, str, str] = ("fake_researcher", "fake_writer",
                                                "fake_researcher")) -> WorkflowConfig:
    return WorkflowConfig.model_validate({
        "name": "three", "topic": "honeybees",
        "steps": [
            {"agent_provider": agents[0],
             "description": 'STEP-ONE research {topic}; answer like {"k": 1} or {other}.'},
            {"agent_provider": agents[1], "description": "STEP-TWO outline {topic}."},
            {"agent_provider": agents[2], "description": "STEP-THREE write it."},
        ],
    })


def script(server: ScriptedLLMServer, replies: list[tuple[str, object]] = REPLIES) -> None:
    for pattern, reply in replies:
        server.add_rule(pattern, reply)


def progress_lines(out: str) -> list[str]:
    return [line for line in out.splitlines() if line.startswith("(progress)")]


@pytest.fixture
def backup_llm() -> Iterator[ScriptedLLMServer]:
    with ScriptedLLMServer() as server:
        yield server


@pytest.fixture
def two_provider_config(tmp_path: Path, scripted_llm: ScriptedLLMServer,
                        backup_llm: ScriptedLLMServer, monkeypatch: pytest.MonkeyPatch) -> Path:
    """``primary`` on ``scripted_llm``, ``backup`` (worse priority) on ``backup_llm``."""
    agents = textwrap.dedent(f"""\
        - id: primary
          type: openai
          model: fake-model
          openai_base_url: {scripted_llm.base_url}
          role: Researcher
          goal: Find facts.
          backstory: Careful.
          priority: 10
        - id: backup
          type: openai
          model: fake-model
          openai_base_url: {backup_llm.base_url}
          role: Backup persona
          goal: Stand in.
          backstory: Spare.
          priority: 20
        """)
    root = write_catalog(tmp_path / "config2", base_url=scripted_llm.base_url, agents=agents)
    monkeypatch.setenv("AGENTIC_CONFIG_DIR", str(root))
    return root


def run(config: WorkflowConfig, **option_kwargs: object):
    options = RunOptions(run_id="run-test", **option_kwargs)  # type: ignore[arg-type]
    return CrewAIExecutionBackend().execute_config(config, options=options,
                                                   catalog=load_catalog())


# -- the happy path ------------------------------------------------------------------------


def test_three_steps_each_result_holds_its_text(fake_config: Path,
                                                scripted_llm: ScriptedLLMServer) -> None:
    script(scripted_llm)
    result = run(three_steps())

    assert result.ok, result.error
    assert (result.exit_code, result.backend, result.run_id) == (0, "inprocess", "run-test")
    assert [r.step_id for r in result.step_results] == ["step_1", "step_2", "step_3"]
    assert [r.result_text for r in result.step_results] == [t for _, t in REPLIES]
    assert result.result_text == "gamma final text"
    assert [r.agent_provider_id for r in result.step_results] == [
        "fake_researcher", "fake_writer", "fake_researcher"]
    assert result.providers_tried == ["fake_researcher", "fake_writer"]
    assert all(r.exit_code == 0 and r.error is None for r in result.step_results)
    assert len(scripted_llm.requests) == 3
    # {topic} filled, other braces kept, the persona in the system prompt.
    first = scripted_llm.requests[0]["messages"]
    wanted = 'STEP-ONE research honeybees; answer like {"k": 1} or {other}.'
    assert wanted in message_text(first[-1])
    assert message_text(first[0]).startswith("You are Researcher.")


def test_timing_and_token_usage_per_step(fake_config: Path,
                                         scripted_llm: ScriptedLLMServer) -> None:
    script(scripted_llm)
    result = run(three_steps())
    assert result.ok
    for step, request, (_, reply) in zip(result.step_results, scripted_llm.requests, REPLIES,
                                         strict=True):
        # The fake counts words: the step's usage must be exactly its own request's.
        prompt = sum(len(message_text(m).split()) for m in request["messages"])
        assert step.usage is not None
        assert step.usage.prompt_tokens == prompt
        assert step.usage.completion_tokens == len(reply.split())
        assert step.usage.total_tokens == prompt + len(reply.split())
        assert step.timing is not None
        assert step.timing.started_at <= step.timing.finished_at
        assert 0 < step.timing.duration_seconds < 30
    starts = [r.timing.started_at for r in result.step_results]
    assert starts == sorted(starts)


def test_prior_output_injected_once_and_only_the_previous_one(
        fake_config: Path, scripted_llm: ScriptedLLMServer) -> None:
    script(scripted_llm)
    assert run(three_steps()).ok
    first, second, third = scripted_llm.user_texts()
    assert PRIOR_OUTPUT_START not in first
    assert second.count("alpha facts about bees") == 1
    block = second.split(PRIOR_OUTPUT_START, 1)[1].split(PRIOR_OUTPUT_END, 1)[0]
    assert block.strip() == "alpha facts about bees"
    # CrewAI's own context (all earlier outputs) is off: step 3 sees step 2 only.
    assert third.count("beta outline") == 1
    assert "alpha facts" not in third
    assert third.count(PRIOR_OUTPUT_START) == 1


def test_prior_output_bounded_by_setting(fake_config: Path, scripted_llm: ScriptedLLMServer,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENTIC_STEP_CONTEXT_CHARS", "40")
    long_reply = "HEADSTART " + "filler " * 300 + "TAILEND"
    script(scripted_llm, [("STEP-ONE", long_reply), *REPLIES[1:]])
    result = run(three_steps())
    assert result.ok
    assert result.step_results[0].result_text == long_reply  # the result itself is whole
    second = scripted_llm.user_texts()[1]
    block = second.split(PRIOR_OUTPUT_START, 1)[1].split(PRIOR_OUTPUT_END, 1)[0]
    assert "HEADSTART" in block
    assert "TAILEND" not in second
    assert "truncated" in block
    assert len(block.split("[... truncated")[0].strip()) <= 40


def test_execute_built_twice_never_injects_twice(fake_config: Path,
                                                 scripted_llm: ScriptedLLMServer) -> None:
    from agentic_orchestration.orchestration.runner import build_workflow

    script(scripted_llm)
    built = build_workflow(three_steps(), load_catalog())
    # Both providers talk to one endpoint: one LLM object (its client costs ~60 ms to build).
    assert built.agents[0].llm is built.agents[1].llm is built.agents[2].llm
    backend = CrewAIExecutionBackend()
    assert backend.execute_built(built, options=RunOptions()).ok
    assert backend.execute_built(built, options=RunOptions()).ok
    texts = scripted_llm.user_texts()
    assert len(texts) == 6
    assert texts[4].count(PRIOR_OUTPUT_START) == 1
    assert texts[3] == texts[0]


MCP_YAML = f"""\
- id: tokened
  stdio:
    command: {sys.executable}
    args: ["-c", "pass", "${{MCP_ARG}}"]
    env: {{TOKEN: "${{MCP_TOKEN}}"}}
"""


def test_step_mcps_reach_the_agent_expanded(tmp_path: Path, scripted_llm: ScriptedLLMServer,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    from crewai.mcp import MCPServerStdio

    from agentic_orchestration.orchestration.runner import build_workflow

    root = write_catalog(tmp_path / "cfg", base_url=scripted_llm.base_url, mcps=MCP_YAML)
    monkeypatch.setenv("MCP_TOKEN", "tok-s3cret")
    monkeypatch.setenv("MCP_ARG", "arg-value")
    config = WorkflowConfig.model_validate({"name": "m", "steps": [
        {"agent_provider": "fake_writer", "description": "d", "mcp_providers": ["tokened"]}]})
    built = build_workflow(config, load_catalog(root))
    [server] = built.agents[0].mcps
    assert isinstance(server, MCPServerStdio)
    assert server.env == {"TOKEN": "tok-s3cret"}
    assert server.args == ["-c", "pass", "arg-value"]
    # What may travel (spec dicts) keeps the reference, not the value.
    assert built.mcp_refs[0][0]["resolved"]["stdio"]["env"] == {"TOKEN": "${MCP_TOKEN}"}


def test_missing_mcp_variable_is_a_config_error(tmp_path: Path,
                                                scripted_llm: ScriptedLLMServer,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    root = write_catalog(tmp_path / "cfg", base_url=scripted_llm.base_url, mcps=MCP_YAML)
    config = WorkflowConfig.model_validate({"name": "m", "steps": [
        {"agent_provider": "fake_writer", "description": "d", "mcp_providers": ["tokened"]}]})
    with pytest.raises(ConfigError, match=r"'tokened'.*MCP_ARG"):
        CrewAIExecutionBackend().execute_config(config, options=RunOptions(run_id="r"),
                                                catalog=load_catalog(root))
    assert scripted_llm.requests == []
    # Checked before the run starts (as on the subprocess backend): no step, no progress.
    assert progress_lines(capsys.readouterr().out) == []


def test_provider_hooks_wrap_each_step(fake_config: Path, scripted_llm: ScriptedLLMServer,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    monkeypatch.setattr(AgentProvider, "before_task",
                        lambda self, step_id: calls.append(f"before {step_id} {self.id}"))
    monkeypatch.setattr(AgentProvider, "after_task",
                        lambda self, step_id: calls.append(f"after {step_id}"))
    script(scripted_llm)
    assert run(three_steps()).ok
    assert calls == ["before step_1 fake_researcher", "after step_1",
                     "before step_2 fake_writer", "after step_2",
                     "before step_3 fake_researcher", "after step_3"]


def test_factory_gives_this_backend() -> None:
    backend = execution_backend_from_env()
    assert isinstance(backend, CrewAIExecutionBackend)
    assert backend.name == "inprocess"


# -- progress ------------------------------------------------------------------------------


def test_progress_lines_in_order(fake_config: Path, scripted_llm: ScriptedLLMServer,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    script(scripted_llm)
    assert run(three_steps()).ok
    out = capsys.readouterr().out
    lines = progress_lines(out)
    expected = [
        r"run run-test started: 3 steps \[inprocess\]",
        r"step 1/3 step_1 started \[agent fake_researcher\]",
        r"step 1/3 step_1 finished in \d+\.\d\ds",
        r"step 2/3 step_2 started \[agent fake_writer\]",
        r"step 2/3 step_2 finished in \d+\.\d\ds",
        r"step 3/3 step_3 started \[agent fake_researcher\]",
        r"step 3/3 step_3 finished in \d+\.\d\ds",
        r"run run-test finished: ok",
    ]
    assert len(lines) == len(expected), lines
    for line, pattern in zip(lines, expected, strict=True):
        assert re.fullmatch(r"\(progress\) " + pattern, line), line
    # stdout carries nothing but progress lines (the web UI reads it).
    assert [line for line in out.splitlines() if line.strip()] == lines


@pytest.mark.parametrize("how", ["env", "options"])
def test_progress_can_be_silenced(how: str, fake_config: Path, scripted_llm: ScriptedLLMServer,
                                  capsys: pytest.CaptureFixture[str],
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    script(scripted_llm)
    if how == "env":
        monkeypatch.setenv("AGENTIC_PROGRESS", "0")
        result = run(three_steps())
    else:
        result = run(three_steps(), emit_progress_lines=False)
    assert result.ok
    assert "(progress)" not in capsys.readouterr().out


# -- failures and fallback -----------------------------------------------------------------

PRIMARY_ONLY = ("primary", "primary", "primary")


def test_http_500_falls_back_to_next_provider(
        two_provider_config: Path, scripted_llm: ScriptedLLMServer,
        backup_llm: ScriptedLLMServer, capsys: pytest.CaptureFixture[str]) -> None:
    script(scripted_llm, [("STEP-TWO", HTTPErrorReply(500, "primary is down")),
                          REPLIES[0], REPLIES[2]])
    script(backup_llm, REPLIES[1:])
    sink: list[str] = []
    result = run(three_steps(PRIMARY_ONLY), execution_error_sink=sink)

    assert result.ok, result.error
    assert result.providers_tried == ["primary", "backup"]
    assert [r.step_id for r in result.step_results] == ["step_1", "step_2", "step_3"]
    assert [r.agent_provider_id for r in result.step_results] == ["primary", "backup", "backup"]
    assert [r.result_text for r in result.step_results] == [t for _, t in REPLIES]
    # Step 1 is not run again; the resumed step 2 still gets step 1's output.
    assert [t.split()[2] for t in scripted_llm.user_texts()] == ["STEP-ONE", "STEP-TWO"]
    backup_texts = backup_llm.user_texts()
    assert len(backup_texts) == 2
    assert backup_texts[0].count("alpha facts about bees") == 1
    # The persona is kept on the fallback provider's LLM.
    system = message_text(backup_llm.requests[0]["messages"][0])
    assert system.startswith("You are Researcher.")
    assert len(sink) == 1 and "step_2" in sink[0] and "500" in sink[0]

    lines = progress_lines(capsys.readouterr().out)
    assert any(re.fullmatch(r"\(progress\) step 2/3 step_2 failed: InternalServerError.*500.*",
                            line) for line in lines), lines
    fallback = lines.index("(progress) fallback: retrying on backup from step 2/3 step_2")
    assert lines[fallback + 1] == "(progress) step 2/3 step_2 started [agent backup]"
    assert [line for line in lines if "run run-test finished" in line] == [
        "(progress) run run-test finished: ok"]
    assert lines[-1] == "(progress) run run-test finished: ok"


def test_fallback_off_reports_the_failed_step(
        two_provider_config: Path, scripted_llm: ScriptedLLMServer,
        backup_llm: ScriptedLLMServer, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("AGENTIC_FALLBACK", "0")
    script(scripted_llm, [("STEP-TWO", HTTPErrorReply(500, "primary is down")), REPLIES[0]])
    result = run(three_steps(PRIMARY_ONLY))

    assert result.exit_code == 1
    assert result.result_text is None
    assert isinstance(result.error, StepFailed)
    assert result.error.step_id == "step_2" and result.error.recoverable
    assert "primary is down" in str(result.error)
    assert [(r.step_id, r.exit_code) for r in result.step_results] == [("step_1", 0),
                                                                       ("step_2", 1)]
    failed = result.step_results[1]
    assert failed.recoverable and failed.recovery_hint == "provider_fallback"
    assert "InternalServerError" in (failed.error or "")
    assert failed.timing is not None
    assert result.providers_tried == ["primary"]
    assert backup_llm.requests == []
    assert len(scripted_llm.requests) == 2  # no CrewAI-level retry of the failed task
    lines = progress_lines(capsys.readouterr().out)
    assert not any("fallback" in line for line in lines)
    assert lines[-1] == "(progress) run run-test finished: failed"


def test_http_401_is_not_recoverable(two_provider_config: Path,
                                     scripted_llm: ScriptedLLMServer,
                                     backup_llm: ScriptedLLMServer) -> None:
    script(scripted_llm, [("STEP-ONE", HTTPErrorReply(401, "bad key"))])
    script(backup_llm, REPLIES)
    result = run(three_steps(PRIMARY_ONLY))
    assert result.exit_code == 1
    assert [(r.step_id, r.recoverable) for r in result.step_results] == [("step_1", False)]
    assert "AuthenticationError" in (result.step_results[0].error or "")
    assert isinstance(result.error, StepFailed) and not result.error.recoverable
    assert backup_llm.requests == []


def test_connection_refused_falls_back(tmp_path: Path,
                                       backup_llm: ScriptedLLMServer,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    dead = ScriptedLLMServer()
    dead_url = dead.base_url
    dead.server_close()  # nothing listens on this port any more
    agents = textwrap.dedent(f"""\
        - {{id: primary, type: openai, model: m1, openai_base_url: "{dead_url}",
           role: Researcher, goal: g, backstory: b, priority: 1}}
        - {{id: backup, type: openai, model: m2, openai_base_url: "{backup_llm.base_url}",
           role: Other, goal: g, backstory: b, priority: 2}}
        """)
    root = write_catalog(tmp_path / "c3", base_url=dead_url, agents=agents)
    monkeypatch.setenv("AGENTIC_CONFIG_DIR", str(root))
    script(backup_llm)
    result = run(three_steps(PRIMARY_ONLY))
    assert result.ok, result.error
    assert result.providers_tried == ["primary", "backup"]
    assert [r.agent_provider_id for r in result.step_results] == ["backup"] * 3
    assert len(backup_llm.requests) == 3


def test_blank_answer_is_recoverable(two_provider_config: Path, scripted_llm: ScriptedLLMServer,
                                     backup_llm: ScriptedLLMServer) -> None:
    script(scripted_llm, [("STEP-ONE", "   "), *REPLIES[1:]])
    script(backup_llm, REPLIES)
    result = run(three_steps(PRIMARY_ONLY))
    assert result.ok, result.error
    assert result.step_results[0].agent_provider_id == "backup"
    assert result.providers_tried == ["primary", "backup"]


def test_blank_answer_without_fallback_fails_the_step(
        fake_config: Path, scripted_llm: ScriptedLLMServer,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENTIC_FALLBACK", "0")
    script(scripted_llm, [("STEP-ONE", "")])
    result = run(three_steps())
    assert result.exit_code == 1
    [failed] = result.step_results
    assert failed.step_id == "step_1" and failed.recoverable
    assert len(scripted_llm.requests) == 1


def test_tty_mode_shows_live_status_on_stderr_not_lines(
        capsys: pytest.CaptureFixture[str]) -> None:
    from agentic_orchestration.orchestration.progress import ProgressReporter

    reporter = ProgressReporter(RunOptions(run_id="r1"), live=True)
    reporter.run_started("r1", 2, "inprocess")
    reporter.step_started(0, "step_1", "p")
    reporter.step_finished(0, "step_1", 1.5)
    reporter.step_started(1, "step_2", "p")
    reporter.step_failed(1, "step_2", "Boom:\n  line two")
    reporter.run_finished("r1", False)
    captured = capsys.readouterr()
    assert "(progress)" not in captured.out
    assert "done step 1/2 step_1 in 1.50s" in captured.err
    assert "failed step 2/2 step_2: Boom: line two" in captured.err
    # The lines are still kept for callers, one per event, errors on one line.
    assert reporter.lines[-2] == "(progress) step 2/2 step_2 failed: Boom: line two"
