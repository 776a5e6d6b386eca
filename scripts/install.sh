#!/usr/bin/env bash
# Idempotent set-up on a fresh machine: a venv in .venv with the package, the embedded
# model's runtime (llama-cpp-python, built once and cached), the test tools, then a smoke
# check that the embedded model really generates on this CPU.
#
# - llama-cpp-python is built from source with the portable flags of
#   scripts/llama_build_flags.sh (never -march=native: a native build crashes other CPUs),
#   and cached in ~/.cache/agentic-orchestration/wheels/<key>/ where <key> hashes the
#   version, the flags, the architecture and the Python version. A wheel built any other way
#   is never reused.
# - Every dependency version comes from requirements.lock (a pip constraints file), so every
#   machine gets the same set. Regenerate it with scripts/lock.sh.
# - A failing pip install stops the script with pip's own output; nothing is hidden.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
CACHE="${AGENTIC_CACHE_DIR:-$HOME/.cache/agentic-orchestration}"
LLAMA_VERSION=0.3.36
LOCK=requirements.lock

log() { printf '[install] %s\n' "$*" >&2; }
die() { printf '[install] error: %s\n' "$*" >&2; exit 1; }
# Runs pip, dropping only two harmless notices (this machine kind's absent local index
# folders; older pips' --no-binary cache deprecation); pip's status is kept (pipefail), so a
# failure is never hidden.
pip_() {
  .venv/bin/pip "$@" 2>&1 | { grep -v -e "is ignored: it is neither a file nor a directory" \
    -e "^DEPRECATION: --no-binary currently disables" >&2 || true; }
}

command -v "$PYTHON" >/dev/null || die "$PYTHON not found: install Python >= 3.11"
if [ ! -x .venv/bin/python ]; then
  log "creating .venv"
  "$PYTHON" -m venv .venv || die "cannot create .venv (Debian: apt-get install python3-venv)"
fi
PYVER="$(.venv/bin/python -c 'import sys; print("%d.%d" % sys.version_info[:2])')"

FLAGS="$(bash scripts/llama_build_flags.sh)"
KEY="$(printf '%s\n' "$LLAMA_VERSION" "$FLAGS" "$(uname -m)" "$PYVER" | sha256sum | cut -c1-16)"
WHEELS="$CACHE/wheels/llama-cpp-python-$LLAMA_VERSION-$KEY"
find_wheel() { ls "$WHEELS"/llama_cpp_python-"$LLAMA_VERSION"-*.whl 2>/dev/null | head -n1; }

if [ -z "$(find_wheel)" ]; then
  log "building llama-cpp-python $LLAMA_VERSION once (3-10 minutes on 2 cores) with"
  log "  CMAKE_ARGS=$FLAGS"
  # A folder of this install's own: two installs at once must not share a half-built wheel.
  partial="$WHEELS.partial.$$"
  rm -rf "$partial" && mkdir -p "$partial"
  CMAKE_ARGS="$FLAGS" FORCE_CMAKE=1 CMAKE_BUILD_PARALLEL_LEVEL="$(nproc)" \
    pip_ wheel --quiet --no-deps --no-binary llama-cpp-python --no-cache-dir \
    "llama-cpp-python==$LLAMA_VERSION" -w "$partial" \
    || die "building llama-cpp-python failed (see pip's output above; a C/C++ compiler and cmake are needed)"
  printf '%s\n' "$FLAGS" > "$partial/CMAKE_ARGS"
  if [ -z "$(find_wheel)" ]; then
    rm -rf "$WHEELS" && mv "$partial" "$WHEELS"
  else
    rm -rf "$partial"  # another install finished the same wheel first
  fi
fi
WHEEL="$(find_wheel)"

# Reinstall only when the inputs changed (keeps repeated runs instant).
stamp=.venv/.agentic-install-stamp
want="$(cat pyproject.toml "$LOCK" | sha256sum | cut -c1-16)-$KEY"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  log "installing the package and its locked dependencies into .venv"
  pip_ install --quiet --force-reinstall --no-deps "$WHEEL" || die "installing $WHEEL failed"
  pip_ install --quiet -c "$LOCK" -e ".[local,test,mcp-servers,kubernetes,web]" \
    || die "installing the dependencies failed (see pip's output above)"
  .venv/bin/python -c "import crewai, llama_cpp, agentic_orchestration" \
    || die "the installed packages do not import (see above)"
  echo "$want" > "$stamp"
fi

# MCP servers from the npm registry (filesystem, memory, supergateway): pinned, cached in
# $AGENTIC_CACHE_DIR/npm, a no-op (no network) once installed. The CLI puts their bin on PATH.
npm_bin="$(bash scripts/install_mcp_servers.sh)" \
  || die "installing the npm MCP servers failed (see npm's output above)"
log "npm MCP servers (pinned, cached) in $npm_bin"

# Smoke check: load the embedded model and generate a few tokens in a child process, so a
# build that cannot run on this CPU fails here, with the signal and what to try, and not as
# a silent crash in the first run.
.venv/bin/python -m agentic_orchestration.providers.local_model_check --cmake-args "$FLAGS" \
  || die "the embedded model does not run on this machine (see above)"
