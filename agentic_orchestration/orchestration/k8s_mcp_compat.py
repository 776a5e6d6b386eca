"""Which MCP servers a Kubernetes step can use: the spec's compatibility matrix (K0.6, K4.3).

A worker pod is not the coordinator's machine: a stdio MCP server runs only if its command
is in the worker image, and an HTTP one only if the pod can reach its URL. So in kubernetes
mode the catalog the planner chooses from, and the one the materializer resolves steps
with, both go through ``apply_kubernetes_mcp_catalog_policy``: the planner is never offered
an MCP the backend cannot serve, and a static workflow naming one has it dropped with a
warning (as for an MCP whose API key is unset), never a step that fails in its pod.

An id is usable, in this order of precedence:

1. a gateway URL is set for it (``AGENTIC_K8S_MCP_FETCH_URL``,
   ``AGENTIC_K8S_MCP_FILESYSTEM_URL``): its stdio entry is rewritten to streamable HTTP;
2. it is HTTP-native (``K8S_NATIVE_MCP_IDS``: the pod connects to the URL);
3. it is a stdio id listed in ``AGENTIC_K8S_WORKER_STDIO_MCPS`` (default ``fetch_url``:
   ``mcp-server-fetch`` is in the worker image), started inside the worker container;
4. it is a classified stdio id (``K8S_STDIO_MCP_IDS``) and ``AGENTIC_K8S_ALLOW_STDIO_MCPS=1``
   (the operator provides a sidecar or gateway).

Anything else, unknown ids from extra catalogs included, is excluded with a reason
(``--list-mcps`` shows it). Runtime policy only: no YAML changes between backends.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING

from agentic_orchestration import settings

if TYPE_CHECKING:
    from agentic_orchestration.catalogs import Catalog
    from agentic_orchestration.catalogs.models import MCPProviderEntry

logger = logging.getLogger(__name__)

__all__ = [
    "GATEWAY_URL_VARS",
    "K8S_NATIVE_MCP_IDS",
    "K8S_STDIO_MCP_IDS",
    "apply_kubernetes_mcp_catalog_policy",
    "catalog_for_backend",
    "kubernetes_mcp_verdict",
]

#: Streamable-HTTP MCP ids of the shipped catalog: the pod connects (K3 MVP allowlist).
K8S_NATIVE_MCP_IDS = frozenset({"search_brave", "search_tavily", "home_assistant"})
#: Stdio MCP ids of the shipped catalog, classified: they need the command in the worker
#: image, a sidecar or a cluster gateway.
K8S_STDIO_MCP_IDS = frozenset({"search_exa", "fetch_url", "filesystem_local",
                               "memory_knowledge_graph"})
#: MCP id -> the variable holding its cluster HTTP gateway's URL.
GATEWAY_URL_VARS = {"fetch_url": "AGENTIC_K8S_MCP_FETCH_URL",
                    "filesystem_local": "AGENTIC_K8S_MCP_FILESYSTEM_URL"}
#: Prefix of every exclusion reason this policy adds (``--list-mcps`` shows it).
REASON_PREFIX = "kubernetes mode: "
#: The coordinator's own "command not installed" verdict does not apply to a command that
#: runs in the worker image or behind a gateway.
_NOT_INSTALLED = "command not installed"


def kubernetes_mcp_verdict(entry: MCPProviderEntry,
                           environ: Mapping[str, str] | None = None) -> tuple[bool, str]:
    """``(usable, how or why not)`` for one catalog entry in kubernetes mode."""
    mcp_id = entry.id
    gateway_var = GATEWAY_URL_VARS.get(mcp_id)
    if gateway_var and settings.value(gateway_var, environ):
        return True, f"through the cluster gateway {gateway_var}"
    if mcp_id in K8S_NATIVE_MCP_IDS:
        return True, "HTTP-native: the worker pod connects to it"
    if entry.transport == "stdio" and mcp_id in settings.value(
            "AGENTIC_K8S_WORKER_STDIO_MCPS", environ):
        return True, "started inside the worker container (AGENTIC_K8S_WORKER_STDIO_MCPS)"
    if mcp_id in K8S_STDIO_MCP_IDS:
        if settings.value("AGENTIC_K8S_ALLOW_STDIO_MCPS", environ):
            return True, "stdio allowed by AGENTIC_K8S_ALLOW_STDIO_MCPS=1 (sidecar or gateway)"
        hint = (f"set {gateway_var}, " if gateway_var else "")
        return False, (f"{REASON_PREFIX}stdio server not in the worker image; {hint}add it "
                       "to AGENTIC_K8S_WORKER_STDIO_MCPS if the image has its command, or "
                       "set AGENTIC_K8S_ALLOW_STDIO_MCPS=1 once a sidecar serves it")
    return False, (f"{REASON_PREFIX}id not classified for Kubernetes (only "
                   f"{', '.join(sorted(K8S_NATIVE_MCP_IDS))}, the worker's stdio ids and "
                   "gateways are); list it in AGENTIC_K8S_WORKER_STDIO_MCPS if it is a stdio "
                   "server whose command the worker image has")


def _gateway_entry(entry: MCPProviderEntry, url: str) -> MCPProviderEntry:
    from agentic_orchestration.catalogs.models import MCPProviderEntry, StreamableHttpServer

    data = entry.model_dump(exclude={"stdio", "streamable_http", "required_env"})
    return MCPProviderEntry.model_validate({**data, "streamable_http":
                                            StreamableHttpServer(url=url).model_dump()})


def apply_kubernetes_mcp_catalog_policy(catalog: Catalog,
                                        environ: Mapping[str, str] | None = None) -> Catalog:
    """A copy of ``catalog`` as a Kubernetes worker can serve it (see the module docstring).

    Entries with a gateway URL are rewritten to streamable HTTP; unusable ones are added
    to ``mcp_exclusions`` with the reason (an exclusion already there, e.g. a missing API
    key, is kept). The coordinator's "command not installed" verdict is dropped for
    commands that run in the worker image or behind a gateway.
    """
    mcps = dict(catalog.mcps)
    exclusions = dict(catalog.mcp_exclusions)
    for mcp_id, entry in catalog.mcps.items():
        usable, why = kubernetes_mcp_verdict(entry, environ)
        if not usable:
            exclusions.setdefault(mcp_id, why)
            continue
        gateway_var = GATEWAY_URL_VARS.get(mcp_id)
        url = settings.value(gateway_var, environ) if gateway_var else None
        if url and entry.transport == "stdio":
            mcps[mcp_id] = _gateway_entry(entry, url)
            exclusions.pop(mcp_id, None)  # its command and env are the gateway's business
        elif exclusions.get(mcp_id, "").startswith(_NOT_INSTALLED):
            del exclusions[mcp_id]
        logger.debug("kubernetes MCP policy: %s usable, %s", mcp_id, why)
    return dataclasses.replace(catalog, mcps=mcps, mcp_exclusions=exclusions)


def catalog_for_backend(catalog: Catalog, backend_name: str) -> Catalog:
    """``catalog`` as the named backend can serve it: the policy above on ``kubernetes``,
    unchanged elsewhere. The planner's catalog and the materializer's both come from here."""
    if backend_name != "kubernetes":
        return catalog
    return apply_kubernetes_mcp_catalog_policy(catalog)
