"""A minimal OpenAI-compatible chat-completions HTTP server (stdlib only).

Two things speak this protocol for us: the embedded llama.cpp model (``local_model``) and the
scripted fake used by tests (``agentic_orchestration.testing``). Both subclass
``OpenAICompatServer`` and implement ``complete(request) -> response dict``, so CrewAI's real
OpenAI client path is what runs against either of them.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

logger = logging.getLogger(__name__)

__all__ = ["CompletionHTTPError", "OpenAICompatServer", "chat_response"]


class CompletionHTTPError(Exception):
    """Raised by ``complete`` to answer with an HTTP error status (e.g. 500, 429)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def chat_response(
    model: str,
    content: str | None,
    *,
    tool_calls: list[dict[str, Any]] | None = None,
    prompt_tokens: int = 0,
    completion_tokens: int = 0,
) -> dict[str, Any]:
    """An OpenAI ``chat.completion`` object."""
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if tool_calls:
        message["tool_calls"] = tool_calls
    return {
        "id": "chatcmpl-" + uuid.uuid4().hex[:12],
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{
            "index": 0,
            "message": message,
            "finish_reason": "tool_calls" if tool_calls else "stop",
        }],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }


class _Handler(BaseHTTPRequestHandler):
    server: OpenAICompatServer
    protocol_version = "HTTP/1.1"
    # Headers and body are two writes: with Nagle's algorithm on, a reply on a kept-alive
    # connection waited for the client's delayed ACK, ~35 ms per LLM call (in-process
    # steps cost 63 ms instead of 30-34 against an instant scripted model).
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("%s " + format, self.address_string(), *args)

    def _send_json(self, status: int, payload: dict[str, Any]) -> None:
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        if self.path.rstrip("/").endswith("/models"):
            self._send_json(200, {"object": "list", "data": [
                {"id": self.server.model_name, "object": "model", "owned_by": "agentic"}]})
        else:
            self._send_json(404, {"error": {"message": f"no route {self.path}"}})

    def do_POST(self) -> None:
        if not self.path.rstrip("/").endswith("/chat/completions"):
            self._send_json(404, {"error": {"message": f"no route {self.path}"}})
            return
        length = int(self.headers.get("Content-Length") or 0)
        try:
            request = json.loads(self.rfile.read(length) or b"{}")
        except json.JSONDecodeError:
            self._send_json(400, {"error": {"message": "body is not JSON"}})
            return
        started = time.perf_counter()
        try:
            response = self.server.complete(request)
        except CompletionHTTPError as exc:
            self._send_json(exc.status, {"error": {"message": exc.message, "type": "server_error"}})
            return
        except Exception as exc:
            logger.exception("completion failed")
            self._send_json(500, {"error": {"message": str(exc), "type": "server_error"}})
            return
        finally:
            self.server.add_busy(time.perf_counter() - started)
        if request.get("stream"):
            self._send_stream(response)
        else:
            self._send_json(200, response)

    def _send_stream(self, response: dict[str, Any]) -> None:
        """Replay a finished completion as one SSE chunk (enough for OpenAI clients)."""
        choice = response["choices"][0]
        delta = {k: v for k, v in choice["message"].items() if v is not None}
        if "tool_calls" in delta:
            delta["tool_calls"] = [dict(tc, index=i) for i, tc in enumerate(delta["tool_calls"])]
        chunk = {
            "id": response["id"], "object": "chat.completion.chunk",
            "created": response["created"], "model": response["model"],
            "choices": [{"index": 0, "delta": delta, "finish_reason": choice["finish_reason"]}],
            "usage": response.get("usage"),
        }
        body = f"data: {json.dumps(chunk)}\n\ndata: [DONE]\n\n".encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class OpenAICompatServer(ThreadingHTTPServer):
    """Serves ``/v1/chat/completions`` on loopback from a background thread."""

    daemon_threads = True
    model_name = "agentic-model"
    #: Seconds between the serving loop's checks for ``stop``: what ``stop`` waits at most.
    #: A server that lives for one request (the warm spare's canned warm-up) sets it low.
    poll_interval = 0.05

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        super().__init__((host, port), _Handler)
        self._thread: threading.Thread | None = None
        self._busy_lock = threading.Lock()
        #: Seconds spent inside ``complete`` (benchmarks subtract this from wall time).
        self.busy_seconds = 0.0
        self.request_count = 0

    def complete(self, request: dict[str, Any]) -> dict[str, Any]:
        raise NotImplementedError

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that went away (a step timed out or was cancelled mid-reply) is routine:
        one debug line. socketserver's default prints a traceback to stderr, which a user
        should never see, and formatting it in a server thread races any ``ast.parse`` in
        another thread on Python 3.11 (CPython gh-106905: "AST constructor recursion depth
        mismatch"; 3.11 tracebacks parse source lines to draw the ``^^^`` markers)."""
        exc = sys.exc_info()[1]
        if isinstance(exc, ConnectionError):
            logger.debug("client %s went away before its reply: %s", client_address[0], exc)
        else:
            logger.warning("request from %s failed: %s: %s", client_address[0],
                           type(exc).__name__, exc)

    def add_busy(self, seconds: float) -> None:
        with self._busy_lock:
            self.busy_seconds += seconds
            self.request_count += 1

    @property
    def base_url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}/v1"

    def start(self) -> OpenAICompatServer:
        self._thread = threading.Thread(target=self.serve_forever,
                                        kwargs={"poll_interval": self.poll_interval},
                                        name=type(self).__name__, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.shutdown()
        self.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> OpenAICompatServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
