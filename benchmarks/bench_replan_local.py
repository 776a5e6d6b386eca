"""One replanning round (``--dynamic-iterative``) on the REAL embedded model, shipped catalog.

Per goal: the planner makes the plan, its first step is taken as finished with a canned
result, and the replanner revises the rest once. Prints the seconds of that round (a
repair turn included when one was needed), how many LLM calls it took, whether the answer
was valid and what it changed; then the mean. No asserts: figures only.

Run: ``PYTHONPATH=. .venv/bin/python benchmarks/bench_replan_local.py [--goals N]``
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

GOALS = [
    ("Explain how solar panels work and write a short summary for kids",
     "Solar panels are made of silicon cells. Light knocks electrons loose, which makes a "
     "current; an inverter turns it into the power used at home."),
    ("Compare PostgreSQL and SQLite for a small web app and recommend one",
     "SQLite: one file, no server, one writer at a time. PostgreSQL: a server, many "
     "concurrent writers, more setup."),
    ("Draft a polite email asking my landlord to fix the heating",
     "Points: the heating has been off since Monday, the flat is cold, ask for a repair "
     "date this week."),
]

_CLOUD_ENV = ("OPENAI_API_KEY", "HF_TOKEN", "OLLAMA_HOST", "AGENTIC_PLANNER_PROVIDER",
              "AGENTIC_EXTRA_AGENT_PROVIDERS_PATH", "AGENTIC_LOCAL_LLM_URL")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--goals", type=int, default=len(GOALS), help="how many goals")
    args = parser.parse_args()
    for name in _CLOUD_ENV:
        os.environ.pop(name, None)
    os.environ["AGENTIC_CONFIG_DIR"] = str(REPO / "config")
    os.environ["AGENTIC_KB"] = "0"
    logging.basicConfig(level=logging.ERROR)

    from agentic_orchestration.catalogs import load_catalog
    from agentic_orchestration.errors import PlanError
    from agentic_orchestration.orchestration.backends.base import StepResult
    from agentic_orchestration.planning import DynamicPlanner
    from agentic_orchestration.planning.replanner import Replanner
    from agentic_orchestration.providers.local_model import ensure_local_server

    catalog = load_catalog()
    if any(a.type != "local" for a in catalog.available_agents):
        print("non-local providers are available; this benchmark needs local only")
        return 2
    started = time.perf_counter()
    ensure_local_server()
    print(f"model load + server start: {time.perf_counter() - started:.2f}s")
    planner = DynamicPlanner(catalog)
    replanner = Replanner(catalog, planner=planner)
    seconds: list[float] = []
    valid = 0
    for goal, result in GOALS[: args.goals]:
        try:
            plan = planner.plan(goal)
        except PlanError as exc:
            print(f"plan FAILED for {goal}: {exc}")
            continue
        first = StepResult(run_id="bench", step_id=plan.steps[0].id, result_text=result)
        revision = replanner.revise(goal, plan, [first], round_no=1, rounds=3)
        seconds.append(revision.seconds)
        valid += revision.valid
        print(f"{revision.seconds:6.2f}s  calls={revision.attempts}  "
              f"valid={revision.valid}  plan {planner.last_stats.seconds:.1f}s, "
              f"{len(plan.steps)} steps  {goal}\n    {revision.summary()[:200]}")
    if seconds:
        print(f"valid revisions: {valid}/{len(seconds)}; mean seconds per round: "
              f"{statistics.mean(seconds):.2f} (min {min(seconds):.2f}, "
              f"max {max(seconds):.2f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
