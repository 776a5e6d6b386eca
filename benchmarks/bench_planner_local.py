"""Dynamic planner on the REAL embedded model (Gemma 3 270M via llama.cpp), shipped catalog.

Prints, per goal, the seconds to a valid plan (including a repair attempt when one was
needed), how many LLM calls it took and the plan's agents (for the base model, also how many
step lines fell back to the kind's template); then the share of goals planned validly on the
first try (for the base model: no line drawn twice) and the mean seconds. No asserts:
figures only. ``bench_planner_fit.py`` measures whether the plans fit their goals.

Run: ``PYTHONPATH=. .venv/bin/python benchmarks/bench_planner_local.py [--show]``
(``--show`` also prints each plan's step descriptions).
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
    "Explain how solar panels work and write a short summary for kids",
    "Compare PostgreSQL and SQLite for a small web app and recommend one",
    "Draft a polite email asking my landlord to fix the heating",
    "Write a Python script that renames photos by their date and review it",
    "Summarise the main causes of the French Revolution",
]

#: Env vars that would make non-local providers available; the benchmark is about the
#: embedded model, so they are cleared for this process.
_CLOUD_ENV = ("OPENAI_API_KEY", "HF_TOKEN", "OLLAMA_HOST", "AGENTIC_PLANNER_PROVIDER",
              "AGENTIC_EXTRA_AGENT_PROVIDERS_PATH", "AGENTIC_LOCAL_LLM_URL")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--show", action="store_true", help="print each plan's steps")
    args = parser.parse_args()
    for name in _CLOUD_ENV:
        os.environ.pop(name, None)
    os.environ["AGENTIC_CONFIG_DIR"] = str(REPO / "config")
    logging.basicConfig(level=logging.ERROR)

    from agentic_orchestration.catalogs import load_catalog
    from agentic_orchestration.errors import PlanError
    from agentic_orchestration.planning import DynamicPlanner
    from agentic_orchestration.providers.local_model import ensure_local_server

    catalog = load_catalog()
    local = [a.id for a in catalog.available_agents if a.type == "local"]
    if [a.id for a in catalog.available_agents] != local:
        print("non-local providers are available; this benchmark needs local only")
        return 2
    started = time.perf_counter()
    ensure_local_server()
    print(f"model load + server start: {time.perf_counter() - started:.2f}s")
    print(f"agents: {', '.join(local)}; MCPs: "
          f"{', '.join(m.id for m in catalog.available_mcps) or 'none'}")

    planner = DynamicPlanner(catalog)
    seconds: list[float] = []
    first_try = 0
    for goal in GOALS:
        try:
            plan = planner.plan(goal)
        except PlanError as exc:
            stats = planner.last_stats
            print(f"FAILED {stats.seconds:6.2f}s  attempts={stats.attempts}  {goal}\n"
                  f"    {exc}")
            continue
        stats = planner.last_stats
        seconds.append(stats.seconds)
        first_try += stats.first_try_valid
        agents = " > ".join(step.agent_provider for step in plan.steps)
        print(f"{stats.seconds:6.2f}s  attempts={stats.attempts}  steps={len(plan.steps)}  "
              f"{goal}\n    {plan.name}: {agents}")
        if stats.trimmed_steps:
            print(f"    {stats.trimmed_steps} repeated step(s) cut from the answer")
        if stats.framed:  # a base model: one line per pinned step (planning/_frame.py)
            print(f"    framed: {len(plan.steps)} lines in {stats.attempts} calls, "
                  f"{len(stats.fallback_descriptions)} kept the kind's template")
        if stats.problems:
            print(f"    first answer's problems: {'; '.join(stats.problems[0])}")
        if args.show:
            for step in plan.steps:
                print(f"      {step.id} [{step.agent_provider}] {step.description} "
                      f"=> {step.expected_output}")

    total = len(GOALS)
    print(f"valid plans: {len(seconds)}/{total}; valid on first try: {first_try}/{total} "
          f"({100 * first_try / total:.0f}%)")
    if seconds:
        print(f"mean seconds to a valid plan: {statistics.mean(seconds):.2f} "
              f"(min {min(seconds):.2f}, max {max(seconds):.2f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
