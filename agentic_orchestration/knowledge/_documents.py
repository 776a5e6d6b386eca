"""What of a finished run goes into the knowledge base: one document per useful output.

A run gives one document per step that finished with an answer (``kind="step"``) and one for
its final answer (``kind="final"``). The final answer is usually the last step's text; then
that step's document is marked ``final`` instead of storing the same text twice (a search
would otherwise show one run twice for one text).

Only finished steps count: a failed or cancelled step has no answer worth reusing, and a
run still ``running`` is indexed when its session is saved at the end. Everything is masked
with the secret registry (``redaction.redact_obj``) before it is returned, because the
record handed over at the end of a run is the in-memory one, not the masked file.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from agentic_orchestration.redaction import redact_obj

__all__ = ["FINAL_STEP_ID", "Document", "documents_from_record", "record_data"]

#: ``step_id`` of a final answer that is no step's text (kept apart from real step ids,
#: which match ``^[A-Za-z0-9][A-Za-z0-9_-]*$`` and so cannot start with ``#``).
FINAL_STEP_ID = "#final"
#: Past the end of a run's document list nobody reads in a planner prompt; a bound keeps a
#: runaway answer (a 5 MB log pasted back) from bloating the index.
MAX_DOCUMENT_CHARS = 100_000


@dataclass(frozen=True)
class Document:
    """One indexed output of a past run."""

    run_id: str
    step_id: str
    kind: str  # "final" or "step"
    goal: str
    provider: str
    created_at: str
    text: str


def record_data(record: Any) -> dict[str, Any]:
    """A session record as a dict: a ``SessionRecord`` (``to_dict``) or its JSON mapping."""
    if hasattr(record, "to_dict"):
        return dict(record.to_dict())
    if isinstance(record, Mapping):
        return dict(record)
    raise TypeError(f"not a session record: {type(record).__name__}")


def _text(value: Any) -> str:
    return str(value or "").strip()[:MAX_DOCUMENT_CHARS]


def documents_from_record(record: Any) -> list[Document]:
    """The documents of one run's record, masked; empty when it has no answer yet."""
    data = redact_obj(record_data(record))
    run_id = str(data.get("run_id") or data.get("session_id") or "")
    if not run_id or data.get("status") == "running":
        return []
    goal = _text(data.get("goal"))
    created = str(data.get("created_at") or "")
    docs: list[Document] = []
    for step in data.get("steps") or []:
        if not isinstance(step, Mapping):
            continue
        text = _text(step.get("result_text"))
        ok = step.get("status", "ok") == "ok" and not step.get("exit_code")
        if ok and text and step.get("step_id"):
            docs.append(Document(run_id, str(step["step_id"]), "step", goal,
                                 str(step.get("agent_provider_id") or ""), created, text))
    final = _text(data.get("result_text"))
    if final:
        last = docs[-1] if docs else None
        if last is not None and last.text == final:
            docs[-1] = Document(run_id, last.step_id, "final", goal, last.provider, created,
                                final)
        else:
            provider = last.provider if last is not None else ""
            docs.append(Document(run_id, FINAL_STEP_ID, "final", goal, provider, created,
                                 final))
    return docs
