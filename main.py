#!/usr/bin/env python3
"""Entry point named by the spec: ``python main.py --dynamic "goal"`` (see README)."""

from agentic_orchestration.cli.main import entrypoint

if __name__ == "__main__":
    entrypoint()
