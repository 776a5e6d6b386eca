"""Catalog entry -> live provider that builds CrewAI LLMs (``agent_provider_from_dict``).

Every provider type reaches its model through CrewAI's built-in OpenAI client, so one code
path is exercised everywhere (and by the scripted fake in tests):

- ``openai``: api.openai.com, or any OpenAI-compatible server via ``openai_base_url``;
- ``ollama``: Ollama's OpenAI-compatible ``/v1`` endpoint at ``ollama_host`` / ``$OLLAMA_HOST``;
- ``huggingface``: Hugging Face's OpenAI-compatible router, key from ``HF_TOKEN``;
- ``local``: the embedded llama.cpp model, served on loopback by ``local_model``.

API keys are read from the environment here, at the moment the LLM is built, and passed to
the client object only; they are never written back into the entry, a spec, or a log. Each
provider registers its key and ``required_env`` variable names with
``agentic_orchestration.redaction`` when it is built, so their values are masked wherever
they would be printed or written, whatever the variables are called.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from agentic_orchestration import settings
from agentic_orchestration.catalogs.models import AgentProviderEntry
from agentic_orchestration.errors import ConfigError
from agentic_orchestration.redaction import register_env_names

if TYPE_CHECKING:
    from crewai import LLM

logger = logging.getLogger(__name__)

__all__ = ["AgentProvider", "agent_provider_from_dict", "secret_env_names"]

HF_ROUTER_URL = "https://router.huggingface.co/v1"
DEFAULT_MODELS = {
    "openai": "gpt-4o-mini",
    "ollama": "llama3.2",
    "huggingface": "meta-llama/Llama-3.1-8B-Instruct",
    "local": "local-gguf",
}


@dataclass
class AgentProvider:
    """A resolved provider entry that can build a CrewAI LLM and observe its tasks."""

    entry: AgentProviderEntry

    def __post_init__(self) -> None:
        # The coordinator, the planner and every worker build providers: each of them then
        # masks this provider's key and required variables, read from its own environment.
        register_env_names(secret_env_names(self.entry))

    @property
    def id(self) -> str:
        return self.entry.id

    @property
    def model_name(self) -> str:
        return self.entry.model or DEFAULT_MODELS[self.entry.type]

    def base_url(self) -> str | None:
        entry = self.entry
        if entry.type == "openai":
            return entry.openai_base_url or None
        if entry.type == "ollama":
            host = entry.ollama_host or os.environ.get("OLLAMA_HOST", "") or "http://127.0.0.1:11434"
            if not host.startswith(("http://", "https://")):
                host = "http://" + host
            return host.rstrip("/") + "/v1"
        if entry.type == "huggingface":
            return entry.openai_base_url or HF_ROUTER_URL
        from agentic_orchestration.providers.local_model import ensure_local_server

        return ensure_local_server()

    def api_key(self) -> str:
        name = self.entry.key_env()
        if not name:
            return "not-needed"  # local servers ignore it; the OpenAI client insists on one
        value = os.environ.get(name, "")
        if not value:
            raise ConfigError(f"agent provider {self.id!r}: env var {name} is not set")
        return value

    def llm_kwargs(self) -> dict[str, Any]:
        """Everything but the key: safe to log and to compare."""
        kwargs: dict[str, Any] = {
            "model": "openai/" + self.model_name,
            "base_url": self.base_url(),
            "timeout": float(settings.get_int("AGENTIC_LLM_TIMEOUT_SECONDS", minimum=1)),
            # Our own fallback chain handles retries on another provider; client retries
            # would only multiply the wait on a dead endpoint.
            "max_retries": 0,
        }
        if self.entry.type == "local":
            kwargs["max_tokens"] = settings.get_int("AGENTIC_LOCAL_MAX_TOKENS", minimum=16)
            kwargs["temperature"] = 0.3
        return kwargs

    def llm(self) -> LLM:
        from crewai import LLM

        from agentic_orchestration.providers.tls import share_default_tls_context

        share_default_tls_context()  # its sync and async clients: one CA bundle load
        kwargs = self.llm_kwargs()
        logger.debug("building LLM for %s: %s", self.id, kwargs)
        return LLM(api_key=self.api_key(), **kwargs)

    def before_task(self, step_id: str) -> None:
        """Hook run before a step of this provider starts (spec: provider lifecycle)."""
        if self.entry.type == "local":
            from agentic_orchestration.providers.local_model import ensure_local_server

            ensure_local_server()  # load the model before the step's clock matters

    def after_task(self, step_id: str) -> None:
        """Hook run after a step of this provider ends."""


def secret_env_names(entry: AgentProviderEntry) -> list[str]:
    """Env vars whose values this provider uses: its API key variable and ``required_env``."""
    return list(dict.fromkeys([*([entry.key_env()] if entry.key_env() else []),
                               *entry.required_env]))


def agent_provider_from_dict(data: dict[str, Any] | AgentProviderEntry) -> AgentProvider:
    """Build a provider from a catalog entry or its dict (as embedded in a StepSpec)."""
    if isinstance(data, AgentProviderEntry):
        return AgentProvider(data)
    entry = AgentProviderEntry.model_validate(data)
    return AgentProvider(entry)
