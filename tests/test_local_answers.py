"""The offline default writes answers, not echoes: goal -> plan -> answer on the real
embedded base model (Gemma 3 270M), prompted as documents."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest

from agentic_orchestration.catalogs import load_catalog
from agentic_orchestration.orchestration.backends.base import RunOptions
from agentic_orchestration.orchestration.backends.crewai import CrewAIExecutionBackend
from agentic_orchestration.planning import DynamicPlanner

REPO = Path(__file__).resolve().parent.parent

#: What CrewAI puts around a task and what the old chat-folded prompt made the model repeat.
SCAFFOLDING = ("Your personal goal", "Current Task", "you MUST return",
               "expected criteria", "Provide your complete response", "Thought:",
               "Final Answer")

GOALS = [  # (goal, key terms of which the answer must mention at least one)
    ("Write a short guide to brewing green tea", ("tea",)),
    ("List three practical benefits of writing unit tests", ("test",)),
    ("Write a Python function that checks whether a string is a palindrome",
     ("palindrome", "def ")),
    ("Compare PostgreSQL and SQLite for a small web app and recommend one",
     ("sqlite", "postgres")),
]


def _body_lines(text: str) -> list[str]:
    """The answer's lines without headings, list numbers and the review prefix."""
    stripped = (re.sub(r"^(#.*|\d+[.)]\s*|Review notes:|```.*)", "", line).strip()
                for line in text.splitlines())
    return [line for line in stripped if line]


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::ImportWarning")
@pytest.mark.parametrize(("goal", "terms"), GOALS, ids=[g.split()[1] for g, _ in GOALS])
def test_answer_is_the_document_not_the_prompt(goal: str, terms: tuple[str, ...],
                                               local_model: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENTIC_CONFIG_DIR", str(REPO / "config"))
    catalog = load_catalog()
    plan = DynamicPlanner(catalog).plan(goal)
    backend = CrewAIExecutionBackend(progress_stream=io.StringIO(), live_progress=False)
    result = backend.execute_config(plan, options=RunOptions(), catalog=catalog)
    assert result.ok, result.error
    answer = result.result_text or ""
    personas = [f"You are {entry.role}." for entry in catalog.agents.values()]
    for step in result.step_results:
        for line in (*SCAFFOLDING, *personas):
            assert line not in (step.result_text or ""), (step.step_id, line)
    assert any(term in answer.lower() for term in terms), answer
    lines = _body_lines(answer)
    assert lines, answer
    assert lines.count(lines[0]) == 1, f"the answer repeats its first line {lines[0]!r}"
