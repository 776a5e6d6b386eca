"""The embedded local model: pure request translation, load errors, and the real model.

Tests marked ``slow`` load the bundled Gemma 3 270M with llama.cpp (about 0.5 s) and generate
for real; they fail, rather than skip, when llama-cpp-python or the model is missing.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from pathlib import Path

import pytest

from agentic_orchestration.errors import ConfigError
from agentic_orchestration.providers.local_model import (
    LocalModelServer,
    _generation_kwargs,
    ensure_local_server,
    fold_messages,
    llama_response_format,
    local_model_path,
    stop_local_server,
)
from agentic_orchestration.providers.openai_http import CompletionHTTPError

#: Small enough for the 270M model to fill reliably: an enum plus a bounded string.
VERDICT_SCHEMA = {
    "type": "object",
    "properties": {
        "sentiment": {"type": "string", "enum": ["positive", "negative", "neutral"]},
        "reason": {"type": "string", "maxLength": 80},
    },
    "required": ["sentiment", "reason"],
    "additionalProperties": False,
}


# --- pure translation, no model -------------------------------------------------------


def test_fold_messages_puts_system_prompt_into_first_user_turn() -> None:
    folded = fold_messages([
        {"role": "system", "content": "You are Researcher. Goal: find facts."},
        {"role": "user", "content": "Task: list two facts."},
    ])
    assert folded == [{"role": "user",
                       "content": "You are Researcher. Goal: find facts.\n\nTask: list two facts."}]


def test_fold_messages_alternates_roles_and_drops_empty_turns() -> None:
    folded = fold_messages([
        {"role": "system", "content": "sys"},
        {"role": "user", "content": [{"type": "text", "text": "part one"},
                                     {"type": "image_url", "image_url": {"url": "x"}}]},
        {"role": "assistant", "content": None, "tool_calls": [{"id": "1"}]},
        {"role": "tool", "tool_call_id": "1", "content": "tool output"},
        {"role": "assistant", "content": "first answer"},
        {"role": "assistant", "content": "  "},
        {"role": "assistant", "content": "more"},
        {"role": "user", "content": "next"},
    ])
    assert folded == [
        {"role": "user", "content": "sys\n\npart one\n\ntool output"},
        {"role": "assistant", "content": "first answer\n\nmore"},
        {"role": "user", "content": "next"},
    ]


def test_fold_messages_system_only_becomes_a_user_turn() -> None:
    assert fold_messages([{"role": "system", "content": "hi"}]) == [
        {"role": "user", "content": "hi"}]


def test_response_format_json_schema_becomes_llama_json_object() -> None:
    openai_form = {"type": "json_schema",
                   "json_schema": {"name": "verdict", "strict": True, "schema": VERDICT_SCHEMA}}
    assert llama_response_format(openai_form) == {"type": "json_object",
                                                  "schema": VERDICT_SCHEMA}


@pytest.mark.parametrize(("given", "expected"), [
    (None, None),
    ({"type": "text"}, None),
    ({"type": "json_object"}, {"type": "json_object"}),
    ({"type": "json_object", "schema": {"type": "object"}},
     {"type": "json_object", "schema": {"type": "object"}}),
    ({"type": "json_schema", "json_schema": {"name": "x"}}, {"type": "json_object"}),
])
def test_response_format_other_forms(given: dict | None, expected: dict | None) -> None:
    assert llama_response_format(given) == expected


def test_response_format_unknown_type_is_a_400() -> None:
    with pytest.raises(CompletionHTTPError) as info:
        llama_response_format({"type": "grammar"})
    assert info.value.status == 400


def test_generation_kwargs_defaults_and_ignores_tools(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENTIC_LOCAL_MAX_TOKENS", "99")
    kwargs = _generation_kwargs({
        "messages": [], "stop": "END", "temperature": 0.1,
        "tools": [{"type": "function", "function": {"name": "search"}}], "tool_choice": "auto",
    })
    assert kwargs["max_tokens"] == 99
    assert kwargs["stop"] == ["END"]
    assert kwargs["temperature"] == 0.1
    assert 1.1 <= kwargs["repeat_penalty"] <= 1.3
    assert "tools" not in kwargs and "tool_choice" not in kwargs
    assert _generation_kwargs({"max_completion_tokens": 7})["max_tokens"] == 7
    assert _generation_kwargs({"max_tokens": 5, "repeat_penalty": 1.0}) == {
        "max_tokens": 5, "repeat_penalty": 1.0}


# --- configuration and load errors (no generation) ------------------------------------


def test_missing_model_file_names_the_variable(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    missing = tmp_path / "nope.gguf"
    monkeypatch.setenv("AGENTIC_LOCAL_MODEL_PATH", str(missing))
    with pytest.raises(ConfigError, match=r"AGENTIC_LOCAL_MODEL_PATH=.*nope\.gguf"):
        local_model_path()


def test_unloadable_model_is_a_clear_error_and_leaves_no_server(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bogus = tmp_path / "bogus.gguf"
    bogus.write_text("not a gguf")
    monkeypatch.setenv("AGENTIC_LOCAL_MODEL_PATH", str(bogus))
    with pytest.raises(ConfigError, match=r"cannot load local model .*bogus\.gguf"):
        ensure_local_server()
    from agentic_orchestration.providers import local_model_process

    assert local_model_process._front is None


@pytest.mark.parametrize("url", ["http://10.0.0.5:8080/v1", "http://10.0.0.5:8080/v1/",
                                 "http://10.0.0.5:8080"])
def test_shared_server_url_wins_and_loads_nothing(url: str,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENTIC_LOCAL_LLM_URL", url)
    monkeypatch.setenv("AGENTIC_LOCAL_MODEL_PATH", "/does/not/exist.gguf")
    assert ensure_local_server() == "http://10.0.0.5:8080/v1"


# --- the real model -------------------------------------------------------------------


@pytest.mark.slow
def test_server_is_a_process_wide_singleton(local_model: Path) -> None:
    first = ensure_local_server()
    assert first.startswith("http://127.0.0.1:") and first.endswith("/v1")
    assert ensure_local_server() == first
    stop_local_server()
    assert ensure_local_server() != first  # restarted on a fresh random port


@pytest.mark.slow
def test_system_prompt_reaches_the_model(local_model: Path) -> None:
    """The ``gemma`` format would drop it; prompt token counts prove it was folded in."""
    with LocalModelServer(local_model) as server:
        user = {"role": "user", "content": "Say hi."}
        system = {"role": "system", "content": "You are a very careful research assistant "
                                               "who always double-checks every fact."}
        bare = server.complete({"messages": [user], "max_tokens": 1})
        with_system = server.complete({"messages": [system, user], "max_tokens": 1})
    assert (with_system["usage"]["prompt_tokens"]
            > bare["usage"]["prompt_tokens"] + 10)


@pytest.mark.slow
def test_openai_client_gets_schema_valid_json(local_model: Path) -> None:
    import jsonschema
    from openai import OpenAI

    client = OpenAI(base_url=ensure_local_server(), api_key="not-needed", max_retries=0)
    reply = client.chat.completions.create(
        model="local-gguf",
        messages=[
            {"role": "system", "content": "You classify product reviews. Answer in JSON."},
            {"role": "user", "content": "Review: 'The kettle broke after two days.'"},
        ],
        response_format={"type": "json_schema",
                         "json_schema": {"name": "verdict", "schema": VERDICT_SCHEMA}},
        max_tokens=120,
        temperature=0.2,
    )
    data = json.loads(reply.choices[0].message.content or "")
    jsonschema.validate(data, VERDICT_SCHEMA)
    assert reply.usage is not None and reply.usage.completion_tokens > 0
    assert reply.choices[0].finish_reason == "stop"


@pytest.mark.slow
def test_concurrent_requests_are_serialised_not_broken(local_model: Path) -> None:
    from openai import OpenAI

    client = OpenAI(base_url=ensure_local_server(), api_key="not-needed", max_retries=0)
    results: list[str] = []

    def ask(n: int) -> None:
        reply = client.chat.completions.create(
            model="local-gguf", max_tokens=12, tools=[{"type": "function", "function": {
                "name": "search", "parameters": {"type": "object", "properties": {}}}}],
            messages=[{"role": "user", "content": f"Count from {n} to {n + 3}:"}])
        results.append(reply.choices[0].message.content or "")

    threads = [threading.Thread(target=ask, args=(n,)) for n in (1, 5, 9)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert len(results) == 3 and all(results)


@pytest.mark.slow
# crewai 1.15 raises ImportWarning on import (circular ``crewai.rag.embeddings``), which
# ``filterwarnings = error`` would turn into a failure.
@pytest.mark.filterwarnings("ignore::ImportWarning")
def test_crewai_one_task_kickoff_returns_text(local_model: Path) -> None:
    from crewai import Agent, Crew, Task

    from agentic_orchestration.providers.agent_providers import agent_provider_from_dict

    provider = agent_provider_from_dict({
        "id": "local_writer", "type": "local", "role": "Writer",
        "goal": "Write short, plain sentences.", "backstory": "You write for a school paper.",
    })
    agent = Agent(role=provider.entry.role, goal=provider.entry.goal,
                  backstory=provider.entry.backstory, llm=provider.llm(), max_iter=2)
    task = Task(description="Write one sentence about the sea.",
                expected_output="One sentence.", agent=agent)
    started = time.perf_counter()
    result = Crew(agents=[agent], tasks=[task]).kickoff()
    elapsed = time.perf_counter() - started
    assert str(result).strip()
    print(f"crewai one-task kickoff on the local model: {elapsed:.1f}s")


def test_completion_server_sends_replies_without_nagle_delay(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Headers and body go out in two writes; with Nagle's algorithm on, the body of a
    reply on a kept-alive connection waited for the client's delayed ACK (~40 ms per LLM
    call, measured in-process). The accepted sockets must have TCP_NODELAY set."""
    import http.client
    import socket

    from agentic_orchestration.providers import openai_http

    seen: list[int] = []
    real_setup = openai_http._Handler.setup

    def setup(self) -> None:
        real_setup(self)
        seen.append(self.connection.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))

    monkeypatch.setattr(openai_http._Handler, "setup", setup)

    class Echo(openai_http.OpenAICompatServer):
        def complete(self, request: dict) -> dict:
            return openai_http.chat_response("m", "ok", prompt_tokens=1, completion_tokens=1)

    with Echo() as server:
        host, port = server.server_address[:2]
        conn = http.client.HTTPConnection(host, port, timeout=10)
        for _ in range(2):  # one kept-alive connection, as the OpenAI client uses
            conn.request("POST", "/v1/chat/completions", body=json.dumps({"messages": []}),
                         headers={"Content-Type": "application/json"})
            reply = conn.getresponse()
            assert json.loads(reply.read())["choices"][0]["message"]["content"] == "ok"
        conn.close()
    assert seen and all(seen), seen


def test_a_client_that_goes_away_mid_reply_costs_one_debug_line(
        capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture) -> None:
    """A step that times out drops its connection while the model is still answering; the
    server must note it quietly (socketserver's default prints a traceback to stderr)."""
    import socket
    import struct

    from agentic_orchestration.providers import openai_http

    arrived, answer = threading.Event(), threading.Event()

    class Slow(openai_http.OpenAICompatServer):
        def complete(self, request: dict) -> dict:
            arrived.set()
            answer.wait(10)
            return openai_http.chat_response("m", "late " * 2000)

    caplog.set_level(logging.DEBUG, logger=openai_http.__name__)
    with Slow() as server:
        client = socket.create_connection(server.server_address[:2], timeout=10)
        body = b'{"messages": []}'
        client.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n"
                       b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
                       % (len(body), body))
        assert arrived.wait(10)
        # Close with a reset (linger 0), as a killed client's kernel does.
        client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        client.close()
        answer.set()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not any(
                "went away" in r.getMessage() for r in caplog.records):
            time.sleep(0.02)
    assert any("went away" in r.getMessage() for r in caplog.records), caplog.text
    assert "Traceback" not in capfd.readouterr().err
