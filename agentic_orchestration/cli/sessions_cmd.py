"""``--sessions``, ``--session RUN_ID`` and ``--stats``: look back at past runs.

Reads the sessions database only (``sessions.store``); nothing here imports CrewAI. Output
is plain text, one run per line for lists, so it pipes into ``grep``/``less``; ``--json``
gives the record or the statistics as JSON for scripts. What is printed was masked when it
was stored and is masked again here (secrets known now may be newer).
"""

from __future__ import annotations

import json
import logging
import sys
from typing import Any

from agentic_orchestration.errors import EXIT_OK

logger = logging.getLogger(__name__)

__all__ = ["STATUSES", "list_command", "session_command", "stats_command"]

STATUSES = ("running", "ok", "failed", "cancelled", "interrupted")
_PREVIEW_CHARS = 60


def _write(text: str) -> None:
    from agentic_orchestration.redaction import redact_text

    sys.stdout.write(redact_text(text))


def _one_line(text: str | None, limit: int = _PREVIEW_CHARS) -> str:
    flat = " ".join((text or "").split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def list_command(*, text: str | None, status: str | None, limit: int) -> int:
    """Sessions newest first: run id, status, backend, steps, goal."""
    from agentic_orchestration.sessions.store import SessionStore

    store = SessionStore()
    rows = store.list(status=status, text=text or None, limit=limit)
    total = store.count(status=status, text=text or None)
    if not rows:
        _write("no sessions" + (" match" if text or status else "") + f" ({store.path})\n")
        return EXIT_OK
    _write(f"{'RUN ID':<26} {'STATUS':<11} {'BACKEND':<10} {'STEPS':>5}  {'CREATED':<19}  "
           "GOAL\n")
    for row in rows:
        _write(f"{row.run_id:<26} {row.status:<11} {row.backend or '-':<10} "
               f"{row.step_count:>5}  {row.created_at[:19]:<19}  {_one_line(row.goal)}\n")
    if total > len(rows):
        _write(f"({len(rows)} of {total}; --limit N shows more)\n")
    return EXIT_OK


def _step_lines(step: dict[str, Any]) -> list[str]:
    timing = step.get("timing") or {}
    usage = step.get("usage") or {}
    seconds = timing.get("duration_seconds")
    head = (f"  {step.get('step_id')} [{step.get('status')}] {step.get('agent_provider_id')}"
            f" kind={step.get('kind') or '-'} attempts={step.get('attempts', 1)}"
            + (f" {seconds:.1f}s" if isinstance(seconds, int | float) else "")
            + (f" tokens={usage.get('total_tokens')}" if usage.get("total_tokens") else ""))
    lines = [head]
    k8s = step.get("k8s") or {}
    if any(k8s.values()):
        lines.append("    k8s: " + ", ".join(f"{k}={v}" for k, v in k8s.items() if v))
    for attempt in step.get("attempt_log") or []:
        if attempt.get("status") != "ok":
            lines.append(f"    attempt {attempt.get('attempt')} on "
                         f"{attempt.get('agent_provider_id')}: {attempt.get('error')}")
    if step.get("error"):
        lines.append(f"    error: {step['error']}")
    if step.get("result_text"):
        lines.extend("    | " + line for line in str(step["result_text"]).splitlines())
    return lines


def session_command(run_id: str, *, as_json: bool = False) -> int:
    """One run in full; ConfigError (exit 2, one line) for an id that is not one."""
    from agentic_orchestration.sessions.store import SessionStore

    record = SessionStore().get(run_id)
    if as_json:
        _write(json.dumps(record.to_dict(), indent=2, ensure_ascii=False) + "\n")
        return EXIT_OK
    lines = [
        f"run {record.run_id}: {record.status} (exit {record.exit_code})",
        f"goal: {record.goal}",
        f"mode: {record.mode}; route: {record.route or '-'}; "
        f"backend: {record.last_execution_backend or '-'}",
        f"created {record.created_at}; updated {record.updated_at}; "
        f"pid {record.pid} on {record.host}",
    ]
    if record.run_store:
        lines.append(f"run store: {record.run_store}")
    if record.error:
        lines.append(f"error: {record.error}")
    plan_steps = (record.plan or {}).get("steps") or []
    if plan_steps:
        lines.append(f"plan ({len(plan_steps)} steps):")
        lines.extend(f"  {s.get('id')}: {s.get('agent_provider')} - "
                     f"{_one_line(s.get('description'), 100)}" for s in plan_steps)
    if record.steps:
        lines.append("steps:")
        for step in record.steps:
            lines.extend(_step_lines(step))
    if record.artifacts:
        lines.append(f"files under {record.artifacts_dir}:")
        lines.extend(f"  {name}" for name in record.artifacts)
    if record.revisions:
        lines.append(f"plan revisions: {len(record.revisions)}")
    if record.result_text:
        lines += ["", "=== Final answer ===", record.result_text.rstrip()]
    _write("\n".join(lines) + "\n")
    return EXIT_OK


def stats_command(*, as_json: bool = False) -> int:
    """Per provider, then per provider and kind of step (``sessions.learning``)."""
    from agentic_orchestration import settings
    from agentic_orchestration.sessions.learning import provider_stats

    stats = provider_stats()
    if as_json:
        _write(json.dumps([s.to_dict() for s in stats], indent=2) + "\n")
        return EXIT_OK
    window = settings.get_int("AGENTIC_LEARNING_WINDOW")
    if not stats:
        _write("no step history yet: statistics appear after the first runs\n")
        return EXIT_OK
    _write(f"Step attempts per agent provider (newest {window} each; latency of successful "
           "attempts)\n")
    _write(f"{'PROVIDER':<20} {'KIND':<8} {'RUNS':>5} {'OK %':>6} {'RECOV':>6} {'FAIL':>5} "
           f"{'P50 s':>7} {'P90 s':>7} {'TOKENS':>8}\n")

    def secs(value: float | None) -> str:
        return "-" if value is None else f"{value:.1f}"

    for s in stats:
        _write(f"{s.provider if s.kind is None else '':<20} {s.kind or 'all':<8} {s.runs:>5} "
               f"{s.success_rate * 100:>5.0f}% {s.recoverable_failures:>6} {s.failures:>5} "
               f"{secs(s.p50_seconds):>7} {secs(s.p90_seconds):>7} {s.total_tokens:>8}\n")
    return EXIT_OK
