"""One default TLS context per process (providers/tls.py): still verifying, and shared by the
clients of every LLM a run builds."""

from __future__ import annotations

import ssl

import httpx
import httpx._transports.default as transports
import pytest

from agentic_orchestration.providers.agent_providers import (
    AgentProvider,
    agent_provider_from_dict,
)
from agentic_orchestration.providers.tls import share_default_tls_context


@pytest.fixture
def unshared(monkeypatch: pytest.MonkeyPatch) -> None:
    """httpx as it comes: whatever an earlier test shared is put back afterwards."""
    import httpx._config as config

    monkeypatch.setattr(transports, "create_ssl_context", config.create_ssl_context)


def test_shared_tls_context_still_verifies(unshared) -> None:
    assert share_default_tls_context()
    first, second = httpx.Client(), httpx.AsyncClient()
    unverified = httpx.Client(verify=False)
    try:
        ctx = first._transport._pool._ssl_context
        assert ctx is second._transport._pool._ssl_context
        assert ctx.verify_mode == ssl.CERT_REQUIRED and ctx.check_hostname
        assert ctx.cert_store_stats()["x509_ca"] > 0
        assert unverified._transport._pool._ssl_context is not ctx
    finally:
        first.close()
        unverified.close()


def test_every_llm_of_a_run_uses_one_tls_context(unshared) -> None:
    def provider(agent_id: str) -> AgentProvider:
        return agent_provider_from_dict({
            "id": agent_id, "type": "openai", "model": "m",
            "openai_base_url": "http://127.0.0.1:9/v1", "role": "R", "goal": "G",
            "backstory": "B"})

    llms = [provider("a").llm(), provider("b").llm()]
    contexts = {id(llm._client._client._transport._pool._ssl_context) for llm in llms}
    contexts |= {id(llm._async_client._client._transport._pool._ssl_context) for llm in llms}
    assert len(contexts) == 1
