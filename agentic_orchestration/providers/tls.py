"""One default TLS context per process for every httpx client the LLMs make.

CrewAI builds a sync and an async OpenAI client per LLM, and httpx loads certifi's CA bundle
into a new ``ssl.SSLContext`` for each: about 20 ms of CPU apiece, even for an ``http://``
endpoint that never uses it. A run builds LLMs for the planner and for every agent, so an
in-process run paid ~40 ms per run before its first step (measured with
``benchmarks/bench_inprocess_overhead.py``: a 1-step run's build went from ~42 to a few ms)
and every step worker paid it again. ``AgentProvider.llm`` calls
``share_default_tls_context`` first, so the bundle is loaded once per process.

httpcore sets a context's ALPN list on each connection (``["http/1.1"]``, or with ``"h2"``
for an HTTP/2 client); sharing is safe because HTTP/2 needs the ``h2`` package, which is not
a dependency here, so every client sets the same list.
"""

from __future__ import annotations

import logging
import os
from typing import Any

logger = logging.getLogger(__name__)

__all__ = ["share_default_tls_context"]


def share_default_tls_context() -> bool:
    """Make httpx hand out one default TLS context per process instead of one per client.

    Only the default case is shared (``verify=True``, no client certificate), keyed on the
    variables httpx reads (``SSL_CERT_FILE``/``SSL_CERT_DIR``), so verification is exactly
    what httpx would have set up; httpx never changes a context it made in that case.
    Returns False when httpx is not the version this knows (nothing is changed then).
    """
    try:
        import httpx._config as config
        import httpx._transports.default as transports
    except ImportError:
        return False
    current = getattr(transports, "create_ssl_context", None)
    if getattr(current, "agentic_shared", False):
        return True
    if current is not config.create_ssl_context:
        logger.debug("httpx's create_ssl_context is not where expected; not sharing it")
        return False
    original = config.create_ssl_context
    shared: dict[tuple[Any, ...], Any] = {}

    def create_ssl_context(verify: Any = True, cert: Any = None, trust_env: bool = True) -> Any:
        if verify is not True or cert is not None:
            return original(verify=verify, cert=cert, trust_env=trust_env)
        key = (trust_env, os.environ.get("SSL_CERT_FILE"), os.environ.get("SSL_CERT_DIR"))
        if key not in shared:
            shared[key] = original(verify=True, cert=None, trust_env=trust_env)
        return shared[key]

    create_ssl_context.agentic_shared = True  # type: ignore[attr-defined]
    transports.create_ssl_context = create_ssl_context  # type: ignore[assignment]
    create_ssl_context()  # load the CA bundle now, once (in a zygote: before any fork)
    return True
