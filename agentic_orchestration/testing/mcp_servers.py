"""Real MCP servers for tests and benchmarks, written with the MCP SDK (``FastMCP``).

Fakes over mocks: these speak the real protocol over the real transports, so CrewAI's MCP
client, our hotfix and the worker path all run for real. Two families:

- **stdio** servers, started by the code under test as a child process. Run this file
  (``python -m agentic_orchestration.testing.mcp_servers MODE`` or, faster because it skips
  the package's imports, ``python path/to/mcp_servers.py MODE``; ``stdio_server_command``
  gives the second form). Modes:

  - ``echo``: a working server. ``secret_word(topic)`` answers ``secret_answer(topic)``;
    ``add(a, b)`` adds. Each call's arguments are appended as a JSON line to the file named
    by ``MCP_TEST_RECORD_FILE`` (when set), so a test can prove what the server received.
    ``refuse(reason)`` answers a tool error (``isError``) that ends with the value of
    ``MCP_TEST_ERROR_DETAIL`` when set: a server quoting its configuration (say a token it
    was given) in an error, for the secret-masking tests.
  - ``hang``: reads stdin and never answers, not even ``initialize`` (a server stuck on a
    prompt or a dead network mount). Exits at EOF.
  - ``crash``: lists its tools, then dies (``os._exit(1)``) inside the first tool call.
  - ``stall``: lists its tools, then never returns from a tool call (call timeout).

- **streamable HTTP**: ``StreamableHTTPMCPServer`` runs the ``echo`` tools under uvicorn in
  a thread on ``127.0.0.1`` and a free port, and records calls in ``calls`` (this process)
  as well as in ``record_file`` (if given). ``... mcp_servers http [PORT]`` runs it alone.

This module imports nothing from the package so that, run as a file, a stdio server starts
in about the time ``import mcp`` takes.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import sys
import threading
import time
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

__all__ = [
    "ERROR_DETAIL_ENV",
    "RECORD_FILE_ENV",
    "StreamableHTTPMCPServer",
    "main",
    "read_records",
    "secret_answer",
    "stdio_server_command",
]

#: Env var naming the file where the ``echo`` tools append the arguments they receive.
RECORD_FILE_ENV = "MCP_TEST_RECORD_FILE"
#: Env var whose value the ``refuse`` tool quotes in its error text.
ERROR_DETAIL_ENV = "MCP_TEST_ERROR_DETAIL"
#: Tool names every mode lists (``hang`` never gets that far).
TOOL_NAMES = ("secret_word", "add", "refuse")
MODES = ("echo", "hang", "crash", "stall")


def secret_answer(topic: str) -> str:
    """The known answer of ``secret_word``: deterministic, and unguessable by an LLM."""
    return f"The secret word for {topic} is zebra-{sum(map(ord, topic)) % 9973:04d}."


def _record(tool: str, arguments: dict[str, Any], *, sink: list[dict[str, Any]] | None = None,
            record_file: str | None = None) -> None:
    entry = {"tool": tool, "arguments": arguments, "pid": os.getpid(), "time": time.time()}
    if sink is not None:
        sink.append(entry)
    path = record_file or os.environ.get(RECORD_FILE_ENV)
    if path:
        with open(path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(entry) + "\n")


def read_records(path: str | Path) -> list[dict[str, Any]]:
    """The calls recorded in ``path`` (one JSON object per line), oldest first."""
    path = Path(path)
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


def _build_server(mode: str = "echo", *, name: str = "agentic-test",
                 sink: list[dict[str, Any]] | None = None, record_file: str | None = None,
                 **fastmcp_kwargs: Any) -> Any:
    """A ``FastMCP`` server with the test tools; ``mode`` decides how a call behaves.

    Args:
        mode: ``echo`` (answer), ``crash`` (die in the call) or ``stall`` (never answer).
        name: Server name reported at ``initialize``.
        sink: A list that gets one dict per call (in-process servers).
        record_file: File for call records; default ``$MCP_TEST_RECORD_FILE``.
        fastmcp_kwargs: Passed to ``FastMCP`` (host, port, paths, ...).
    """
    from mcp.server.fastmcp import FastMCP

    if mode not in ("echo", "crash", "stall"):
        raise ValueError(f"test MCP server mode must be echo, crash or stall, not {mode!r}")
    server = FastMCP(name, log_level="WARNING", **fastmcp_kwargs)

    async def misbehave() -> None:
        if mode == "crash":
            os._exit(1)
        if mode == "stall":
            import anyio

            await anyio.sleep(3600)

    @server.tool()
    async def secret_word(topic: str) -> str:
        """Return the secret word for a topic (only this tool knows it)."""
        _record("secret_word", {"topic": topic}, sink=sink, record_file=record_file)
        await misbehave()
        return secret_answer(topic)

    @server.tool()
    async def add(a: int, b: int) -> str:
        """Add two integers."""
        _record("add", {"a": a, "b": b}, sink=sink, record_file=record_file)
        await misbehave()
        return str(a + b)

    @server.tool()
    async def refuse(reason: str) -> str:
        """Always fail, as a tool (an ``isError`` answer): the server itself stays healthy."""
        _record("refuse", {"reason": reason}, sink=sink, record_file=record_file)
        await misbehave()
        detail = os.environ.get(ERROR_DETAIL_ENV, "")
        raise ValueError(f"refused: {reason}" + (f" (configured with {detail})" if detail else ""))

    return server


def stdio_server_command(mode: str = "echo") -> tuple[str, list[str]]:
    """``(command, args)`` that start a stdio test server in ``mode`` with this Python.

    The file is run directly (not ``-m``) so the child needs no ``PYTHONPATH`` (CrewAI starts
    stdio servers with the MCP SDK's minimal environment) and skips the package's imports.
    """
    if mode not in MODES:
        raise ValueError(f"unknown stdio test server mode {mode!r} (known: {MODES})")
    return sys.executable, [str(Path(__file__).resolve()), mode]


def _hang() -> None:
    """Swallow stdin, answer nothing, exit at EOF (a well-behaved hung server)."""
    for _ in sys.stdin.buffer:
        pass


class _DropClosedStreamNoise(logging.Filter):
    """Drop the SDK server's "Error in standalone SSE writer" + ClosedResourceError record.

    The MCP SDK (1.30) logs it, with a traceback, whenever a client closes its session's
    GET stream, which CrewAI does after every discovery and every call: noise, not a fault.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return not (record.getMessage().startswith("Error in standalone SSE writer")
                    and type(exc).__name__ == "ClosedResourceError")


_SSE_NOISE = _DropClosedStreamNoise()


class StreamableHTTPMCPServer:
    """The ``echo`` tools over streamable HTTP on 127.0.0.1, in a background thread.

    Use as a context manager. ``url`` is the MCP endpoint; ``calls`` holds one dict per
    tool call (``{"tool", "arguments", ...}``) received by this server.

    Args:
        port: 0 picks a free port.
        mode: ``echo``, ``crash`` (kills this whole process: only use it out of process)
            or ``stall``.
        record_file: Also append call records to this file.
    """

    def __init__(self, *, port: int = 0, mode: str = "echo",
                 record_file: str | Path | None = None) -> None:
        self.calls: list[dict[str, Any]] = []
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", port))
        self.port: int = self._sock.getsockname()[1]
        # FastMCP() calls logging.basicConfig (a rich handler on the root logger) when the
        # root has no handler; in a host process that is not ours to change.
        root, guard = logging.getLogger(), logging.NullHandler()
        root.addHandler(guard)
        try:
            self._mcp = _build_server(mode, name="agentic-test-http", sink=self.calls,
                                     record_file=str(record_file) if record_file else None,
                                     host="127.0.0.1", port=self.port)
        finally:
            root.removeHandler(guard)
        self._server: Any = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/mcp"

    def start(self, *, timeout: float = 10.0) -> StreamableHTTPMCPServer:
        import uvicorn

        sdk_logger = logging.getLogger("mcp.server.streamable_http")
        if _SSE_NOISE not in sdk_logger.filters:
            sdk_logger.addFilter(_SSE_NOISE)

        config = uvicorn.Config(self._mcp.streamable_http_app(), log_level="warning",
                                lifespan="on")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run,
                                        kwargs={"sockets": [self._sock]},
                                        name=f"mcp-http-{self.port}", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"MCP test HTTP server on port {self.port} did not start")
            time.sleep(0.01)
        logger.debug("MCP test HTTP server listening at %s", self.url)
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._sock.close()

    def __enter__(self) -> StreamableHTTPMCPServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> int:
    """``MODE`` runs a stdio server; ``http [PORT]`` runs the HTTP one and prints its URL."""
    args = list(sys.argv[1:] if argv is None else argv)
    mode = args[0] if args else "echo"
    if mode == "hang":
        _hang()
        return 0
    if mode == "http":
        with StreamableHTTPMCPServer(port=int(args[1]) if len(args) > 1 else 0) as server:
            sys.stdout.write(server.url + "\n")
            sys.stdout.flush()
            try:
                while True:
                    time.sleep(3600)
            except KeyboardInterrupt:
                return 0
    if mode not in MODES:
        sys.stderr.write(f"usage: mcp_servers.py {{{'|'.join(MODES)}|http [PORT]}}\n")
        return 2
    _build_server(mode).run("stdio")
    return 0


if __name__ == "__main__":
    sys.exit(main())
