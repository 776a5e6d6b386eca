"""Progress for people and machines: ``(progress)`` lines or a live status, and run events.

Line format (a contract: scripts and other tools read these lines from stdout; change it
only with care; the web UI reads the typed events below instead). One event per line,
each starting with ``(progress) ``; ``<i>`` is 1-based, ``<n>`` the number of steps in
the plan, ``<s>`` seconds with two decimals::

    (progress) run <run_id> started: <n> steps [<backend>]
    (progress) step <i>/<n> <step_id> started [agent <provider_id>]
    (progress) step <i>/<n> <step_id> finished in <s>s
    (progress) step <i>/<n> <step_id> failed: <error, one line, at most 300 characters>
    (progress) step <i>/<n> <step_id> skipped: already done (resume)
    (progress) fallback: retrying on <provider_id> from step <i>/<n> <step_id>
    (progress) run <run_id> finished: ok|failed|cancelled|budget_exceeded

Plans whose steps are not a plain chain (``depends_on``, see ``step_graph``) add::

    (progress) step <i>/<n> <step_id> waits on <id>, <id>
    (progress) running at once: <step_id>, <step_id>
    (progress) step <i>/<n> <step_id> not run: needs failed step <id>

``waits on`` is printed once per step with dependencies when the run starts; ``running
at once`` each time more than one step runs and the set changed. A plain chain prints only
the lines above, as before. Every run may also print::

    (progress) budget exceeded: <why>
    (progress) plan revised <k>/<max>: <n> kept, <n> changed, <n> added, <n> removed
    (progress) plan done: <why>

A fallback retry happens inside one run: ``run ... finished`` is printed once, after the
last attempt, so a reader can treat it as the end of the run. Every line (and every live
status line) is masked by ``agentic_orchestration.redaction``: an error text may quote a key.

Typed events: when ``AGENTIC_EVENTS_FILE`` is set, every call below also appends a JSON
event with more than the line says (provider, attempt, start and end times, tokens, an
output excerpt; see ``events``), written before the line is printed. This is the one place
both backends report through, so both feed it. Events do not depend on ``AGENTIC_PROGRESS``
(they are for machines) but are off with ``emit_progress_lines=False`` (a worker's own
in-process run, whose coordinator reports the step).

Where output goes:

- ``AGENTIC_PROGRESS=0`` or ``RunOptions.emit_progress_lines=False``: nothing at all.
- stdout is not a terminal (piped, the web UI, tests): the lines above on stdout.
- stdout is a terminal: a rich spinner on stderr with the running step, and one short
  line per finished step, instead of the raw lines (``RunOptions.quiet`` keeps only the
  spinner). rich is imported only in this case.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Sequence
from typing import IO, TYPE_CHECKING, Any

from agentic_orchestration import settings
from agentic_orchestration.orchestration.events import OUTPUT_EXCERPT_CHARS, EventSink
from agentic_orchestration.redaction import redact_text

if TYPE_CHECKING:
    from agentic_orchestration.orchestration.backends.base import RunOptions, StepResult

logger = logging.getLogger(__name__)

__all__ = ["PREFIX", "ProgressReporter", "one_line"]

PREFIX = "(progress) "
MAX_ERROR_CHARS = 300


def one_line(text: object, limit: int = MAX_ERROR_CHARS) -> str:
    """``text`` on a single line (whitespace collapsed), cut to ``limit`` characters."""
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


class ProgressReporter:
    """Emits run and step events; silent, plain lines, or a live status (see module doc).

    Args:
        options: The run's options (``emit_progress_lines``, ``quiet``).
        stream: Where plain lines go; default ``sys.stdout`` at emit time.
        live: Force (True) or forbid (False) the TTY status; default: stdout is a TTY.
    """

    def __init__(
        self,
        options: RunOptions,
        *,
        stream: IO[str] | None = None,
        live: bool | None = None,
    ) -> None:
        self.enabled = options.emit_progress_lines and settings.get_bool("AGENTIC_PROGRESS")
        self._stream = stream
        if live is None:
            live = stream is None and _isatty(sys.stdout)
        self.live = self.enabled and live
        self.quiet = options.quiet
        self.total = 0
        self.lines: list[str] = []  # every plain line emitted, for callers that inspect them
        self._status: Any = None
        self._console: Any = None
        self._step_label = ""
        self._step_started = 0.0
        self._lock = threading.Lock()  # steps of a graph report from several threads
        self._running_shown: tuple[str, ...] = ()
        self.run_id = options.run_id
        self.events = EventSink.from_env() if options.emit_progress_lines else None
        self._attempts: dict[str, int] = {}  # step id -> attempts started in this run
        self._started_at: dict[str, tuple[str, float]] = {}  # step id -> (ISO, monotonic)
        self._providers: dict[str, str] = {}

    # -- events ------------------------------------------------------------------------
    def run_started(self, run_id: str, total_steps: int, backend: str, *,
                    steps: Sequence[Any] | None = None) -> None:
        """``steps`` (StepConfig or StepSpec): the plan, sent as a ``plan`` event."""
        self.total = total_steps
        self.run_id = run_id or self.run_id
        line = f"run {run_id} started: {total_steps} steps [{backend}]"
        self._event("run_started", line, total=total_steps, backend=backend)
        if steps is not None:
            self._event("plan", None, steps=[_plan_step(s, i) for i, s in enumerate(steps)])
        self._emit(line)
        if self.live:
            self._start_status(f"run {run_id}: {total_steps} steps [{backend}]")

    def step_started(self, index: int, step_id: str, provider_id: str) -> None:
        """``index`` is 0-based; lines show it 1-based. Each call is a new attempt."""
        label = f"step {index + 1}/{self.total} {step_id}"
        if self.events is not None:
            from agentic_orchestration.orchestration.backends.base import utc_now

            with self._lock:
                attempt = self._attempts[step_id] = self._attempts.get(step_id, 0) + 1
                started_at = utc_now()
                self._started_at[step_id] = (started_at, time.monotonic())
                self._providers[step_id] = provider_id
            self._event("step_started", f"{label} started [agent {provider_id}]",
                        **self._step(index, step_id), provider=provider_id, attempt=attempt,
                        started_at=started_at)
        self._emit(f"{label} started [agent {provider_id}]")
        self._step_label = f"{label} [agent {provider_id}]"
        self._step_started = time.monotonic()
        self._update_status(f"{self._step_label} running")

    def step_finished(self, index: int, step_id: str, seconds: float, *,
                      result: StepResult | None = None) -> None:
        """``result``: the step's result, for the event's tokens, output and times."""
        line = f"step {index + 1}/{self.total} {step_id} finished in {seconds:.2f}s"
        self._step_ended("step_finished", line, index, step_id, seconds, result, status="ok")
        self._emit(line)
        self._console_line(f"[green]done[/] step {index + 1}/{self.total} {step_id} "
                           f"in {seconds:.2f}s")

    def step_skipped(self, index: int, step_id: str) -> None:
        """A step a resumed run does not run again (its stored result.json is ok)."""
        line = f"step {index + 1}/{self.total} {step_id} skipped: already done (resume)"
        self._event("step_skipped", line, **self._step(index, step_id), status="skipped",
                    reason="already done (resume)")
        self._emit(line)
        self._console_line(f"[dim]skip[/] step {index + 1}/{self.total} {step_id} (resume)")

    def step_failed(self, index: int, step_id: str, error: object, *,
                    result: StepResult | None = None) -> None:
        message = one_line(redact_text(str(error)))  # mask first: a cut could split a key
        line = f"step {index + 1}/{self.total} {step_id} failed: {message}"
        cancelled = (result.cancelled if result is not None
                     else message.startswith("cancelled"))
        self._step_ended("step_failed", line, index, step_id, None, result,
                         status="cancelled" if cancelled else "failed", error=message)
        self._emit(line)
        self._console_line(f"[red]failed[/] step {index + 1}/{self.total} {step_id}: {message}",
                           always=True)

    def fallback(self, provider_id: str, index: int, step_id: str) -> None:
        line = f"fallback: retrying on {provider_id} from step {index + 1}/{self.total} {step_id}"
        self._event("step_retried", line, **self._step(index, step_id), provider=provider_id,
                    attempt=self._attempts.get(step_id, 0) + 1)
        self._emit(line)
        self._console_line(f"[yellow]fallback[/]: retrying on {provider_id}", always=True)

    def run_finished(self, run_id: str, ok: bool, *, status: str | None = None) -> None:
        """``run ... finished: ok|failed``, or ``status`` when given (``cancelled``,
        ``budget_exceeded``)."""
        final = status or ("ok" if ok else "failed")
        line = f"run {run_id} finished: {final}"
        self._event("run_finished", line, status=final)
        self._emit(line)
        self._stop_status()
        if self.events is not None:
            self.events.close()

    # -- graphs, budgets, revisions -----------------------------------------------------
    def step_waits(self, index: int, step_id: str, needs: list[str]) -> None:
        line = f"step {index + 1}/{self.total} {step_id} waits on {', '.join(needs)}"
        self._event("step_waits", line, **self._step(index, step_id), needs=list(needs))
        self._emit(line)

    def running_at_once(self, step_ids: list[str]) -> None:
        """The steps running now, when more than one and not already shown."""
        shown = tuple(step_ids)
        if len(shown) < 2 or shown == self._running_shown:
            return
        self._running_shown = shown
        self._event("running_at_once", f"running at once: {', '.join(shown)}",
                    step_ids=list(shown))
        self._emit(f"running at once: {', '.join(shown)}")
        self._update_status(f"running at once: {', '.join(shown)}")

    def step_not_run(self, index: int, step_id: str, failed: str) -> None:
        line = f"step {index + 1}/{self.total} {step_id} not run: needs failed step {failed}"
        self._event("step_not_run", line, **self._step(index, step_id), status="not_run",
                    needs=failed)
        self._emit(line)
        self._console_line(f"[yellow]not run[/] step {index + 1}/{self.total} {step_id}: "
                           f"needs failed step {failed}", always=True)

    def budget_exceeded(self, reason: str) -> None:
        self._event("budget", f"budget exceeded: {one_line(reason)}", reason=one_line(reason))
        self._emit(f"budget exceeded: {one_line(reason)}")
        self._console_line(f"[red]budget exceeded[/]: {one_line(reason)}", always=True)

    def replanned(self, revision: int, limit: int, summary: str, *,
                  steps: Sequence[Any] | None = None) -> None:
        """``replan <n>/<limit>: kept ...; revised ...; added ...; removed ... (why)``, or
        ``done (why)``, or ``invalid answer, plan kept (...)`` (iterative runs). ``steps``:
        the revised plan when it changed, sent as a new ``plan`` event so a page shows the
        added steps before they start."""
        line = f"replan {revision}/{limit}: {one_line(redact_text(summary))}"
        self._event("replan", line, revision=revision, limit=limit,
                    summary=one_line(redact_text(summary)))
        if steps is not None:
            self.set_total(len(steps))
            self._event("plan", None, steps=[_plan_step(s, i) for i, s in enumerate(steps)])
        self._emit(line)
        self._console_line(f"[cyan]replan[/] {revision}/{limit}: "
                           f"{one_line(redact_text(summary))}", always=True)

    def set_total(self, total_steps: int) -> None:
        """A revised plan has another number of steps; later lines use it."""
        self.total = total_steps

    # -- events ------------------------------------------------------------------------
    def _step(self, index: int, step_id: str) -> dict[str, Any]:
        return {"step_id": step_id, "index": index + 1, "total": self.total}

    def _event(self, kind: str, line: str | None, **fields: Any) -> None:
        if self.events is not None:
            extra = {} if line is None else {"line": line}
            self.events.emit(kind, self.run_id, **extra, **fields)

    def _step_ended(self, kind: str, line: str, index: int, step_id: str,
                    seconds: float | None, result: StepResult | None, *, status: str,
                    error: str | None = None) -> None:
        """``step_finished`` / ``step_failed``: times from ``result.timing`` when the
        backend measured them, else from this reporter's own clock."""
        if self.events is None:
            return
        from agentic_orchestration.orchestration.backends.base import utc_now

        with self._lock:
            started_at, began = self._started_at.pop(step_id, (None, None))
            attempt = self._attempts.get(step_id, 1)
            provider = self._providers.get(step_id)
        ended_at = utc_now()
        if seconds is None and began is not None:
            seconds = time.monotonic() - began
        fields: dict[str, Any] = {"status": status, "attempt": attempt, "provider": provider,
                                  "started_at": started_at, "ended_at": ended_at,
                                  "seconds": None if seconds is None else round(seconds, 4)}
        if result is not None:
            fields["provider"] = result.agent_provider_id or provider
            if result.timing is not None:
                fields["started_at"] = result.timing.started_at or started_at
                fields["ended_at"] = result.timing.finished_at or ended_at
                if result.timing.duration_seconds is not None:
                    fields["seconds"] = result.timing.duration_seconds
            if result.usage is not None:
                fields["tokens"] = {"prompt": result.usage.prompt_tokens,
                                    "completion": result.usage.completion_tokens,
                                    "total": result.usage.total_tokens}
            if result.result_text:
                fields["output"] = result.result_text[:OUTPUT_EXCERPT_CHARS]
            fields["artifacts"] = [a.relative_path for a in result.artifacts]
        if error is not None:
            fields["error"] = error
        self._event(kind, line, **self._step(index, step_id), **fields)

    # -- output ------------------------------------------------------------------------
    def _emit(self, text: str) -> None:
        if not self.enabled:
            return
        line = redact_text(PREFIX + text)
        with self._lock:
            self.lines.append(line)
            if self.live:
                return
            stream = self._stream or sys.stdout
            try:
                stream.write(line + "\n")
                stream.flush()
            except (OSError, ValueError):  # closed pipe: progress must never fail a run
                logger.debug("progress line dropped: %s", line)

    def _start_status(self, text: str) -> None:
        from rich.console import Console

        self._console = Console(stderr=True)
        self._status = self._console.status(text, spinner="dots")
        self._status.start()

    def _update_status(self, text: str) -> None:
        if self._status is not None:
            self._status.update(text)

    def _console_line(self, markup: str, *, always: bool = False) -> None:
        if self._console is not None and (always or not self.quiet):
            self._console.print(redact_text(markup))

    def _stop_status(self) -> None:
        if self._status is not None:
            self._status.stop()
            self._status = None


def _plan_step(step: Any, index: int) -> dict[str, Any]:
    """A plan step (``StepConfig`` or ``StepSpec``) as the ``plan`` event lists it."""
    if hasattr(step, "task"):  # StepSpec
        return {"id": step.step_id, "index": index + 1,
                "provider": str(step.agent_provider.get("id", "")),
                "depends_on": step.depends_on,
                "description": one_line(step.task.description, 500)}
    return {"id": step.id, "index": index + 1, "provider": step.agent_provider,
            "depends_on": getattr(step, "depends_on", None),
            "description": one_line(step.description, 500)}


def _isatty(stream: IO[str]) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
