"""One MCP session per server for a whole agent run, on its own event-loop thread.

Used by ``crewai_hotfix`` instead of CrewAI's connect-per-call (its fix 1). CrewAI's
``MCPClient`` still does the protocol work (and emits CrewAI's MCP events); this module only
keeps one client alive between calls:

- the client's transport and session are entered and left by ONE task (``_live``), as
  anyio's task groups require; calls run as other tasks on the same loop, which the MCP
  session allows (requests are matched by id, so parallel calls are fine);
- the caller's thread is never an event loop's: ``open`` and ``call`` block on futures, so
  CrewAI's sync tool path and its ``asyncio.run`` cleanup can both use a session;
- ``close`` is idempotent and bounded (the MCP SDK gives a stdio server 2 s to exit after
  EOF, then terminates it).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
from typing import Any

from crewai.mcp.client import MCPClient
from crewai.mcp.tool_resolver import MCPToolResolver

logger = logging.getLogger(__name__)

#: Extra seconds past the client's own timeouts before a caller stops waiting regardless.
_GRACE = 5.0
_CLOSE_WAIT = 10.0


class MCPSession:
    """A connected MCP client for one server, usable from any (non-loop) thread.

    Args:
        config: A CrewAI server config (``MCPServerStdio`` / ``MCPServerHTTP``).
        connect_timeout: Seconds for start + ``initialize`` + ``list_tools``, together.
        call_timeout: Seconds for one tool call (one try).
        name: For thread names and logs (the MCP id).
    """

    def __init__(self, config: Any, *, connect_timeout: float, call_timeout: float,
                 name: str) -> None:
        transport, _ = MCPToolResolver._create_transport(config)
        # One try: a tool call may have side effects, and a retry multiplies the wait.
        # (Typed int, used only by asyncio.wait_for, which takes float seconds.)
        timeouts: dict[str, Any] = {"connect_timeout": connect_timeout,
                                    "discovery_timeout": connect_timeout,
                                    "execution_timeout": call_timeout}
        self.client = MCPClient(transport=transport, max_retries=1, **timeouts)
        self.name = name
        self.connect_timeout = connect_timeout
        self.call_timeout = call_timeout
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run_loop, name=f"mcp-{name}", daemon=True)
        self._stop = asyncio.Event()
        self._ready: concurrent.futures.Future[list[dict[str, Any]]] = concurrent.futures.Future()
        self._lifecycle: concurrent.futures.Future[None] | None = None
        self._closed = False
        self._lock = threading.Lock()

    # -- lifecycle -------------------------------------------------------------------------

    def _run_loop(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_forever()
        finally:
            self._loop.close()

    async def _live(self) -> None:
        """Connect, list tools, hold the session until ``close``: all in this one task."""
        try:
            try:
                async with asyncio.timeout(self.connect_timeout):  # one deadline for both
                    await self.client.connect()
                    tools = await self.client.list_tools()
            except TimeoutError:
                raise TimeoutError("the server did not start, initialize and list its tools "
                                   "in time") from None
            self._ready.set_result(tools)
            await self._stop.wait()
        except BaseException as exc:
            if not self._ready.done():
                self._ready.set_exception(exc)
            raise
        finally:
            if self.client.connected:
                try:
                    await self.client.disconnect()
                except Exception as exc:  # the session is over either way
                    logger.debug("MCP server %s: disconnect: %s", self.name, exc)

    def open(self) -> list[dict[str, Any]]:
        """Start the server (or connect), and return its tools as CrewAI lists them.

        Raises:
            Whatever connecting or listing raised; ``TimeoutError`` past the connect
            timeout. The session is closed again before raising.
        """
        self._thread.start()
        self._lifecycle = asyncio.run_coroutine_threadsafe(self._live(), self._loop)
        try:
            return self._ready.result(timeout=self.connect_timeout + _GRACE)
        except concurrent.futures.TimeoutError:
            self.close()
            raise TimeoutError("the server did not start, initialize and list its tools "
                               "in time") from None
        except BaseException:
            self.close()
            raise

    def call(self, tool_name: str, arguments: dict[str, Any]) -> Any:
        """Call a tool; returns CrewAI's ``_MCPToolResult`` (content, is_error).

        Raises:
            ConnectionError: The session is closed, or the server failed (CrewAI's client
                raises these for a dead server and for the call timeout).
        """
        if self._closed:
            raise ConnectionError(f"the session with MCP server {self.name!r} is closed")
        future = asyncio.run_coroutine_threadsafe(
            self.client.call_tool_result(tool_name, arguments), self._loop)
        try:
            return future.result(timeout=self.call_timeout + _GRACE)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise TimeoutError("the tool call did not return in time") from None

    def close(self) -> None:
        """End the session and stop its thread; safe to call twice, from any thread."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stop.set)
            if self._lifecycle is not None:
                concurrent.futures.wait([self._lifecycle], timeout=_CLOSE_WAIT)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=_CLOSE_WAIT)
        logger.debug("MCP server %s: session closed", self.name)

    # -- what CrewAI's MCPToolResolver.cleanup() expects of a "client" ----------------------

    @property
    def connected(self) -> bool:
        return not self._closed

    async def disconnect(self) -> None:
        await asyncio.to_thread(self.close)
