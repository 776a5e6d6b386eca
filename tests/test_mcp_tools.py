"""MCP tools for real: stdio and streamable HTTP servers attached to steps, on both backends.

Every server here is real and started by the test: mcp-server-fetch (PyPI) and the MCP SDK
servers of ``agentic_orchestration.testing.mcp_servers`` (working, hanging, crashing,
stalling). The scripted LLM answers with OpenAI tool calls, picking the tool by the name
CrewAI actually sent, then echoes the tool result it was given into the final answer: so
each test proves the call happened, what the server received, and that the result reached
the step's output. Each hotfix test fails without its fix (see ``mcp.crewai_hotfix``).
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import write_catalog
from step_helpers import step_spec_dict

from agentic_orchestration.catalogs import WorkflowConfig, load_catalog
from agentic_orchestration.catalogs.filters import find_stdio_command
from agentic_orchestration.errors import ConfigError, MCPServerError
from agentic_orchestration.mcp.resolution import (
    check_stdio_command,
    crewai_mcps_for,
    resolve_workflow_mcp_refs,
)
from agentic_orchestration.orchestration.backends.base import RunOptions, StepSpec
from agentic_orchestration.testing import (
    RECORD_FILE_ENV,
    ScriptedLLMServer,
    StreamableHTTPMCPServer,
    ToolCallReply,
    read_records,
    secret_answer,
    stdio_server_command,
)
from agentic_orchestration.testing.fake_llm import message_text

REPO = Path(__file__).resolve().parent.parent
TOOL_NAME_RULE = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
FETCH = Path(sys.executable).parent / "mcp-server-fetch"
WORKERS = {"AGENTIC_EXECUTION_BACKEND": "subprocess", "AGENTIC_SUBPROCESS_WORKERS": "1"}

# `import crewai` trips an ImportWarning (crewai.rag's __setattr__ guard); harmless.
pytestmark = pytest.mark.filterwarnings("ignore::ImportWarning")


# --- helpers ------------------------------------------------------------------------------

def tool_names(request: dict[str, Any]) -> list[str]:
    return [tool["function"]["name"] for tool in request.get("tools") or []]


def call_then_echo(suffix: str, arguments: dict[str, Any],
                   seen: list[list[str]] | None = None) -> Callable[[dict[str, Any]], Any]:
    """A scripted reply: call the tool whose sent name ends with ``suffix``, then echo.

    First request of a step: an OpenAI tool call to that tool (found in ``request["tools"]``,
    so the test never guesses CrewAI's naming). Once the request carries the tool's result,
    the final answer is ``TOOL SAID: <result>``.
    """
    def reply(request: dict[str, Any]) -> Any:
        results = [m for m in request.get("messages", []) if m.get("role") == "tool"]
        if results:
            return "TOOL SAID: " + message_text(results[-1])
        names = tool_names(request)
        if seen is not None:
            seen.append(names)
        matches = [name for name in names if name.endswith(suffix)]
        assert len(matches) == 1, f"want one tool ending {suffix!r}, LLM got {names}"
        return ToolCallReply(matches[0], arguments)

    return reply


def stdio_yaml(mcp_id: str, mode: str = "echo", *, record: Path | None = None,
               command: str | None = None) -> str:
    cmd, args = stdio_server_command(mode)
    env = {RECORD_FILE_ENV: str(record)} if record else {}
    return textwrap.dedent(f"""\
        - id: {mcp_id}
          stdio:
            command: {json.dumps(command or cmd)}
            args: {json.dumps(args)}
            env: {json.dumps(env)}
        """)


def http_yaml(mcp_id: str, url: str) -> str:
    return f"- id: {mcp_id}\n  streamable_http: {{url: {json.dumps(url)}}}\n"


def fetch_yaml(mcp_id: str = "fetch_url") -> str:
    assert FETCH.is_file(), ("mcp-server-fetch is not installed in the venv: run "
                             "./scripts/install.sh (extra `mcp-servers`)")
    # Its default refuses loopback addresses; the test page is on 127.0.0.1.
    return (f"- id: {mcp_id}\n  stdio: {{command: {json.dumps(str(FETCH))}, "
            f"args: [--allow-private-ips]}}\n")


def one_step(mcps: list[str], description: str = "STEP-A use your tool") -> WorkflowConfig:
    return WorkflowConfig.model_validate({"name": "mcp", "topic": "tea", "steps": [
        {"id": "step_a", "agent_provider": "fake_researcher", "mcp_providers": mcps,
         "description": description}]})


def run_inprocess(config: WorkflowConfig, catalog: Any) -> Any:
    from agentic_orchestration.orchestration.backends.crewai import CrewAIExecutionBackend

    options = RunOptions(run_id="r", emit_progress_lines=False, emit_stdout_summary=False,
                         log_terminal_execution_failure=False)
    return CrewAIExecutionBackend(live_progress=False).execute_config(
        config, options=options, catalog=catalog)


@pytest.fixture
def http_mcp(tmp_path: Path) -> Iterator[StreamableHTTPMCPServer]:
    with StreamableHTTPMCPServer(record_file=tmp_path / "http-calls.jsonl") as server:
        yield server


@pytest.fixture
def short_timeouts(monkeypatch: pytest.MonkeyPatch) -> tuple[float, float]:
    # Connecting starts a Python MCP server: on a loaded 2-core machine that alone can take
    # over 2 s, so the connect limit leaves room; the call limit stays short.
    monkeypatch.setenv("AGENTIC_MCP_CONNECT_TIMEOUT_SECONDS", "8")
    monkeypatch.setenv("AGENTIC_MCP_CALL_TIMEOUT_SECONDS", "2")
    return 8.0, 2.0


# --- names, settings, attach-time checks (no LLM) ----------------------------------------

def test_mcp_sdk_stays_below_2_with_fetch_installed() -> None:
    """CrewAI 1.x needs mcp<2; a newer mcp-server-fetch would have upgraded it silently."""
    from importlib.metadata import version

    assert int(version("mcp").split(".")[0]) < 2
    assert version("mcp-server-fetch") == "2026.10.10"  # the pin in pyproject's extra


def test_tool_name_is_valid_readable_and_unique() -> None:
    from agentic_orchestration.mcp.crewai_hotfix import mcp_tool_name

    assert mcp_tool_name("fetch_url", "fetch") == "fetch_url_fetch"
    assert mcp_tool_name("Files-Local", "readFile") == "files_local_read_file"
    assert mcp_tool_name("9lives", "get") == "mcp_9lives_get"
    long_id = "a" * 64
    names = set()
    for tool in ("secret_word", "secret_word", "x" * 80):
        name = mcp_tool_name(long_id, tool, names)
        assert TOOL_NAME_RULE.match(name), name
        names.add(name)
    assert len(names) == 3
    assert any(name.endswith("_secret_word") for name in names)  # tool part kept readable
    taken = {"srv_add"}
    assert mcp_tool_name("srv", "add", taken) not in taken


def test_crewai_still_needs_the_hotfix() -> None:
    """Fails when CrewAI fixes these itself (then drop the matching fix)."""
    import inspect

    from crewai.mcp import MCPServerStdio
    from crewai.mcp.client import MCPClient
    from crewai.mcp.tool_resolver import MCPToolResolver
    from crewai.utilities.string_utils import sanitize_tool_name

    from agentic_orchestration.mcp.crewai_hotfix import apply_crewai_mcp_hotfix

    apply_crewai_mcp_hotfix()
    defaults = inspect.signature(inspect.unwrap(MCPClient.__init__)).parameters
    assert (defaults["connect_timeout"].default, defaults["execution_timeout"].default,
            defaults["max_retries"].default) == (30, 30, 3)
    command = "/opt/some/fairly/long/install/prefix/bin/python"
    _, server_name = MCPToolResolver._create_transport(
        MCPServerStdio(command=command, args=["/srv/mcp/servers/secret_server.py"]))
    assert "secret_word" not in sanitize_tool_name(f"{server_name}_secret_word")


def test_timeouts_come_from_env_and_are_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    from agentic_orchestration.mcp.crewai_hotfix import (
        apply_crewai_mcp_hotfix,
        mcp_timeouts,
    )

    apply_crewai_mcp_hotfix()
    assert apply_crewai_mcp_hotfix() is False  # idempotent
    assert (mcp_timeouts().connect, mcp_timeouts().call) == (30.0, 60.0)
    monkeypatch.setenv("AGENTIC_MCP_CONNECT_TIMEOUT_SECONDS", "4.5")
    monkeypatch.setenv("AGENTIC_MCP_CALL_TIMEOUT_SECONDS", "7")
    assert (mcp_timeouts().connect, mcp_timeouts().call) == (4.5, 7.0)
    monkeypatch.setenv("AGENTIC_MCP_CALL_TIMEOUT_SECONDS", "soon")
    with pytest.raises(ConfigError, match="AGENTIC_MCP_CALL_TIMEOUT_SECONDS"):
        mcp_timeouts()
    monkeypatch.setenv("AGENTIC_MCP_CALL_TIMEOUT_SECONDS", "0")
    with pytest.raises(ConfigError, match="at least"):
        mcp_timeouts()


def test_missing_stdio_command_names_the_mcp(tmp_path: Path) -> None:
    with pytest.raises(MCPServerError, match=r"MCP server 'ghost': .*'no-such-mcp-server'"):
        check_stdio_command("ghost", {"stdio": {"command": "no-such-mcp-server"}})
    tool = tmp_path / "bin" / "my-mcp"
    tool.parent.mkdir()
    tool.write_text("#!/bin/sh\n")
    tool.chmod(0o755)
    assert check_stdio_command("found", {"stdio": {
        "command": "my-mcp", "env": {"PATH": str(tool.parent)}}}) == str(tool)
    assert check_stdio_command("http", {"streamable_http": {"url": "http://x:9/mcp"}}) is None
    # A console script of this venv is found even when the venv is not on PATH...
    assert find_stdio_command("mcp-server-fetch", {"PATH": str(tmp_path)}) == str(FETCH)
    # ...and that path is what the server is started with.
    [config] = crewai_mcps_for([{"id": "fetch_url", "resolved": {"stdio": {
        "command": "mcp-server-fetch", "args": [], "env": {}}}}], {"PATH": str(tmp_path)})
    assert config.command == str(FETCH)


def test_configs_carry_their_id_and_errors_hide_expanded_secrets(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from agentic_orchestration.mcp.crewai_hotfix import (
        AgenticMCPServerHTTP,
        _describe,
    )

    monkeypatch.setenv("HIDDEN_TOKEN", "tok-very-secret")
    refs = [{"id": "search_x", "resolved": {"streamable_http": {
        "url": "http://127.0.0.1:9/mcp?key=${HIDDEN_TOKEN}", "headers": {}}}}]
    [config] = crewai_mcps_for(refs)
    assert isinstance(config, AgenticMCPServerHTTP)
    assert config.mcp_id == "search_x" and config.url.endswith("key=tok-very-secret")
    assert config.redact == ["tok-very-secret"]
    # httpx puts the URL in its messages; the error we raise must not carry the key.
    try:
        raise ConnectionError("Operation failed") from OSError(f"refused: {config.url}")
    except ConnectionError as exc:
        text = _describe(exc, config, during_call=True)
    assert "tok-very-secret" not in text and "key=***" in text


# --- in-process backend -------------------------------------------------------------------

@pytest.mark.backend_inprocess
def test_stdio_tool_called_and_result_reaches_output(tmp_path: Path,
                                                     scripted_llm: ScriptedLLMServer) -> None:
    record = tmp_path / "calls.jsonl"
    root = write_catalog(tmp_path / "cfg", base_url=scripted_llm.base_url,
                         mcps=stdio_yaml("secrets_local", record=record))
    seen: list[list[str]] = []
    scripted_llm.default = call_then_echo("_secret_word", {"topic": "tea"}, seen)
    result = run_inprocess(one_step(["secrets_local"]), load_catalog(root))
    assert result.ok, result.error
    assert seen == [["secrets_local_secret_word", "secrets_local_add", "secrets_local_refuse"]]
    assert [r["arguments"] for r in read_records(record)] == [{"topic": "tea"}]
    assert result.result_text == "TOOL SAID: " + secret_answer("tea")


def mcp_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("mcp-")]


@pytest.mark.backend_inprocess
def test_one_server_process_per_step_for_all_its_calls(tmp_path: Path,
                                                       scripted_llm: ScriptedLLMServer) -> None:
    """CrewAI alone starts a new server for every call (a stateful server forgets)."""
    record = tmp_path / "calls.jsonl"
    root = write_catalog(tmp_path / "cfg", base_url=scripted_llm.base_url,
                         mcps=stdio_yaml("secrets_local", record=record))

    def two_calls(request: dict[str, Any]) -> Any:
        results = [m for m in request.get("messages", []) if m.get("role") == "tool"]
        if not results:
            return ToolCallReply("secrets_local_secret_word", {"topic": "tea"})
        if len(results) == 1:
            return ToolCallReply("secrets_local_add", {"a": 1, "b": 2})
        return "BOTH: " + " | ".join(message_text(m) for m in results)

    scripted_llm.default = two_calls
    result = run_inprocess(one_step(["secrets_local"]), load_catalog(root))
    assert result.ok, result.error
    assert result.result_text == f"BOTH: {secret_answer('tea')} | 3"
    records = read_records(record)
    assert [r["tool"] for r in records] == ["secret_word", "add"]
    assert records[0]["pid"] == records[1]["pid"]
    assert mcp_threads() == []  # the session closed with the task


@pytest.mark.backend_inprocess
def test_sessions_close_when_the_step_fails_after_discovery(
        tmp_path: Path, scripted_llm: ScriptedLLMServer) -> None:
    from agentic_orchestration.testing import HTTPErrorReply

    root = write_catalog(tmp_path / "cfg", base_url=scripted_llm.base_url,
                         mcps=stdio_yaml("secrets_local"))
    scripted_llm.default = HTTPErrorReply(401, "bad key")  # not recoverable: no fallback
    result = run_inprocess(one_step(["secrets_local"]), load_catalog(root))
    assert not result.ok and "401" in result.step_results[0].error
    assert mcp_threads() == []


@pytest.mark.backend_inprocess
def test_fetch_url_fetches_a_local_page(tmp_path: Path, scripted_llm: ScriptedLLMServer,
                                        web_page: str) -> None:
    root = write_catalog(tmp_path / "cfg", base_url=scripted_llm.base_url, mcps=fetch_yaml())
    seen: list[list[str]] = []
    scripted_llm.default = call_then_echo("_fetch", {"url": web_page}, seen)
    result = run_inprocess(one_step(["fetch_url"]), load_catalog(root))
    assert result.ok, result.error
    assert seen == [["fetch_url_fetch"]]
    assert "oolong-lighthouse-73" in result.result_text
    assert "Brewing notes" in result.result_text  # the page, as markdown, via the LLM


@pytest.mark.backend_inprocess
def test_streamable_http_tool_called_and_result_reaches_output(
        tmp_path: Path, scripted_llm: ScriptedLLMServer,
        http_mcp: StreamableHTTPMCPServer) -> None:
    root = write_catalog(tmp_path / "cfg", base_url=scripted_llm.base_url,
                         mcps=http_yaml("secrets_http", http_mcp.url))
    scripted_llm.default = call_then_echo("_add", {"a": 20, "b": 22})
    result = run_inprocess(one_step(["secrets_http"]), load_catalog(root))
    assert result.ok, result.error
    assert [c["arguments"] for c in http_mcp.calls] == [{"a": 20, "b": 22}]
    assert result.result_text == "TOOL SAID: 42"


@pytest.mark.backend_inprocess
def test_tool_names_valid_and_unique_with_long_path_and_shared_tool_names(
        tmp_path: Path, scripted_llm: ScriptedLLMServer,
        http_mcp: StreamableHTTPMCPServer) -> None:
    """Three servers with the same three tools; one behind a 100+ character command path."""
    deep = tmp_path.joinpath(*["a-rather-long-directory-name"] * 3, "bin")
    deep.mkdir(parents=True)
    launcher = deep / "start-the-secret-word-mcp-server"
    cmd, args = stdio_server_command("echo")
    launcher.write_text(f"#!/bin/sh\nexec {cmd} {' '.join(args)}\n")
    launcher.chmod(0o755)
    assert len(str(launcher)) > 100
    record_a, record_b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    long_id = "long_" + "x" * 59  # 64 characters: the longest id the catalog accepts
    root = write_catalog(tmp_path / "cfg", base_url=scripted_llm.base_url, mcps=(
        stdio_yaml("alpha", record=record_a, command=str(launcher))
        + stdio_yaml("beta", record=record_b) + http_yaml(long_id, http_mcp.url)))
    seen: list[list[str]] = []
    scripted_llm.default = call_then_echo("beta_secret_word", {"topic": "green tea"}, seen)
    result = run_inprocess(one_step(["alpha", "beta", long_id]), load_catalog(root))
    assert result.ok, result.error
    [names] = seen
    assert len(names) == 9 and len(set(names)) == 9, names
    assert all(TOOL_NAME_RULE.match(name) for name in names), names
    assert {n for n in names if n.startswith(("alpha_", "beta_"))} == {
        f"{server}_{tool}" for server in ("alpha", "beta")
        for tool in ("secret_word", "add", "refuse")}
    assert sum(name.endswith("_secret_word") for name in names) == 3
    # The call went to the server the name says, and only there.
    assert read_records(record_a) == [] and http_mcp.calls == []
    assert [r["arguments"] for r in read_records(record_b)] == [{"topic": "green tea"}]
    assert result.result_text == "TOOL SAID: " + secret_answer("green tea")


@pytest.mark.backend_inprocess
def test_tool_level_error_goes_to_the_llm_not_fatal(tmp_path: Path,
                                                    scripted_llm: ScriptedLLMServer) -> None:
    """A healthy server's ``isError`` answer is the LLM's to handle: the step goes on."""
    root = write_catalog(tmp_path / "cfg", base_url=scripted_llm.base_url,
                         mcps=stdio_yaml("picky"))
    scripted_llm.default = call_then_echo("_refuse", {"reason": "too hot"})
    result = run_inprocess(one_step(["picky"]), load_catalog(root))
    assert result.ok, result.error
    assert "refused: too hot" in result.result_text


@pytest.mark.backend_inprocess
def test_missing_command_fails_before_any_llm_call(tmp_path: Path,
                                                   scripted_llm: ScriptedLLMServer) -> None:
    """The catalog would drop the entry; a spec or hand-made catalog must not get that far."""
    from agentic_orchestration.catalogs.catalog import Catalog

    root = write_catalog(tmp_path / "cfg", base_url=scripted_llm.base_url,
                         mcps=stdio_yaml("ghost", command="/nonexistent/bin/ghost-mcp"))
    loaded = load_catalog(root)
    assert "ghost" in loaded.mcp_exclusions  # what --list-mcps shows
    catalog = Catalog(agents=loaded.agents, mcps=loaded.mcps)
    with pytest.raises(MCPServerError, match=r"MCP server 'ghost': .*ghost-mcp"):
        run_inprocess(one_step(["ghost"]), catalog)
    assert scripted_llm.requests == []


@pytest.mark.backend_inprocess
@pytest.mark.parametrize("mode, limit, words", [
    ("hang", "AGENTIC_MCP_CONNECT_TIMEOUT_SECONDS", "could not start, connect or list tools"),
    ("crash", None, "closed the connection"),
    ("stall", "AGENTIC_MCP_CALL_TIMEOUT_SECONDS", "tool 'secret_word' failed"),
])
def test_misbehaving_stdio_server_fails_the_step_naming_it(
        tmp_path: Path, scripted_llm: ScriptedLLMServer, short_timeouts: tuple[float, float],
        mode: str, limit: str | None, words: str) -> None:
    root = write_catalog(tmp_path / "cfg", base_url=scripted_llm.base_url,
                         mcps=stdio_yaml(f"{mode}_srv", mode))
    scripted_llm.default = call_then_echo("_secret_word", {"topic": "tea"})
    began = time.monotonic()
    result = run_inprocess(one_step([f"{mode}_srv"]), load_catalog(root))
    waited = time.monotonic() - began
    assert not result.ok
    [step] = result.step_results
    assert f"MCP server '{mode}_srv'" in step.error and words in step.error, step.error
    if limit:
        assert limit in step.error
    assert not step.recoverable  # another LLM provider would meet the same server
    # Never the LLM's answer: no request at all (hang) or only the one asking for the tool.
    assert len(scripted_llm.requests) == (0 if mode == "hang" else 1)
    budget = sum(short_timeouts)  # a call opens a fresh connection, then calls
    assert waited < budget + 4, f"waited {waited:.1f}s (CrewAI alone: 30-93 s)"


@pytest.mark.backend_inprocess
def test_http_server_not_answering_or_not_there_fails_the_step(
        tmp_path: Path, scripted_llm: ScriptedLLMServer,
        short_timeouts: tuple[float, float]) -> None:
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen()  # accepts connections, never answers
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    closed_port = closed.getsockname()[1]
    closed.close()  # nothing listens here
    try:
        for mcp_id, url in (("silent_http", f"http://127.0.0.1:{silent.getsockname()[1]}/mcp"),
                            ("absent_http", f"http://127.0.0.1:{closed_port}/mcp")):
            root = write_catalog(tmp_path / mcp_id, base_url=scripted_llm.base_url,
                                 mcps=http_yaml(mcp_id, url))
            began = time.monotonic()
            result = run_inprocess(one_step([mcp_id]), load_catalog(root))
            assert time.monotonic() - began < short_timeouts[0] + 8  # bounded, not hung
            [step] = result.step_results
            assert not result.ok and f"MCP server '{mcp_id}'" in step.error, step.error
            assert "stderr" not in step.error  # an HTTP server has none to look at
            if mcp_id == "absent_http":
                assert "nothing accepted the connection at its URL" in step.error, step.error
    finally:
        silent.close()
    assert scripted_llm.requests == []


# --- subprocess backend (real coordinator and worker processes) ---------------------------

def main_py(args: list[str], env: dict[str, str], timeout: float = 240
            ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(REPO / "main.py"), *args], capture_output=True,
                          text=True, timeout=timeout, env={**os.environ, **env}, check=False)


@pytest.mark.backend_subprocess
def test_stdio_http_and_fetch_tools_on_the_subprocess_backend(
        tmp_path: Path, scripted_llm: ScriptedLLMServer, http_mcp: StreamableHTTPMCPServer,
        web_page: str, monkeypatch: pytest.MonkeyPatch) -> None:
    record = tmp_path / "stdio-calls.jsonl"
    root = write_catalog(tmp_path / "cfg", base_url=scripted_llm.base_url, mcps=(
        stdio_yaml("secrets_local", record=record) + http_yaml("secrets_http", http_mcp.url)
        + fetch_yaml()))
    flow = tmp_path / "flow.yaml"
    flow.write_text(textwrap.dedent("""\
        steps:
          - {id: ask_stdio, agent_provider: fake_researcher, mcp_providers: [secrets_local],
             description: "STEP-STDIO secret word for {topic}"}
          - {id: ask_http, agent_provider: fake_researcher, mcp_providers: [secrets_http],
             description: "STEP-HTTP add numbers"}
          - {id: fetch, agent_provider: fake_writer, mcp_providers: [fetch_url],
             description: "STEP-FETCH read the page"}
        """))
    # Later prompts carry earlier outputs: match the later steps' markers first.
    scripted_llm.add_rule("STEP-FETCH", call_then_echo("_fetch", {"url": web_page}))
    scripted_llm.add_rule("STEP-HTTP", call_then_echo("_add", {"a": 2, "b": 40}))
    scripted_llm.add_rule("STEP-STDIO", call_then_echo("_secret_word", {"topic": "tea"}))
    store = tmp_path / "store"
    proc = main_py(["--workflow", str(flow), "tea"], {
        **WORKERS, "AGENTIC_CONFIG_DIR": str(root), "AGENTIC_RUN_STORE_PATH": str(store)})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert [r["arguments"] for r in read_records(record)] == [{"topic": "tea"}]
    assert [c["arguments"] for c in http_mcp.calls] == [{"a": 2, "b": 40}]
    results = {p.parent.name: json.loads(p.read_text())
               for p in store.glob("*/*/result.json")}
    assert results["ask_stdio"]["result_text"] == "TOOL SAID: " + secret_answer("tea")
    assert results["ask_http"]["result_text"] == "TOOL SAID: 42"
    assert "oolong-lighthouse-73" in results["fetch"]["result_text"]
    assert "oolong-lighthouse-73" in proc.stdout  # the final answer
    # The spec carried the entry, not a server object; the worker rebuilt and attached it.
    spec = json.loads(next(store.glob("*/ask_http-spec.json")).read_text())
    assert spec["mcp_providers"] == [{"id": "secrets_http", "resolved": {
        "streamable_http": {"url": http_mcp.url, "headers": {}}}}]


@pytest.mark.backend_subprocess
@pytest.mark.parametrize("mode, words", [("hang", "AGENTIC_MCP_CONNECT_TIMEOUT_SECONDS"),
                                         ("crash", "closed the connection")])
def test_misbehaving_server_fails_the_step_on_the_subprocess_backend(
        tmp_path: Path, scripted_llm: ScriptedLLMServer, mode: str, words: str) -> None:
    root = write_catalog(tmp_path / "cfg", base_url=scripted_llm.base_url,
                         mcps=stdio_yaml(f"{mode}_srv", mode))
    flow = tmp_path / "flow.yaml"
    flow.write_text(f"steps:\n  - {{id: only, agent_provider: fake_researcher, "
                    f"mcp_providers: [{mode}_srv], description: use the tool}}\n")
    scripted_llm.default = call_then_echo("_secret_word", {"topic": "tea"})
    store = tmp_path / "store"
    proc = main_py(["--workflow", str(flow), "tea"], {
        **WORKERS, "AGENTIC_CONFIG_DIR": str(root), "AGENTIC_RUN_STORE_PATH": str(store),
        "AGENTIC_MCP_CONNECT_TIMEOUT_SECONDS": "8", "AGENTIC_MCP_CALL_TIMEOUT_SECONDS": "2"})
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert f"failed: ToolExecutionFailedError: MCP server '{mode}_srv'" in proc.stdout or (
        f"failed: MCPServerError: MCP server '{mode}_srv'" in proc.stdout), proc.stdout
    [result_path] = store.glob("*/only/result.json")
    result = json.loads(result_path.read_text())
    assert f"MCP server '{mode}_srv'" in result["error"] and words in result["error"]
    assert result["recoverable"] is False
    assert len(list(result_path.parent.glob("attempts/*.json"))) == 1  # not retried
    assert len(scripted_llm.requests) == (0 if mode == "hang" else 1)


@pytest.mark.backend_subprocess
def test_worker_with_missing_command_fails_before_any_llm_call(
        tmp_path: Path, scripted_llm: ScriptedLLMServer) -> None:
    from agentic_orchestration.catalogs.models import MCPProviderEntry
    from agentic_orchestration.orchestration.execute_step import run_step

    [ref] = resolve_workflow_mcp_refs([MCPProviderEntry.model_validate(
        {"id": "ghost", "stdio": {"command": "ghost-mcp-not-installed"}})])
    spec = StepSpec.model_validate(step_spec_dict(
        "run-1", "step_1", description="use the tool", run_store=tmp_path / "store",
        artifacts_dir=tmp_path / "a", mcp_providers=[ref], inputs={},
        agent={"id": "fake", "type": "openai", "model": "fake-model",
               "openai_base_url": scripted_llm.base_url, "role": "R", "goal": "G",
               "backstory": "B"}))
    result = run_step(spec)
    assert result.exit_code == 1 and result.recoverable is False
    assert result.error.startswith("MCPServerError: MCP server 'ghost': ")
    assert "ghost-mcp-not-installed" in result.error
    assert scripted_llm.requests == []
