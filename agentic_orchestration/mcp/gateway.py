"""The gateway path for stdio MCP servers: reach them over streamable HTTP instead.

A Kubernetes worker cannot always start a stdio server itself (no Node in the image, no
secrets in the pod), so the spec's K8s matrix puts such servers behind a gateway: a
cluster service (``AGENTIC_K8S_MCP_FETCH_URL``) or an in-pod ``supergateway`` sidecar that
speaks MCP's streamable HTTP outside and stdio to the real server inside. Two pieces:

* :func:`rewrite_stdio_to_gateway` (pure): a stdio catalog entry or resolved config becomes
  the same MCP id over ``streamable_http`` at the gateway URL, so the rest of the system
  (step specs, ``to_crewai_mcp``) needs no special case.
* :class:`SupergatewayProcess`: runs ``supergateway`` locally around a stdio server, bound
  to loopback, for tests and for a worker that hosts its own sidecar.
"""

from __future__ import annotations

import logging
import os
import shlex
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from agentic_orchestration.catalogs.models import MCPProviderEntry, StreamableHttpServer
from agentic_orchestration.errors import ConfigError, MCPServerError
from agentic_orchestration.mcp.resolution import expand_env, referenced_env_vars

logger = logging.getLogger(__name__)

__all__ = ["SupergatewayProcess", "rewrite_stdio_to_gateway"]

HEALTH_PATH = "/healthz"
MCP_PATH = "/mcp"

# supergateway (4.x) has no bind-address option: it calls ``app.listen(port)``, which
# listens on every interface. Preloaded with ``node --require``, this defaults any
# host-less listen() to loopback, so a local gateway is never reachable from outside.
_LOOPBACK_SHIM = """\
const net = require('net'), listen = net.Server.prototype.listen;
net.Server.prototype.listen = function (...args) {
  const a = args[0];
  if (typeof a === 'number' || /^\\d+$/.test(a)) {
    if (typeof args[1] !== 'string') args.splice(1, 0, '127.0.0.1');
  } else if (a && typeof a === 'object' && a.path === undefined && a.host === undefined) {
    args[0] = { ...a, host: '127.0.0.1' };
  }
  return listen.apply(this, args);
};
"""

def rewrite_stdio_to_gateway(
    entry_or_resolved: MCPProviderEntry | Mapping[str, Any],
    url: str,
    *,
    headers: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The same MCP server, reached over streamable HTTP at ``url`` instead of stdio.

    Accepts the three shapes the code base passes around and returns the same shape:

    * a catalog entry (``MCPProviderEntry`` or its dict) -> an entry dict that validates as
      ``MCPProviderEntry``: id, description and planner_hint kept, ``stdio`` replaced by
      ``streamable_http``. ``required_env`` is dropped: the variables it names belong to
      the server's process, which now runs behind the gateway, and keeping them would
      filter a working gateway entry out of a worker that rightly lacks them.
    * a ref ``{"id": ..., "resolved": {"stdio": {...}}}`` -> ``{"id": ...,
      "resolved": {"streamable_http": {...}}}`` (other keys kept).
    * a bare resolved ``{"stdio": {...}}`` -> ``{"streamable_http": {...}}``.

    Args:
        entry_or_resolved: A stdio MCP server in one of the shapes above.
        url: The gateway's streamable HTTP endpoint (``http(s)://...``, or a ``${VAR}``
            to be expanded where the connection is made).
        headers: HTTP headers for the gateway (e.g. its bearer token); may use ``${VAR}``.

    Raises:
        ConfigError: The input is not a stdio server, or ``url`` is not an HTTP URL.
    """
    if isinstance(entry_or_resolved, MCPProviderEntry):
        entry_or_resolved = entry_or_resolved.model_dump(mode="json", exclude_none=True)
    source = dict(entry_or_resolved)
    mcp_id = str(source.get("id", "?"))
    inner = source["resolved"] if "resolved" in source else source
    if not isinstance(inner, Mapping) or "stdio" not in inner:
        raise ConfigError(f"MCP provider {mcp_id!r}: only a stdio server can be put behind "
                          "a gateway")
    try:
        http = StreamableHttpServer(url=url, headers=dict(headers or {}))
    except ValueError as exc:
        raise ConfigError(f"MCP provider {mcp_id!r}: bad gateway URL {url!r}") from exc
    block = {"streamable_http": http.model_dump(mode="json")}
    if "resolved" in source:
        return {**source, "resolved": block}
    if "id" not in source:  # bare resolved config
        return block
    rewritten = {k: v for k, v in source.items() if k not in ("stdio", "required_env")}
    return MCPProviderEntry.model_validate({**rewritten, **block}).model_dump(
        mode="json", exclude_none=True)


def _descendants(root: int) -> list[int]:
    """PIDs below ``root`` (Linux /proc; empty elsewhere).

    supergateway starts each server ``detached`` (its own process group), so signalling
    supergateway's group does not reach them; we remember them to clean up after it.
    """
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            # Field 4 (ppid) follows the ")" that closes the command name.
            ppid = int(stat.read_text().rpartition(")")[2].split()[1])
            children.setdefault(ppid, []).append(int(stat.parent.name))
        except (OSError, ValueError, IndexError):
            continue
    found, todo = [], [root]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


class SupergatewayProcess:
    """``supergateway`` serving a stdio MCP server as streamable HTTP on 127.0.0.1.

    Use as a context manager; ``url`` is the endpoint for ``streamable_http``. Entering
    waits (bounded) until the gateway answers its health endpoint; leaving stops it, the
    servers it started and their process groups.

    Args:
        server: The stdio server: an argv list, or a stdio resolved config / ref / catalog
            entry (its ``${VAR}`` references are expanded here, in the process that starts
            the server, and its ``env`` block is given to the server).
        supergateway: The ``supergateway`` executable (default: found on PATH).
        stateful: One server process per MCP session (``--stateful``) instead of one per
            HTTP request; the spec's ``AGENTIC_K8S_SUPERGATEWAY_STATEFUL`` switch.
        start_timeout: Seconds to wait for the gateway to answer before giving up.
        mcp_id: Names the server in errors (default: the entry's id, else the command).

    Raises:
        MCPServerError: On entering, when node or supergateway is missing, or the gateway
            exits or does not answer within ``start_timeout`` (message ends with its log).
    """

    def __init__(self, server: Sequence[str] | MCPProviderEntry | Mapping[str, Any], *,
                 supergateway: str | os.PathLike[str] | None = None, stateful: bool = False,
                 start_timeout: float = 15.0, mcp_id: str = "") -> None:
        self._argv, self._server_env, self._secrets, found_id = _server_command(server)
        self.mcp_id = mcp_id or found_id or os.path.basename(self._argv[0])
        self._supergateway = str(supergateway or shutil.which("supergateway") or "")
        self._stateful = stateful
        self._start_timeout = start_timeout
        self._proc: subprocess.Popen[bytes] | None = None
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self.port = 0

    @property
    def url(self) -> str:
        """The streamable HTTP endpoint, e.g. ``http://127.0.0.1:40123/mcp``."""
        if not self.port:
            raise RuntimeError("SupergatewayProcess is not running")
        return f"http://127.0.0.1:{self.port}{MCP_PATH}"

    def __enter__(self) -> SupergatewayProcess:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _node_argv(self) -> list[str]:
        """``node --require <shim> <supergateway's JS entry>``; the shim pins loopback."""
        entry = os.path.realpath(self._supergateway) if self._supergateway else ""
        node = shutil.which("node")
        if not entry or not os.path.isfile(entry) or node is None:
            raise MCPServerError(
                self.mcp_id, "supergateway (npm) and node are needed for an MCP gateway: run "
                "scripts/install_mcp_servers.sh and pass its bin dir "
                f"(supergateway={self._supergateway or 'not found'}, node={node})")
        assert self._tmp is not None
        shim = Path(self._tmp.name) / "loopback.cjs"
        shim.write_text(_LOOPBACK_SHIM)
        return [node, "--require", str(shim), entry]

    def start(self) -> None:
        """Start supergateway and wait until it answers; raises ``MCPServerError`` if not."""
        from mcp.client.stdio import get_default_environment

        self._tmp = tempfile.TemporaryDirectory(prefix="agentic-gateway-")
        try:
            argv = self._node_argv()
            with socket.socket() as probe:  # a free port; supergateway binds it just after
                probe.bind(("127.0.0.1", 0))
                self.port = int(probe.getsockname()[1])
            argv += ["--stdio", shlex.join(self._argv), "--outputTransport", "streamableHttp",
                     "--port", str(self.port), "--streamableHttpPath", MCP_PATH,
                     "--healthEndpoint", HEALTH_PATH]
            if self._stateful:
                argv.append("--stateful")
            # The same small environment the MCP SDK gives a stdio server CrewAI starts,
            # plus the entry's own env: a gateway must not hand the server our secrets.
            env = {**get_default_environment(), **self._server_env}
            with open(Path(self._tmp.name) / "supergateway.log", "wb") as log:
                # stdin stays open: supergateway exits (and stops its servers) when it
                # closes, so even if this process dies nothing is left running.
                self._proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=log,
                                              stderr=subprocess.STDOUT, env=env,
                                              start_new_session=True)
            self._wait_ready()
            logger.debug("supergateway for %s ready at %s", self.mcp_id, self.url)
        except BaseException:
            self.stop()
            raise

    def _wait_ready(self) -> None:
        assert self._proc is not None
        deadline = time.monotonic() + self._start_timeout
        health = f"http://127.0.0.1:{self.port}{HEALTH_PATH}"
        while True:
            if self._proc.poll() is not None:
                raise MCPServerError(self.mcp_id, f"supergateway exited with code "
                                     f"{self._proc.returncode}: {self.log_tail()}")
            try:
                with urllib.request.urlopen(health, timeout=1) as reply:
                    if reply.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            if time.monotonic() >= deadline:
                raise MCPServerError(self.mcp_id, f"supergateway did not answer on {health} "
                                     f"within {self._start_timeout:g}s: {self.log_tail()}")
            time.sleep(0.05)

    def log_tail(self, chars: int = 1500) -> str:
        """The end of supergateway's log, with the expanded secret values masked."""
        if self._tmp is None:
            return ""
        try:
            text = (Path(self._tmp.name) / "supergateway.log").read_text(errors="replace")
        except OSError:
            return ""
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text[-chars:].strip()

    def stop(self, *, grace: float = 8.0) -> None:
        """Stop supergateway (stdin closed + SIGTERM, SIGKILL after ``grace`` s) and every
        server process it started, then remove the temp dir. Safe to call twice."""
        proc, self._proc = self._proc, None
        if proc is not None:
            spawned = _descendants(proc.pid)
            if proc.stdin is not None:
                proc.stdin.close()
            _signal_group(proc.pid, signal.SIGTERM)
            try:
                proc.wait(grace)  # supergateway itself gives its servers 5 s to exit
            except subprocess.TimeoutExpired:
                _signal_group(proc.pid, signal.SIGKILL)
                proc.wait(5)
            for pid in spawned:
                _signal_group(pid, signal.SIGKILL)
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None
        self.port = 0


def _signal_group(pid: int, sig: int) -> None:
    """Signal ``pid``'s process group if it leads one, else ``pid`` alone; gone is fine."""
    try:
        if os.getpgid(pid) == pid:
            os.killpg(pid, sig)
        else:
            os.kill(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _server_command(server: Sequence[str] | MCPProviderEntry | Mapping[str, Any]
                    ) -> tuple[list[str], dict[str, str], list[str], str]:
    """``(argv, env, secret values, mcp id)`` of the stdio server, ``${VAR}`` expanded."""
    if isinstance(server, (list, tuple)) and server:
        return [str(part) for part in server], {}, [], ""
    if isinstance(server, MCPProviderEntry):
        server = {"id": server.id, "resolved": {"stdio": server.model_dump(mode="json")["stdio"]}}
    mcp_id = str(server.get("id", "")) if isinstance(server, Mapping) else ""
    resolved = server.get("resolved", server) if isinstance(server, Mapping) else {}
    if not resolved.get("stdio"):
        raise ConfigError(f"MCP provider {mcp_id or '?'!r}: SupergatewayProcess needs a "
                          "stdio server (an argv list or a stdio config)")
    names = referenced_env_vars(resolved)
    block = expand_env({"stdio": resolved["stdio"]}, mcp_id=mcp_id)["stdio"]
    secrets = [v for name in names if len(v := os.environ.get(name, "")) >= 4]
    argv = [str(block["command"]), *(str(a) for a in block.get("args") or [])]
    env = {str(k): str(v) for k, v in (block.get("env") or {}).items()}
    return argv, env, secrets, mcp_id
