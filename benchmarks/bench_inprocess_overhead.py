"""What the in-process backend costs per step beyond the LLM, against an instant fake LLM.

Runs 1-, 3- and 10-step plans through ``CrewAIExecutionBackend.execute_config`` (after one
warm-up kickoff, which pays CrewAI's lazy imports) and prints, per plan (median of
``--repeat`` runs):

- wall: execute_config end to end; server: time inside the scripted LLM server;
- (wall - server) / steps: everything that is not the LLM, per step;
- build: ``build_workflow`` (catalog resolution + CrewAI Agent/Task/Crew/LLM objects);
- kickoff: inside ``crew.kickoff()`` minus the server and our callbacks (CrewAI itself);
- ours: our callbacks (hand-off, hooks, progress, bookkeeping) + our code outside kickoff
  (catalog check, result assembly), per step.

Usage: ``PYTHONPATH=. .venv/bin/python benchmarks/bench_inprocess_overhead.py [--repeat 5]``.
Prints; asserts nothing.
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import tempfile
import time
from pathlib import Path

PLANS = (1, 3, 10)


def _isolate(home: Path) -> None:
    """A throwaway HOME (CrewAI writes there)."""
    os.environ["HOME"] = str(home)
    os.environ["XDG_DATA_HOME"] = str(home / "share")
    os.environ["XDG_CACHE_HOME"] = str(home / "cache")


def _catalog_dir(root: Path, base_url: str) -> Path:
    for sub in ("agent_providers", "mcp_providers", "workflows"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    (root / "agent_providers" / "agents.yaml").write_text(
        "- {id: bench, type: openai, model: fake-model, openai_base_url: '" + base_url + "',"
        " role: Worker, goal: Do the step., backstory: Fast., priority: 1}\n")
    (root / "mcp_providers" / "mcps.yaml").write_text("")
    return root


def _plan(steps: int):
    from agentic_orchestration.catalogs import WorkflowConfig

    return WorkflowConfig.model_validate({
        "name": f"bench-{steps}", "topic": "benchmarks",
        "steps": [{"agent_provider": "bench", "description": f"Step {i} about {{topic}}."}
                  for i in range(1, steps + 1)],
    })


def main() -> None:
    from agentic_orchestration.log import configure_logging

    configure_logging()  # CrewAI warns once per step about token counts: not a figure
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="runs per plan (median shown)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-inprocess-") as scratch:
        _run(Path(scratch), args.repeat)


def _run(scratch: Path, repeat: int) -> None:
    _isolate(scratch / "home")
    t0 = time.perf_counter()
    from agentic_orchestration import settings

    settings.quiet_crewai_network()
    import crewai  # noqa: F401  (measured: the cost every fresh process pays once)

    import_s = time.perf_counter() - t0

    from agentic_orchestration.catalogs import load_catalog
    from agentic_orchestration.orchestration.backends.base import RunOptions
    from agentic_orchestration.orchestration.backends.crewai import CrewAIExecutionBackend
    from agentic_orchestration.testing import ScriptedLLMServer

    with ScriptedLLMServer(default="Final Answer: ok, step done.") as server:
        config_dir = _catalog_dir(scratch / "config", server.base_url)
        t1 = time.perf_counter()
        catalog = load_catalog(config_dir)
        catalog_s = time.perf_counter() - t1
        sink = io.StringIO()  # progress lines on (realistic cost), kept off the report
        backend = CrewAIExecutionBackend(progress_stream=sink, live_progress=False)

        t2 = time.perf_counter()
        warm = backend.execute_config(_plan(1), options=RunOptions(), catalog=catalog)
        warm_s = time.perf_counter() - t2
        assert warm.ok, warm.error

        print(f"import crewai: {import_s:.2f}s   load_catalog: {catalog_s * 1000:.1f} ms   "
              f"warm-up kickoff (1 step): {warm_s:.2f}s")
        print(f"{'steps':>5} {'wall s':>8} {'server s':>9} {'(wall-srv)/step ms':>19} "
              f"{'build/step ms':>14} {'crewai/step ms':>15} {'ours/step ms':>13} "
              f"{'ours: cb ms':>11} {'ours: outside ms':>17}")
        for steps in PLANS:
            rows = []
            for _ in range(repeat):
                server.busy_seconds = 0.0
                result = backend.execute_config(_plan(steps), options=RunOptions(),
                                                catalog=catalog)
                assert result.ok, result.error
                t = backend.last_timings
                busy = server.busy_seconds
                outside = t.total - t.build - t.kickoff
                rows.append((
                    t.total, busy, (t.total - busy) / steps * 1000, t.build / steps * 1000,
                    (t.kickoff - t.callbacks - busy) / steps * 1000,
                    (t.callbacks + outside) / steps * 1000,
                    t.callbacks / steps * 1000, outside / steps * 1000,
                ))
            med = [statistics.median(col) for col in zip(*rows, strict=True)]
            print(f"{steps:>5} {med[0]:>8.3f} {med[1]:>9.4f} {med[2]:>19.1f} {med[3]:>14.1f} "
                  f"{med[4]:>15.1f} {med[5]:>13.2f} {med[6]:>11.2f} {med[7]:>17.2f}")
        lines = sink.getvalue().count("\n")
        print(f"({lines} progress lines written to a buffer; build/step includes CrewAI "
              "Agent/Task/LLM construction)")


if __name__ == "__main__":
    main()
