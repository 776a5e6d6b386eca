"""The one place secret values are known and masked: a process-wide registry.

Every path out of the tool (log lines, session records, run store files, ``(progress)``
lines, the CLI's summary and error lines, a worker log tail copied into a result, saved
artifacts) passes its text through :func:`redact_text` or :func:`redact_obj`, so a key that
leaks into an exception message, an MCP server's error or an LLM's answer is replaced by
``***`` wherever it would be written or printed.

What counts as a secret, read at masking time:

- the value of every environment variable whose *name* looks secret (``*KEY*``,
  ``*TOKEN*``, ``*SECRET*``, ``*PASSWORD*``);
- the value of every variable *registered by name* (:func:`register_env_names`): the API
  key and ``required_env`` variables of each agent provider in play, whatever they are
  called, and the ``${VAR}`` names of each MCP server a step uses. Names, not values, so
  the coordinator can register them from a step spec and read the values from its own
  environment (the one its workers inherit);
- every value *registered as such* (:func:`register_values`): what ``${VAR}`` expanded to
  for an MCP server, and its expanded HTTP header values.

Values shorter than :data:`MIN_SECRET_LENGTH` are never masked: they would mask ordinary
words and numbers everywhere. The regex is compiled once per distinct set of values.

Stdlib only: the CLI imports this before anything heavy. Named ``redaction`` so it does not
shadow the standard library's ``secrets`` module.
"""

from __future__ import annotations

import io
import os
import re
import threading
from collections.abc import Iterable, Mapping
from typing import Any, TextIO

#: Words that mark an environment variable's name as holding a secret.
SECRET_NAME_MARKERS: tuple[str, ...] = ("KEY", "TOKEN", "SECRET", "PASSWORD")
#: Shorter values are not masked: they would mask ordinary words and digits everywhere.
MIN_SECRET_LENGTH = 8
MASK = "***"

__all__ = [
    "MASK",
    "MIN_SECRET_LENGTH",
    "SECRET_NAME_MARKERS",
    "MaskingStream",
    "clear_registry",
    "mask_std_streams",
    "redact_obj",
    "redact_text",
    "register_env_names",
    "register_values",
    "secret_values",
]


class _Registry:
    """Registered names and values, and the compiled pattern of the last value set."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.names: frozenset[str] = frozenset()
        self.values: frozenset[str] = frozenset()
        self._compiled: tuple[tuple[str, ...], re.Pattern[str] | None] = ((), None)

    def add_names(self, names: Iterable[str]) -> None:
        new = {name for name in names if name}
        if not new <= self.names:
            with self._lock:
                self.names = self.names | new

    def add_values(self, values: Iterable[str]) -> None:
        new = {value for value in values if isinstance(value, str)
               and len(value) >= MIN_SECRET_LENGTH}
        if not new <= self.values:
            with self._lock:
                self.values = self.values | new

    def clear(self) -> None:
        with self._lock:
            self.names, self.values = frozenset(), frozenset()

    def pattern(self, values: tuple[str, ...]) -> re.Pattern[str] | None:
        compiled = self._compiled  # one read: another thread may swap it meanwhile
        if compiled[0] == values:
            return compiled[1]
        pattern = re.compile("|".join(re.escape(v) for v in values)) if values else None
        self._compiled = (values, pattern)
        return pattern


_REGISTRY = _Registry()


def register_env_names(names: Iterable[str]) -> None:
    """Mask the values of these environment variables from now on, in this process.

    Values are read when text is masked, so a variable set later is covered too.
    """
    _REGISTRY.add_names(names)


def register_values(values: Iterable[str]) -> None:
    """Mask these values from now on, in this process (short ones are ignored)."""
    _REGISTRY.add_values(values)


def clear_registry() -> None:
    """Forget every registered name and value (tests)."""
    _REGISTRY.clear()


def secret_values(environ: Mapping[str, str] | None = None) -> tuple[str, ...]:
    """Every value masked right now, longest first (so a secret containing another is
    masked whole).

    Args:
        environ: Where variable values come from; default ``os.environ``.
    """
    env = os.environ if environ is None else environ
    found = set(_REGISTRY.values)
    for name, value in list(env.items()):
        if any(marker in name.upper() for marker in SECRET_NAME_MARKERS):
            found.add(value)
    for name in _REGISTRY.names:
        found.add(env.get(name, ""))
    return tuple(sorted((v for v in found if len(v) >= MIN_SECRET_LENGTH),
                        key=lambda v: (-len(v), v)))


def _pattern(environ: Mapping[str, str] | None) -> re.Pattern[str] | None:
    return _REGISTRY.pattern(secret_values(environ))


def redact_text(text: str, *, environ: Mapping[str, str] | None = None) -> str:
    """``text`` with every secret value replaced by ``***``."""
    if not text:
        return text
    pattern = _pattern(environ)
    return text if pattern is None else pattern.sub(MASK, text)


def redact_obj(obj: Any, *, environ: Mapping[str, str] | None = None) -> Any:
    """A copy of ``obj`` (nested dicts/lists/tuples/strings) with secret values masked.

    Dict keys are masked too: a key is as likely to carry a leaked value as a string is.
    Other types (numbers, None, booleans) are returned unchanged.
    """
    pattern = _pattern(environ)
    if pattern is None:
        return obj
    return _redact(obj, pattern)


def _redact(obj: Any, pattern: re.Pattern[str]) -> Any:
    if isinstance(obj, str):
        return pattern.sub(MASK, obj)
    if isinstance(obj, Mapping):
        return {_redact(k, pattern): _redact(v, pattern) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return type(obj)(_redact(item, pattern) for item in obj)
    return obj


# --- standard streams ------------------------------------------------------------------


class MaskingStream(io.TextIOBase):
    """A text stream that masks secrets in whatever is written, then passes it on.

    Text is held until a newline or ``flush`` so a secret written in two pieces is still
    seen whole; everything else (``fileno``, ``isatty``, ``encoding``...) is the wrapped
    stream's. Bytes written to ``buffer`` or straight to the file descriptor bypass it.
    """

    def __init__(self, stream: TextIO) -> None:
        super().__init__()
        self.wrapped = stream
        self._pending = ""
        self._lock = threading.Lock()

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        with self._lock:
            self._pending += text
            head, sep, tail = self._pending.rpartition("\n")
            if sep:
                self._pending = tail
                self.wrapped.write(redact_text(head + sep))
        return len(text)

    def flush(self) -> None:
        with self._lock:
            if self._pending:
                pending, self._pending = self._pending, ""
                self.wrapped.write(redact_text(pending))
        self.wrapped.flush()

    def close(self) -> None:  # the process owns the real stream; just push out the rest
        self.flush()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.wrapped, name)

    def fileno(self) -> int:
        return self.wrapped.fileno()

    def isatty(self) -> bool:
        return self.wrapped.isatty()

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return self.wrapped.encoding

    @property
    def errors(self) -> str | None:  # type: ignore[override]
        return self.wrapped.errors


def mask_std_streams() -> None:
    """Route ``sys.stdout`` and ``sys.stderr`` through :class:`MaskingStream` (idempotent).

    Called by the CLI, so whatever Python code prints in this process (CrewAI's console
    output, a traceback, our own lines) is masked before it reaches the terminal or a log.
    """
    import sys

    for name in ("stdout", "stderr"):
        stream = getattr(sys, name)
        if stream is not None and not isinstance(stream, MaskingStream):
            setattr(sys, name, MaskingStream(stream))
