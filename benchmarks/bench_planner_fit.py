"""Do the embedded model's plans fit the goal? 10 goals of five kinds, shipped catalog.

Per goal: the goal's kind, the plan's agents, whether they fit (a code goal gets the coder,
a goal asking for a review gets the reviewer, a comparison gets the analyst, nothing but a
code goal gets the coder), and how many step descriptions are a worked example copied word
for word (``{topic}`` filled in). Then the shares. No asserts: figures only.

Run: ``PYTHONPATH=. .venv/bin/python benchmarks/bench_planner_fit.py [--show]``
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

GOALS = [
    "Plan a three-day trip to Rome on a budget",
    "Write a Python function that checks whether a string is a palindrome, then review it",
    "Résume en français les causes de la Révolution française",
    "Explain what {braces} mean in a Python f-string",
    "Compare PostgreSQL and SQLite for a small web app and recommend one",
    "Write a bash script that backs up my home folder every night",
    "Draft a polite email asking my landlord to fix the heating",
    "List five practical benefits of writing unit tests",
    "Which is better for a beginner, a road bike or a hybrid bike?",
    "Write a short guide to brewing green tea and have it reviewed",
]

_CLOUD_ENV = ("OPENAI_API_KEY", "HF_TOKEN", "OLLAMA_HOST", "AGENTIC_PLANNER_PROVIDER",
              "AGENTIC_EXTRA_AGENT_PROVIDERS_PATH", "AGENTIC_LOCAL_LLM_URL")


def _norm(text: str) -> str:
    return " ".join(text.lower().split())


def fits(goal: str, kind: str, roles: list[str]) -> tuple[bool, str]:
    """Whether the plan's agent roles suit the goal, and why not."""
    has = {role.lower() for role in roles}
    if kind == "code" and "programmer" not in has:
        return False, "code goal without the coder"
    if kind != "code" and "programmer" in has:
        return False, "coder on a goal that is not code"
    if re.search(r"\breview", goal, re.I) and "reviewer" not in has:
        return False, "asked for a review, no reviewer"
    if kind == "compare" and "analyst" not in has:
        return False, "comparison without the analyst"
    return True, ""


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
    from agentic_orchestration.planning._prompt import example_plans, goal_kind
    from agentic_orchestration.providers.local_model import ensure_local_server

    catalog = load_catalog()
    ensure_local_server()
    planner = DynamicPlanner(catalog)
    fitting = copied_plans = valid = 0
    began = time.perf_counter()
    for goal in GOALS:
        kind = goal_kind(goal)
        shown = {_norm(step["description"].replace("{topic}", goal))
                 for _, plan in example_plans(catalog, goal) for step in plan["steps"]}
        try:
            plan = planner.plan(goal)
        except PlanError as exc:
            print(f"[{kind:7}] FAILED  {goal}\n    {exc}")
            continue
        valid += 1
        roles = [catalog.agents[s.agent_provider].role for s in plan.steps]
        ok, why = fits(goal, kind, roles)
        copies = sum(_norm(s.description.replace("{topic}", goal)) in shown for s in plan.steps)
        fitting += ok
        copied_plans += copies == len(plan.steps)
        print(f"[{kind:7}] {'fits ' if ok else 'NO   '} copied {copies}/{len(plan.steps)}  "
              f"{planner.last_stats.seconds:5.1f}s  {' > '.join(roles)}  | {goal}"
              + (f"\n    {why}" if why else ""))
        if args.show:
            for step in plan.steps:
                print(f"      [{step.agent_provider}] {step.description} "
                      f"=> {step.expected_output}")
    total = len(GOALS)
    print(f"valid plans {valid}/{total}; agents fit the goal {fitting}/{total} "
          f"({100 * fitting / total:.0f}%); plans made only of copied example steps "
          f"{copied_plans}/{total}; {time.perf_counter() - began:.0f}s in all")
    return 0


if __name__ == "__main__":
    sys.exit(main())
