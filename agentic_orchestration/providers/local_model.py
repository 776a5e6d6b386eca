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
processes reuse a coordinator's model through ``AGENTIC_LOCAL_LLM_URL``. Finding the GGUF and
its prompt style lives in ``local_model_gguf``; its names are re-exported here, so callers
keep importing everything about the embedded model from this module.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agentic_orchestration import settings
from agentic_orchestration.errors import ConfigError
from agentic_orchestration.providers.base_model_prompt import (
    finish_answer,
    parse_task,
    render_document,
)
from agentic_orchestration.providers.local_model_gguf import (
    PROMPT_STYLES,
    apply_chat_format,
    describe_local_model,
    local_model_path,
    local_prompt_style,
    native_stderr_silenced,
    prompt_style,
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
    "PROMPT_STYLES",
    "LocalModelServer",
    "describe_local_model",
    "ensure_local_server",
    "fold_messages",
    "llama_response_format",
    "local_model_path",
    "local_prompt_style",
    "prompt_style",
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
            with native_stderr_silenced():
                llama = Llama(model_path=str(path), n_ctx=n_ctx, n_threads=threads,
                              n_threads_batch=threads, verbose=False)
        except (ValueError, OSError, RuntimeError) as exc:
            raise ConfigError(f"cannot load local model {path}: {exc} (is it a GGUF file? "
                              "check AGENTIC_LOCAL_MODEL_PATH)") from exc
        apply_chat_format(llama)
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
