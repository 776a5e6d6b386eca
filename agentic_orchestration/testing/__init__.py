"""Test doubles shipped with the package (as ``temporalio.testing`` ships its own).

``ScriptedLLMServer`` is a real OpenAI-compatible HTTP server whose replies are scripted, so
CrewAI's real client code runs in tests and benchmarks while the answers are deterministic.
"""

from agentic_orchestration.testing.fake_llm import (
    FakeReply,
    HTTPErrorReply,
    ScriptedLLMServer,
    ToolCallReply,
)

__all__ = ["FakeReply", "HTTPErrorReply", "ScriptedLLMServer", "ToolCallReply"]
