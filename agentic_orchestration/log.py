"""Logging set-up for the tool: one handler, text or JSON lines, secrets masked.

The CLI calls ``configure_logging`` before it imports anything heavy, so this module is
stdlib only. ``AGENTIC_LOG_FORMAT=json`` switches to one JSON object per line (what log
collectors and the Kubernetes backend want); ``StepLoggerAdapter`` attaches ``run_id`` and
``step_id`` so a line can be traced to its step whichever format is used.

Both formatters mask secrets through ``agentic_orchestration.redaction``, the one registry
of secret values in play (re-exported here as ``redact_text``/``redact_secrets`` for older
callers). Masking by value catches a key wherever it leaked (an LLM echoing it, an
exception message with a URL), which masking known fields would miss.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import MutableMapping
from datetime import UTC, datetime
from typing import Any, TextIO

from agentic_orchestration import settings
from agentic_orchestration.errors import ConfigError
from agentic_orchestration.redaction import (
    MASK,
    MIN_SECRET_LENGTH,
    SECRET_NAME_MARKERS,
    redact_text,
    secret_values,
)
from agentic_orchestration.redaction import redact_obj as redact_secrets

logger = logging.getLogger(__name__)

__all__ = [
    "MASK", "MIN_SECRET_LENGTH", "SECRET_NAME_MARKERS", "JsonFormatter", "StepLoggerAdapter",
    "TextFormatter", "configure_logging", "redact_secrets", "redact_text", "secret_values",
]

#: Third-party loggers that are chatty at INFO/WARNING; held at ERROR unless level is DEBUG.
NOISY_LOGGERS: tuple[str, ...] = (
    "crewai", "httpx", "httpcore", "LiteLLM", "litellm", "opentelemetry",
)

LOG_FORMATS = ("text", "json")
_PACKAGE_LOGGER = "agentic_orchestration"
_HANDLER_MARK = "_agentic_handler"


# --- formatters -----------------------------------------------------------------------------


class TextFormatter(logging.Formatter):
    """Human-readable lines; a ``[run_id/step_id]`` prefix when the record carries them.

    The prefix is added here rather than in ``StepLoggerAdapter`` so JSON lines keep a clean
    ``message`` and carry the ids as fields instead.
    """

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def formatMessage(self, record: logging.LogRecord) -> str:
        prefix = _context_prefix(record)
        if prefix:
            record.message = f"{prefix} {record.message}"
        return super().formatMessage(record)

    def format(self, record: logging.LogRecord) -> str:
        return redact_text(super().format(record))


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, message, run_id/step_id, exc."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key in ("run_id", "step_id", "job"):  # job: a Kubernetes step's Job name
            value = getattr(record, key, None)
            if value is not None:
                entry[key] = str(value)
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["exc"] = record.exc_text
        # Mask before encoding: JSON escaping could split a secret the text pass would miss.
        return json.dumps(redact_secrets(entry), ensure_ascii=False, default=str)


def _context_prefix(record: logging.LogRecord) -> str:
    run_id = getattr(record, "run_id", None)
    step_id = getattr(record, "step_id", None)
    if run_id is None and step_id is None:
        return ""
    if step_id is None:
        return f"[{run_id}]"
    return f"[{run_id or '-'}/{step_id}]"


# --- adapter --------------------------------------------------------------------------------


class StepLoggerAdapter(logging.LoggerAdapter):  # type: ignore[type-arg]
    """A logger that stamps every record with ``run_id`` and ``step_id``.

    Extra fields given at the call site are kept (Python 3.11's adapter would drop them).
    """

    def __init__(
        self, logger: logging.Logger, *, run_id: str | None = None, step_id: str | None = None
    ) -> None:
        context = {k: v for k, v in (("run_id", run_id), ("step_id", step_id)) if v is not None}
        super().__init__(logger, context)

    def process(
        self, msg: Any, kwargs: MutableMapping[str, Any]
    ) -> tuple[Any, MutableMapping[str, Any]]:
        kwargs["extra"] = {**(self.extra or {}), **(kwargs.get("extra") or {})}
        return msg, kwargs

    def bind(self, *, step_id: str) -> StepLoggerAdapter:
        """The same run's logger for another step (the coordinator makes one per step)."""
        run_id = (self.extra or {}).get("run_id")
        return StepLoggerAdapter(self.logger, run_id=run_id, step_id=step_id)


# --- configuration --------------------------------------------------------------------------


def parse_level(value: str | int) -> int:
    """A level name (any case) or number; ConfigError naming AGENTIC_LOG_LEVEL otherwise."""
    if isinstance(value, int):
        return value
    text = value.strip()
    if text.isdigit():
        return int(text)
    level = logging.getLevelName(text.upper())
    if not isinstance(level, int):
        raise ConfigError(
            f"AGENTIC_LOG_LEVEL={value!r} is not a log level "
            "(use DEBUG, INFO, WARNING, ERROR or CRITICAL)"
        )
    return level


def parse_format(value: str) -> str:
    fmt = value.strip().lower()
    if fmt not in LOG_FORMATS:
        raise ConfigError(f"AGENTIC_LOG_FORMAT={value!r} is not a log format (use text or json)")
    return fmt


def configure_logging(
    *, level: str | int | None = None, fmt: str | None = None, stream: TextIO | None = None
) -> logging.Handler:
    """Install the tool's one stderr handler on the root logger (replacing a previous one).

    Args:
        level: Level of the tool's own loggers; default ``AGENTIC_LOG_LEVEL``.
        fmt: ``text`` or ``json``; default ``AGENTIC_LOG_FORMAT``.
        stream: Where lines go; default ``sys.stderr`` (stdout is for results).

    Returns:
        The installed handler, so callers (and tests) can remove or inspect it.

    Raises:
        ConfigError: the level or format is not valid; the message names the variable.
    """
    # The environment's values are parsed by their settings entries (one meaning everywhere).
    numeric = parse_level(settings.value("AGENTIC_LOG_LEVEL") if level is None else level)
    chosen = settings.value("AGENTIC_LOG_FORMAT") if fmt is None else parse_format(fmt)

    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(JsonFormatter() if chosen == "json" else TextFormatter())
    setattr(handler, _HANDLER_MARK, True)

    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, _HANDLER_MARK, False)]:
        root.removeHandler(old)
    root.addHandler(handler)
    # The root level gates only loggers without their own level (third-party ones): they
    # stay at WARNING or above unless the user asked for DEBUG. Our own records propagate
    # to the handler whatever the root level is.
    debug = numeric <= logging.DEBUG
    root.setLevel(numeric if debug else max(numeric, logging.WARNING))
    logging.getLogger(_PACKAGE_LOGGER).setLevel(numeric)

    # Some libraries set their own logger level at import; pin those explicitly. CrewAI
    # warns once per step about approximate token counts: hold third parties at ERROR.
    noisy_level = logging.NOTSET if debug else max(numeric, logging.ERROR)
    for name in NOISY_LOGGERS:
        logging.getLogger(name).setLevel(noisy_level)
    logger.debug("logging configured: level=%s format=%s", logging.getLevelName(numeric), chosen)
    return handler
