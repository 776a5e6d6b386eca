#!/usr/bin/env bash
# Idempotent install of the npm MCP servers the tests and the gateway path use, into a
# machine-wide cached prefix (default ~/.cache/agentic-orchestration/npm), pinned.
#
# Why a prefix of our own and not `npx -y` at run time: npx resolves "latest" against the
# registry on every start of a package it only has in its cache, which is slow and fails
# offline; a pinned install here starts in well under a second with no network at all.
# When the pinned versions are already installed this script does no network work.
#
# Prints the bin dir (holding mcp-server-filesystem, mcp-server-memory, supergateway) on
# stdout; progress goes to stderr.
set -euo pipefail

CACHE="${AGENTIC_CACHE_DIR:-$HOME/.cache/agentic-orchestration}"
PREFIX="${AGENTIC_NPM_PREFIX:-$CACHE/npm}"
# Pinned: verified here (Node 20, npm 11) by tests/test_mcp_npm.py and test_mcp_gateway.py.
PACKAGES=(
  "@modelcontextprotocol/server-filesystem@2026.8.31"
  "@modelcontextprotocol/server-memory@2026.8.31"
  "supergateway@4.0.0"
)
BINS=(mcp-server-filesystem mcp-server-memory supergateway)

log() { printf '[install-mcp] %s\n' "$*" >&2; }

command -v npm >/dev/null || { log "npm not found: install Node.js >= 20 first"; exit 1; }

installed_version() {  # version of a globally installed package under $PREFIX, or ""
  local manifest="$PREFIX/lib/node_modules/$1/package.json"
  [ -f "$manifest" ] || return 0
  node -e 'process.stdout.write(require(process.argv[1]).version || "")' "$manifest"
}

up_to_date() {
  local spec name want
  for spec in "${PACKAGES[@]}"; do
    name="${spec%@*}"; want="${spec##*@}"
    [ "$(installed_version "$name")" = "$want" ] || return 1
  done
  for name in "${BINS[@]}"; do
    [ -x "$PREFIX/bin/$name" ] || return 1
  done
}

mkdir -p "$PREFIX"
# Two test runs (or install.sh and a test fixture) may start at once: one installs.
exec 9>"$PREFIX/.install.lock"
flock 9

if up_to_date; then
  log "pinned MCP servers already in $PREFIX"
else
  log "installing ${PACKAGES[*]} into $PREFIX"
  npm install --global --prefix "$PREFIX" --no-audit --no-fund --no-update-notifier \
    --loglevel=error "${PACKAGES[@]}" >&2
  up_to_date || { log "install finished but the pinned versions/bins are not in $PREFIX"; exit 1; }
fi

echo "$PREFIX/bin"
