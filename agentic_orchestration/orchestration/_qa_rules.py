"""The ``rules`` QA check: what a step's ``expected_output`` asks for, checked without an LLM.

Deterministic on purpose: a rule that fails says exactly what is missing, costs nothing, and
gives the same verdict every time, so a failed check followed by a retry is a real second
chance, not a coin toss. Only shapes a text can be checked for are checked:

- an answer at all (some letter or digit, not just blanks and punctuation);
- a list when one is asked for ("bullet points", "a list", "5 tips"...), with at least the
  number of items asked;
- a fenced code block when code is asked for ("code", "fenced", "a Python function");
- JSON that parses when JSON is asked for;
- word bounds stated in numbers ("under 100 words", "at least 200 words", "50-80 words"),
  and "one sentence" / "one line".

Anything else in the criteria ("clear", "accurate") needs judgement: that is the
``reviewer`` mode's job.
"""

from __future__ import annotations

import json
import re

__all__ = ["check_rules"]

_NUMBER_WORDS = {"one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6,
                 "seven": 7, "eight": 8, "nine": 9, "ten": 10}
_NUM = r"(\d+|one|two|three|four|five|six|seven|eight|nine|ten)"
_LIST_ASKED = re.compile(r"\b(bullet|bullets|bulleted|list|numbered|items|checklist)\b", re.I)
_COUNT_ASKED = re.compile(rf"\b{_NUM}\s+(?:\w+\s+)?(bullet points|bullets|items|points|tips|"
                          r"steps|reasons|ideas|examples|questions|facts)\b", re.I)
#: "code", or a script/function/program *in a language*: a bare "script" may be a film's and
#: "function" a liver's.
_CODE_ASKED = re.compile(r"\b(code|fenced|snippet|(?:python|bash|shell|javascript|typescript|"
                         r"sql|go|rust|java|c)\s+(?:script|function|program|class))\b", re.I)
_JSON_ASKED = re.compile(r"\bjson\b", re.I)
_MAX_WORDS = re.compile(r"\b(?:under|at most|no more than|max(?:imum)?(?: of)?|fewer than|"
                        r"less than|up to|within)\s+(\d+)\s+words\b", re.I)
_MIN_WORDS = re.compile(r"\b(?:at least|minimum(?: of)?|more than|over)\s+(\d+)\s+words\b",
                        re.I)
_RANGE_WORDS = re.compile(r"\b(\d+)\s*(?:-|\u2013|to)\s*(\d+)\s+words\b", re.I)
_ONE_SENTENCE = re.compile(r"\b(?:one|a single)\s+(?:short\s+)?(sentence|line)\b", re.I)
_ITEM = re.compile(r"^\s*(?:[-*•+]|\d+[.)]|[a-z][.)])\s+\S", re.M)
_FENCE = re.compile(r"```[^\n]*\n.*?```", re.S)


def _count(token: str) -> int:
    return int(token) if token.isdigit() else _NUMBER_WORDS[token.lower()]


def _json_ok(text: str) -> bool:
    body = text.strip()
    fenced = re.search(r"```(?:json)?\s*\n(.*?)```", body, re.S | re.I)
    if fenced:
        body = fenced.group(1)
    try:
        json.loads(body)
    except ValueError:
        return False
    return True


def _word_problems(text: str, expected: str) -> list[str]:
    words = len(text.split())
    problems = []
    span = _RANGE_WORDS.search(expected)
    low, high = (int(span.group(1)), int(span.group(2))) if span else (None, None)
    if (most := _MAX_WORDS.search(expected)) is not None:
        high = int(most.group(1))
    if (least := _MIN_WORDS.search(expected)) is not None:
        low = int(least.group(1))
    # 10% slack: "under 100 words" answered in 104 is what was asked in spirit.
    if high is not None and words > high * 1.1:
        problems.append(f"{words} words, asked for at most {high}")
    if low is not None and words < low * 0.9:
        problems.append(f"{words} words, asked for at least {low}")
    return problems


def check_rules(text: str, expected_output: str) -> list[str]:
    """Problems of ``text`` against ``expected_output`` (empty list: the check passes)."""
    body = (text or "").strip()
    if not any(ch.isalnum() for ch in body):
        return ["the answer is empty (no letter or digit)"]
    expected = expected_output or ""
    problems: list[str] = []
    items = len(_ITEM.findall(body))
    count = _COUNT_ASKED.search(expected)
    if count is not None:
        wanted = _count(count.group(1))
        if items < wanted:
            problems.append(f"asked for {wanted} {count.group(2)}, found {items} list items")
    elif _LIST_ASKED.search(expected) and items < 2:
        problems.append("asked for a list, the answer has no list items")
    if _CODE_ASKED.search(expected) and not _FENCE.search(body):
        problems.append("asked for code, the answer has no fenced code block (```)")
    if _JSON_ASKED.search(expected) and not _json_ok(body):
        problems.append("asked for JSON, the answer does not parse as JSON")
    problems += _word_problems(body, expected)
    if _ONE_SENTENCE.search(expected):
        lines = [line for line in body.splitlines() if line.strip()]
        sentences = len(re.findall(r"[.!?](?:\s|$)", body))
        if len(lines) > 1 or sentences > 2 or len(body) > 400:
            problems.append("asked for one sentence or line, the answer is longer")
    return problems
