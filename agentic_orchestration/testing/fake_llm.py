"""A scripted OpenAI-compatible LLM server: a fake, for tests and benchmarks only.

Replies come from, in order: a rule whose regex matches the request's last user message
(rules are not consumed), then the queue (consumed front first), then ``default``.
A reply is plain text, a ``ToolCallReply`` (OpenAI ``tool_calls``), an ``HTTPErrorReply``
(the server answers with that status), or a callable taking the request and returning one
of those. Every request is recorded in ``requests``.
"""

from __future__ import annotations

import json
import re
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from agentic_orchestration.providers.openai_http import (
    CompletionHTTPError,
    OpenAICompatServer,
    chat_response,
)

__all__ = [
    "FakeReply",
    "HTTPErrorReply",
    "ScriptedLLMServer",
    "ToolCallReply",
    "last_user_text",
    "message_text",
]


@dataclass
class ToolCallReply:
    name: str
    arguments: dict[str, Any] = field(default_factory=dict)


@dataclass
class HTTPErrorReply:
    status: int = 500
    message: str = "scripted failure"


FakeReply = str | ToolCallReply | HTTPErrorReply | Callable[[dict[str, Any]], Any]


def message_text(message: dict[str, Any]) -> str:
    content = message.get("content") or ""
    if isinstance(content, list):
        return "".join(part.get("text", "") for part in content if isinstance(part, dict))
    return str(content)


def last_user_text(request: dict[str, Any]) -> str:
    for message in reversed(request.get("messages", [])):
        if message.get("role") == "user":
            return message_text(message)
    return ""


class ScriptedLLMServer(OpenAICompatServer):
    """Fake LLM: answers from rules, a queue, or a default. Use as a context manager."""

    model_name = "fake-model"

    def __init__(
        self,
        replies: list[FakeReply] | None = None,
        *,
        rules: list[tuple[str, FakeReply]] | None = None,
        default: FakeReply | None = "Final Answer: done",
    ) -> None:
        super().__init__()
        self._lock = threading.Lock()
        self.queue: deque[FakeReply] = deque(replies or [])
        self.rules: list[tuple[re.Pattern[str], FakeReply]] = [
            (re.compile(pattern, re.DOTALL | re.IGNORECASE), reply)
            for pattern, reply in (rules or [])
        ]
        self.default = default
        self.requests: list[dict[str, Any]] = []

    def add_rule(self, pattern: str, reply: FakeReply) -> None:
        self.rules.append((re.compile(pattern, re.DOTALL | re.IGNORECASE), reply))

    def enqueue(self, *replies: FakeReply) -> None:
        self.queue.extend(replies)

    def _pick(self, request: dict[str, Any]) -> FakeReply:
        text = last_user_text(request)
        with self._lock:
            self.requests.append(request)
            for pattern, reply in self.rules:
                if pattern.search(text):
                    return reply
            if self.queue:
                return self.queue.popleft()
        if self.default is None:
            raise CompletionHTTPError(500, "scripted server has no reply left")
        return self.default

    def complete(self, request: dict[str, Any]) -> dict[str, Any]:
        reply = self._pick(request)
        if callable(reply) and not isinstance(reply, (ToolCallReply, HTTPErrorReply)):
            reply = reply(request)
        model = request.get("model", self.model_name)
        prompt_tokens = sum(len(message_text(m).split()) for m in request.get("messages", []))
        if isinstance(reply, HTTPErrorReply):
            raise CompletionHTTPError(reply.status, reply.message)
        if isinstance(reply, ToolCallReply):
            call = {
                "id": "call_" + str(len(self.requests)),
                "type": "function",
                "function": {"name": reply.name, "arguments": json.dumps(reply.arguments)},
            }
            return chat_response(model, None, tool_calls=[call], prompt_tokens=prompt_tokens,
                                 completion_tokens=5)
        text = str(reply)
        return chat_response(model, text, prompt_tokens=prompt_tokens,
                             completion_tokens=len(text.split()))

    def user_texts(self) -> list[str]:
        """The last user message of every request received, in order."""
        return [last_user_text(r) for r in self.requests]
