"""Prior-output hand-off: the one place a step's task text is assembled.

Every backend builds the text an agent receives with :func:`prepare_step_description`: the
in-process CrewAI backend calls it from its task callback, and the subprocess/Kubernetes
coordinator calls it before writing a step spec (``task.description``). Keeping it pure
(no CrewAI, no I/O beyond reading one setting) is what makes the two paths identical.

Shape of the result::

    <step description, {topic} filled>

    --- Output of the previous step ---
    <previous output, at most AGENTIC_STEP_CONTEXT_CHARS characters>
    --- End of previous output ---

Only the *immediately* previous step's output is injected, once. Older outputs reach a
step only through what the previous step chose to carry forward; this keeps prompts
bounded however long the plan is.

A step that depends on several steps (``depends_on``, see ``step_graph``) gets each of
their outputs, labelled by step id, through :func:`prepare_step_inputs`::

    --- Output of step <id> ---
    <output, at most AGENTIC_STEP_CONTEXT_CHARS / <number of dependencies> characters>
    --- End of output of step <id> ---

The limit is shared, not per dependency, so a wide fan-in costs no more prompt than one
previous step did. With one dependency the text is exactly the classic one above.

Truncation keeps the **head** of the previous output. What arrives here is the previous
step's final answer, not its reasoning trace, and agents write answers top-down: title,
summary and the first (usually most important) items come first, sign-offs last. A cut
head still reads as a coherent document; a kept tail would start mid-sentence and drop the
summary. The cut is marked with how much was left out so the agent knows it saw a part.
"""

from __future__ import annotations

from collections.abc import Sequence

from agentic_orchestration import settings

__all__ = [
    "PRIOR_OUTPUT_END", "PRIOR_OUTPUT_START", "fill_topic", "prepare_step_description",
    "prepare_step_inputs",
]

PRIOR_OUTPUT_START = "--- Output of the previous step ---"
PRIOR_OUTPUT_END = "--- End of previous output ---"
STEP_OUTPUT_START = "--- Output of step {step_id} ---"
STEP_OUTPUT_END = "--- End of output of step {step_id} ---"
TRUNCATION_NOTE = "[... truncated: {omitted} of {total} characters omitted ...]"
TOPIC_PLACEHOLDER = "{topic}"


def fill_topic(text: str, topic: str) -> str:
    """Replace every literal ``{topic}`` with ``topic``; leave any other braces alone.

    ``str.format`` would raise on ``{"json": 1}`` or ``{other}`` in a description, and a
    topic holding braces must not be re-interpreted either, so this is a plain replace.
    """
    return text.replace(TOPIC_PLACEHOLDER, topic)


def _bound_prior_output(prior_output: str, max_chars: int) -> str:
    """``prior_output`` cut to its first ``max_chars`` characters, with a marked cut."""
    text = prior_output.strip()
    if len(text) <= max_chars:
        return text
    omitted = len(text) - max_chars
    head = text[:max_chars].rstrip()
    return head + "\n" + TRUNCATION_NOTE.format(omitted=omitted, total=len(text))


def prepare_step_description(
    step_description: str,
    prior_output: str | None,
    *,
    max_chars: int | None = None,
    topic: str | None = None,
) -> str:
    """The task text for a step: its description plus the previous step's output.

    Args:
        step_description: The step's description as written in the workflow (it may still
            hold ``{topic}``; always pass the *original* description, never a text this
            function already returned, or the output would be injected twice).
        prior_output: The previous step's output; ``None`` or blank for the first step.
        max_chars: Most characters of ``prior_output`` to include; default
            ``AGENTIC_STEP_CONTEXT_CHARS``. ``0`` injects nothing.
        topic: Fills ``{topic}``; ``None`` leaves placeholders untouched.

    Returns:
        The description, with the bounded previous output appended between
        ``PRIOR_OUTPUT_START`` and ``PRIOR_OUTPUT_END`` markers when there is one.
    """
    description = step_description if topic is None else fill_topic(step_description, topic)
    if not prior_output or not prior_output.strip():
        return description
    if max_chars is None:
        max_chars = settings.get_int("AGENTIC_STEP_CONTEXT_CHARS", minimum=0)
    if max_chars <= 0:
        return description
    bounded = _bound_prior_output(prior_output, max_chars)
    return f"{description.rstrip()}\n\n{PRIOR_OUTPUT_START}\n{bounded}\n{PRIOR_OUTPUT_END}"


def prepare_step_inputs(
    step_description: str,
    outputs: Sequence[tuple[str, str | None]],
    *,
    max_chars: int | None = None,
    topic: str | None = None,
) -> str:
    """The task text for a step that needs the outputs of ``outputs`` (step id, text).

    One output is the classic hand-off (:func:`prepare_step_description`); several are
    appended in the given order, each labelled with its step id and cut to an equal share
    of ``max_chars`` (default ``AGENTIC_STEP_CONTEXT_CHARS``). Blank outputs are left out.
    """
    kept = [(step_id, text) for step_id, text in outputs if text and text.strip()]
    if len(kept) <= 1:
        return prepare_step_description(step_description, kept[0][1] if kept else None,
                                        max_chars=max_chars, topic=topic)
    description = step_description if topic is None else fill_topic(step_description, topic)
    if max_chars is None:
        max_chars = settings.get_int("AGENTIC_STEP_CONTEXT_CHARS", minimum=0)
    share = max_chars // len(kept)
    if share <= 0:
        return description
    blocks = [f"{STEP_OUTPUT_START.format(step_id=step_id)}\n"
              f"{_bound_prior_output(text or '', share)}\n"
              f"{STEP_OUTPUT_END.format(step_id=step_id)}" for step_id, text in kept]
    return description.rstrip() + "\n\n" + "\n\n".join(blocks)
