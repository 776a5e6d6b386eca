"""Do the embedded model's plans fit the goal? 10 goals of several kinds, shipped catalog.

Per goal and planner path: the plan's agents, whether they fit (a code goal gets the coder,
a goal asking for a review gets the reviewer, a comparison gets the analyst, nothing but a
code goal gets the coder), its step descriptions, how many are an example copied word for
word (normalised; ``{topic}`` filled in; the JSON path's templates and the frame's example
lines both count), how many are the frame's fallback (a template after two rejected lines),
and seconds. Then the shares and the mean time per path. No asserts: figures only.

Paths: ``frame`` (default for a base model: a line per pinned step, ``planning._frame``)
and, with ``--old``, ``json`` (the whole plan as one JSON answer, as before), run one after
the other on the same server so the figures compare.

Run: ``PYTHONPATH=. .venv/bin/python benchmarks/bench_planner_fit.py [--old] [--goals N]``
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import statistics
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

GOALS = [  # guide, trip plan, code + review, comparison, French summary, braces,
    # explanation, email, list of benefits, recipe
    "Write a short guide to brewing green tea and have it reviewed",
    "Plan a three-day trip to Rome on a budget",
    "Write a Python function that checks whether a string is a palindrome, then review it",
    "Compare PostgreSQL and SQLite for a small web app and recommend one",
    "Résume en français les causes de la Révolution française",
    "Explain what {braces} mean in a Python f-string",
    "Explain why the sky is blue to a ten-year-old",
    "Draft a polite email asking my landlord to fix the heating",
    "List five practical benefits of writing unit tests",
    "Give me a recipe for a quick vegetable curry for two",
]

_CLOUD_ENV = ("OPENAI_API_KEY", "HF_TOKEN", "OLLAMA_HOST", "AGENTIC_PLANNER_PROVIDER",
              "AGENTIC_EXTRA_AGENT_PROVIDERS_PATH", "AGENTIC_LOCAL_LLM_URL")


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


def shown_examples(catalog, goal: str) -> set[str]:  # type: ignore[no-untyped-def]
    """Every example description either path shows for ``goal``, normalised."""
    from agentic_orchestration.planning import _frame
    from agentic_orchestration.planning._prompt import example_plans, goal_kind

    texts = [step["description"] for _, plan in example_plans(catalog, goal)
             for step in plan["steps"]]
    steps = _frame.frame_steps(catalog, goal)
    texts += [s.template for s in steps]
    texts += [line for _, lines in _frame.example_lines(goal_kind(goal), steps)
              for line in lines]
    return {_frame.normalise(t.replace("{topic}", goal)) for t in texts}


def run_path(name: str, planner, catalog, goals: list[str]) -> dict:  # type: ignore[no-untyped-def]
    from agentic_orchestration.errors import PlanError
    from agentic_orchestration.planning import _frame
    from agentic_orchestration.planning._prompt import goal_kind

    figures = {"valid": 0, "fit": 0, "clean": 0, "all_copied": 0, "fallbacks": 0,
               "seconds": []}
    print(f"\n== {name} ==")
    for goal in goals:
        kind = goal_kind(goal)
        try:
            plan = planner.plan(goal)
        except PlanError as exc:
            print(f"[{kind:7}] FAILED {planner.last_stats.seconds:5.1f}s  {goal}\n    {exc}")
            continue
        stats = planner.last_stats
        figures["valid"] += 1
        figures["seconds"].append(stats.seconds)
        roles = [catalog.agents[s.agent_provider].role for s in plan.steps]
        ok, why = fits(goal, kind, roles)
        shown = shown_examples(catalog, goal)
        copied = [_frame.normalise(s.description.replace("{topic}", goal)) in shown
                  for s in plan.steps]
        figures["fit"] += ok
        figures["clean"] += not any(copied)
        figures["all_copied"] += all(copied)
        figures["fallbacks"] += len(stats.fallback_descriptions)
        print(f"[{kind:7}] {'fits' if ok else 'NO  '}  copied {sum(copied)}/{len(copied)}  "
              f"fallbacks {len(stats.fallback_descriptions)}  calls {stats.attempts}  "
              f"{stats.seconds:5.1f}s  {' > '.join(roles)}  | {goal}"
              + (f"\n    {why}" if why else ""))
        for step, copy in zip(plan.steps, copied, strict=True):
            print(f"      {'COPY ' if copy else '     '}[{step.agent_provider}] "
                  f"{step.description}")
    return figures


def summary(name: str, figures: dict, total: int) -> str:  # type: ignore[type-arg]
    seconds = figures["seconds"]
    mean = f"{statistics.mean(seconds):.1f}s" if seconds else "-"
    return (f"{name:5}  valid {figures['valid']}/{total}  agents fit {figures['fit']}/{total}"
            f"  no copied description {figures['clean']}/{total}  every description "
            f"copied {figures['all_copied']}/{total}  fallbacks {figures['fallbacks']}  "
            f"mean {mean}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--old", action="store_true",
                        help="also run the JSON path (the whole plan as one answer)")
    parser.add_argument("--goals", type=int, default=len(GOALS), help="first N goals only")
    args = parser.parse_args()
    for name in _CLOUD_ENV:
        os.environ.pop(name, None)
    os.environ["AGENTIC_CONFIG_DIR"] = str(REPO / "config")
    logging.basicConfig(level=logging.ERROR)

    from agentic_orchestration.catalogs import load_catalog
    from agentic_orchestration.planning import DynamicPlanner
    from agentic_orchestration.providers.local_model import ensure_local_server

    catalog = load_catalog()
    ensure_local_server()
    goals = GOALS[: args.goals]
    DynamicPlanner(catalog).plan("Warm up: list two facts about tea")  # model load
    results = {"frame": run_path("frame", DynamicPlanner(catalog), catalog, goals)}
    if args.old:
        results["json"] = run_path("json", DynamicPlanner(catalog, frame=False), catalog,
                                   goals)
    print(f"\nload average at the end: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    for name, figures in results.items():
        print(summary(name, figures, len(goals)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
