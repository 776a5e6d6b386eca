"""One environment variable's type, range, default and meaning, and how its text parses.

``EnvVar`` is the row type of ``settings.ENV_VARS``; it lives here so the settings module
holds the table and its accessors. Stdlib only (the CLI reads it before ``--help`` returns).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from agentic_orchestration.errors import ConfigError

__all__ = ["EnvVar", "Kind"]

#: How a value is parsed. ``list`` is comma-separated ids; ``json`` a JSON object.
Kind = Literal["str", "bool", "int", "float", "path", "choice", "url", "json", "list"]

_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})


class _Invalid(ValueError):
    """Why a raw value does not parse; ``EnvVar.parse`` adds the variable and the value."""


@dataclass(frozen=True)
class EnvVar:
    """One variable: how to parse it, its default and what it does.

    Attributes:
        name: ``AGENTIC_...``.
        default: The text used when the variable is unset or blank; ``""`` means "unset",
            whose typed value is ``None`` (except for ``str``, ``""``, and ``list``, ``()``).
        meaning: One sentence for the README.
        kind: How the text is parsed (see ``Kind``).
        minimum: Smallest allowed number (``int``/``float``).
        maximum: Largest allowed number (``int``/``float``).
        choices: Allowed values of a ``choice``, matched case-insensitively.
        planned: The feature that will read it when that feature is not built yet
            ("kubernetes backend"); registered now so names and defaults are settled.
    """

    name: str
    default: str
    meaning: str
    kind: Kind = "str"
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[str, ...] = ()
    planned: str = ""

    def parse(self, raw: str | None) -> Any:
        """The typed value of ``raw`` (the default when ``raw`` is ``None`` or blank).

        Raises:
            ConfigError: ``AGENTIC_X='raw': why``, one line.
        """
        text = raw.strip() if raw is not None else ""
        if not text:
            text = self.default.strip()
            if not text:
                return "" if self.kind == "str" else () if self.kind == "list" else None
        try:
            return _PARSERS[self.kind](self, text)
        except _Invalid as exc:
            raise ConfigError(f"{self.name}={text!r}: {exc}") from None

    @property
    def type_text(self) -> str:
        """The type and range as the README shows it (``int >= 1``, ``one of `a`, `b```)."""
        if self.kind == "choice":
            return "one of " + ", ".join(f"`{c}`" for c in self.choices)
        label = {"str": "text", "path": "path", "url": "URL", "json": "JSON object",
                 "list": "comma-separated list", "bool": "bool", "int": "int",
                 "float": "number"}[self.kind]
        if self.minimum is not None and self.maximum is not None:
            return f"{label} {self.minimum:g}..{self.maximum:g}"
        if self.minimum is not None:
            return f"{label} >= {self.minimum:g}"
        if self.maximum is not None:
            return f"{label} <= {self.maximum:g}"
        return label


# --- parsers (text is stripped and non-empty) -----------------------------------------------


def _in_range(var: EnvVar, number: float) -> None:
    if var.minimum is not None and number < var.minimum:
        raise _Invalid(f"must be at least {var.minimum:g}")
    if var.maximum is not None and number > var.maximum:
        raise _Invalid(f"must be at most {var.maximum:g}")


def _parse_int(var: EnvVar, text: str) -> int:
    try:
        number = int(text)
    except ValueError:
        raise _Invalid("not an integer") from None
    _in_range(var, number)
    return number


def _parse_float(var: EnvVar, text: str) -> float:
    try:
        number = float(text)
    except ValueError:
        raise _Invalid("not a number") from None
    if not math.isfinite(number):
        raise _Invalid("must be a finite number")
    _in_range(var, number)
    return number


def _parse_bool(var: EnvVar, text: str) -> bool:
    lowered = text.lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise _Invalid("not a boolean (use 1 or 0)")


def _parse_choice(var: EnvVar, text: str) -> str:
    for choice in var.choices:
        if text.lower() == choice.lower():
            return choice
    *head, last = var.choices
    listed = f"{', '.join(head)} or {last}" if head else last
    raise _Invalid(f"not a valid choice (use {listed})")


def _parse_url(var: EnvVar, text: str) -> str:
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018 - raises ValueError on a port out of range
    except ValueError as exc:
        raise _Invalid(f"not a URL ({exc})") from None
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise _Invalid("not an http(s) URL with a host (e.g. http://127.0.0.1:8080)")
    return text


def _parse_json(var: EnvVar, text: str) -> dict[str, Any]:
    import json

    try:
        parsed = json.loads(text)
    except ValueError as exc:
        raise _Invalid(f"not valid JSON ({exc})") from None
    if not isinstance(parsed, dict):
        raise _Invalid("not a JSON object")
    return parsed


def _parse_list(var: EnvVar, text: str) -> tuple[str, ...]:
    return tuple(item for item in (part.strip() for part in text.split(",")) if item)


_PARSERS: dict[str, Any] = {
    "str": lambda var, text: text,
    "path": lambda var, text: Path(os.path.expanduser(text)),
    "bool": _parse_bool,
    "int": _parse_int,
    "float": _parse_float,
    "choice": _parse_choice,
    "url": _parse_url,
    "json": _parse_json,
    "list": _parse_list,
}
