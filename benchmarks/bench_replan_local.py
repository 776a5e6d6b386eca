"""The cost of a replanning round (``--dynamic-iterative``) on the REAL embedded model,
next to a planning call, shipped catalog.

Per goal and repeat: the planner makes the plan (seconds, prompt and generated tokens),
its first step is taken as finished with a canned result, and the replanner revises the
rest once (the same figures, how many LLM calls, whether the answer was valid or the plan
was kept, what changed). Then the medians of both, and the load average before and after
(this machine is shared: timings scale with the load). No asserts: figures only.

On the embedded base model revisions are *pinned* to the pending steps
(``planning.replanner``); ``--unpinned`` measures the free form instead (slow: one round
did not finish in 10 minutes at load 14 before pinning existed; ``--max-tokens`` caps it).

Run: ``PYTHONPATH=. .venv/bin/python benchmarks/bench_replan_local.py [--goals N] [--repeats N]``
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


def _load() -> str:
    return "load average " + ", ".join(f"{x:.2f}" for x in os.getloadavg())


def _median(values: list[float]) -> str:
    return f"{statistics.median(values):.2f}" if values else "-"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--goals", type=int, default=len(GOALS), help="how many goals")
    parser.add_argument("--repeats", type=int, default=2, help="rounds per goal")
    parser.add_argument("--unpinned", action="store_true",
                        help="let the base model write free revisions (the old, slow form)")
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
    print(f"start: {_load()} ({os.cpu_count()} CPUs)")
    started = time.perf_counter()
    ensure_local_server()
    print(f"model load + server start: {time.perf_counter() - started:.2f}s")
    planner = DynamicPlanner(catalog)
    replanner = Replanner(catalog, planner=planner)
    if args.unpinned:
        type(replanner).pinned = property(lambda self: False)  # type: ignore[method-assign]
    plan_s: list[float] = []
    plan_tok: list[tuple[int, int]] = []
    round_s: list[float] = []
    round_tok: list[tuple[int, int]] = []
    valid = kept = 0
    for goal, result in GOALS[: args.goals]:
        for _ in range(args.repeats):
            try:
                plan = planner.plan(goal)
            except PlanError as exc:
                print(f"plan FAILED for {goal}: {exc}")
                continue
            stats = planner.last_stats
            plan_s.append(stats.seconds)
            if stats.prompt_tokens:
                plan_tok.append((stats.prompt_tokens, stats.completion_tokens))
            first = StepResult(run_id="bench", step_id=plan.steps[0].id, result_text=result)
            revision = replanner.revise(goal, plan, [first], round_no=1, rounds=3)
            round_s.append(revision.seconds)
            round_tok.append((revision.prompt_tokens, revision.completion_tokens))
            valid += revision.valid
            kept += not revision.valid or not revision.changed
            # A framed plan (the base model's line-per-step path) reports no usage.
            tokens = (f"{stats.prompt_tokens}+{stats.completion_tokens}"
                      if stats.prompt_tokens else "not reported")
            print(f"plan  {stats.seconds:6.2f}s calls={stats.attempts} tokens {tokens} "
                  f"{len(plan.steps)} steps  {goal}")
            print(f"round {revision.seconds:6.2f}s calls={revision.attempts} "
                  f"tokens {revision.prompt_tokens}+{revision.completion_tokens} "
                  f"valid={revision.valid} pinned={revision.pinned}: "
                  f"{revision.summary()[:160]}")
    print(f"end: {_load()}")
    if round_s:
        print(f"planning call: median {_median(plan_s)}s over {len(plan_s)}, median tokens "
              f"{_median([p for p, _ in plan_tok])} prompt + "
              f"{_median([c for _, c in plan_tok])} generated ('-': not reported)")
        print(f"replan round:  median {_median(round_s)}s over {len(round_s)}, median tokens "
              f"{_median([p for p, _ in round_tok])} prompt + "
              f"{_median([c for _, c in round_tok])} generated; valid {valid}/{len(round_s)}, "
              f"plan kept as it was {kept}/{len(round_s)}; ratio to a planning call "
              f"{statistics.median(round_s) / max(statistics.median(plan_s), 1e-9):.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
