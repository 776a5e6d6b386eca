"""Every ``AGENTIC_*`` environment variable in one place, with its default and meaning.

This module is deliberately light (stdlib only) because the CLI reads it before deciding
whether to import CrewAI. The README's configuration table is checked against ``ENV_VARS``
by a test, so the two cannot drift.

Values are read at call time (``get``/``get_bool``/``get_int``), never cached at import, so
tests and the CLI's ``--execution-backend`` override can change them per run.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

from agentic_orchestration.errors import ConfigError


@dataclass(frozen=True)
class EnvVar:
    name: str
    default: str
    meaning: str


ENV_VARS: tuple[EnvVar, ...] = (
    EnvVar("AGENTIC_EXECUTION_BACKEND", "inprocess",
           "How steps run: `inprocess`, `subprocess` or `kubernetes`."),
    EnvVar("AGENTIC_CONFIG_DIR", "./config",
           "Folder holding `agent_providers/`, `mcp_providers/` and `workflows/`."),
    EnvVar("AGENTIC_EXTRA_AGENT_PROVIDERS_PATH", "",
           "Extra agent provider YAML (a file or a folder), added to the catalog."),
    EnvVar("AGENTIC_EXTRA_MCP_PROVIDERS_PATH", "",
           "Extra MCP provider YAML (a file or a folder), added to the catalog."),
    EnvVar("AGENTIC_PLANNER_PROVIDER", "",
           "Agent provider id the planner uses; empty picks the best available one."),
    EnvVar("AGENTIC_MAX_PLAN_STEPS", "6", "Upper bound on the steps of a dynamic plan."),
    EnvVar("AGENTIC_STEP_CONTEXT_CHARS", "4000",
           "How many characters of the previous step's output go into the next task."),
    EnvVar("AGENTIC_PROGRESS", "1",
           "`0` turns off `(progress)` lines and the live status."),
    EnvVar("AGENTIC_FALLBACK", "1",
           "`0` turns off the retry on the next available provider after a recoverable failure."),
    EnvVar("AGENTIC_LOCAL_MODEL_PATH", "",
           "GGUF file for the `local` provider; empty uses the bundled Gemma 3 270M."),
    EnvVar("AGENTIC_LOCAL_CHAT_FORMAT", "",
           "llama.cpp chat format (e.g. `chatml`); empty: the GGUF's own template, or `gemma` "
           "when it has none (the bundled model)."),
    EnvVar("AGENTIC_LOCAL_PROMPT", "auto",
           "How the embedded model is prompted: `document` (a base model continues a "
           "document shaped like the answer), `chat` (chat template); `auto`: `document` "
           "when the GGUF has no chat template and AGENTIC_LOCAL_CHAT_FORMAT is unset."),
    EnvVar("AGENTIC_LOCAL_N_CTX", "8192", "Context window (tokens) of the embedded model."),
    EnvVar("AGENTIC_LOCAL_MAX_TOKENS", "384",
           "Default cap on tokens the embedded model writes per reply."),
    EnvVar("AGENTIC_LOCAL_THREADS", "",
           "CPU threads for the embedded model; empty uses every core."),
    EnvVar("AGENTIC_LOCAL_LLM_URL", "",
           "Base URL of an already running embedded-model server; empty starts the embedded "
           "model in its own child process (workers get the coordinator's URL)."),
    EnvVar("AGENTIC_LLAMA_CMAKE_ARGS", "",
           "Install time (`scripts/install.sh`): CMake flags for the llama-cpp-python build "
           "instead of the portable baseline (x86-64-v3 / armv8-a), e.g. `-DGGML_NATIVE=ON` "
           "or `-DGGML_CUDA=ON`; the cached wheel is keyed by them."),
    EnvVar("AGENTIC_LLM_TIMEOUT_SECONDS", "600",
           "Timeout of one LLM HTTP request before the step counts as failed."),
    EnvVar("AGENTIC_MCP_CONNECT_TIMEOUT_SECONDS", "30",
           "Seconds an MCP server gets to start, answer `initialize` and list its tools; "
           "past it the step fails naming the MCP id."),
    EnvVar("AGENTIC_MCP_CALL_TIMEOUT_SECONDS", "60",
           "Seconds one MCP tool call may take (not retried); past it the step fails naming "
           "the MCP id."),
    EnvVar("AGENTIC_VRAM_GB", "",
           "GPU memory (GB) for the `min_vram_gb` filter; empty detects it."),
    EnvVar("AGENTIC_SESSIONS_PATH", "~/.local/share/agentic-orchestration/sessions",
           "Folder where session records (JSON, one per run) are written."),
    EnvVar("AGENTIC_ARTIFACTS_PATH", "~/.local/share/agentic-orchestration/artifacts",
           "Folder under which each run's files are saved, in `{run_id}/`."),
    EnvVar("AGENTIC_RUN_STORE_PATH", "",
           "Run store root shared by coordinator and workers ({run_id}/{step_id}/result.json); "
           "empty: `agentic-run-store-<uid>` in the system temp dir, refused when another "
           "user owns it. Folders are created 0700, files 0600."),
    EnvVar("AGENTIC_SUBPROCESS_WORKERS", "0",
           "`1` makes the `subprocess` backend run one worker process per step; "
           "`0` runs it in-process."),
    EnvVar("AGENTIC_SUBPROCESS_WARM", "1",
           "`1` forks step workers from a pre-started process that has CrewAI imported; "
           "`0` starts a fresh `main.py --execute-step` per step."),
    EnvVar("AGENTIC_STEP_TIMEOUT_SECONDS", "1800",
           "A worker running longer than this is killed and the step fails (recoverable)."),
    EnvVar("AGENTIC_STEP_MAX_ATTEMPTS", "2",
           "Attempts per step on distributed backends (retries follow `recovery_hint`)."),
    EnvVar("AGENTIC_CACHE_DIR", "~/.cache/agentic-orchestration",
           "Install cache: the llama-cpp-python wheel and the npm MCP servers, whose "
           "`npm/bin` is put on PATH."),
    EnvVar("AGENTIC_LOG_FORMAT", "text", "`json` writes log lines as JSON objects."),
    EnvVar("AGENTIC_LOG_LEVEL", "WARNING", "Log level of the tool's own loggers."),
    EnvVar("AGENTIC_CREWAI_TELEMETRY", "0",
           "`1` lets CrewAI send telemetry and check its version (off by default)."),
)

_BY_NAME = {v.name: v for v in ENV_VARS}


def get(name: str) -> str:
    """Value of a registered variable, or its default when unset or empty."""
    var = _BY_NAME[name]
    value = os.environ.get(name, "")
    return value if value.strip() else var.default


def get_bool(name: str) -> bool:
    value = get(name).strip().lower()
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off", ""}:
        return False
    raise ConfigError(f"{name}={value!r} is not a boolean (use 1 or 0)")


def get_int(name: str, *, minimum: int = 0) -> int:
    raw = get(name)
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not an integer") from None
    if value < minimum:
        raise ConfigError(f"{name}={value} must be at least {minimum}")
    return value


def get_float(name: str, *, minimum: float = 0.0) -> float:
    raw = get(name)
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a number") from None
    if not math.isfinite(value) or value < minimum:
        raise ConfigError(f"{name}={raw} must be a finite number of at least {minimum:g}")
    return value


def get_path(name: str) -> Path | None:
    value = get(name)
    return Path(os.path.expanduser(value)) if value else None


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
    for key, value in (
        ("CREWAI_DISABLE_TELEMETRY", "true"),
        ("OTEL_SDK_DISABLED", "true"),
        ("CREWAI_DISABLE_VERSION_CHECK", "true"),
        ("CREWAI_TRACING_ENABLED", "false"),
    ):
        os.environ.setdefault(key, value)


def extend_tool_path() -> None:
    """Put the MCP server commands that scripts/install.sh installed on PATH.

    Catalog commands are plain names (``mcp-server-fetch``, ``mcp-server-filesystem``): the
    first lives in this interpreter's venv ``bin`` (on PATH only when the venv is
    activated), the npm ones in ``$AGENTIC_CACHE_DIR/npm/bin``. Workers and MCP servers
    inherit the PATH set here.
    """
    import sys

    cache = Path(os.path.expanduser(get("AGENTIC_CACHE_DIR")))
    extra = [str(Path(sys.executable).parent), str(cache / "npm" / "bin")]
    parts = os.environ.get("PATH", os.defpath).split(os.pathsep)
    missing = [d for d in extra if d not in parts and Path(d).is_dir()]
    if missing:
        os.environ["PATH"] = os.pathsep.join([*parts, *missing])
