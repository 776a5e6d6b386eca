"""``(progress)`` lines -> events the page can draw.

The CLI's progress lines are a contract (``orchestration/progress.py`` lists the formats);
the web UI reads them from a run's stdout, as the spec's web server did, so this is the one
place that knows their grammar. A line that starts with ``(progress)`` but matches no
known format still becomes an event (``kind`` ``progress``) so a newer CLI never loses
information on an older page; any other line is not a progress line (``None``).
"""

from __future__ import annotations

import re
from typing import Any

__all__ = ["PREFIX", "parse_progress_line"]

PREFIX = "(progress) "

_STEP = r"step (?P<index>\d+)/(?P<total>\d+) (?P<step_id>\S+)"
_FORMATS: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (kind, re.compile(pattern)) for kind, pattern in (
        ("run_started",
         r"run (?P<run_id>\S+) started: (?P<total>\d+) steps \[(?P<backend>[^\]]*)\]"),
        ("step_started", _STEP + r" started \[agent (?P<provider_id>[^\]]*)\]"),
        ("step_finished", _STEP + r" finished in (?P<seconds>[0-9.]+)s"),
        ("step_failed", _STEP + r" failed: (?P<error>.*)"),
        ("step_skipped", _STEP + r" skipped: (?P<reason>.*)"),
        ("fallback", r"fallback: retrying on (?P<provider_id>\S+) from " + _STEP),
        ("run_finished", r"run (?P<run_id>\S+) finished: (?P<status>\S+)"),
    )
)
_INTS = ("index", "total")


def parse_progress_line(line: str) -> dict[str, Any] | None:
    """The event a progress line describes, or None for any other output line.

    Returns:
        ``{"kind": ..., "line": <the text after the prefix>, **fields}``: ``index`` and
        ``total`` as ints (``index`` 1-based, as printed), ``seconds`` as a float.
    """
    text = line.rstrip("\r\n")
    if not text.startswith(PREFIX):
        return None
    body = text[len(PREFIX):]
    for kind, pattern in _FORMATS:
        match = pattern.fullmatch(body)
        if match is None:
            continue
        event: dict[str, Any] = {"kind": kind, "line": body}
        for key, value in match.groupdict().items():
            if key in _INTS:
                event[key] = int(value)
            elif key == "seconds":
                event[key] = float(value)
            else:
                event[key] = value
        return event
    return {"kind": "progress", "line": body}
