"""The planning frame for a small *base* model: one short document per step to continue.

Why. Gemma 3 270M is a base model. Asked for a whole JSON plan after a worked example whose
descriptions were templates ("List what matters for: {topic}"), it copied the template word
for word in 8 of 10 plans (``benchmarks/bench_planner_fit.py``), because a base model
continues what it has seen, it does not adapt instructions. What it does well is continue a
document: shown two plans for *other* goals whose step lines name their own goal's specifics
("Find cheap places to stay, eat and visit in Lisbon for two days"), then the user's goal and
``Step 1 (Researcher):``, it writes a step line about the user's goal.

So for a base model (the plan's agents already pinned by ``_prompt.plan_skeleton``) the
planner asks for each step's description alone: one short completion per step, constrained
by a JSON Schema to a single bounded string (no newline can start a new document, and the
string always closes), with the steps written so far in the document. The JSON plan is then
assembled here, in code, and validated like any other plan.

A written line is accepted only if it reads as a step for *this* goal (see ``check_line``): it
names one of the goal's key terms, is one sentence, carries no persona or prompt scaffolding,
and is not an example's line copied (normalised), nor one that names an example's own
subject (Lisbon, ``slugify``) that the goal does not. A rejected line is drawn once more with
another seed; a second rejection falls back to the kind's template (``_prompt._KINDS``) with
the goal filled in, and the fallback is counted (``PlanStats.fallback_descriptions``).
"""

from __future__ import annotations

import logging
import re
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from agentic_orchestration.planning._prompt import fitted_slots, goal_kind

if TYPE_CHECKING:
    from agentic_orchestration.catalogs.catalog import Catalog

logger = logging.getLogger(__name__)

__all__ = ["FramedStep", "assemble_plan", "check_line", "example_lines",
           "frame_document", "frame_steps", "key_terms", "line_schema", "normalise",
           "write_descriptions"]

#: Characters a step line may add after its first word: a sentence's length (a base model
#: under a grammar loops until the bound when nothing stops it).
_LINE_CHARS = (20, 120)

#: Per goal kind, two example goals, the words that name each one's own subject, and a line
#: per slot (``_prompt.fitted_slots`` names the slots). Two goals, so the model sees the line
#: change with the goal; concrete, so a copy names the wrong subject and is caught. Every
#: kind has a ``review`` line: any goal may ask for a review step.
_EXAMPLES: dict[str, tuple[tuple[str, tuple[str, ...], dict[str, str]], ...]] = {
    "code": (
        ("Write a Python script that counts the words in a text file", ("count_words",), {
            "program": "Write count_words.py, which reads a text file and prints its word "
                       "count",
            "review": "Test count_words.py on an empty file and on punctuation, and fix "
                      "what breaks"}),
        ("Write a JavaScript function that turns a title into a URL slug",
         ("slugify", "slug", "javascript"), {
            "program": "Write slugify(title) in JavaScript: lower case, hyphens for spaces, "
                       "no punctuation",
            "review": "Check slugify on titles with accents and double spaces, and fix the "
                      "code"}),
    ),
    "compare": (
        ("Compare electric and petrol cars for a city commuter",
         ("electric", "petrol", "car", "cars", "commuter"), {
            "fact": "List the price, running cost and range of electric and petrol cars in "
                    "the city",
            "compar": "Weigh electric against petrol cars for daily commuting and pick one",
            "writ": "Write the car recommendation for a city commuter with its main reasons",
            "review": "Check the car comparison's figures and correct any mistake"}),
        ("Which is better for a small team, Slack or Microsoft Teams?",
         ("slack", "teams", "microsoft"), {
            "fact": "Collect the prices, features and limits of Slack and Microsoft Teams",
            "compar": "Compare Slack and Teams on cost and ease of use for a small team",
            "writ": "Write which chat tool the small team should choose, Slack or Teams, "
                    "and why",
            "review": "Check the Slack and Teams comparison for errors and fix them"}),
    ),
    "plan": (
        ("Plan a weekend in Lisbon on a small budget", ("lisbon",), {
            "fact": "Find cheap places to stay, eat and visit in Lisbon for two days",
            "writ": "Write a day-by-day Lisbon weekend plan with the cost of each day",
            "review": "Check that the Lisbon plan's costs add up and fix any day over "
                      "budget"}),
        ("Plan a four-week running routine for a beginner",
         ("running", "runner", "runners"), {
            "fact": "List safe distances, rest days and paces for a new runner",
            "writ": "Write the four-week running schedule for the beginner, week by week",
            "review": "Check the running schedule for jumps that are too big and correct "
                      "them"}),
    ),
    "write": (
        ("Write a short blog post about keeping houseplants alive",
         ("houseplant", "houseplants"), {
            "fact": "Collect the main houseplant care tips: light, water and repotting",
            "writ": "Write a short blog post on keeping houseplants alive from those tips",
            "review": "Proofread the houseplant post and fix unclear sentences"}),
        ("Draft a letter asking the council to repair a street light",
         ("council", "street"), {
            "fact": "Note where the broken street light is and how long it has been out",
            "writ": "Write a polite letter asking the council to repair the street light",
            "review": "Proofread the street light letter and correct its mistakes"}),
    ),
    "explain": (
        ("Explain how vaccines train the immune system",
         ("vaccine", "vaccines", "immune"), {
            "fact": "List how a vaccine shows the immune system a harmless part of a germ",
            "writ": "Explain to a general reader how vaccines train the immune system",
            "review": "Check the vaccine explanation for errors and correct it"}),
        ("Why do cats purr?", ("cat", "cats", "purr", "purring"), {
            "fact": "Gather what is known about how and why cats purr",
            "writ": "Explain in plain words why cats purr and what it tells us",
            "review": "Check the purring explanation for mistakes and fix them"}),
    ),
}

_WORD = re.compile(r"[\w'-]+|\{[^}]*\}")
#: Words that say nothing about a goal's subject: articles, verbs of asking, the kinds' own
#: verbs. What is left of a goal (``Rome``, ``palindrome``, ``heating``) is its key terms.
_STOP = frozenset("""
a an the and or but nor of to in on at for with by from into about as is are be been it
its this that these those my me our your you we i he she they them their his her how what
why which who whom when where do does did can could should would will shall may might must
make write draft plan create give list explain describe compare summarise summarize review
reviewed reviewing then have has had get tell show help short quick simple small good best
better new some any all each every more most very also just please it's let us not no yes
one two three four five six seven eight nine ten whether there here so than such using use
recommend mean means
le la les de des du en et un une pour sur au aux ce ces est dans par qui que
""".split())
#: Where a line's first sentence ends (not inside ``count_words.py`` or ``$1.50``).
_SENTENCE_END = re.compile(r"(?<=[\w)])[.!?]\s+(?=[A-Z(])")
_REVIEW_CLAUSE = re.compile(r",?\s+(?:and\s+then|then|and)\s+(?:review|check|have it "
                            r"reviewed|get it reviewed)\b.*$", re.I)
#: What a term must escape in a schema ``pattern``. Not ``re.escape``: llama.cpp's grammar
#: compiler keeps an escaped ``-`` as ``\-`` in the grammar, which is then no grammar.
_GRAMMAR_META = re.compile(r"([.^$*+?()\[\]{}|\\])")
#: A line that carries prompt or persona text instead of a step.
_SCAFFOLDING = re.compile(r"\b(?:you are|your personal goal|current task|final answer|"
                          r"thought:|step \d|goal:|team:|plan:)|<(?:start|end)_of|```", re.I)


def _fold(text: str) -> str:
    """Lower case without accents: ``Révolution`` and ``revolution`` are one word."""
    decomposed = unicodedata.normalize("NFKD", text.lower())
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def _words(text: str) -> list[str]:
    # ``{braces}`` is one word, named ``braces``: a goal's braces are text, not a slot.
    return [w.strip("'-{}") for w in _WORD.findall(_fold(text)) if w.strip("'-{}")]


def normalise(text: str) -> str:
    """A line as words only: what "copied word for word" compares."""
    return " ".join(_words(text))


def key_terms(goal: str) -> list[str]:
    """The goal's words that name its subject (``_STOP`` words and short words left out)."""
    terms: list[str] = []
    for word in _words(goal):
        if word not in _STOP and len(word) > 2 and word not in terms:
            terms.append(word)
    return terms


def _mentions(line_words: Sequence[str], term: str) -> bool:
    """Whether a line names ``term``: the word, its plural, or for a longer term a shared
    start of five letters (``palindrome`` / ``palindromes``, ``française`` / ``français``;
    but ``app`` is not ``application``)."""
    if len(term) <= 5:
        return any(word in (term, f"{term}s", f"{term}es") for word in line_words)
    return any(word.startswith(term[:5]) for word in line_words)


@dataclass(frozen=True)
class FramedStep:
    """One pinned step of a base model's plan: its agent, slot and fixed parts."""

    agent_id: str
    role: str
    slot: str
    template: str
    expected_output: str
    mcp_providers: tuple[str, ...] = ()


def frame_steps(catalog: Catalog, goal: str, *, search: str | None = None) -> list[FramedStep]:
    """The steps ``_prompt.plan_skeleton`` pins, with what each needs for the frame."""
    kind = goal_kind(goal)
    steps: list[FramedStep] = []
    for slot, entry, template, expected in fitted_slots(catalog, kind, goal=goal):
        tools = (search,) if search and not steps and kind != "code" else ()
        steps.append(FramedStep(entry.id, entry.role, slot, template, expected, tools))
    return steps


def _review_goal(example_goal: str, steps: Sequence[FramedStep]) -> str:
    return (f"{example_goal.rstrip('?.')}, then review it"
            if steps and steps[-1].slot == "review" else example_goal)


def example_lines(kind: str, steps: Sequence[FramedStep]) -> list[tuple[str, list[str]]]:
    """The kind's example goals with their lines for ``steps``' slots, in order."""
    return [(_review_goal(goal, steps), [lines[s.slot] for s in steps if s.slot in lines])
            for goal, _, lines in _EXAMPLES[kind]]


def frame_document(goal: str, steps: Sequence[FramedStep], written: Sequence[str]) -> str:
    """The document whose next line is step ``len(written) + 1``'s description.

    The goal goes in as text (never through ``str.format``: a goal may hold ``{braces}``).
    """
    kind = goal_kind(goal)
    parts = ["Plans for goals, one line per step. Each line says what that step does for "
             "its own goal.\n"]
    for example_goal, lines in example_lines(kind, steps):
        parts.append(f"Goal: {example_goal}")
        parts += [f"Step {n} ({s.role}): {line}"
                  for n, (s, line) in enumerate(zip(steps, lines, strict=False), 1)]
        parts.append("")
    parts.append(f"Goal: {goal}")
    parts += [f"Step {n} ({s.role}): {line}"
              for n, (s, line) in enumerate(zip(steps, written, strict=False), 1)]
    step = steps[len(written)]
    parts.append(f"Step {len(written) + 1} ({step.role}):")
    return "\n".join(parts)


def _goal_terms_as_written(goal: str) -> list[str]:
    """The goal's key terms as the goal spells them (``PostgreSQL``, ``Révolution``)."""
    wanted = set(key_terms(goal))
    found: list[str] = []
    for raw in _WORD.findall(goal):
        word = raw.strip("'-{}")
        if word and _words(word) and _words(word)[0] in wanted and word not in found:
            found.append(word)
    return found


def line_schema(goal: str, steps: Sequence[FramedStep], index: int, *,
                attempt: int = 1) -> dict[str, Any]:
    """The JSON Schema of step ``index``'s line: one string that starts with a verb its
    slot's example lines start with (``Find``, ``Write``, ``Check`` ...) and names one of
    the goal's key terms within its first 60 characters (on the second attempt, right
    after the verb and at most a short word or two).

    Why the grammar does this much: the line is asked for in a chat turn (the server wraps
    every schema-bound request in one), and from ``<start_of_turn>model`` a base model
    answered as if chatting ("I've been to Rome for a week and ..."); made to start like
    the examples' lines, it goes on like them. But it still drifted off the goal ("Weigh
    out the pros and cons of each option") in about one line in four; a key term it must
    write keeps the line on this goal. No quote, backslash or newline: one plain sentence.
    The loose form goes first: the strict one first (term right after the verb) read more on
    topic but was rejected more often, 3 fallbacks in 10 plans against 0 (bench_planner_fit).
    """
    step = steps[index]
    lines = [ls[step.slot] for _, _, ls in _EXAMPLES[goal_kind(goal)] if step.slot in ls]
    verbs = "|".join(dict.fromkeys(_GRAMMAR_META.sub(r"\\\1", w.split()[0])
                                   for w in (*lines, step.template)))
    char = '[^"\\\\\\n]'
    low, high = _LINE_CHARS
    terms = "|".join(_GRAMMAR_META.sub(r"\\\1", t) for t in _goal_terms_as_written(goal))
    if not terms:
        return {"type": "string", "pattern": f"^({verbs}) {char}{{{low},{high}}}$"}
    # The term is a whole word: free text before it ends with a space, text after it
    # starts with a character that is not a letter ("app" is not in "appropriately").
    lead = f"({char}{{0,60}} )?" if attempt == 1 else "([a-z]+ ){0,2}"
    return {"type": "string", "pattern": f"^({verbs}) {lead}({terms})s?[^\"\\\\\\na-zA-Z]"
                                         f"{char}{{8,{high - 20}}}$"}


def _template_line(step: FramedStep, goal: str) -> str:
    return step.template.replace("{topic}", goal)


def _foreign_marks(kind: str, goal: str) -> set[str]:
    """The examples' own subjects (Lisbon, ``slugify``) that the goal does not name: a line
    holding one was copied from an example, whatever else it says."""
    own = set(_words(goal))
    return {mark for _, marks, _ in _EXAMPLES[kind] for mark in marks if mark not in own}


def check_line(text: str | None, goal: str, step: FramedStep,
               examples: Sequence[str]) -> tuple[str | None, str]:
    """The written line made a description, or None and why it is not one.

    Kept: the first line and sentence, at most 140 characters, trailing dot dropped, and
    (but for the review step) without the goal's "then review it".
    Rejected: fewer than three words; persona or prompt text; a copy (normalised) of an
    example line or of the step's template; an example's own subject named; none of the
    goal's key terms (when it has any).
    """
    line = (text or "").strip().splitlines()[0].strip() if (text or "").strip() else ""
    line = line.strip(" \"'`")
    line = _SENTENCE_END.split(line, maxsplit=1)[0]
    copies = {normalise(e) for e in examples} | {normalise(_template_line(step, goal)),
                                                 normalise(step.template)}
    if normalise(line) in copies:  # before the cleanup below changes a copied template
        return None, "an example copied"
    if step.slot != "review":  # the goal's "then review it" belongs to the review step
        line = _REVIEW_CLAUSE.sub("", line)
    line = line[:140].rstrip(" .;,:([-")
    words = _words(line)
    if len(words) < 3:
        return None, "too short"
    if _SCAFFOLDING.search(line):
        return None, "prompt or persona text"
    if " ".join(words) in copies:
        return None, "an example copied"
    foreign = _foreign_marks(goal_kind(goal), goal) & set(words)
    if foreign:
        return None, f"names the example's subject ({', '.join(sorted(foreign))})"
    terms = key_terms(goal)
    if terms and not any(_mentions(words, t) for t in terms):
        return None, "names none of the goal's key terms"
    return line, ""


#: ``complete(document, schema, attempt)`` -> the model's string (attempt 2: another seed).
Completer = Callable[[str, dict[str, Any], int], str | None]


def write_descriptions(goal: str, steps: Sequence[FramedStep], complete: Completer,
                       ) -> tuple[list[str], list[str]]:
    """A description per step, written by ``complete``; and a note per fallback.

    Each step is asked at most twice; when both answers are rejected the description is the
    step's template (``{topic}``, filled with the goal at run time, as the JSON path's
    copies were): the honest fallback, counted by the caller.
    """
    examples = [line for _, lines in example_lines(goal_kind(goal), steps) for line in lines]
    shown: list[str] = []  # the lines as the next step's document shows them
    descriptions: list[str] = []
    fallbacks: list[str] = []
    for index, step in enumerate(steps, 1):
        document = frame_document(goal, steps, shown)
        why = ""
        for attempt in (1, 2):
            schema = line_schema(goal, steps, index - 1, attempt=attempt)
            answer = complete(document, schema, attempt)
            line, why = check_line(answer, goal, step, examples)
            if line is not None and normalise(line) in {normalise(w) for w in shown}:
                line, why = None, "repeats an earlier step"
            if line is not None:
                shown.append(line)
                descriptions.append(line)
                break
            logger.debug("step %d line %d rejected (%s): %r", index, attempt, why, answer)
        else:
            shown.append(_template_line(step, goal))
            descriptions.append(step.template)
            fallbacks.append(f"step {index} ({step.agent_id}): {why}")
    return descriptions, fallbacks


def assemble_plan(steps: Sequence[FramedStep], descriptions: Sequence[str]) -> dict[str, Any]:
    """The plan's JSON (what the schema validates) from the pinned steps and their lines."""
    return {"steps": [{"agent_provider": s.agent_id, "mcp_providers": list(s.mcp_providers),
                       "description": d, "expected_output": s.expected_output}
                      for s, d in zip(steps, descriptions, strict=True)]}

