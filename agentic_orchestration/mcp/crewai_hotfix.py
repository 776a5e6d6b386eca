"""What CrewAI 1.15.30's MCP support gets wrong, fixed in place: ``apply_crewai_mcp_hotfix()``.

Measured with real servers (``agentic_orchestration.testing.mcp_servers``, mcp-server-fetch)
and the scripted LLM; each fix has a test in ``tests/test_mcp_tools.py`` that fails without
it. Only servers attached by us (``AgenticMCPServerStdio`` / ``AgenticMCPServerHTTP``, built
by ``mcp.resolution.to_crewai_mcp``) take the fixed path; any other MCP config an agent may
carry goes through CrewAI unchanged.

1. **A new connection per call, with timeouts that cannot be set.** CrewAI lists a server's
   tools on one connection, closes it, then opens a fresh one for *every* tool call: for
   stdio a new server process each time (0.5 s for mcp-server-fetch, more through npx), and
   a stateful server forgets between two calls of the same step. Every ``MCPClient`` it
   makes uses the hard-coded defaults: 30 s for ``initialize``, 30 s more for
   ``list_tools``, 30 s per call, and 3 tries with 1 + 2 s of backoff on any error, so a
   server that never answered held the step 30 s, a stalled call 93 s, and a crashed server
   was "retried" for 3 s. Fix: one session per server for the agent's task
   (``mcp._session.MCPSession``, CrewAI's own ``MCPClient`` kept alive on a loop thread),
   opened within ``AGENTIC_MCP_CONNECT_TIMEOUT_SECONDS`` (start + initialize + list tools,
   one deadline), each call within ``AGENTIC_MCP_CALL_TIMEOUT_SECONDS``, one try (a call may
   have side effects; retrying a timed-out one runs it twice).
2. **Server failures that pass silently, or get retried on the wrong thing.** A server
   that cannot be started or reached surfaces from ``kickoff`` as ``MCPConnectionError``
   (a ``ConnectionError``) naming the command line: our fallback reads connection errors as
   the LLM endpoint's and would rerun the step on another provider, against the same broken
   server. Worse, a server that dies or stalls *during a call* is caught by the agent
   executor and handed to the LLM as "Error executing tool: ..."; the step then succeeds
   with whatever the LLM makes of that. Fix: such failures become ``MCPServerError`` (names
   the MCP id, not recoverable, expanded secrets redacted). A failure of the server during
   a call switches that tool's ``tool_failure_policy`` to RAISE, so CrewAI stops the task
   with ``ToolExecutionFailedError`` (whose message is then ours, see
   ``_patch_native_tool``). A tool's own ``isError`` answer (say, a 404 page) is not a
   server failure and still goes to the LLM, as CrewAI intends.
3. **Tool names.** CrewAI prefixes each tool with a "server name" made of the command path
   and every argument (or the URL's host and path), then cuts the result to 64 characters
   with a hash. With any real path the tool's own name is cut off: the test server's two
   tools reached the LLM as ``work_main_venv_bin_python_work_main_agentic_orchestrati_9acd9014``
   and ``..._a00c89d8``, which no LLM can tell apart; and an argument holding an expanded
   ``${SECRET}`` would be sent to the LLM provider inside a tool name. Fix: the prefix is
   the catalog id, ``<mcp_id>_<tool>``, matching ``^[a-zA-Z0-9_-]{1,64}$``, unique within
   the agent, and a fixed point of CrewAI's ``sanitize_tool_name`` (which CrewAI applies
   again when it builds the request), shortened around a hash only when too long.
4. **Sessions outlive a failed task.** CrewAI closes an agent's MCP clients only when its
   task succeeds (harmless with its per-call connections, a leak with fix 1's sessions: a
   server process per failed step). Fix: ``Agent.execute_task`` closes them however the
   task ends.

Found and sidestepped rather than patched: CrewAI's per-call path loses every
streamable-HTTP result (``MCPNativeTool._run`` calls ``asyncio.run`` inside an
``except RuntimeError`` handler; closing the HTTP session raises anyio noise that CrewAI
means to ignore, but ``find_transport_failure`` follows ``__context__`` to "no running event
loop" and raises it: the tool ran, the LLM got an error). Our tools never take that path.
Left alone: ``StdioTransport`` prints a traceback when a command cannot start
(``mcp.resolution.check_stdio_command`` catches a missing command earlier), and CrewAI's
per-tool ``tool_filter`` (our configs never set one).
"""

from __future__ import annotations

import contextvars
import functools
import hashlib
import logging
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from crewai.mcp import MCPServerHTTP, MCPServerStdio
from crewai.mcp.tool_resolver import MCPToolResolver
from crewai.tools.mcp_native_tool import MCPNativeTool
from crewai.tools.tool_failure import (
    ToolFailure,
    ToolFailurePolicy,
    ToolFailureReason,
    ToolFailureRecord,
)
from crewai.utilities.string_utils import sanitize_tool_name
from pydantic import Field

from agentic_orchestration import settings
from agentic_orchestration.errors import MCPServerError
from agentic_orchestration.mcp._session import MCPSession

logger = logging.getLogger(__name__)

__all__ = [
    "AgenticMCPServerHTTP",
    "AgenticMCPServerStdio",
    "MCPTimeouts",
    "apply_crewai_mcp_hotfix",
    "mcp_timeouts",
    "mcp_tool_name",
]

#: OpenAI's (and most providers') limit on a function name.
MAX_TOOL_NAME = 64
CONNECT_VAR = "AGENTIC_MCP_CONNECT_TIMEOUT_SECONDS"
CALL_VAR = "AGENTIC_MCP_CALL_TIMEOUT_SECONDS"
#: Exception type names that mean "the server went away" (stream closed under us).
_GONE = ("ClosedResourceError", "BrokenResourceError", "EndOfStream", "BrokenPipeError",
         "ConnectionResetError")


class AgenticMCPServerStdio(MCPServerStdio):
    """``MCPServerStdio`` that knows its catalog id (tool names, errors) and its secrets."""

    mcp_id: str = Field(description="Catalog id of the MCP provider.")
    redact: list[str] = Field(default_factory=list, repr=False, exclude=True,
                              description="Expanded secret values to hide in errors.")


class AgenticMCPServerHTTP(MCPServerHTTP):
    """``MCPServerHTTP`` that knows its catalog id (tool names, errors) and its secrets."""

    mcp_id: str = Field(description="Catalog id of the MCP provider.")
    redact: list[str] = Field(default_factory=list, repr=False, exclude=True,
                              description="Expanded secret values to hide in errors.")


_OURS = (AgenticMCPServerStdio, AgenticMCPServerHTTP)


@dataclass(frozen=True)
class MCPTimeouts:
    """Seconds: ``connect`` bounds start + initialize + list tools; ``call`` one tool call."""

    connect: float
    call: float


def mcp_timeouts() -> MCPTimeouts:
    """The MCP timeouts from the environment, read now (so tests and runs can change them)."""
    return MCPTimeouts(connect=settings.get_float(CONNECT_VAR, minimum=0.1),
                       call=settings.get_float(CALL_VAR, minimum=0.1))


def mcp_tool_name(mcp_id: str, tool_name: str, taken: Iterable[str] = ()) -> str:
    """The name the LLM sees for ``tool_name`` of server ``mcp_id``: valid and not in ``taken``.

    ``<mcp_id>_<tool>`` through ``sanitize_tool_name`` (lowercase, ``[a-z0-9_]``), prefixed
    ``mcp_`` if it would not start with a letter. When it is longer than 64 characters or
    already taken, the id part is shortened and a hash of the full name inserted, keeping
    the tool part readable: ``<id…>_<hash8>_<tool>``.
    """
    taken = set(taken)
    id_part = sanitize_tool_name(mcp_id, max_length=10_000) or "mcp"
    tool_part = sanitize_tool_name(tool_name, max_length=10_000) or "tool"
    if not id_part[:1].isalpha():
        id_part = f"mcp_{id_part}"
    full = f"{id_part}_{tool_part}"
    if len(full) <= MAX_TOOL_NAME and full not in taken:
        return full
    for salt in range(10_000):
        digest = hashlib.sha256(f"{full}#{salt}".encode()).hexdigest()[:8]
        room = MAX_TOOL_NAME - len(tool_part) - len(digest) - 2
        if room >= 4:
            candidate = f"{id_part[:room].rstrip('_')}_{digest}_{tool_part}"
        else:  # the tool's own name is too long: keep its start
            candidate = f"{full[:MAX_TOOL_NAME - len(digest) - 1].rstrip('_')}_{digest}"
        if candidate not in taken:
            return candidate
    raise RuntimeError(f"no free tool name for {mcp_id}/{tool_name}")  # pragma: no cover


def _chain(exc: BaseException) -> list[BaseException]:
    """``exc`` and its explicit causes (and an exception group's first member).

    ``__context__`` is not followed: it is whatever was being handled when an error was
    raised, not its cause (CrewAI's own ``find_transport_failure`` trips on exactly that).
    """
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and all(current is not s for s in seen):
        seen.append(current)
        group = getattr(current, "exceptions", None)
        current = current.__cause__ or (group[0] if group else None)
    return seen


def _describe(exc: BaseException, config: Any, *, during_call: bool) -> str:
    """One line: CrewAI's message, the root cause, and which limit or fault it was."""
    links = _chain(exc)
    text = (str(links[0]) or type(links[0]).__name__).strip().rstrip(".")
    root = links[-1]
    if root is not links[0] and str(root) not in text:
        text += f" (cause: {type(root).__name__}{': ' + str(root) if str(root) else ''})"
    lowered = " ".join(str(link).lower() for link in links)
    if any(isinstance(link, TimeoutError) for link in links) or "timed out" in lowered:
        timeouts = mcp_timeouts()
        limit, var = ((timeouts.call, CALL_VAR) if during_call
                      else (timeouts.connect, CONNECT_VAR))
        text = f"no answer within {limit:g} s ({var}): {text}"
    elif any(type(link).__name__ in _GONE for link in links) or "connection closed" in lowered:
        text += ("; the server closed the connection (crashed or exited; see its stderr)"
                 if isinstance(config, MCPServerStdio) else
                 "; nothing accepted the connection at its URL, or the server closed it")
    for secret in getattr(config, "redact", ()):
        text = text.replace(secret, "***")
    return " ".join(text.split())


def _where(config: Any) -> str:
    if isinstance(config, MCPServerStdio):
        return f"stdio command {config.command.rsplit('/', 1)[-1]!r}"
    return "streamable HTTP"


# --- the patches -------------------------------------------------------------------------

def _open_session(resolver: MCPToolResolver, config: Any, taken: set[str]) -> list[Any]:
    """Fixes 1-3 at discovery: one session, tools named ``<mcp_id>_<tool>``, clear errors."""
    timeouts = mcp_timeouts()
    session = MCPSession(config, connect_timeout=timeouts.connect, call_timeout=timeouts.call,
                         name=config.mcp_id)
    began = time.monotonic()
    try:
        tool_defs = session.open()
    except Exception as exc:
        raise MCPServerError(
            config.mcp_id,
            f"could not start, connect or list tools ({_where(config)}) after "
            f"{time.monotonic() - began:.1f} s: {_describe(exc, config, during_call=False)}",
        ) from exc
    resolver._clients.append(session)  # CrewAI's cleanup() closes it after the task

    def no_fresh_clients() -> Any:
        raise RuntimeError(f"MCP server {config.mcp_id!r}: calls go through its session")

    tools = []
    for tool_def in tool_defs:
        original = tool_def.get("original_name") or tool_def["name"]
        name = mcp_tool_name(config.mcp_id, original, taken)
        taken.add(name)
        args_schema = None
        if tool_def.get("inputSchema"):
            try:
                args_schema = resolver._json_schema_to_pydantic(name, tool_def["inputSchema"])
            except Exception as exc:  # as CrewAI does: the tool stays, untyped
                logger.warning("MCP tool %s: no typed arguments (%s)", name, exc)
        tool = MCPNativeTool(
            client_factory=no_fresh_clients, tool_name=tool_def["name"],
            tool_schema={"description": tool_def.get("description") or "",
                         "args_schema": args_schema},
            server_name=config.mcp_id, original_tool_name=original)
        tool.name = name
        tool._agentic_config = config
        tool._agentic_session = session
        tools.append(tool)
    if not tools:
        logger.warning("MCP server %s lists no tools", config.mcp_id)
    logger.debug("MCP server %s: %d tool(s) in %.2f s: %s", config.mcp_id, len(tools),
                 time.monotonic() - began, [tool.name for tool in tools])
    return tools


def _sessions(resolver: MCPToolResolver | None) -> list[MCPSession]:
    return [c for c in (resolver.clients if resolver is not None else [])
            if isinstance(c, MCPSession)]


def _close_sessions(resolver: MCPToolResolver | None) -> None:
    """Close our sessions directly (CrewAI's ``cleanup`` needs to start an event loop)."""
    for session in _sessions(resolver):
        session.close()


def _patch_resolver() -> None:
    original_resolve = MCPToolResolver.resolve

    @functools.wraps(original_resolve)
    def resolve(self: MCPToolResolver, mcps: list[Any]) -> list[Any]:
        ours = [config for config in mcps if isinstance(config, _OURS)]
        others = [config for config in mcps if not isinstance(config, _OURS)]
        tools = original_resolve(self, others) if others else []
        taken = {sanitize_tool_name(tool.name) for tool in tools}
        try:
            for config in ours:
                tools.extend(_open_session(self, config, taken))
        except BaseException:
            _close_sessions(self)  # those opened so far: the task will not start
            raise
        return tools

    MCPToolResolver.resolve = resolve  # type: ignore[method-assign]


def _patch_native_tool() -> None:
    """Fixes 1 and 2 during a call: through the session; a server failure stops the task.

    ``ToolExecutionFailedError``'s message is ``ToolFailureRecord.summary()``, which quotes
    the whole task description (ours may carry 4000 characters of prior output) before the
    failure; for our failures it is the failure's own message, which already names the MCP
    id and the tool, so the id survives any truncation of the error line.
    """
    original_run = MCPNativeTool._run
    original_summary = ToolFailureRecord.summary

    @functools.wraps(original_summary)
    def summary(self: ToolFailureRecord) -> str:
        if self.failure.code == MCPServerError.__name__:
            return self.failure.message
        return original_summary(self)

    @functools.wraps(original_run)
    def _run(self: MCPNativeTool, **kwargs: Any) -> Any:
        session = getattr(self, "_agentic_session", None)
        if session is None:  # not ours
            return original_run(self, **kwargs)
        config = self._agentic_config
        try:
            result = session.call(self.original_tool_name, kwargs)
        except Exception as exc:
            session.close()  # the server is broken and the task is about to fail
            # Read live by resolve_tool_failure_policy (the structured copy holds None), so
            # the executor raises ToolExecutionFailedError instead of feeding the LLM.
            self.tool_failure_policy = ToolFailurePolicy.RAISE
            raise MCPServerError(
                config.mcp_id,
                f"tool {self.original_tool_name!r} failed ({_where(config)}): "
                f"{_describe(exc, config, during_call=True)}") from exc
        content = self._extract_content(result.content)
        if result.is_error:  # as MCPNativeTool._run_async: the LLM sees it, CrewAI records it
            return ToolFailure(message=content, reason=ToolFailureReason.MCP_ERROR,
                               details={"server": config.mcp_id,
                                        "tool": self.original_tool_name})
        return content

    MCPNativeTool._run = _run  # type: ignore[method-assign]
    ToolFailureRecord.summary = summary  # type: ignore[method-assign]


_task_depth: contextvars.ContextVar[int] = contextvars.ContextVar("agentic_mcp_depth", default=0)


def _patch_agent_cleanup() -> None:
    """Fix 4: close the agent's MCP sessions when its task ends, however it ends.

    CrewAI closes an agent's MCP clients only after a successful task, and through
    ``asyncio.run`` (which cannot run inside a running loop). The sessions are closed here
    directly (``close`` is idempotent). Only the outermost ``execute_task`` does it: CrewAI
    retries a failed task by calling ``execute_task`` again with the same tools.
    """
    from crewai import Agent

    original_execute = Agent.execute_task

    @functools.wraps(original_execute)
    def execute_task(self: Any, *args: Any, **kwargs: Any) -> Any:
        depth = _task_depth.get()
        token = _task_depth.set(depth + 1)
        sessions = _sessions(self._mcp_resolver)  # opened by the crew before the task
        try:
            return original_execute(self, *args, **kwargs)
        except BaseException:
            if depth == 0:
                self._cleanup_mcp_clients()  # CrewAI's own state, and any other clients
            raise
        finally:
            _task_depth.reset(token)
            if depth == 0:
                for session in [*sessions, *_sessions(self._mcp_resolver)]:
                    session.close()

    Agent.execute_task = execute_task  # type: ignore[method-assign]


_applied = False
_lock = threading.Lock()


def apply_crewai_mcp_hotfix() -> bool:
    """Patch CrewAI's MCP classes once per process; later calls do nothing.

    Returns:
        True if this call applied the patches, False if they were already in place.
    """
    global _applied
    with _lock:
        if _applied:
            return False
        _patch_resolver()
        _patch_native_tool()
        _patch_agent_cleanup()
        _applied = True
    logger.debug("CrewAI MCP hotfix applied")
    return True
