#!/usr/bin/env bash
# Install what the tests need (scripts/install.sh) and run every test, then the linter.
# Extra arguments go to pytest (e.g. scripts/test.sh -k planner).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
# The local Kubernetes cluster the `kubernetes` tests use (scripts/k8s/README.md): built
# once into ~/.cache/agentic-orchestration/k8s (minutes when cold), started here and
# stopped at the end unless it was already running. If it cannot start, the suite still
# runs: the kubernetes tests then fail naming the component and its last log lines.
if ! bash scripts/k8s/cluster.sh status >/dev/null 2>&1; then
  trap 'bash scripts/k8s/cluster.sh down || true' EXIT
fi
bash scripts/k8s/cluster.sh up || echo "test.sh: the Kubernetes test cluster did not start (see above)" >&2
bash scripts/install_browser.sh  # Debian's Chromium for the web UI tests (marker `web`)
export CREWAI_DISABLE_TELEMETRY=true OTEL_SDK_DISABLED=true CREWAI_DISABLE_VERSION_CHECK=true
.venv/bin/python -m pytest -q "$@"
.venv/bin/ruff check agentic_orchestration tests benchmarks main.py
