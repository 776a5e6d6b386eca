"""The base-model planning frame (planning/_frame.py): documents, line checks, assembly.

Scripted lines only, except the ``slow`` test at the end, which plans on the real embedded
model (Gemma 3 270M) and checks what the frame is for: agents that fit the goal and step
descriptions that name it instead of copying an example.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from agentic_orchestration.catalogs import load_catalog
from agentic_orchestration.planning import DynamicPlanner, _frame
from agentic_orchestration.planning._prompt import example_plans, goal_kind, plan_skeleton
from agentic_orchestration.testing import ScriptedLLMServer

REPO = Path(__file__).resolve().parent.parent
CODE_GOAL = ("Write a Python function that checks whether a string is a palindrome, "
             "then review it")
TRIP_GOAL = "Plan a three-day trip to Rome on a budget"


@pytest.fixture
def shipped(monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("AGENTIC_CONFIG_DIR", str(REPO / "config"))
    return load_catalog()


def _examples(goal: str, steps: list[_frame.FramedStep]) -> list[str]:
    return [line for _, lines in _frame.example_lines(goal_kind(goal), steps) for line in lines]


def test_key_terms_leave_out_asking_words_and_fold_accents() -> None:
    assert _frame.key_terms(TRIP_GOAL) == ["three-day", "trip", "rome", "budget"]
    assert "revolution" in _frame.key_terms("Résume en français les causes de la Révolution")
    assert "les" not in _frame.key_terms("Résume en français les causes de la Révolution")
    assert _frame.key_terms("Explain what {braces} mean in a Python f-string") == [
        "braces", "python", "f-string"]


def test_frame_steps_follow_the_pinned_skeleton(shipped: Any) -> None:
    steps = _frame.frame_steps(shipped, CODE_GOAL)
    assert [s.agent_id for s in steps] == plan_skeleton(shipped, CODE_GOAL)
    assert [s.slot for s in steps] == ["program", "review"]


def test_document_shows_two_example_plans_then_the_goal_verbatim(shipped: Any) -> None:
    goal = "Explain what {braces} mean in a Python f-string"
    steps = _frame.frame_steps(shipped, goal)
    first = _frame.frame_document(goal, steps, [])
    assert first.count("Goal: ") == 3 and first.endswith(f"Goal: {goal}\nStep 1 (Researcher):")
    second = _frame.frame_document(goal, steps, ["List what {braces} hold in an f-string"])
    assert second.endswith("Step 1 (Researcher): List what {braces} hold in an f-string\n"
                           "Step 2 (Writer):")


def test_a_review_goal_shows_examples_with_a_review_step(shipped: Any) -> None:
    steps = _frame.frame_steps(shipped, CODE_GOAL)
    document = _frame.frame_document(CODE_GOAL, steps, [])
    assert "then review it\nStep 1 (Programmer): " in document
    assert "Step 2 (Reviewer): " in document


@pytest.mark.parametrize(("line", "why"), [
    ("Write the code for: " + CODE_GOAL, "an example copied"),  # the template, filled
    ("write  COUNT_WORDS.py, which reads a text file and prints its word count!",
     "an example copied"),  # an example line, case and punctuation changed
    ("Write slugify for palindrome strings", "names the example's subject (slugify)"),
    ("Write a program that sorts numbers quickly", "names none of the goal's key terms"),
    ("You are Programmer. Write the palindrome code", "prompt or persona text"),
    ("Step 2 (Reviewer): check the palindrome code", "prompt or persona text"),
    ("Palindrome", "too short"),
    (None, "too short"),
])
def test_lines_that_are_no_step_for_this_goal_are_rejected(shipped: Any, line: str | None,
                                                          why: str) -> None:
    steps = _frame.frame_steps(shipped, CODE_GOAL)
    assert _frame.check_line(line, CODE_GOAL, steps[0], _examples(CODE_GOAL, steps)) == (
        None, why)


def test_a_good_line_is_cut_to_one_sentence_without_the_review_clause(shipped: Any) -> None:
    steps = _frame.frame_steps(shipped, CODE_GOAL)
    line, why = _frame.check_line(
        '"Write is_palindrome(s) in Python for any string, then review it. It should',
        CODE_GOAL, steps[0], _examples(CODE_GOAL, steps))
    assert (line, why) == ("Write is_palindrome(s) in Python for any string", "")
    review, _ = _frame.check_line("Check the palindrome code and then review it again",
                                  CODE_GOAL, steps[1], [])
    assert review == "Check the palindrome code and then review it again"


def test_line_schema_makes_the_line_start_with_a_slot_verb_and_name_a_goal_term(
        shipped: Any) -> None:
    goal = "Explain why the sky is blue to a ten-year-old"
    steps = _frame.frame_steps(shipped, goal)
    first = _frame.line_schema(goal, steps, 1)["pattern"]
    assert re.match(first, "Explain why the sky looks blue, in short words")
    assert not re.match(first, "Describe why the sky looks blue, in short words")  # verb
    assert not re.match(first, "Explain how rainbows form after a storm today")  # no term
    assert not re.match(first, "Explain the skyline of a city at night and why")  # part word
    second = _frame.line_schema(goal, steps, 1, attempt=2)["pattern"]
    assert re.match(second, "Explain why the sky looks blue")
    assert not re.match(second, "Explain in plain words and slowly why the sky is blue")


def test_line_schema_compiles_to_a_grammar_that_keeps_the_terms() -> None:
    """llama.cpp keeps ``\\-`` (re.escape) literally, which is no grammar: terms with a
    hyphen must go in unescaped."""
    from llama_cpp.llama_grammar import json_schema_to_gbnf

    goal = "Explain what {braces} mean in a Python f-string (v1.2)"
    steps = [_frame.FramedStep("a", "Writer", "writ", "Explain it: {topic}", "Text.")]
    grammar = json_schema_to_gbnf(json.dumps(_frame.line_schema(goal, steps, 0)))
    assert '"f-strin" "g"' in grammar and "\\-" not in grammar


def _scripted(lines: dict[int, list[str | None]]) -> tuple[_frame.Completer, list[str]]:
    """A completer answering step n's attempts from ``lines[n]``; records the documents."""
    documents: list[str] = []

    def complete(document: str, schema: dict[str, Any], attempt: int) -> str | None:
        documents.append(document)
        step = int(re.findall(r"Step (\d+) \(\w+\):$", document)[0])
        return lines[step][attempt - 1]
    return complete, documents


def test_a_rejected_line_is_drawn_again_and_the_second_kept(shipped: Any) -> None:
    steps = _frame.frame_steps(shipped, TRIP_GOAL)
    complete, documents = _scripted({
        1: ["Find cheap places to stay, eat and visit in Lisbon for two days",  # copy
            "Find cheap hostels, food and sights in Rome for three days"],
        2: ["Write a three-day Rome plan with the cost of each day", None]})
    descriptions, fallbacks = _frame.write_descriptions(TRIP_GOAL, steps, complete)
    assert descriptions == ["Find cheap hostels, food and sights in Rome for three days",
                            "Write a three-day Rome plan with the cost of each day"]
    assert fallbacks == [] and len(documents) == 3
    assert documents[-1].endswith("Step 1 (Researcher): Find cheap hostels, food and sights "
                                  "in Rome for three days\nStep 2 (Writer):")


def test_two_rejected_lines_fall_back_to_the_template_and_are_counted(shipped: Any) -> None:
    steps = _frame.frame_steps(shipped, TRIP_GOAL)
    complete, _ = _scripted({
        1: ["List hotels in Rome that cost under 80 euros a night", None],
        2: ["List hotels in Rome that cost under 80 euros a night",  # repeats step 1
            "Write about something else entirely, at length"]})
    descriptions, fallbacks = _frame.write_descriptions(TRIP_GOAL, steps, complete)
    assert descriptions[1] == steps[1].template and "{topic}" in descriptions[1]
    assert fallbacks == [f"step 2 ({steps[1].agent_id}): names none of the goal's key terms"]


def test_planner_assembles_a_valid_plan_from_scripted_lines(
        shipped: Any, scripted_llm: ScriptedLLMServer, bundled_model_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The real planner against the scripted server standing in for the embedded model:
    one schema-bound request per step, the plan assembled and validated."""
    monkeypatch.setenv("AGENTIC_LOCAL_MODEL_PATH", str(bundled_model_path))
    monkeypatch.setenv("AGENTIC_LOCAL_LLM_URL", scripted_llm.base_url)
    scripted_llm.add_rule(r"Step 1 \(Programmer\):$",
                          json.dumps("Write is_palindrome(s) in Python, ignoring case"))
    scripted_llm.add_rule(r"Step 2 \(Reviewer\):$",
                          json.dumps("Check is_palindrome on empty and mixed-case strings "
                                     "and fix the palindrome code"))
    planner = DynamicPlanner(load_catalog())
    plan = planner.plan(CODE_GOAL)
    assert [s.agent_provider for s in plan.steps] == ["local_coder", "local_reviewer"]
    assert plan.steps[0].description == "Write is_palindrome(s) in Python, ignoring case"
    assert planner.last_stats.framed and planner.last_stats.attempts == 2
    assert planner.last_stats.fallback_descriptions == []
    assert planner.last_stats.prompt_tokens > 0 and planner.last_stats.completion_tokens > 0
    for request in scripted_llm.requests:
        schema = request["response_format"]["json_schema"]["schema"]
        assert schema["type"] == "string" and schema["pattern"].startswith("^(")


GOALS = [TRIP_GOAL, CODE_GOAL, "Compare PostgreSQL and SQLite for a small web app and "
         "recommend one"]


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::ImportWarning")
@pytest.mark.parametrize("goal", GOALS, ids=["trip", "code", "compare"])
def test_embedded_model_plans_fit_the_goal_and_copy_no_example(
        goal: str, local_model: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENTIC_CONFIG_DIR", str(REPO / "config"))
    catalog = load_catalog()
    planner = DynamicPlanner(catalog)
    plan = planner.plan(goal)  # a PlanError would fail the test: every plan must be valid
    assert [s.agent_provider for s in plan.steps] == plan_skeleton(catalog, goal)
    shown = {_frame.normalise(step["description"].replace("{topic}", goal))
             for _, example in example_plans(catalog, goal) for step in example["steps"]}
    shown |= {_frame.normalise(line) for line in _examples(goal, _frame.frame_steps(
        catalog, goal))}
    terms = _frame.key_terms(goal)
    written = [s.description for s in plan.steps if "{topic}" not in s.description]
    assert written, f"every step fell back: {planner.last_stats.fallback_descriptions}"
    for description in written:
        assert _frame.normalise(description) not in shown, description
        words = _frame.normalise(description).split()
        assert any(_frame._mentions(words, term) for term in terms), (description, terms)
