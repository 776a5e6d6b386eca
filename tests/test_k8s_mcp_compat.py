"""The MCP compatibility matrix in kubernetes mode (K0.6, K4.3): what a worker pod can serve,
applied to the planner's catalog, the materializer's and ``--list-mcps``; no cluster."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from agentic_orchestration.catalogs import WorkflowConfig, load_catalog
from agentic_orchestration.orchestration.backends.base import RunOptions
from agentic_orchestration.orchestration.backends.kubernetes import KubernetesExecutionBackend
from agentic_orchestration.orchestration.k8s_mcp_compat import (
    K8S_NATIVE_MCP_IDS,
    apply_kubernetes_mcp_catalog_policy,
    catalog_for_backend,
    kubernetes_mcp_verdict,
)
from agentic_orchestration.orchestration.run_store import FileSystemRunStore
from agentic_orchestration.testing import ScriptedLauncher
from tests.conftest import write_catalog

REPO = Path(__file__).resolve().parent.parent

MCPS = textwrap.dedent("""\
    - id: search_brave
      streamable_http: {url: "https://api.search.brave.com/mcp"}
    - id: fetch_url
      stdio: {command: no-such-fetch-command, args: []}
    - id: filesystem_local
      stdio: {command: sh, args: ["-c", "true"]}
    - id: my_http_tool
      streamable_http: {url: "http://tools.example:8000/mcp"}
    - id: my_stdio_tool
      stdio: {command: sh, args: ["-c", "true"]}
    """)


@pytest.fixture
def catalog(tmp_path, scripted_llm):
    return load_catalog(write_catalog(tmp_path / "cfg", base_url=scripted_llm.base_url,
                                      mcps=MCPS))


def test_shipped_catalog_matches_the_signed_off_matrix():
    shipped = load_catalog(REPO / "config")
    verdicts = {mcp_id: kubernetes_mcp_verdict(entry, {})[0]
                for mcp_id, entry in shipped.mcps.items()}
    assert verdicts == {"search_brave": True, "search_tavily": True, "home_assistant": True,
                        "fetch_url": True,  # worker-native by default
                        "search_exa": False, "filesystem_local": False,
                        "memory_knowledge_graph": False}
    assert {m for m in K8S_NATIVE_MCP_IDS} <= set(shipped.mcps)
    allowed = {mcp_id: kubernetes_mcp_verdict(entry, {"AGENTIC_K8S_ALLOW_STDIO_MCPS": "1"})[0]
               for mcp_id, entry in shipped.mcps.items()}
    assert all(allowed.values())


def test_policy_excludes_with_reasons_and_keeps_what_pods_can_run(catalog):
    assert catalog.mcp_exclusions == {"fetch_url": "command not installed: "
                                                   "no-such-fetch-command"}
    k8s = apply_kubernetes_mcp_catalog_policy(catalog, {})
    available = {m.id for m in k8s.available_mcps}
    # fetch_url runs in the worker image: the coordinator's "not installed" does not apply.
    assert available == {"search_brave", "fetch_url"}
    assert k8s.mcp_exclusions["filesystem_local"].startswith(
        "kubernetes mode: stdio server not in the worker image; set "
        "AGENTIC_K8S_MCP_FILESYSTEM_URL")
    for unknown in ("my_http_tool", "my_stdio_tool"):
        assert k8s.mcp_exclusions[unknown].startswith(
            "kubernetes mode: id not classified for Kubernetes")
    assert catalog.available_mcps != k8s.available_mcps  # the original is left alone
    assert catalog_for_backend(catalog, "inprocess") is catalog


def test_worker_stdio_ids_allow_stdio_and_missing_keys(catalog, monkeypatch):
    env = {"AGENTIC_K8S_WORKER_STDIO_MCPS": "my_stdio_tool,my_http_tool"}
    k8s = apply_kubernetes_mcp_catalog_policy(catalog, env)
    # Only a stdio entry can run in the worker; an HTTP one listed there is still unknown.
    assert {m.id for m in k8s.available_mcps} == {"search_brave", "my_stdio_tool"}
    allow = apply_kubernetes_mcp_catalog_policy(catalog, {"AGENTIC_K8S_ALLOW_STDIO_MCPS": "1"})
    assert {m.id for m in allow.available_mcps} == {"search_brave", "fetch_url",
                                                    "filesystem_local"}
    catalog.mcp_exclusions["search_brave"] = "missing env: BRAVE_API_KEY"
    kept = apply_kubernetes_mcp_catalog_policy(catalog, {})
    assert kept.mcp_exclusions["search_brave"] == "missing env: BRAVE_API_KEY"


def test_gateway_url_rewrites_the_stdio_entry(catalog):
    k8s = apply_kubernetes_mcp_catalog_policy(
        catalog, {"AGENTIC_K8S_MCP_FETCH_URL": "http://fetch-gateway:8000/mcp",
                  "AGENTIC_K8S_WORKER_STDIO_MCPS": "other"})
    entry = k8s.mcps["fetch_url"]
    assert entry.transport == "streamable_http"
    assert entry.streamable_http.url == "http://fetch-gateway:8000/mcp"
    assert "fetch_url" not in k8s.mcp_exclusions
    assert catalog.mcps["fetch_url"].transport == "stdio"


def test_materializer_drops_what_pods_cannot_run(tmp_path, fake_config, scripted_llm):
    root = write_catalog(tmp_path / "cfg2", base_url=scripted_llm.base_url, mcps=MCPS)
    config = WorkflowConfig.model_validate({"name": "wf", "topic": "tea", "steps": [
        {"id": "one", "agent_provider": "fake_researcher",
         "mcp_providers": ["search_brave", "my_stdio_tool", "filesystem_local"],
         "description": "ONE"}]})
    store = FileSystemRunStore(tmp_path / "store")
    launcher = ScriptedLauncher(store=store)
    backend = KubernetesExecutionBackend(launcher=launcher, run_store=store)
    result = backend.execute_config(config, catalog=load_catalog(root), options=RunOptions(
        run_id="r1", emit_progress_lines=False, emit_stdout_summary=False))
    assert result.ok, result.error
    [spec] = launcher.received
    assert [ref.id for ref in spec.mcp_providers] == ["search_brave"]
    written = json.loads((tmp_path / "store" / "r1" / "one-spec.json").read_text())
    assert [ref["id"] for ref in written["mcp_providers"]] == ["search_brave"]


def test_planner_is_offered_only_what_pods_can_run(tmp_path, scripted_llm, monkeypatch):
    root = write_catalog(tmp_path / "cfg", base_url=scripted_llm.base_url, mcps=MCPS)
    scripted_llm.default = json.dumps({"name": "p", "steps": [
        {"agent_provider": "fake_researcher", "mcp_providers": ["search_brave"],
         "description": "Write about tea", "expected_output": "text"}]})
    env = {"AGENTIC_CONFIG_DIR": str(root), "AGENTIC_EXECUTION_BACKEND": "kubernetes",
           "HOME": str(tmp_path), "PATH": "/usr/bin:/bin", "AGENTIC_PLANNER_PROVIDER":
           "fake_researcher"}
    proc = subprocess.run([sys.executable, str(REPO / "main.py"), "--plan-only", "--no-router",
                           "--dynamic", "tea facts"], capture_output=True, text=True,
                          timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr
    prompt = "\n".join(json.dumps(r) for r in scripted_llm.requests)
    assert "search_brave" in prompt
    for excluded in ("filesystem_local", "my_stdio_tool", "my_http_tool"):
        assert excluded not in prompt


def test_list_mcps_says_why_an_mcp_is_out(tmp_path, scripted_llm):
    root = write_catalog(tmp_path / "cfg", base_url=scripted_llm.base_url, mcps=MCPS)
    env = {"AGENTIC_CONFIG_DIR": str(root), "HOME": str(tmp_path), "PATH": "/usr/bin:/bin"}
    listing = {}
    for backend in ("inprocess", "kubernetes"):
        proc = subprocess.run([sys.executable, str(REPO / "main.py"), "--list-mcps"],
                              capture_output=True, text=True, timeout=120,
                              env={**env, "AGENTIC_EXECUTION_BACKEND": backend})
        assert proc.returncode == 0, proc.stderr
        listing[backend] = {line.split()[0]: line for line in proc.stdout.splitlines()[1:]}
    assert "available" in listing["inprocess"]["my_stdio_tool"]
    line = listing["kubernetes"]["my_stdio_tool"]
    assert "filtered out" in line and "kubernetes mode: id not classified" in line
    assert "available" in listing["kubernetes"]["fetch_url"]
    assert "stdio server not in the worker image" in listing["kubernetes"]["filesystem_local"]
