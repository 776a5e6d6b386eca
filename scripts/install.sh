#!/usr/bin/env bash
# Idempotent set-up on a fresh machine: a venv in .venv with the package, the embedded
# model's runtime (llama-cpp-python, built once and cached) and the test tools.
#
# The llama-cpp-python source build takes 10+ minutes on 2 cores, so its wheel is kept in
# ~/.cache/agentic-orchestration/wheels and reused by every later install on this machine.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
CACHE="${AGENTIC_CACHE_DIR:-$HOME/.cache/agentic-orchestration}"
WHEELS="$CACHE/wheels"
LLAMA_VERSION=0.3.36
mkdir -p "$WHEELS"

log() { printf '[install] %s\n' "$*" >&2; }

if [ ! -x .venv/bin/python ]; then
  log "creating .venv"
  "$PYTHON" -m venv .venv
fi

if ! ls "$WHEELS"/llama_cpp_python-"$LLAMA_VERSION"-*.whl >/dev/null 2>&1; then
  log "building llama-cpp-python $LLAMA_VERSION once (about 10 minutes on 2 cores); cached in $WHEELS"
  CMAKE_BUILD_PARALLEL_LEVEL="$(nproc)" .venv/bin/pip wheel --quiet --no-deps \
    "llama-cpp-python==$LLAMA_VERSION" -w "$WHEELS"
fi

# Reinstall only when the dependency list changed (keeps repeated runs instant).
stamp=.venv/.agentic-install-stamp
want="$(sha256sum pyproject.toml | cut -d' ' -f1)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  log "installing the package and its dependencies into .venv"
  .venv/bin/pip install --quiet --find-links "$WHEELS" -e ".[local,test,mcp-servers]" 2>&1 \
    | grep -v "is ignored: it is neither a file nor a directory" >&2 || true
  .venv/bin/python -c "import crewai, llama_cpp, agentic_orchestration" \
    || { log "install check failed"; exit 1; }
  echo "$want" > "$stamp"
fi

# MCP servers from the npm registry (filesystem, memory, supergateway): pinned, cached in
# $AGENTIC_CACHE_DIR/npm, a no-op (no network) once installed. The CLI puts their bin on PATH.
log "npm MCP servers (pinned, cached) in $(bash scripts/install_mcp_servers.sh)"
