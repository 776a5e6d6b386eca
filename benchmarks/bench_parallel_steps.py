"""Parallel steps: a 6-step graph whose critical path is 3 steps, on warm subprocess workers.

The graph (``depends_on``)::

    a ─┬─► c ──┐
       └─► d ──┼─► f
    b ─┬─► d   │
       └─► e ──┘

Every LLM reply of the scripted server takes ``DELAY`` seconds (a slow remote model), so a
step costs DELAY plus the orchestration overhead. The same plan runs twice on one warm
launcher: once with ``AGENTIC_MAX_PARALLEL_STEPS=1`` (sequential), once with the default
(4). Printed: both wall times, their ratio, and the parallel wall time against the
critical-path time (3 steps at the sequential run's mean step cost).

Target: parallel wall time within 15% of the critical-path time (ratio <= 1.15).

Run: .venv/bin/python benchmarks/bench_parallel_steps.py [DELAY_SECONDS]
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

DELAY = float(sys.argv[1]) if len(sys.argv) > 1 else 3.0
GRAPH = {"a": [], "b": [], "c": ["a"], "d": ["a", "b"], "e": ["b"], "f": ["c", "d", "e"]}


def main() -> None:
    os.environ.setdefault("CREWAI_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("OTEL_SDK_DISABLED", "true")
    os.environ["AGENTIC_PROGRESS"] = "0"
    from agentic_orchestration.log import configure_logging

    configure_logging()
    logging.getLogger("crewai").setLevel(logging.ERROR)
    from agentic_orchestration.catalogs import WorkflowConfig, load_catalog
    from agentic_orchestration.orchestration.backends.base import RunOptions
    from agentic_orchestration.orchestration.backends.subprocess import (
        SubprocessExecutionBackend,
    )
    from agentic_orchestration.orchestration.backends.warm_launcher import WarmLauncher
    from agentic_orchestration.orchestration.step_graph import StepGraph
    from agentic_orchestration.testing import ScriptedLLMServer
    from agentic_orchestration.testing.catalog import write_writer_catalog

    def slow(request: dict) -> str:
        time.sleep(DELAY)
        return "Final Answer: a short paragraph."

    with tempfile.TemporaryDirectory() as tmp, ScriptedLLMServer(default=slow) as server:
        config_dir = write_writer_catalog(Path(tmp) / "config", server.base_url)
        os.environ["AGENTIC_CONFIG_DIR"] = str(config_dir)
        os.environ["AGENTIC_RUN_STORE_PATH"] = str(Path(tmp) / "store")
        catalog = load_catalog()
        config = WorkflowConfig(name="bench-graph", topic="tea", steps=[
            {"id": sid, "agent_provider": "fake_writer", "depends_on": deps,
             "description": f"STEP {sid} about {{topic}}"} for sid, deps in GRAPH.items()])
        critical = StepGraph.from_steps(config.steps).critical_path()
        launcher = WarmLauncher(env=dict(os.environ))
        launcher.wait_ready()
        backend = SubprocessExecutionBackend(launcher=launcher)
        walls = {}
        try:
            for label, parallel in (("warm-up", "4"), ("sequential", "1"), ("parallel", "4")):
                os.environ["AGENTIC_MAX_PARALLEL_STEPS"] = parallel
                began = time.perf_counter()
                result = backend.execute_config(
                    config, options=RunOptions(emit_progress_lines=False), catalog=catalog)
                walls[label] = time.perf_counter() - began
                assert result.ok, result.error
        finally:
            launcher.close()

    steps = len(GRAPH)
    per_step = walls["sequential"] / steps
    critical_time = critical * per_step
    print(f"{steps}-step graph, critical path {critical:g} steps, LLM reply delay {DELAY:g}s, "
          "warm subprocess workers")
    print(f"sequential (AGENTIC_MAX_PARALLEL_STEPS=1): {walls['sequential']:.2f}s "
          f"({per_step:.2f}s per step)")
    print(f"parallel   (AGENTIC_MAX_PARALLEL_STEPS=4): {walls['parallel']:.2f}s")
    print(f"parallel / sequential: {walls['parallel'] / walls['sequential']:.2f} "
          f"(ideal {critical / steps:.2f})")
    ratio = walls["parallel"] / critical_time
    print(f"parallel / critical-path time ({critical_time:.2f}s): {ratio:.2f} "
          f"(target <= 1.15: {'met' if ratio <= 1.15 else 'NOT met'})")


if __name__ == "__main__":
    main()
