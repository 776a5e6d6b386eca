"""The table of every ``AGENTIC_*`` variable: name, default, meaning, type and range.

Data only, kept apart from ``settings`` (which parses, validates and documents it) so the
table can grow without pushing the access code past a readable size. Add a variable here;
``settings`` picks it up, and ``tests/test_docs.py`` / ``tests/test_env_example.py`` then
ask for the README tables and ``.env.example`` to be regenerated.
"""

from __future__ import annotations

from agentic_orchestration._env_var import EnvVar

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
