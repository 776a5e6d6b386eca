"""The gateway path the Kubernetes backend will use: stdio MCP -> supergateway -> HTTP.

``rewrite_stdio_to_gateway`` is tested as the pure function it is. End to end, the real
``mcp-server-fetch`` (with its private-address override) runs behind a real ``supergateway``
(npm, from the cached prefix ``scripts/install_mcp_servers.sh`` fills) on loopback, and a
step whose shipped ``fetch_url`` catalog entry was rewritten to the gateway URL fetches a
page from a local ``http.server`` through CrewAI's streamable HTTP client: the page's text
must reach the step's output and the page server must have seen the request.
"""

from __future__ import annotations

import copy
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import REPO, write_catalog

from agentic_orchestration.catalogs import WorkflowConfig, load_catalog
from agentic_orchestration.catalogs.mcp_providers_catalog import load_mcp_providers
from agentic_orchestration.catalogs.models import MCPProviderEntry
from agentic_orchestration.errors import ConfigError, MCPServerError
from agentic_orchestration.mcp.gateway import (
    SupergatewayProcess,
    _descendants,
    rewrite_stdio_to_gateway,
)
from agentic_orchestration.mcp.resolution import (
    expand_env,
    resolve_workflow_mcp_refs,
    to_crewai_mcp,
)
from agentic_orchestration.orchestration.backends.base import RunOptions
from agentic_orchestration.orchestration.backends.crewai import CrewAIExecutionBackend
from agentic_orchestration.testing import ScriptedLLMServer, ToolCallReply

GATEWAY = "http://127.0.0.1:18080/mcp"
FETCH = Path(sys.executable).parent / "mcp-server-fetch"
PAGE_TEXT = "Gateway page: the lighthouse keeper's number is 5512."


def shipped(mcp_id: str) -> MCPProviderEntry:
    return load_mcp_providers(REPO / "config")[mcp_id]


# --- the pure rewrite ---------------------------------------------------------------


def test_rewrite_catalog_entry_keeps_id_and_drops_server_side_env() -> None:
    entry = shipped("filesystem_local")
    before = entry.model_dump()
    out = rewrite_stdio_to_gateway(entry, GATEWAY)
    assert out == {"id": "filesystem_local", "description": entry.description,
                   "streamable_http": {"url": GATEWAY, "headers": {}},
                   "required_env": [], "planner_hint": entry.planner_hint}
    assert MCPProviderEntry.model_validate(out).transport == "streamable_http"
    assert entry.model_dump() == before  # pure: the input is untouched


def test_rewrite_entry_dict_and_headers() -> None:
    raw = shipped("search_exa").model_dump(mode="json", exclude_none=True)
    frozen = copy.deepcopy(raw)
    out = rewrite_stdio_to_gateway(raw, GATEWAY, headers={"Authorization": "Bearer ${GW}"})
    assert out["streamable_http"] == {"url": GATEWAY,
                                      "headers": {"Authorization": "Bearer ${GW}"}}
    assert "stdio" not in out and out["id"] == "search_exa"
    assert "EXA_API_KEY" not in str(out)  # the server's secret stays on the gateway side
    assert raw == frozen


def test_rewrite_ref_and_bare_resolved() -> None:
    [ref] = resolve_workflow_mcp_refs([shipped("fetch_url")])
    out = rewrite_stdio_to_gateway(ref, GATEWAY)
    assert out == {"id": "fetch_url", "resolved": {"streamable_http": {"url": GATEWAY,
                                                                       "headers": {}}}}
    assert ref["resolved"]["stdio"]["command"] == "mcp-server-fetch"  # not mutated
    assert rewrite_stdio_to_gateway(ref["resolved"], GATEWAY) == out["resolved"]
    # The rewritten ref goes down the normal attach path unchanged.
    server = to_crewai_mcp(expand_env(out))
    assert server.url == GATEWAY


def test_rewrite_url_may_be_a_variable_expanded_where_it_connects() -> None:
    [ref] = resolve_workflow_mcp_refs([shipped("fetch_url")])
    out = rewrite_stdio_to_gateway(ref, "${AGENTIC_K8S_MCP_FETCH_URL}")
    assert expand_env(out, {"AGENTIC_K8S_MCP_FETCH_URL": GATEWAY}) == {
        "streamable_http": {"url": GATEWAY, "headers": {}}}


def test_rewrite_refuses_http_servers_and_bad_urls() -> None:
    with pytest.raises(ConfigError, match=r"'search_brave'.*only a stdio server"):
        rewrite_stdio_to_gateway(shipped("search_brave"), GATEWAY)
    with pytest.raises(ConfigError, match=r"'fetch_url'.*bad gateway URL"):
        rewrite_stdio_to_gateway(shipped("fetch_url"), "ftp://example.org/mcp")


# --- supergateway for real ------------------------------------------------------------


@pytest.fixture(scope="module")
def supergateway_bin() -> Path:
    """supergateway from the cached npm prefix, installed first if needed (never skipped).

    Module scope: it runs before the per-test ``isolated_env`` moves HOME.
    """
    done = subprocess.run(["bash", str(REPO / "scripts" / "install_mcp_servers.sh")],
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, f"install_mcp_servers.sh failed:\n{done.stderr}"
    path = Path(done.stdout.strip().splitlines()[-1]) / "supergateway"
    assert path.exists()
    assert FETCH.exists(), f"{FETCH} missing: mcp-server-fetch belongs in the venv"
    return path


@pytest.fixture
def page_server() -> Iterator[tuple[str, list[str]]]:
    """A local page (loopback) and the list of paths requested from it."""
    seen: list[str] = []

    class Page(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.append(self.path)
            found = self.path == "/page.html"
            body = (f"<html><body><h1>Notice</h1><p>{PAGE_TEXT}</p></body></html>"
                    if found else "not here").encode()
            self.send_response(200 if found else 404)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Page)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/page.html", seen
    server.shutdown()
    server.server_close()


def fetch_server_entry() -> MCPProviderEntry:
    """The shipped fetch_url entry, run from the venv with loopback fetching allowed."""
    entry = shipped("fetch_url")
    assert entry.stdio is not None
    stdio = entry.stdio.model_copy(update={"command": str(FETCH),
                                           "args": [*entry.stdio.args, "--allow-private-ips"]})
    return entry.model_copy(update={"stdio": stdio})


def listening_addresses(port: int) -> set[str]:
    """Local addresses (hex, as /proc shows them) with a LISTEN socket on ``port``."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, _, hex_port = local.partition(":")
            if state == "0A" and int(hex_port, 16) == port:
                found.add(address)
    return found


def gateway_processes() -> list[str]:
    left = []
    for pid in _descendants(os.getpid()):
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if re.search(r"supergateway|mcp-server-fetch|mcp_server_fetch", cmd):
            left.append(cmd)
    return left


def fetch_then_echo(page_url: str) -> list[Any]:
    def call_fetch(request: dict[str, Any]) -> ToolCallReply:
        names = [tool["function"]["name"] for tool in request.get("tools", [])]
        [name] = [n for n in names if n.endswith("fetch")] or [f"NO FETCH TOOL IN {names}"]
        return ToolCallReply(name, {"url": page_url})

    def echo(request: dict[str, Any]) -> str:
        results = [str(m.get("content")) for m in request["messages"] if m.get("role") == "tool"]
        return "Final Answer: the page says: " + " | ".join(results)

    return [call_fetch, echo]


@pytest.mark.backend_inprocess
@pytest.mark.filterwarnings("ignore::ImportWarning")
@pytest.mark.parametrize("stateful", [False, True], ids=["stateless", "stateful"])
def test_fetch_url_through_supergateway_reaches_the_step_output(
        tmp_path: Path, supergateway_bin: Path, page_server: tuple[str, list[str]],
        stateful: bool) -> None:
    page_url, seen = page_server
    with SupergatewayProcess(fetch_server_entry(), supergateway=supergateway_bin,
                             stateful=stateful) as gateway:
        assert listening_addresses(gateway.port) == {"0100007F"}  # 127.0.0.1 only
        entry = rewrite_stdio_to_gateway(shipped("fetch_url"), gateway.url)
        with ScriptedLLMServer(fetch_then_echo(page_url), default=None) as llm:
            root = write_catalog(tmp_path / "cfg", base_url=llm.base_url,
                                 mcps=yaml.safe_dump([entry]))
            catalog = load_catalog(root)
            assert catalog.mcps["fetch_url"].transport == "streamable_http"
            config = WorkflowConfig.model_validate({"name": "gw", "steps": [{
                "agent_provider": "fake_researcher", "description": "Read the notice page.",
                "mcp_providers": ["fetch_url"]}]})
            result = CrewAIExecutionBackend().execute_config(config, options=RunOptions(),
                                                             catalog=catalog)
    assert result.ok, result.error
    assert PAGE_TEXT in str(result.result_text)
    assert "/page.html" in seen  # the fetch server behind the gateway made the request
    assert len(llm.requests) == 2
    assert gateway_processes() == []


def test_gateway_start_is_bounded_and_leaves_nothing(supergateway_bin: Path) -> None:
    gateway = SupergatewayProcess(fetch_server_entry(), supergateway=supergateway_bin,
                                  start_timeout=0.0)
    began = time.monotonic()
    with pytest.raises(MCPServerError, match=r"'fetch_url'.*did not answer.*within 0s"):
        gateway.start()
    assert time.monotonic() - began < 10
    assert gateway_processes() == []
    with pytest.raises(RuntimeError, match="not running"):
        _ = gateway.url


def test_gateway_without_supergateway_fails_clearly(tmp_path: Path) -> None:
    with pytest.raises(MCPServerError, match=r"'fetch_url'.*install_mcp_servers\.sh"), \
            SupergatewayProcess(fetch_server_entry(), supergateway=tmp_path / "nope"):
        pass


def test_gateway_expands_the_entry_where_it_starts_and_masks_secrets_in_its_log(
        supergateway_bin: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    entry = fetch_server_entry()
    assert entry.stdio is not None
    stdio = entry.stdio.model_copy(update={"args": [*entry.stdio.args, "--user-agent",
                                                    "${FETCH_UA_TOKEN}"]})
    entry = entry.model_copy(update={"stdio": stdio})
    with pytest.raises(ConfigError, match=r"'fetch_url'.*FETCH_UA_TOKEN"):
        SupergatewayProcess(entry, supergateway=supergateway_bin)  # nothing started yet
    monkeypatch.setenv("FETCH_UA_TOKEN", "ua-s3cret-value")
    with SupergatewayProcess(entry, supergateway=supergateway_bin) as gateway:
        log_file = next(Path(gateway._tmp.name).glob("*.log"))  # type: ignore[union-attr]
        assert "--user-agent ua-s3cret-value" in log_file.read_text()  # expanded here
        tail = gateway.log_tail()
    assert "--user-agent ***" in tail and "ua-s3cret-value" not in tail
    assert gateway_processes() == []


def test_gateway_needs_a_stdio_server() -> None:
    with pytest.raises(ConfigError, match=r"'search_brave'.*needs a stdio server"):
        SupergatewayProcess(shipped("search_brave"))
    with pytest.raises(ConfigError, match="needs a stdio server"):
        SupergatewayProcess([])
