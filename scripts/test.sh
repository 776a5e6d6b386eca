#!/usr/bin/env bash
# Install what the tests need (scripts/install.sh) and run every test, then the linter.
# Extra arguments go to pytest (e.g. scripts/test.sh -k planner).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
bash scripts/install_browser.sh  # Debian's Chromium for the web UI tests (marker `web`)
export CREWAI_DISABLE_TELEMETRY=true OTEL_SDK_DISABLED=true CREWAI_DISABLE_VERSION_CHECK=true
.venv/bin/python -m pytest -q "$@"
.venv/bin/ruff check agentic_orchestration tests benchmarks main.py
