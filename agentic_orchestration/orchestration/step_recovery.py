"""Per-step recovery: which spec the next attempt of a failed step runs (spec K3.4, K3.5).

The worker (or its launcher) says *why* a step failed in ``StepResult.recovery_hint``; this
module turns that hint into the next attempt's ``StepSpec`` for ``StepCoordinator``:

- ``provider_fallback`` (``execution_fallback.classify_exception``: 5xx, 429, timeouts,
  refused connections, an empty answer) and ``hf_litellm_fallback`` (the spec's name for a
  Hugging Face/LiteLLM failure): the same step on the next provider of
  ``Catalog.fallback_chain`` of the step's original entry, persona kept (``with_llm_of``).
  Off when ``AGENTIC_FALLBACK=0``; None once the chain is used up.
- ``worker_retry`` (the launcher's verdict: the worker crashed, was killed, hung, or
  exited without ``result.json``): the same spec again, since the provider did not fail.
- anything else: None, the failure stands.

Unlike the in-process workflow-level fallback, only the failed step changes provider: the
next step starts again from its own planned provider, which may well be up.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from agentic_orchestration.catalogs.catalog import with_llm_of
from agentic_orchestration.catalogs.models import AgentProviderEntry
from agentic_orchestration.orchestration.backends.base import RecoveryHint
from agentic_orchestration.orchestration.execution_fallback import fallback_enabled

if TYPE_CHECKING:
    from agentic_orchestration.catalogs import Catalog
    from agentic_orchestration.orchestration.backends.base import StepResult, StepSpec
    from agentic_orchestration.orchestration.step_coordinator import RecoverStep

logger = logging.getLogger(__name__)

#: Hints that move the step to the next provider of the fallback chain.
PROVIDER_HINTS = frozenset({RecoveryHint.PROVIDER_FALLBACK, RecoveryHint.HF_LITELLM_FALLBACK})

__all__ = [
    "PROVIDER_HINTS",
    "provider_recovery",
]


def provider_recovery(catalog: Catalog) -> RecoverStep:
    """A ``RecoverStep`` mapping ``recovery_hint`` to the next spec (see module docstring).

    The chain is computed from the entry the step was first attempted with, remembered per
    ``(run_id, step_id)``: after a swap the spec only holds the fallback's endpoint. The
    next provider is the chain entry after the one that just failed, so with provider
    failures only, attempt ``n``'s retry uses ``chain[n-1]``, and a ``worker_retry`` in
    between re-runs the current provider instead of skipping one.

    Args:
        catalog: Gives the fallback chain (available providers, best first).
    """
    originals: dict[tuple[str, str], AgentProviderEntry] = {}

    def recover(spec: StepSpec, result: StepResult, attempt: int) -> StepSpec | None:
        key = (spec.run_id, spec.step_id)
        current = AgentProviderEntry.model_validate(spec.agent_provider)
        if attempt == 1 or key not in originals:
            originals[key] = current
        original = originals[key]
        hint = result.recovery_hint
        if hint == RecoveryHint.WORKER_RETRY:
            return spec
        if hint not in PROVIDER_HINTS:
            return None
        if not fallback_enabled():
            logger.info("step %s failed recoverably; fallback is off (AGENTIC_FALLBACK=0)",
                        spec.step_id)
            return None
        own_text = spec.task.description.replace(spec.prior_output, " ") \
            if spec.prior_output else spec.task.description  # the step's words decide its kind
        chain = catalog.fallback_chain(original, step_description=own_text, topic=spec.topic)
        following = _next_in_chain(chain, current)
        if following is None:
            logger.warning("step %s failed on %s; no other provider is left", spec.step_id,
                           current.id)
            return None
        entry = with_llm_of(original, following)
        return spec.model_copy(update={"agent_provider": entry.model_dump(mode="json")})

    return recover


def _next_in_chain(chain: list[AgentProviderEntry], current: AgentProviderEntry
                   ) -> AgentProviderEntry | None:
    """The entry after ``current``'s endpoint in ``chain``; the first if it is not in it."""
    positions = [i for i, e in enumerate(chain) if e.endpoint() == current.endpoint()]
    position = positions[0] + 1 if positions else 0
    return chain[position] if position < len(chain) else None
