"""Typed run events as JSON lines: the coordinator's own account of a run, for machines.

Why a second channel next to the ``(progress)`` lines: those lines are for people and for
scripts that already grep them (a contract, kept as it is), but they carry only what fits
on one line. A reader that draws a run (the web UI) needs each step's provider, attempt,
start and end times, tokens and an excerpt of its output, and should not parse prose to
get them. ``ProgressReporter`` (``progress``) is the one place both backends report
through, so it writes these events too: the in-process tracker and the distributed
``StepCoordinator`` feed the same sink without knowing about it.

Where events go: ``AGENTIC_EVENTS_FILE`` names a file; each event is appended as one JSON
object on one line and flushed at once, so a reader that follows the file sees it within
its poll interval, and a reader that starts late (a browser reconnecting) reads it all
again from the top. Unset: no events, nothing written. A write that fails is logged once
and the run goes on: events must never fail a run.

Every event is a JSON object with::

    {"v": 1, "seq": <1-based per sink>, "t": <epoch seconds>, "kind": ..., "run_id": ...,
     "line": <the matching (progress) text, without the prefix, when there is one>, ...}

Kinds and their fields (``index`` is 1-based as in the progress lines; times are ISO 8601
UTC with milliseconds; ``tokens`` is ``{"prompt", "completion", "total"}``):

- ``run_started``: ``total``, ``backend``.
- ``plan``: ``steps``: ``[{"id", "index", "provider", "depends_on", "description"}]``.
- ``step_started``: ``step_id``, ``index``, ``total``, ``provider``, ``attempt``,
  ``started_at``.
- ``step_finished`` / ``step_failed``: the same, plus ``status`` (``ok``, ``failed`` or
  ``cancelled``), ``ended_at``, ``seconds``, ``tokens``, ``output`` (the first
  ``OUTPUT_EXCERPT_CHARS`` characters of the answer) or ``error`` (one line), ``artifacts``.
- ``step_retried``: the step is tried again on ``provider`` as ``attempt`` (fallback).
- ``step_skipped`` (resume), ``step_not_run`` (``needs`` a failed step), ``step_waits``
  (``needs``), ``running_at_once`` (``step_ids``).
- ``replan``: ``revision``, ``limit``, ``summary``, followed by a new ``plan`` (the whole
  revised plan) when the round changed it; ``budget``: ``reason``.
- ``run_finished``: ``status`` (``ok``, ``failed``, ``cancelled``, ``budget_exceeded``).

Every event is masked (``redaction.redact_obj``) before it is written, like every other
path out of the process.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from typing import IO, Any

from agentic_orchestration.redaction import redact_obj

logger = logging.getLogger(__name__)

__all__ = ["EVENTS_ENV", "EVENTS_VERSION", "OUTPUT_EXCERPT_CHARS", "EventSink", "read_events"]

EVENTS_ENV = "AGENTIC_EVENTS_FILE"
EVENTS_VERSION = 1
#: How much of a step's answer an event carries (the session keeps all of it).
OUTPUT_EXCERPT_CHARS = 2000


class EventSink:
    """Appends events to one file, one JSON line each, thread-safe (steps of a graph
    report from several threads). Opened on the first event, so a run that never starts
    leaves no file.

    Args:
        path: The file; its folder must exist (the reader made it).
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self._file: IO[str] | None = None
        self._seq = 0
        self._broken = False
        self._lock = threading.Lock()

    @classmethod
    def from_env(cls) -> EventSink | None:
        """A sink on ``AGENTIC_EVENTS_FILE``, or None when it is unset or empty."""
        from agentic_orchestration import settings

        path = settings.get(EVENTS_ENV)
        return cls(str(path)) if path else None

    def emit(self, kind: str, run_id: str, **fields: Any) -> None:
        """Write one event (``fields`` must be JSON-serialisable); never raises."""
        with self._lock:
            if self._broken:
                return
            self._seq += 1
            event = {"v": EVENTS_VERSION, "seq": self._seq, "t": round(time.time(), 4),
                     "kind": kind, "run_id": run_id, **fields}
            try:
                text = json.dumps(redact_obj(event), ensure_ascii=False, default=str)
                if self._file is None:
                    self._file = open(self.path, "a", encoding="utf-8")
                self._file.write(text + "\n")
                self._file.flush()
            except (OSError, ValueError, TypeError) as exc:
                self._broken = True  # say it once, not once per event
                logger.warning("run events cannot be written to %s (%s=%s): %s", self.path,
                               EVENTS_ENV, self.path, exc)

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                try:
                    self._file.close()
                except OSError:
                    pass
                self._file = None


def read_events(path: str | os.PathLike[str], *, offset: int = 0
                ) -> tuple[list[dict[str, Any]], int]:
    """Whole event lines of ``path`` from byte ``offset``; returns them and the offset
    after the last whole line (a line still being written is left for the next call).
    A line that is not a JSON object is skipped with a warning: a reader must go on."""
    try:
        with open(path, "rb") as handle:
            handle.seek(offset)
            data = handle.read()
    except FileNotFoundError:
        return [], offset
    end = data.rfind(b"\n") + 1
    events = []
    for raw in data[:end].splitlines():
        try:
            event = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError):
            event = None
        if isinstance(event, dict):
            events.append(event)
        elif raw.strip():
            logger.warning("%s: skipped a line that is not an event", path)
    return events, offset + end
