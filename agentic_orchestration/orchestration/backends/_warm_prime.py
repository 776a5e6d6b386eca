"""Step-independent work a warm step would otherwise pay for on its critical path.

Measured with ``benchmarks/bench_vs_ray.py`` (a one-task step against an instant scripted
LLM): a child forked from the preloaded zygote spent about 90-150 ms of CPU on the step, of
which about 30 ms is what the same step costs in a process that already ran one. The rest
is first-time work of a fresh process that does not depend on the step:

* two TLS contexts per OpenAI LLM (CrewAI builds a sync and an async httpx client, each
  loading certifi's CA bundle: about 35 ms each, even for an ``http://`` endpoint);
* compiling the step spec's JSON Schema validator and the one-step catalog models;
* pydantic models their libraries leave to be built on first use: every one of CrewAI's
  event models with forward references, and openai's reply models (openai defers all of its
  ~1,700; a kickoff needs three): about 15 ms of CPU, built once in the zygote instead;
* CrewAI's first kickoff in a process: pydantic schemas built on first use, lazily created
  singletons (event bus handlers, the task-output store), the first request through the
  OpenAI client.

So it is done ahead, in two places:

* ``prime_zygote`` runs once in the zygote before its first fork. It must start no thread
  and never kick off a crew (a child forked after that may hang; platform-notes.md), so it
  only shares one default TLS context, validates a canned spec, completes the deferred
  models (``complete_deferred_models``) and freezes the heap
  (``gc.freeze``: children then neither scan nor copy-on-write the zygote's objects).
* ``_warm_child.prime_child`` runs in a spare child after its fork, before its spec
  arrives: a canned one-task kickoff against a loopback responder started inside that
  child. The child is a leaf (it runs exactly one step and exits), so the threads this
  leaves are harmless, and the canned crew carries no user data: steps stay isolated.
"""

from __future__ import annotations

import gc
import json
import logging
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

__all__ = ["CANNED_ANSWER", "DEFERRED_MODELS", "canned_spec", "complete_deferred_models",
           "prime_zygote"]

_CANNED_ID = "warm-up"
CANNED_ANSWER = "Final Answer: ready."
#: Deferred models built in the zygote by name (``module:class``; missing ones are skipped):
#: what a kickoff's chat completion reply is validated with.
DEFERRED_MODELS = (
    "openai.types.chat.chat_completion_message:ChatCompletionMessage",
    "openai.types.chat.chat_completion:Choice",
    "openai.types.chat.chat_completion:ChatCompletion",
)
#: Packages whose deferred models are all built (a handful each).
_COMPLETE_PACKAGES = ("crewai.", "mcp.")


def canned_spec(base_url: str) -> dict[str, Any]:
    """A valid v0.1 step spec for a one-task crew on an OpenAI-compatible ``base_url``."""
    return {
        "schema_version": "0.1", "run_id": _CANNED_ID, "step_id": _CANNED_ID,
        "step_index": 0, "workflow_name": _CANNED_ID, "topic": "warm-up",
        "task": {"description": "Say that you are ready.", "expected_output": "One word."},
        "agent_provider": {"id": _CANNED_ID, "type": "openai", "model": "warm-up-model",
                           "openai_base_url": base_url, "role": "Warm-up",
                           "goal": "Answer at once.", "backstory": "A canned step."},
        "mcp_providers": [], "prior_output": "", "inputs": {},
        "paths": {"run_store": "", "artifacts_dir": ""},
    }


def complete_deferred_models() -> int:
    """Build the validators of pydantic models that would be built on first use (CrewAI's
    event models with forward references, ``DEFERRED_MODELS``); returns how many were built.

    Pure CPU on already-imported classes: no thread, no I/O, so safe before a fork. A model
    that cannot be completed yet stays deferred (``raise_errors=False``) and is built where
    it is first used, as without this.
    """
    import importlib

    import pydantic

    wanted: list[type[pydantic.BaseModel]] = []
    for name in DEFERRED_MODELS:
        module, _, attr = name.partition(":")
        try:
            wanted.append(getattr(importlib.import_module(module), attr))
        except (ImportError, AttributeError):
            logger.debug("warm worker: no model %s in this version", name)
    seen: set[type] = set()
    stack: list[type] = [pydantic.BaseModel]
    while stack:  # every model class defined so far
        for sub in stack.pop().__subclasses__():
            if sub not in seen:
                seen.add(sub)
                stack.append(sub)
                if sub.__module__.startswith(_COMPLETE_PACKAGES):
                    wanted.append(sub)
    built = 0
    for model in wanted:
        if model.__dict__.get("__pydantic_complete__", True):
            continue
        try:
            # Depth 0: names resolve in the model's own module only, never in this frame.
            built += bool(model.model_rebuild(raise_errors=False, _parent_namespace_depth=0))
        except Exception:  # a library's model is not ours to fix; it is built on use
            logger.debug("warm worker: could not complete %s", model, exc_info=True)
    return built


def prime_zygote() -> dict[str, float]:
    """Thread-free, kickoff-free warm-up of the zygote; returns ms per part (for logs)."""
    spent: dict[str, float] = {}
    began = time.perf_counter()
    from agentic_orchestration.providers.tls import share_default_tls_context

    share_default_tls_context()  # loads the CA bundle once, before any fork
    spent["tls_ms"] = (time.perf_counter() - began) * 1000
    began = time.perf_counter()
    try:
        from agentic_orchestration.orchestration.execute_step import load_step_spec, step_workflow
        from agentic_orchestration.orchestration.runner import build_workflow

        with tempfile.TemporaryDirectory(prefix="agentic-warm-") as scratch:
            path = Path(scratch) / "spec.json"
            path.write_text(json.dumps(canned_spec("http://127.0.0.1:9/v1")))
            spec = load_step_spec(path, run_id=_CANNED_ID, step_id=_CANNED_ID)
        spent["spec_ms"] = (time.perf_counter() - began) * 1000
        began = time.perf_counter()
        # Agent, Task, Crew and LLM objects built and dropped, no kickoff: the pydantic
        # schemas CrewAI builds on first use, httpx/openai client set-up, ABC caches.
        config, catalog = step_workflow(spec)
        build_workflow(config, catalog, fill_topic=False)
        spent["build_ms"] = (time.perf_counter() - began) * 1000
        began = time.perf_counter()
        spent["models"] = complete_deferred_models()
        spent["models_ms"] = (time.perf_counter() - began) * 1000
    except Exception:  # a warm-up must never stop the zygote; the step pays instead
        logger.warning("warm worker: building the canned step failed", exc_info=True)
    if threading.active_count() != 1:
        logger.warning("warm worker: priming started a thread (%s)",
                       [t.name for t in threading.enumerate()])
    gc.collect()
    gc.freeze()
    return spent
