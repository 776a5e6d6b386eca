"""Answers of the embedded base model: chat-folded prompts (old) against document prompts.

For 10 goals the planner (embedded model, shipped catalog) writes one plan; the same plan
then runs in-process twice, once with ``AGENTIC_LOCAL_PROMPT=chat`` (role, goal, backstory
and task folded into one Gemma user turn: the old way) and once with ``document`` (each
task rendered as a document to continue: ``providers/base_model_prompt``). Per goal and
prompt style it prints, for the final answer:

- echo: share of its non-empty lines that repeat the prompt (CrewAI's persona and task
  lines, the step's description or expected output);
- repeat: share of its lines that repeat an earlier line of the answer;
- chars: its length; seconds: the run's wall time.

Then the means. No asserts: figures only.

Run: ``PYTHONPATH=. .venv/bin/python benchmarks/bench_local_answers.py [--goals N]``
"""

from __future__ import annotations

import argparse
import io
import logging
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

GOALS = [
    "Write a short guide to brewing green tea",
    "List three practical benefits of writing unit tests",
    "Write a Python function that checks whether a string is a palindrome",
    "Compare PostgreSQL and SQLite for a small web app and recommend one",
    "Explain how solar panels work",
    "Draft a polite email asking my landlord to fix the heating",
    "Plan a three-day trip to Rome on a budget",
    "Summarise the main causes of the French Revolution",
    "Give tips for keeping houseplants alive in winter",
    "Which is better for a beginner, a road bike or a hybrid bike?",
]
#: CrewAI's scaffolding: a line holding one of these is an echo of the prompt.
SCAFFOLDING = ("your personal goal is", "current task", "you must return the actual",
               "this is the expected criteria", "provide your complete response",
               "final answer:", "thought:")


def _norm(line: str) -> str:
    return " ".join(line.lower().strip(" #*-").split())


def echo_ratio(answer: str, prompt_lines: set[str], roles: set[str]) -> float:
    lines = [_norm(line) for line in answer.splitlines() if _norm(line)]
    if not lines:
        return 0.0
    echoed = sum(line in prompt_lines or any(s in line for s in SCAFFOLDING)
                 or any(line.startswith(f"you are {role}") for role in roles)
                 for line in lines)
    return echoed / len(lines)


def repeat_ratio(answer: str) -> float:
    lines = [_norm(line) for line in answer.splitlines() if len(_norm(line)) > 3]
    if not lines:
        return 0.0
    return (len(lines) - len(set(lines))) / len(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--goals", type=int, default=len(GOALS))
    args = parser.parse_args()
    for name in ("OPENAI_API_KEY", "HF_TOKEN", "OLLAMA_HOST", "AGENTIC_LOCAL_LLM_URL"):
        os.environ.pop(name, None)
    os.environ["AGENTIC_CONFIG_DIR"] = str(REPO / "config")
    os.environ["HOME"] = tempfile.mkdtemp(prefix="bench-answers-")  # CrewAI writes there
    logging.basicConfig(level=logging.ERROR)

    from agentic_orchestration import settings
    from agentic_orchestration.catalogs import load_catalog
    from agentic_orchestration.orchestration.backends.base import RunOptions
    from agentic_orchestration.orchestration.backends.crewai import CrewAIExecutionBackend
    from agentic_orchestration.planning import DynamicPlanner
    from agentic_orchestration.providers.local_model import stop_local_server

    settings.quiet_crewai_network()
    catalog = load_catalog()
    goals = GOALS[: args.goals]
    plans = [DynamicPlanner(catalog).plan(goal) for goal in goals]
    rows: dict[str, list[tuple[float, float, int, float]]] = {"chat": [], "document": []}
    print(f"{'goal':<44} {'style':<9} {'echo':>5} {'repeat':>6} {'chars':>6} {'s':>6}")
    for style in ("chat", "document"):
        os.environ["AGENTIC_LOCAL_PROMPT"] = style
        stop_local_server()  # the style is chosen when the model process loads
        backend = CrewAIExecutionBackend(progress_stream=io.StringIO(), live_progress=False)
        for goal, plan in zip(goals, plans, strict=True):
            prompt_lines: set[str] = set()
            roles: set[str] = set()
            for step in plan.steps:
                entry = catalog.agents[step.agent_provider]
                roles.add(entry.role.lower())
                for text in (step.description.replace("{topic}", goal), step.expected_output,
                             entry.goal, entry.backstory, goal):
                    prompt_lines |= {_norm(line) for line in text.splitlines() if _norm(line)}
            began = time.perf_counter()
            result = backend.execute_config(plan, options=RunOptions(), catalog=catalog)
            seconds = time.perf_counter() - began
            answer = result.result_text or ""
            row = (echo_ratio(answer, prompt_lines, roles), repeat_ratio(answer), len(answer),
                   seconds)
            rows[style].append(row)
            print(f"{goal[:44]:<44} {style:<9} {row[0]:>5.2f} {row[1]:>6.2f} {row[2]:>6} "
                  f"{row[3]:>6.1f}" + ("" if result.ok else "  (failed)"))
    stop_local_server()
    print("means:")
    for style, values in rows.items():
        cols = list(zip(*values, strict=True))
        print(f"  {style:<9} echo {statistics.mean(cols[0]):.2f}  repeat "
              f"{statistics.mean(cols[1]):.2f}  chars {statistics.mean(cols[2]):.0f}  "
              f"seconds {statistics.mean(cols[3]):.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
