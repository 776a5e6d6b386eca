"""The npm MCP servers of the shipped catalog, started for real and used through CrewAI.

``filesystem_local`` (@modelcontextprotocol/server-filesystem) and
``memory_knowledge_graph`` (@modelcontextprotocol/server-memory) run from the cached npm
prefix that ``scripts/install_mcp_servers.sh`` fills (pinned versions; the module fixture
runs it, so a fresh machine installs them, and a kept one does no network work). Each is
scoped to the test's temp folder. The scripted LLM picks the real tool name from the
request's ``tools`` and echoes the tool result it finds in the next request into the final
answer, so a passing test shows the agent called the tool, the server got the arguments,
and the server's answer reached the step's output.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import REPO, write_catalog

from agentic_orchestration.catalogs import WorkflowConfig, load_catalog
from agentic_orchestration.mcp.gateway import _descendants
from agentic_orchestration.orchestration.backends.base import RunOptions
from agentic_orchestration.orchestration.backends.crewai import CrewAIExecutionBackend
from agentic_orchestration.testing import ScriptedLLMServer, ToolCallReply

pytestmark = [
    pytest.mark.backend_inprocess,
    pytest.mark.filterwarnings("ignore::ImportWarning"),
]

TOOL_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")


@pytest.fixture(scope="module")
def npm_bin() -> Path:
    """The cached prefix's bin dir, installing the pinned servers first if needed.

    Module scope: it runs before the per-test ``isolated_env`` moves HOME, so the machine's
    real cache (~/.cache/agentic-orchestration/npm) is used, not an empty temp home.
    """
    done = subprocess.run(["bash", str(REPO / "scripts" / "install_mcp_servers.sh")],
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, f"install_mcp_servers.sh failed:\n{done.stderr}"
    bin_dir = Path(done.stdout.strip().splitlines()[-1])
    for name in ("mcp-server-filesystem", "mcp-server-memory", "supergateway"):
        assert (bin_dir / name).exists(), f"{name} missing from {bin_dir}"
    return bin_dir


@pytest.fixture
def no_leftover_servers() -> Iterator[None]:
    """After the test, no MCP server started under this process may still be running."""
    yield
    deadline = time.monotonic() + 5
    while True:
        left = [cmd for pid in _descendants(os.getpid())
                if re.search(r"mcp-server|supergateway", cmd := _cmdline(pid))]
        if not left or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert left == []


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def tool_named(suffix: str) -> Callable[[dict[str, Any]], str]:
    """Pick, from a request's tools, the one whose name ends with ``suffix``."""
    def pick(request: dict[str, Any]) -> str:
        names = [tool["function"]["name"] for tool in request.get("tools", [])]
        assert names, "the LLM request offered no tools"
        assert all(TOOL_NAME.match(name) for name in names), names
        matches = [name for name in names if name.endswith(suffix)]
        assert len(matches) == 1, f"no single tool ending in {suffix!r}: {names}"
        return matches[0]
    return pick


def call(suffix: str, arguments: dict[str, Any]) -> Callable[[dict[str, Any]], ToolCallReply]:
    """A scripted reply calling the tool ending in ``suffix`` with ``arguments``."""
    pick = tool_named(suffix)
    return lambda request: ToolCallReply(pick(request), arguments)


def echo_tool_results(request: dict[str, Any]) -> str:
    """The final answer: every tool result CrewAI sent back to the LLM, in order."""
    results = [str(m.get("content") or "") for m in request.get("messages", [])
               if m.get("role") == "tool"]
    return "Final Answer: tools said: " + (" | ".join(results) or "NO TOOL RESULT")


def run_step(tmp_path: Path, llm: ScriptedLLMServer, mcps: str, mcp_id: str,
             description: str) -> str:
    """One step with one MCP server on the in-process backend; returns the step output."""
    root = write_catalog(tmp_path / "cfg", base_url=llm.base_url, mcps=mcps)
    config = WorkflowConfig.model_validate({"name": "npm_mcp", "steps": [
        {"agent_provider": "fake_researcher", "description": description,
         "mcp_providers": [mcp_id]}]})
    result = CrewAIExecutionBackend().execute_config(config, options=RunOptions(),
                                                     catalog=load_catalog(root))
    assert result.ok, result.error
    assert result.step_results[0].result_text == result.result_text
    return str(result.result_text)


def filesystem_yaml(bin_dir: Path) -> str:
    """The shipped ``filesystem_local`` entry, with the cached bin instead of ``npx -y``."""
    return f"""\
- id: filesystem_local
  stdio:
    command: {bin_dir / "mcp-server-filesystem"}
    args: ["${{AGENTIC_FILESYSTEM_ROOT}}"]
  required_env: [AGENTIC_FILESYSTEM_ROOT]
"""


@pytest.fixture
def files_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = (tmp_path / "files").resolve()
    root.mkdir()
    monkeypatch.setenv("AGENTIC_FILESYSTEM_ROOT", str(root))
    return root


@pytest.mark.usefixtures("no_leftover_servers")
def test_filesystem_list_and_read_reach_the_step_output(
        tmp_path: Path, npm_bin: Path, files_root: Path) -> None:
    notes = files_root / "notes.txt"
    notes.write_text("The harvest password is QUINCE-4821.\n")
    (files_root / "other.md").write_text("unrelated")
    with ScriptedLLMServer([
        call("list_directory", {"path": str(files_root)}),
        call("read_text_file", {"path": str(notes)}),
        echo_tool_results,
    ], default=None) as llm:
        output = run_step(tmp_path, llm, filesystem_yaml(npm_bin), "filesystem_local",
                          "Find the harvest password in the files.")
    assert "QUINCE-4821" in output  # only the file holds it: the server read notes.txt
    assert "[FILE] notes.txt" in output and "[FILE] other.md" in output
    assert len(llm.requests) == 3


@pytest.mark.usefixtures("no_leftover_servers")
def test_filesystem_write_creates_the_file_inside_the_root(
        tmp_path: Path, npm_bin: Path, files_root: Path) -> None:
    target = files_root / "report.txt"
    with ScriptedLLMServer([
        call("write_file", {"path": str(target), "content": "written by the agent 7391"}),
        echo_tool_results,
    ], default=None) as llm:
        output = run_step(tmp_path, llm, filesystem_yaml(npm_bin), "filesystem_local",
                          "Write the report file.")
    assert target.read_text() == "written by the agent 7391"
    assert "Successfully wrote" in output and "report.txt" in output


@pytest.mark.usefixtures("no_leftover_servers")
def test_filesystem_refuses_paths_outside_the_root(
        tmp_path: Path, npm_bin: Path, files_root: Path) -> None:
    outside = tmp_path / "outside.txt"
    with ScriptedLLMServer([
        call("write_file", {"path": str(outside), "content": "escaped"}),
        echo_tool_results,
    ], default=None) as llm:
        output = run_step(tmp_path, llm, filesystem_yaml(npm_bin), "filesystem_local",
                          "Write outside the root.")
    assert not outside.exists()
    assert "outside allowed directories" in output.lower() or "access denied" in output.lower()


MEMORY_YAML = """\
- id: memory_knowledge_graph
  stdio:
    command: {command}
    args: []
    env:
      MEMORY_FILE_PATH: ${{AGENTIC_MEMORY_FILE}}
  required_env: [AGENTIC_MEMORY_FILE]
"""


@pytest.mark.usefixtures("no_leftover_servers")
def test_memory_create_entities_then_read_graph(tmp_path: Path, npm_bin: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    memory_file = tmp_path / "memory" / "graph.jsonl"
    memory_file.parent.mkdir()
    monkeypatch.setenv("AGENTIC_MEMORY_FILE", str(memory_file))
    entity = {"name": "Ada Lovelace", "entityType": "person",
              "observations": ["wrote the first published program 1843"]}
    with ScriptedLLMServer([
        call("create_entities", {"entities": [entity]}),
        call("read_graph", {}),
        echo_tool_results,
    ], default=None) as llm:
        output = run_step(
            tmp_path, llm, MEMORY_YAML.format(command=npm_bin / "mcp-server-memory"),
            "memory_knowledge_graph", "Remember Ada, then read the graph back.")
    # Each tool call starts a fresh server process (CrewAI does that on purpose), so the
    # entity read back in the second call came through the memory file in the temp dir.
    assert "wrote the first published program 1843" in output
    stored = [json.loads(line) for line in memory_file.read_text().splitlines() if line]
    assert [(e["name"], e["observations"]) for e in stored if e.get("type") == "entity"] == [
        ("Ada Lovelace", ["wrote the first published program 1843"])]
