"""Every ``AGENTIC_*`` environment variable in one place: its type, range, default and meaning.

``ENV_VARS`` is the table; each ``EnvVar`` (``_env_var``) parses its own value, so a value
means the same wherever it is read. The CLI calls ``validate_all()`` before any work, so a
bad value is one ``error: AGENTIC_X='...': <why>`` line and exit code 2, not a failure
mid-run. The README's configuration tables are generated from ``ENV_VARS`` (``python -m
agentic_orchestration.settings``) and a test keeps them equal.

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

from agentic_orchestration._env_var import EnvVar, Kind
from agentic_orchestration.errors import ConfigError

__all__ = [
    "ENV_VARS", "EnvVar", "Kind", "Settings", "check_folder_path", "config_dir", "current",
    "extend_tool_path", "get", "get_bool", "get_float", "get_int", "get_path", "load",
    "markdown_table", "quiet_crewai_network", "spec", "validate_all", "value",
]

# --- the table ------------------------------------------------------------------------------

_K8S = "kubernetes backend"

ENV_VARS: tuple[EnvVar, ...] = (
    EnvVar("AGENTIC_EXECUTION_BACKEND", "inprocess",
           "How steps run: `inprocess`, `subprocess` or `kubernetes`.",
           kind="choice", choices=("inprocess", "subprocess", "kubernetes")),
    EnvVar("AGENTIC_CONFIG_DIR", "./config",
           "Folder holding `agent_providers/`, `mcp_providers/` and `workflows/`.",
           kind="path"),
    EnvVar("AGENTIC_EXTRA_AGENT_PROVIDERS_PATH", "",
           "Extra agent provider YAML (a file or a folder), added to the catalog.",
           kind="path"),
    EnvVar("AGENTIC_EXTRA_MCP_PROVIDERS_PATH", "",
           "Extra MCP provider YAML (a file or a folder), added to the catalog.",
           kind="path"),
    EnvVar("AGENTIC_PLANNER_PROVIDER", "",
           "Agent provider id the planner uses; empty picks the best available one."),
    EnvVar("AGENTIC_MAX_PLAN_STEPS", "6", "Upper bound on the steps of a dynamic plan.",
           kind="int", minimum=1),
    EnvVar("AGENTIC_STEP_CONTEXT_CHARS", "4000",
           "How many characters of the previous step's output go into the next task.",
           kind="int", minimum=0),
    EnvVar("AGENTIC_PROGRESS", "1",
           "`0` turns off `(progress)` lines and the live status.", kind="bool"),
    EnvVar("AGENTIC_EVENTS_FILE", "",
           "File a run appends typed events to (JSON lines: run, plan, each step attempt's "
           "status, provider, times, tokens, output excerpt); the web UI sets it per run. "
           "Empty: no events.", kind="path"),
    EnvVar("AGENTIC_FALLBACK", "1",
           "`0` turns off the retry on the next available provider after a recoverable failure.",
           kind="bool"),
    EnvVar("AGENTIC_LOCAL_MODEL_PATH", "",
           "GGUF file for the `local` provider; empty uses the bundled Gemma 3 270M.",
           kind="path"),
    EnvVar("AGENTIC_LOCAL_CHAT_FORMAT", "",
           "llama.cpp chat format (e.g. `chatml`); empty: the GGUF's own template, or `gemma` "
           "when it has none (the bundled model)."),
    EnvVar("AGENTIC_LOCAL_PROMPT", "auto",
           "How the embedded model is prompted: `document` (a base model continues a "
           "document shaped like the answer), `chat` (chat template); `auto`: `document` "
           "when the GGUF has no chat template and AGENTIC_LOCAL_CHAT_FORMAT is unset.",
           kind="choice", choices=("auto", "document", "chat")),
    EnvVar("AGENTIC_LOCAL_N_CTX", "8192", "Context window (tokens) of the embedded model.",
           kind="int", minimum=256),
    EnvVar("AGENTIC_LOCAL_MAX_TOKENS", "384",
           "Default cap on tokens the embedded model writes per reply.",
           kind="int", minimum=16),
    EnvVar("AGENTIC_LOCAL_THREADS", "",
           "CPU threads for the embedded model; empty uses every core.",
           kind="int", minimum=1),
    EnvVar("AGENTIC_LOCAL_LLM_URL", "",
           "Base URL of an already running embedded-model server; empty starts the embedded "
           "model in its own child process (workers get the coordinator's URL).",
           kind="url"),
    EnvVar("AGENTIC_LLAMA_CMAKE_ARGS", "",
           "Install time (`scripts/install.sh`): CMake flags for the llama-cpp-python build "
           "instead of the portable baseline (x86-64-v3 / armv8-a), e.g. `-DGGML_NATIVE=ON` "
           "or `-DGGML_CUDA=ON`; the cached wheel is keyed by them."),
    EnvVar("AGENTIC_LLM_TIMEOUT_SECONDS", "600",
           "Timeout of one LLM HTTP request before the step counts as failed.",
           kind="int", minimum=1),
    EnvVar("AGENTIC_MCP_CONNECT_TIMEOUT_SECONDS", "30",
           "Seconds an MCP server gets to start, answer `initialize` and list its tools; "
           "past it the step fails naming the MCP id.",
           kind="float", minimum=0.1),
    EnvVar("AGENTIC_MCP_CALL_TIMEOUT_SECONDS", "60",
           "Seconds one MCP tool call may take (not retried); past it the step fails naming "
           "the MCP id.",
           kind="float", minimum=0.1),
    EnvVar("AGENTIC_VRAM_GB", "",
           "GPU memory (GB) for the `min_vram_gb` filter; empty detects it.",
           kind="float", minimum=0),
    EnvVar("AGENTIC_SESSIONS_PATH", "~/.local/share/agentic-orchestration/sessions",
           "Folder (0700) of the sessions database `sessions.sqlite3` (SQLite, WAL; keep it "
           "on a local disk) and of the per-run JSON mirrors; older `{run_id}.json` records "
           "there are imported on first use.", kind="path"),
    EnvVar("AGENTIC_SESSIONS_JSON", "1",
           "`1` also writes each session as `{run_id}.json` next to the database; `0` keeps "
           "it in the database only.", kind="bool"),
    EnvVar("AGENTIC_LEARNING", "1",
           "`0` stops using past sessions: no reliability hints for the planner, and the "
           "fallback chain keeps the catalog order.", kind="bool"),
    EnvVar("AGENTIC_LEARNING_WINDOW", "50",
           "Learning statistics use each provider's newest this-many step attempts "
           "(per kind of step, and overall).", kind="int", minimum=1),
    EnvVar("AGENTIC_LEARNING_MIN_RUNS", "3",
           "Step attempts a provider needs (for that kind, or overall) before its success "
           "rate orders the fallback chain or is shown to the planner.", kind="int",
           minimum=1),
    EnvVar("AGENTIC_ARTIFACTS_PATH", "~/.local/share/agentic-orchestration/artifacts",
           "Folder under which each run's files are saved, in `{run_id}/`.", kind="path"),
    EnvVar("AGENTIC_RUN_STORE_PATH", "",
           "Run store root shared by coordinator and workers ({run_id}/{step_id}/result.json); "
           "empty: `agentic-run-store-<uid>` in the system temp dir, refused when another "
           "user owns it. Folders are created 0700, files 0600.",
           kind="path"),
    EnvVar("AGENTIC_SUBPROCESS_WORKERS", "0",
           "`1` makes the `subprocess` backend run one worker process per step; "
           "`0` runs it in-process.",
           kind="bool"),
    EnvVar("AGENTIC_SUBPROCESS_WARM", "1",
           "`1` forks step workers from a pre-started process that has CrewAI imported; "
           "`0` starts a fresh `main.py --execute-step` per step.",
           kind="bool"),
    EnvVar("AGENTIC_STEP_TIMEOUT_SECONDS", "1800",
           "A worker running longer than this is killed and the step fails (recoverable).",
           kind="int", minimum=1),
    EnvVar("AGENTIC_STEP_MAX_ATTEMPTS", "2",
           "Attempts per step on distributed backends (retries follow `recovery_hint`).",
           kind="int", minimum=1),
    EnvVar("AGENTIC_CACHE_DIR", "~/.cache/agentic-orchestration",
           "Install cache: the llama-cpp-python wheel and the npm MCP servers, whose "
           "`npm/bin` is put on PATH.",
           kind="path"),
    EnvVar("AGENTIC_LOG_FORMAT", "text", "`json` writes log lines as JSON objects.",
           kind="choice", choices=("text", "json")),
    EnvVar("AGENTIC_LOG_LEVEL", "WARNING", "Log level of the tool's own loggers.",
           kind="choice", choices=("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")),
    EnvVar("AGENTIC_CREWAI_TELEMETRY", "0",
           "`1` lets CrewAI send telemetry and check its version (off by default).",
           kind="bool"),
    # --- knowledge base and QA hook (agentic_orchestration.knowledge, orchestration.qa_hook)
    EnvVar("AGENTIC_KB", "1",
           "`0` turns the knowledge base off: finished runs are not indexed and the planner "
           "gets no past results (`--kb-search` still reads what was indexed).",
           kind="bool"),
    EnvVar("AGENTIC_KB_PATH", "",
           "SQLite file of the knowledge base (FTS5 index of past runs' outputs, mode 0600); "
           "empty: `knowledge.sqlite3` in AGENTIC_SESSIONS_PATH.",
           kind="path"),
    EnvVar("AGENTIC_KB_RESULTS", "3",
           "How many past runs (the most relevant to the goal) the planner is shown.",
           kind="int", minimum=1),
    EnvVar("AGENTIC_KB_CONTEXT_CHARS", "1200",
           "Character budget of the whole past-results block in the planner prompt; "
           "`0` sends none.",
           kind="int", minimum=0),
    EnvVar("AGENTIC_QA", "off",
           "Check each step's answer against its expected_output: `rules` (deterministic "
           "checks), `reviewer` (a reviewer agent on the planner's provider); a failed check "
           "runs the step once more.",
           kind="choice", choices=("off", "rules", "reviewer")),
    EnvVar("AGENTIC_MAX_REPLANS", "3",
           "Most plan revisions in a `--dynamic-iterative` run (`0`: plan once, never revise).",
           kind="int", minimum=0),
    EnvVar("AGENTIC_MAX_PARALLEL_STEPS", "4",
           "Most steps running at once on a distributed backend when their dependencies "
           "allow it (steps wait on LLM replies, not on CPU, so more than the cores is "
           "fine); the warm launcher keeps as many children ready.",
           kind="int", minimum=1),
    EnvVar("AGENTIC_RUN_MAX_TOKENS", "",
           "Token budget of a run (prompt + completion, all steps and replanning rounds; not the "
           "first plan): once spent, running steps "
           "are stopped, finished ones kept, and the run ends `budget_exceeded` (exit 5); "
           "`--resume` starts a fresh budget; empty: no limit.",
           kind="int", minimum=1),
    EnvVar("AGENTIC_RUN_MAX_SECONDS", "",
           "Wall-time budget of a run, as AGENTIC_RUN_MAX_TOKENS; empty: no limit.",
           kind="int", minimum=1),
    # --- kubernetes backend (orchestration/backends/kubernetes_runner.py) -----------------
    EnvVar("AGENTIC_K8S_NAMESPACE", "agentic-orchestration",
           "Namespace of the step Jobs (the coordinator's Role is granted there only)."),
    EnvVar("AGENTIC_K8S_WORKER_IMAGE", "",
           "Worker container image (`docker/Dockerfile.worker`); required on the kubernetes "
           "backend."),
    EnvVar("AGENTIC_K8S_IMAGE_PULL_POLICY", "IfNotPresent",
           "`imagePullPolicy` of the worker container; `Never` for an image imported into "
           "the node's runtime without a registry.",
           kind="choice", choices=("IfNotPresent", "Always", "Never")),
    EnvVar("AGENTIC_K8S_RUN_STORE_PVC", "",
           "PersistentVolumeClaim (ReadWriteMany) holding the run store; required on the "
           "kubernetes backend, with AGENTIC_RUN_STORE_PATH set to where the coordinator "
           "sees the same volume."),
    EnvVar("AGENTIC_K8S_RUN_STORE_MOUNT", "/run/store",
           "Where worker pods mount the run store PVC (an absolute path); specs name "
           "`{mount}/{run_id}/{step_id}-spec.json`."),
    EnvVar("AGENTIC_K8S_SERVICE_ACCOUNT", "",
           "ServiceAccount of worker pods; empty: the namespace's default (workers need no "
           "Kubernetes API access and get no token mounted)."),
    EnvVar("AGENTIC_K8S_ENV_SECRET", "",
           "Secret whose keys become the worker's environment (provider keys, MCP `${VAR}` "
           "values), e.g. `agentic-orchestrator-env`; values never enter a Job spec."),
    EnvVar("AGENTIC_K8S_JOB_TTL_SECONDS", "3600",
           "`ttlSecondsAfterFinished` of a finished step Job (its pod log stays readable "
           "until then).",
           kind="int", minimum=0),
    EnvVar("AGENTIC_K8S_WORKER_RESOURCES", "",
           "Requests and limits of the worker container, e.g. "
           "`{\"requests\": {\"cpu\": \"500m\"}, \"limits\": {\"memory\": \"1Gi\"}}`.",
           kind="json"),
    EnvVar("AGENTIC_K8S_GPU_PROVIDER_IDS", "",
           "Agent provider ids whose steps get AGENTIC_K8S_GPU_NODE_SELECTOR.",
           kind="list"),
    EnvVar("AGENTIC_K8S_GPU_NODE_SELECTOR", "",
           "nodeSelector (JSON object of strings) of steps whose provider is in "
           "AGENTIC_K8S_GPU_PROVIDER_IDS.",
           kind="json"),
    EnvVar("AGENTIC_K8S_HOST_NETWORK", "0",
           "`1` runs worker pods on the node's network (`hostNetwork`), so they reach "
           "servers on the node's loopback (a single-node test cluster).",
           kind="bool"),
    EnvVar("AGENTIC_K8S_SCHEDULE_TIMEOUT_SECONDS", "120",
           "How long a step's pod may stay unschedulable or wait for its image before the "
           "step fails (not retried).",
           kind="int", minimum=1),
    EnvVar("AGENTIC_K8S_ALLOW_STDIO_MCPS", "0",
           "`1` lets the planner and steps use the classified stdio MCP ids in kubernetes "
           "mode (each needs a sidecar or gateway); `0`: only HTTP-native ids, worker-native "
           "ones and those with a gateway URL.",
           kind="bool"),
    EnvVar("AGENTIC_K8S_WORKER_STDIO_MCPS", "fetch_url",
           "Stdio MCP ids run inside the worker container (`mcp-server-fetch` is in the "
           "image).",
           kind="list"),
    EnvVar("AGENTIC_K8S_MCP_FETCH_URL", "",
           "Cluster HTTP gateway for `fetch_url` (its stdio entry rewritten to "
           "streamable_http).",
           kind="url"),
    EnvVar("AGENTIC_K8S_MCP_FILESYSTEM_URL", "",
           "Cluster HTTP gateway for `filesystem_local` (rewritten as for fetch_url).",
           kind="url"),
    EnvVar("AGENTIC_WEB_HOST", "127.0.0.1",
           "Address `--web` binds to; any other than loopback requires AGENTIC_WEB_TOKEN."),
    EnvVar("AGENTIC_WEB_PORT", "8765", "Port `--web` listens on; `0` picks a free one.",
           kind="int", minimum=0, maximum=65535),
    EnvVar("AGENTIC_WEB_TOKEN", "",
           "Token the web UI requires (`Authorization: Bearer`, or `?token=` once, which sets "
           "a cookie); never logged."),
    # --- registered for features not built yet (names from the spec's env var table) -----
    EnvVar("AGENTIC_K8S_POD_SIDECAR_MCPS", "",
           "MCP ids served by an in-pod supergateway sidecar (e.g. `filesystem_local`).",
           kind="list", planned=_K8S),
    EnvVar("AGENTIC_K8S_SUPERGATEWAY_IMAGE", "supercorp/supergateway:uvx",
           "Sidecar image of the stdio-to-HTTP bridge.", planned=_K8S),
    EnvVar("AGENTIC_K8S_SUPERGATEWAY_STATEFUL", "0",
           "`1` passes `--stateful` to supergateway.", kind="bool", planned=_K8S),
    EnvVar("AGENTIC_K8S_WARM_POOL_ENABLED", "0",
           "`1` dispatches steps without sidecars to idle warm-pool pods through a queue on "
           "the PVC.",
           kind="bool", planned=_K8S),
    EnvVar("AGENTIC_K8S_DELEGATION_ENABLED", "0",
           "`1` gives workers the `k8s_delegate_task` tool (needs the delegation broker).",
           kind="bool", planned=_K8S),
    EnvVar("AGENTIC_K8S_DELEGATION_TIMEOUT_SECONDS", "3600",
           "How long a worker waits for the delegation broker's answer.",
           kind="int", minimum=1, planned=_K8S),
)

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
