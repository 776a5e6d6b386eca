"""Every ``AGENTIC_*`` environment variable in one place: its type, range, default and meaning.

``ENV_VARS`` (data, in ``_env_table``) is the table; each ``EnvVar`` (``_env_var``) parses
its own value, so a value means the same wherever it is read. The CLI calls
``validate_all()`` before any work, so a bad value is one ``error: AGENTIC_X='...': <why>``
line and exit code 2, not a failure mid-run. The README's configuration tables are generated
from ``ENV_VARS`` (``python -m agentic_orchestration.settings``) and a test keeps them equal.

This module is deliberately light (stdlib only, no pydantic) because the CLI reads it before
deciding whether to import CrewAI, and ``--help`` must stay fast.

Values are read at call time (``value``/``current``/``get_*``), never cached at import, so
tests and the CLI's ``--execution-backend`` override can change them per run.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

from agentic_orchestration._env_table import ENV_VARS
from agentic_orchestration._env_var import EnvVar, Kind
from agentic_orchestration.errors import ConfigError

__all__ = [
    "ENV_VARS", "EnvVar", "Kind", "Settings", "check_folder_path", "config_dir", "current",
    "extend_tool_path", "get", "get_bool", "get_float", "get_int", "get_path", "load",
    "markdown_table", "quiet_crewai_network", "spec", "validate_all", "value",
]

_BY_NAME = {v.name: v for v in ENV_VARS}


# --- typed access ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Settings:
    """Every variable's typed value, read at once: ``s.step_timeout_seconds`` or
    ``s["AGENTIC_STEP_TIMEOUT_SECONDS"]`` (unset optional values are ``None``)."""

    values: Mapping[str, Any]

    def __getitem__(self, name: str) -> Any:
        return self.values[name]

    def __getattr__(self, attr: str) -> Any:
        if attr.startswith("_") or attr == "values":
            raise AttributeError(attr)
        try:
            return self.values[f"AGENTIC_{attr.upper()}"]
        except KeyError:
            raise AttributeError(f"no setting AGENTIC_{attr.upper()}") from None


def spec(name: str) -> EnvVar:
    """The registered ``EnvVar`` (``KeyError`` for a name that is not one)."""
    return _BY_NAME[name]


def value(name: str, environ: Mapping[str, str] | None = None) -> Any:
    """Typed value of one variable (``ConfigError`` naming it when the value is bad)."""
    source = os.environ if environ is None else environ
    return _BY_NAME[name].parse(source.get(name))


def load(environ: Mapping[str, str] | None = None) -> Settings:
    """Parse every registered variable.

    Raises:
        ConfigError: One line naming every bad variable with its value and why, e.g.
            ``AGENTIC_STEP_TIMEOUT_SECONDS='0': must be at least 1``.
    """
    source = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    problems: list[str] = []
    for var in ENV_VARS:
        try:
            values[var.name] = var.parse(source.get(var.name))
        except ConfigError as exc:
            problems.append(str(exc))
    if problems:
        raise ConfigError("; ".join(problems))
    return Settings(MappingProxyType(values))


def current() -> Settings:
    """The settings of ``os.environ`` now (re-read on each call; parsing is microseconds)."""
    return load()


def validate_all(environ: Mapping[str, str] | None = None) -> None:
    """Fail now, before any work, if a registered variable holds a bad value."""
    load(environ)


# --- the older string-first accessors (same parsing as the table) ---------------------------


def get(name: str) -> str:
    """Raw text of a registered variable, or its default when unset or empty."""
    var = _BY_NAME[name]
    raw = os.environ.get(name, "")
    return raw if raw.strip() else var.default


def _as(name: str, kind: Kind, minimum: float | None) -> Any:
    """Parse ``name`` as ``kind`` with the table's range, and at least ``minimum``."""
    var = _BY_NAME[name]
    floor = var.minimum if var.kind == kind else None
    if minimum is not None:
        floor = minimum if floor is None else max(floor, minimum)
    checked = EnvVar(name, var.default, var.meaning, kind=kind, minimum=floor,
                     maximum=var.maximum if var.kind == kind else None)
    parsed = checked.parse(os.environ.get(name))
    if parsed is None:
        raise ConfigError(f"{name} is not set")
    return parsed


def get_bool(name: str) -> bool:
    """``1``/``true``/``yes``/``on`` or ``0``/``false``/``no``/``off`` (any case)."""
    var = _BY_NAME[name]
    return bool(EnvVar(name, var.default, var.meaning, kind="bool").parse(
        os.environ.get(name)))


def get_int(name: str, *, minimum: int | None = None) -> int:
    """Integer value, within the table's range and at least ``minimum``."""
    return int(_as(name, "int", minimum))


def get_float(name: str, *, minimum: float | None = None) -> float:
    """Finite number, within the table's range and at least ``minimum``."""
    return float(_as(name, "float", minimum))


def get_path(name: str) -> Path | None:
    value = get(name)
    return Path(os.path.expanduser(value)) if value.strip() else None


# --- README ---------------------------------------------------------------------------------


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def markdown_table(*, planned: bool = False) -> str:
    """The README's configuration table: built variables, or (``planned``) the registered
    ones of features not built yet, with a "Used by" column."""
    if planned:
        lines = ["| Variable | Type | Default | Used by (not built yet) | Meaning |",
                 "|---|---|---|---|---|"]
    else:
        lines = ["| Variable | Type | Default | Meaning |", "|---|---|---|---|"]
    for var in ENV_VARS:
        if bool(var.planned) != planned:
            continue
        default = f"`{var.default}`" if var.default else "(unset)"
        used_by = f" {var.planned} |" if planned else ""
        lines.append(f"| `{var.name}` | {_cell(var.type_text)} | {default} |{used_by} "
                     f"{_cell(var.meaning)} |")
    return "\n".join(lines)


# --- process set-up helpers -----------------------------------------------------------------


def check_folder_path(name: str, path: Path | None = None) -> Path:
    """Fail now if ``path`` (default: ``name``'s value) cannot be used as a writable folder.

    Checked before a run does any work (planning costs an LLM call), so a path under a
    regular file or a read-only folder is one line naming the variable, not a
    ``NotADirectoryError`` traceback after the answer was computed. Nothing is created.

    Args:
        name: The variable, named in the error (``AGENTIC_SESSIONS_PATH``...).
        path: The folder it resolves to, when that is not simply its value (a default).

    Returns:
        The folder (which may not exist yet).

    Raises:
        ConfigError: The path or one of its parents is not a folder, or the nearest
            existing folder is not writable.
    """
    folder = path if path is not None else get_path(name)
    if folder is None:
        raise ConfigError(f"{name} is empty: set it to a folder")
    target = probe = Path(os.path.abspath(folder))
    try:
        while not probe.exists():
            if probe.is_symlink():
                raise ConfigError(f"{name}={folder}: {probe} is a broken symbolic link")
            if probe.parent == probe:
                break
            probe = probe.parent
        is_dir = probe.is_dir()
    except OSError as exc:
        raise ConfigError(f"{name}={folder}: cannot check {probe}: "
                          f"{exc.strerror or exc}") from None
    if not is_dir:
        inside = "" if probe == target else ", so nothing can be created in it"
        raise ConfigError(f"{name}={folder}: {probe} is not a folder{inside}; "
                          f"point {name} at a folder")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise ConfigError(f"{name}={folder}: folder {probe} is not writable")
    return folder


def config_dir() -> Path:
    """Catalog root: AGENTIC_CONFIG_DIR, else ./config, else the repo's config/ folder."""
    explicit = os.environ.get("AGENTIC_CONFIG_DIR", "").strip()
    if explicit:
        return Path(os.path.expanduser(explicit))
    cwd_config = Path.cwd() / "config"
    if (cwd_config / "agent_providers").is_dir():
        return cwd_config
    return Path(__file__).resolve().parent.parent / "config"


def quiet_crewai_network() -> None:
    """Turn CrewAI's telemetry and version check off unless the user opted in.

    Without these a run spends 10-20 s in network timeouts on an offline machine.
    Values the user set explicitly are left alone.
    """
    if get_bool("AGENTIC_CREWAI_TELEMETRY"):
        return
    for key, val in (
        ("CREWAI_DISABLE_TELEMETRY", "true"),
        ("OTEL_SDK_DISABLED", "true"),
        ("CREWAI_DISABLE_VERSION_CHECK", "true"),
        ("CREWAI_TRACING_ENABLED", "false"),
    ):
        os.environ.setdefault(key, val)


def extend_tool_path() -> None:
    """Put the MCP server commands that scripts/install.sh installed on PATH.

    Catalog commands are plain names (``mcp-server-fetch``, ``mcp-server-filesystem``): the
    first lives in this interpreter's venv ``bin`` (on PATH only when the venv is
    activated), the npm ones in ``$AGENTIC_CACHE_DIR/npm/bin``. Workers and MCP servers
    inherit the PATH set here.
    """
    cache = Path(os.path.expanduser(get("AGENTIC_CACHE_DIR")))
    extra = [str(Path(sys.executable).parent), str(cache / "npm" / "bin")]
    parts = os.environ.get("PATH", os.defpath).split(os.pathsep)
    missing = [d for d in extra if d not in parts and Path(d).is_dir()]
    if missing:
        os.environ["PATH"] = os.pathsep.join([*parts, *missing])


if __name__ == "__main__":  # regenerate the README tables
    sys.stdout.write(f"{markdown_table()}\n\n{markdown_table(planned=True)}\n")
