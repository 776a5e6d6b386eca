"""Test doubles shipped with the package (as ``temporalio.testing`` ships its own).

``ScriptedLLMServer`` is a real OpenAI-compatible HTTP server whose replies are scripted, so
CrewAI's real client code runs in tests and benchmarks while the answers are deterministic.
``mcp_servers`` holds real MCP servers (MCP SDK) over stdio and streamable HTTP, including
misbehaving ones (hang, crash, stall) for the health tests. ``ScriptedLauncher`` is a
double of the project's own launcher seam (scripted ok / fail / hang / die per step). These
names are imported on first use, so ``python -m agentic_orchestration.testing.mcp_servers``
does not import it twice and the LLM fake does not pull in the run store.
"""

from __future__ import annotations

import importlib
from typing import Any

from agentic_orchestration.testing.fake_llm import (
    FakeReply,
    HTTPErrorReply,
    ScriptedLLMServer,
    ToolCallReply,
)

_FROM_MCP_SERVERS = ("ERROR_DETAIL_ENV", "RECORD_FILE_ENV", "StreamableHTTPMCPServer",
                     "read_records", "secret_answer", "stdio_server_command")
_FROM_LAUNCHER = ("ScriptedHandle", "ScriptedLauncher")

__all__ = [
    "ERROR_DETAIL_ENV",
    "RECORD_FILE_ENV",
    "FakeReply",
    "HTTPErrorReply",
    "ScriptedHandle",
    "ScriptedLLMServer",
    "ScriptedLauncher",
    "StreamableHTTPMCPServer",
    "ToolCallReply",
    "read_records",
    "secret_answer",
    "stdio_server_command",
]


def __getattr__(name: str) -> Any:
    if name in _FROM_MCP_SERVERS:
        return getattr(importlib.import_module(f"{__name__}.mcp_servers"), name)
    if name in _FROM_LAUNCHER:
        return getattr(importlib.import_module(f"{__name__}.launcher"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
