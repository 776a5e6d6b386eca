"""LLM providers: catalog entry -> CrewAI LLM, and the embedded llama.cpp model.

``agent_providers`` is the public surface (re-exported here; it imports neither CrewAI nor
llama.cpp). ``local_model*`` run the embedded model in its own process behind an
OpenAI-compatible front (``openai_http``); ``base_model_prompt`` shapes its prompts.
"""

from agentic_orchestration.providers.agent_providers import (
    AgentProvider,
    agent_provider_from_dict,
    secret_env_names,
)

__all__ = ["AgentProvider", "agent_provider_from_dict", "secret_env_names"]
