"""Prompts for a *base* model: a chat request rendered as a document to continue.

The bundled Gemma 3 270M is a base model: it continues documents and does not follow
instructions. Driven like a chat model (CrewAI's persona and task folded into one user
turn) it echoes the prompt ("You are Writer ... Your personal goal is ... Current Task")
until the token limit. Shown the same task as the start of a document in the shape the
answer should take (a title and ``1.`` for a list, a fence and a file-name comment for
code, ``Question:``/``Answer:`` otherwise), it writes the document.

So the local model server (``local_model.LocalModelServer``) renders each CrewAI request
with :func:`render_document` when the GGUF has no chat template:

- the task and its expected output are parsed out of CrewAI's prompt, and everything else
  CrewAI adds (persona lines, "you MUST return the actual complete content", tool and
  Thought/Final Answer scaffolding) is left out;
- the previous step's output (between ``step_context``'s markers) becomes source notes
  above the answer, not part of the task;
- the agent's role picks the frame when the expected output does not (a reviewer's answer
  starts ``Review notes:``, a programmer's with a fenced block);
- stop sequences end the answer before the model starts a new document, and
  :func:`finish_answer` cuts a reply at the first line it repeats.

The reply returned to CrewAI is ``prefix + completion``: the answer alone.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "Rendered",
    "TaskParts",
    "finish_answer",
    "parse_task",
    "render_document",
]

_PRIOR_START = "--- Output of the previous step ---"
_PRIOR_END = "--- End of previous output ---"
#: Where CrewAI's own scaffolding starts after the task text; the task is cut there.
_SCAFFOLDING = (
    "\n\nThis is the expected criteria for your final answer:",
    "\nyou MUST return the actual complete content",
    "\n\nProvide your complete response",
    "\nYou ONLY have access to the following tools",
    "\nIMPORTANT: Use the following format",
    "\nThought:",
    "\nBegin! This is VERY important",
)
_EXPECTED = re.compile(r"This is the expected criteria for your final answer:\s*(?P<x>.*?)"
                       r"(?:\nyou MUST return|\n\n|$)", re.S)
_PERSONA = re.compile(r"^You are (?P<role>[^.\n]+)\.(?P<backstory>[^\n]*)"
                      r"(?:\nYour personal goal is:\s*(?P<goal>[^\n]*))?")
#: Ends a base model's answer before it starts another document or turn.
BASE_STOPS = ("<start_of_image>", "<end_of_turn>", "<eos>", "\nQuestion:", "\n\n\n\n")

_CODE = re.compile(r"\b(code|program|script|function|class|snippet|implementation|"
                   r"python|javascript|typescript|bash|sql|\w+\.(?:py|js|ts|sh|sql|go|rs))\b",
                   re.I)
_REVIEW = re.compile(r"\b(review|proofread|check|critique|correct|feedback|edit)\w*", re.I)
_LIST = re.compile(r"\b(list|bullet|points|steps|facts|tips|ideas|benefits|reasons|items|"
                   r"options|pros|cons|key)\b", re.I)
_REPORT = re.compile(r"\b(guide|report|article|essay|summary|summari[sz]e|overview|"
                     r"explanation|plan|itinerary|comparison|recommendation|email|letter|"
                     r"post|story|text|answer)\b", re.I)
_LEADING_VERB = re.compile(
    r"^(?:please\s+)?(?:write|draft|create|produce|make|give|list|explain|summari[sz]e|"
    r"describe|compose|prepare|outline|review|compare|plan|find|collect|gather|research)"
    r"\s+(?:me\s+)?", re.I)
_FILE_NAME = re.compile(r"\b([\w-]+\.(?:py|js|ts|sh|sql|go|rs|rb|java|c|cpp|md|txt|html))\b")
_LANGS = {"py": "python", "js": "javascript", "ts": "typescript", "sh": "bash", "sql": "sql",
          "go": "go", "rs": "rust", "rb": "ruby", "java": "java", "c": "c", "cpp": "cpp",
          "html": "html", "md": "markdown", "txt": "text"}


@dataclass(frozen=True)
class TaskParts:
    """What a CrewAI request says, without its scaffolding."""

    task: str
    expected: str = ""
    role: str = ""
    backstory: str = ""
    goal: str = ""
    source: str = ""


@dataclass(frozen=True)
class Rendered:
    """A document prompt: ``prompt`` ends with ``prefix``, the answer's first characters."""

    prompt: str
    prefix: str
    shape: str
    stop: list[str] = field(default_factory=list)
    #: Appended to the answer when a stop sequence cut it (a code block's closing fence).
    closing: str = ""


def _text(content: Any) -> str:
    if isinstance(content, list):
        return "\n".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return "" if content is None else str(content)


def parse_task(messages: list[dict[str, Any]]) -> TaskParts:
    """Persona, task, expected output and source notes of a (CrewAI) chat request.

    A request that is not CrewAI-shaped (no ``Current Task:``) becomes a task made of its
    last user message.
    """
    system = "\n".join(_text(m.get("content")) for m in messages if m.get("role") == "system")
    users = [_text(m.get("content")) for m in messages if m.get("role") != "assistant"]
    body = next((u for u in users if "Current Task:" in u), users[-1] if users else "")
    persona = _PERSONA.search(system.strip()) or _PERSONA.search(body.strip())
    expected = _EXPECTED.search(body)
    task = body.split("Current Task:", 1)[-1]
    for marker in _SCAFFOLDING:
        task = task.split(marker, 1)[0]
    source = ""
    if _PRIOR_START in task:
        task, rest = task.split(_PRIOR_START, 1)
        source = rest.split(_PRIOR_END, 1)[0].strip()
    return TaskParts(
        task=task.strip(), expected=(expected["x"].strip() if expected else ""),
        role=(persona["role"].strip() if persona else ""),
        backstory=(persona["backstory"].strip() if persona else ""),
        goal=((persona["goal"] or "").strip() if persona else ""), source=source)


def _title(task: str) -> str:
    """A document title from the task: the goal it names, without the leading verb."""
    text = task.strip().splitlines()[0] if task.strip() else "Notes"
    # "Write the plan step by step: <goal>": the goal after the colon is the subject.
    _, colon, tail = text.rpartition(":")
    if colon and len(tail.split()) >= 3:
        text = tail
    text = _LEADING_VERB.sub("", text.strip()).strip(" .:")
    text = text[:1].upper() + text[1:]
    return text[:120] or "Notes"


_ASKED_LANGUAGE = (("javascript", "js"), ("typescript", "ts"), ("node", "js"), ("bash", "sh"),
                   ("shell", "sh"), ("sql", "sql"), ("golang", "go"), ("rust", "rs"),
                   ("ruby", "rb"), ("java", "java"), ("html", "html"))


def _extension_asked(parts: TaskParts) -> str:
    """The file extension for the language the task names; Python when it names none."""
    asked = f"{parts.task} {parts.expected}".lower()
    return next((ext for word, ext in _ASKED_LANGUAGE if re.search(rf"\b{word}\b", asked)),
                "py")


def _shape(parts: TaskParts) -> str:
    persona = f"{parts.role} {parts.backstory}"
    asked = f"{parts.task} {parts.expected}"
    if _REVIEW.search(parts.role) or (_REVIEW.match(parts.task.strip())
                                      and not _CODE.search(parts.expected)):
        return "review"
    if _CODE.search(parts.expected) or (re.search(r"programm|coder|developer", persona, re.I)
                                        and _CODE.search(asked)):
        return "code"
    if _LIST.search(parts.expected) or re.match(r"\s*list\b", parts.task, re.I):
        return "list"
    if _REPORT.search(asked):
        return "report"
    return "answer"


def render_document(parts: TaskParts) -> Rendered:
    """The document the base model continues for ``parts`` (see the module docstring)."""
    title = _title(parts.task)
    shape = _shape(parts)
    notes = f"Notes from earlier work:\n{parts.source}\n\n" if parts.source else ""
    task_line = " ".join(parts.task.split())
    if shape == "code":
        found = _FILE_NAME.search(f"{parts.task} {parts.expected} {parts.source}")
        name = found.group(1) if found else f"solution.{_extension_asked(parts)}"
        language = _LANGS.get(name.rsplit(".", 1)[-1], "")
        comment = "//" if language in ("javascript", "typescript", "go", "rust", "java",
                                       "c", "cpp") else "#"
        prefix = f"```{language}\n{comment} file: {name}\n"
        prompt = (f"# {title}\n\n{notes}Task: {task_line}\n\n"
                  f"The complete file {name}:\n\n{prefix}")
        return Rendered(prompt, prefix, shape, [*BASE_STOPS, "\n```"], closing="\n```")
    if shape == "review":
        prefix = "Review notes:\n\n1."
        draft = f"Draft:\n{parts.source}" if parts.source else "Draft: (none given)"
        # No task line: a base model copied it as note 1. The title names the subject and
        # the draft is what the notes are about.
        prompt = f"# Review: {title}\n\n{draft}\n\n{prefix}"
        return Rendered(prompt, prefix, shape, [*BASE_STOPS, "\n# "])
    if shape == "list":
        prefix = "1."
        prompt = f"# {title}\n\n{notes}Here are the key points:\n\n{prefix}"
        return Rendered(prompt, prefix, shape, [*BASE_STOPS, "\n# "])
    if shape == "report":
        prefix = f"# {title}\n\n"
        return Rendered(f"{notes}{prefix}", prefix, shape, list(BASE_STOPS))
    prefix = ""
    prompt = f"{notes}Question: {task_line}\nAnswer:"
    return Rendered(prompt, prefix, shape, list(BASE_STOPS))


def _line_key(line: str) -> str:
    """What makes two lines "the same" for repetition: their first eight words, lowercase,
    without list numbering (a base model repeats a sentence with a new ending)."""
    words = re.sub(r"^\s*(?:\d+[.)]|[-*#]+)\s*", "", line).lower().split()
    return " ".join(words[:8])


def finish_answer(rendered: Rendered, completion: str, *, stopped: bool) -> str:
    """``prefix + completion``, cut where the model starts repeating itself, closed if a
    stop sequence cut it.

    A base model that runs out of things to say starts over: the title again (dropped), a
    line it already wrote (cut there), or the list again from ``1.`` (cut there).
    """
    lines = (rendered.prefix + completion).split("\n")
    # The prefix's whole lines are the answer's start as given; its last line may go on in
    # the completion ("1." + " Boil water"), so it is checked with the completion's lines.
    given = rendered.prefix.count("\n")
    kept: list[str] = lines[:given]
    prefix_keys = {_line_key(line) for line in kept} - {""}
    seen: set[str] = set(prefix_keys)
    numbered = 0
    for line in lines[given:]:
        key = _line_key(line)
        if key and key in prefix_keys:
            continue  # the title or lead-in once more: skip it, keep going
        if len(key) > 12 and key in seen:
            break
        if re.match(r"^\s*1[.)](\s|$)", line):
            numbered += 1
            if numbered > 1 and rendered.shape in ("list", "review"):
                break
        seen.add(key)
        kept.append(line)
    answer = "\n".join(kept).rstrip()
    # Close a block only when a stop sequence ended it: a reply cut by the token limit is a
    # truncated file, and an unclosed block is what tells artifact extraction so.
    if rendered.closing and stopped and not answer.endswith(rendered.closing.strip()):
        answer += rendered.closing
    return answer.strip()
