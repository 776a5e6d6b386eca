"""The base-model renderer: CrewAI's prompt in, a document to continue out, no scaffolding."""

from __future__ import annotations

import pytest

from agentic_orchestration.providers.base_model_prompt import (
    BASE_STOPS,
    Rendered,
    finish_answer,
    parse_task,
    render_document,
)


def crewai_request(task: str, expected: str, *, role: str = "Writer",
                   backstory: str = "A concise technical writer.",
                   goal: str = "Write clear text.", prior: str = "") -> list[dict[str, str]]:
    """The two messages CrewAI 1.15 sends for a tool-less task (captured from a real run)."""
    if prior:
        task += ("\n\n--- Output of the previous step ---\n" + prior
                 + "\n--- End of previous output ---")
    return [
        {"role": "system", "content": f"You are {role}. {backstory}\n"
                                      f"Your personal goal is: {goal}"},
        {"role": "user", "content": f"\nCurrent Task: {task}\n\nThis is the expected criteria "
                                    f"for your final answer: {expected}\nyou MUST return the "
                                    "actual complete content as the final answer, not a "
                                    "summary.\n\nProvide your complete response:"},
    ]


SCAFFOLDING = ("You are", "Your personal goal", "Current Task", "you MUST return",
               "expected criteria", "Provide your complete response", "Thought:",
               "Final Answer")


def test_parse_task_separates_persona_task_expected_and_source() -> None:
    parts = parse_task(crewai_request("Write the guide. Goal: green tea", "A guide.",
                                      prior="1. Water at 80C"))
    assert parts.task == "Write the guide. Goal: green tea"
    assert parts.expected == "A guide."
    assert (parts.role, parts.goal) == ("Writer", "Write clear text.")
    assert parts.backstory == "A concise technical writer."
    assert parts.source == "1. Water at 80C"


@pytest.mark.parametrize(("task", "expected", "role", "shape", "ends_with"), [
    ("List the key facts needed for the goal: brewing green tea", "Bullet points of facts.",
     "Researcher", "list", "\n\n1."),
    ("Write a short guide to brewing green tea", "The final answer for the user.",
     "Writer", "report", "# A short guide to brewing green tea\n\n"),
    ("Write a Python function is_palindrome in palindrome.py", "The code file.",
     "Programmer", "code", "```python\n# file: palindrome.py\n"),
    ("Write a JavaScript function that adds two numbers", "A code block.",
     "Programmer", "code", "```javascript\n// file: solution.js\n"),
    ("Review the draft and fix mistakes", "The corrected text.", "Reviewer", "review",
     "Review notes:\n\n1."),
    ("Why is the sky blue?", "One paragraph.", "Researcher", "answer",
     "Question: Why is the sky blue?\nAnswer:"),
])
def test_each_expected_shape_starts_its_answer(task: str, expected: str, role: str,
                                               shape: str, ends_with: str) -> None:
    rendered = render_document(parse_task(crewai_request(task, expected, role=role)))
    assert rendered.shape == shape
    assert rendered.prompt.endswith(ends_with)
    assert rendered.prompt.endswith(rendered.prefix)
    for line in SCAFFOLDING:
        assert line not in rendered.prompt
    assert set(BASE_STOPS) <= set(rendered.stop)


def test_prior_output_is_source_material_not_persona() -> None:
    rendered = render_document(parse_task(crewai_request(
        "Write the final answer from the notes so far. Goal: green tea", "The final text.",
        prior="- steep 2 minutes\n- 80C water")))
    assert "Notes from earlier work:\n- steep 2 minutes\n- 80C water" in rendered.prompt
    assert rendered.prompt.index("Notes from earlier work") < rendered.prompt.index(
        rendered.prefix)
    assert "Output of the previous step" not in rendered.prompt


def test_a_non_crewai_request_becomes_a_question() -> None:
    rendered = render_document(parse_task([{"role": "user", "content": "Count to three"}]))
    assert rendered.prompt == "Question: Count to three\nAnswer:"


def test_finish_answer_keeps_prefix_and_cuts_a_restarted_list() -> None:
    rendered = Rendered(prompt="# Tea\n\n1.", prefix="1.", shape="list")
    answer = finish_answer(rendered, " Boil water.\n2. Cool it to 80C.\n\n1. Boil water.\n2. x",
                           stopped=False)
    assert answer == "1. Boil water.\n2. Cool it to 80C."


def test_finish_answer_cuts_a_sentence_repeated_with_a_new_ending() -> None:
    rendered = Rendered(prompt="Question: q\nAnswer:", prefix="", shape="answer")
    text = ("Green tea is made from leaves.\nThis method can be used for many different "
            "types of leaves, such as red ones.\nThis method can be used for many different "
            "types of leaves, such as white ones.")
    assert finish_answer(rendered, text, stopped=True).splitlines() == [
        "Green tea is made from leaves.",
        "This method can be used for many different types of leaves, such as red ones."]


def test_finish_answer_skips_a_repeated_title_and_goes_on() -> None:
    rendered = Rendered(prompt="# Brewing green tea\n\n", prefix="# Brewing green tea\n\n",
                        shape="report")
    answer = finish_answer(rendered, "# Brewing green tea\n\nUse water at 80C.", stopped=True)
    assert answer == "# Brewing green tea\n\n\nUse water at 80C."


def test_finish_answer_closes_code_only_when_a_stop_ended_it() -> None:
    rendered = Rendered(prompt="x", prefix="```python\n# file: a.py\n", shape="code",
                        closing="\n```")
    assert finish_answer(rendered, "print(1)", stopped=True).endswith("print(1)\n```")
    assert finish_answer(rendered, "print(1)", stopped=False).endswith("print(1)")


def test_finish_answer_keeps_the_prefix_lines_it_was_given() -> None:
    """The code prefix's file-name comment is the answer's own line, not a repeat."""
    rendered = Rendered(prompt="x", prefix="```python\n# file: main.py\n", shape="code",
                        closing="\n```")
    answer = finish_answer(rendered, "def f():\n    return 1\n# file: main.py\nx = 2",
                           stopped=True)
    assert answer == "```python\n# file: main.py\ndef f():\n    return 1\nx = 2\n```"
