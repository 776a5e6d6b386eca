"""The web UI's run manager: each run is a ``main.py`` child process, followed by its events.

Why a child process and not a thread: a run imports CrewAI, may start worker processes and
an embedded model, and can be killed or crash without taking the web server down, exactly
as the spec's web server spawned ``python main.py``. The server picks the run id
(``--run-id``) so the page can follow a run before its session exists.

What is read back:

- the run's events: each child gets ``AGENTIC_EVENTS_FILE`` naming ``events.jsonl`` in the
  run's own folder (``<AGENTIC_SESSIONS_PATH>/web-runs/<run_id>/``), where its coordinator
  (``orchestration.events``, both backends) appends one typed JSON event per line. A
  follower thread reads new whole lines as they come, masks them again and hands them to
  the page. Nothing is parsed out of the child's prose.
- stdout and stderr: the run's log (``output.log`` in the same folder) and a short tail
  for the page; the CLI's ``error: ...`` line on stderr is shown as the run's error. A
  ``(progress)`` line on stdout only wakes the follower early (the event it announces is
  written before it), so the page does not wait for the next poll.
- at exit: the run's session (the sessions database) says the final status.

Cancel sends SIGUSR1: the CLI turns it into ``RunOptions.cancel.cancel(...)``, so the
running step is terminated through its handle and the run is recorded ``cancelled``. The
child is started with SIGUSR1 blocked (``_spawn``), so a cancel that arrives before the
CLI installed its handler waits instead of killing the process.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from agentic_orchestration.errors import EXIT_INTERRUPTED
from agentic_orchestration.orchestration.events import EVENTS_ENV, read_events
from agentic_orchestration.redaction import redact_obj, redact_text
from agentic_orchestration.web import _sessions

logger = logging.getLogger(__name__)

__all__ = ["LiveRun", "RunManager", "default_command"]

#: Statuses a finished run can have (the session's, or from the exit code without one).
FINAL = ("ok", "failed", "cancelled", "interrupted", "budget_exceeded")
LOG_TAIL_LINES = 200
#: How often the follower looks for new events when no ``(progress)`` line woke it.
POLL_SECONDS = 0.05
_PROGRESS = "(progress) "
#: Run folders (events, log) kept under ``web-runs``: the newest, plus every live one.
#: A finished run's page is drawn from its session, so older folders only cost disk.
RUN_FOLDERS_KEPT = 100


def default_command() -> list[str]:
    """``python <repo>/main.py`` (or the CLI module when installed without ``main.py``)."""
    from pathlib import Path

    main_py = Path(__file__).resolve().parents[2] / "main.py"
    if main_py.is_file():
        return [sys.executable, str(main_py)]
    return [sys.executable, "-m", "agentic_orchestration.cli.main"]


@dataclass
class LiveRun:
    """One run this server started, and everything its output has said so far."""

    run_id: str
    goal: str
    workflow: str | None
    backend: str | None
    created_at: str
    pid: int = 0
    status: str = "starting"
    exit_code: int | None = None
    error: str | None = None
    cancel_requested: bool = False
    total_steps: int | None = None
    folder: Path | None = None
    plan: list[dict[str, Any]] | None = None
    events: list[dict[str, Any]] = field(default_factory=list)
    log_tail: collections.deque[str] = field(
        default_factory=lambda: collections.deque(maxlen=LOG_TAIL_LINES))
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = field(
        default_factory=list, repr=False)

    @property
    def done(self) -> bool:
        return self.status in FINAL

    def summary(self) -> dict[str, Any]:
        return {"run_id": self.run_id, "session_id": self.run_id, "goal": self.goal,
                "status": self.status, "backend": self.backend, "workflow": self.workflow,
                "created_at": self.created_at, "exit_code": self.exit_code,
                "error": self.error, "step_count": self.total_steps,
                "cancel_requested": self.cancel_requested, "live": not self.done}

    # -- events ---------------------------------------------------------------------------
    def add_event(self, event: dict[str, Any]) -> None:
        """Append ``event`` (it gets ``id``, 1-based, and ``t``, epoch seconds) and wake
        every reader waiting for one."""
        with self._lock:
            event = {**event, "id": len(self.events) + 1, "t": time.time()}
            self.events.append(event)
            waiters, self._waiters = self._waiters, []
        for loop, ready in waiters:
            try:
                loop.call_soon_threadsafe(ready.set)
            except RuntimeError:  # that reader's loop is closed: nobody waits any more
                pass

    def events_after(self, after: int) -> list[dict[str, Any]]:
        with self._lock:
            return self.events[max(0, after):]

    async def next_events(self, after: int, *, timeout: float) -> list[dict[str, Any]]:
        """Events after id ``after``; waits up to ``timeout`` s for one (``[]`` if none).

        Returns at once when the run is over, so a reader can tell it has everything.
        """
        loop = asyncio.get_running_loop()
        with self._lock:
            if len(self.events) > after or self.done:
                return self.events[max(0, after):]
            ready = asyncio.Event()
            self._waiters.append((loop, ready))
        try:
            await asyncio.wait_for(ready.wait(), timeout)
        except TimeoutError:
            return []
        return self.events_after(after)


class RunManager:
    """Starts runs as child processes and keeps what they said (see module docstring).

    Args:
        command: The program before the run's flags; default ``python main.py``.
        env: Extra environment for every run (on top of this process's).
        state_dir: Where each run gets its folder (events, log); default
            ``<AGENTIC_SESSIONS_PATH>/web-runs``.
    """

    def __init__(self, *, command: Sequence[str] | None = None,
                 env: dict[str, str] | None = None,
                 state_dir: Path | str | None = None) -> None:
        self.command = list(command) if command is not None else default_command()
        self.env = dict(env or {})
        self._state_dir = Path(state_dir) if state_dir is not None else None
        self._runs: dict[str, LiveRun] = {}
        self._procs: dict[str, subprocess.Popen[str]] = {}
        self._followers: dict[str, threading.Thread] = {}
        self._lock = threading.Lock()

    # -- starting -------------------------------------------------------------------------
    def argv(self, run_id: str, *, goal: str, workflow: str | None,
             backend: str | None) -> list[str]:
        """The child's command line (goal last, after ``--``: a goal may start with ``-``)."""
        args = [*self.command, "--run-id", run_id]
        if backend:
            args += ["--execution-backend", backend]
        if workflow:
            args += ["--workflow", workflow]
        return [*args, "--", goal] if goal else args

    def start(self, *, goal: str, workflow: str | None = None,
              backend: str | None = None) -> LiveRun:
        from agentic_orchestration.orchestration.backends.base import new_run_id, utc_now

        run = LiveRun(run_id=new_run_id(), goal=goal, workflow=workflow, backend=backend,
                      created_at=utc_now())
        self.prune_folders()
        run.folder = self.state_dir() / run.run_id
        run.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        env = {**os.environ, **self.env, "PYTHONUNBUFFERED": "1",
               EVENTS_ENV: str(run.folder / "events.jsonl")}
        if backend == "subprocess" and "AGENTIC_SUBPROCESS_WORKERS" not in env:
            # Picking "subprocess" on the page means worker processes (without the
            # variable the CLI runs that backend in-process).
            env["AGENTIC_SUBPROCESS_WORKERS"] = "1"
        proc = _spawn(self.argv(run.run_id, goal=goal, workflow=workflow, backend=backend),
                      env)
        run.pid = proc.pid
        follower = threading.Thread(target=self._follow, args=(run, proc),
                                    name=f"web-run-{run.run_id}", daemon=True)
        with self._lock:
            self._runs[run.run_id] = run
            self._procs[run.run_id] = proc
            self._followers[run.run_id] = follower
        logger.info("run %s started as pid %s", run.run_id, proc.pid)
        follower.start()
        return run

    def state_dir(self) -> Path:
        if self._state_dir is None:
            from agentic_orchestration.sessions.orchestrator_session import sessions_dir

            self._state_dir = sessions_dir() / "web-runs"
        return self._state_dir

    def prune_folders(self, keep: int = RUN_FOLDERS_KEPT) -> list[str]:
        """Remove the folders of finished runs beyond the newest ``keep`` (by last change),
        so ``web-runs`` does not grow with every run; a live run's folder always stays.
        Returns the run ids removed."""
        import shutil

        with self._lock:
            live = {run_id for run_id, run in self._runs.items() if not run.done}
        try:
            folders = [p for p in self.state_dir().iterdir() if p.is_dir()]
        except FileNotFoundError:
            return []
        folders.sort(key=lambda p: p.stat().st_mtime, reverse=True)
        removed = [p for p in folders[keep:] if p.name not in live]
        for folder in removed:
            shutil.rmtree(folder, ignore_errors=True)
        if removed:
            logger.info("removed %d old web run folders", len(removed))
        return [p.name for p in removed]

    # -- reading --------------------------------------------------------------------------
    def _follow(self, run: LiveRun, proc: subprocess.Popen[str]) -> None:
        """Follow ``events.jsonl`` until the child has exited and its output is read."""
        assert run.folder is not None
        wake = threading.Event()
        # O_APPEND: each line is one write, so stdout's and stderr's readers never mix.
        log = os.open(run.folder / "output.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        readers = [threading.Thread(target=self._read_output, args=(run, stream, log, wake),
                                    name=f"web-{name}-{run.run_id}", daemon=True)
                   for name, stream in (("stdout", proc.stdout), ("stderr", proc.stderr))]
        for reader in readers:
            reader.start()
        path, offset = run.folder / "events.jsonl", 0
        try:
            while True:
                wake.wait(POLL_SECONDS)
                wake.clear()
                exited = proc.poll() is not None and not any(r.is_alive() for r in readers)
                events, offset = read_events(path, offset=offset)
                for event in events:
                    self._take(run, event)
                if exited:
                    break
        finally:
            with contextlib.suppress(OSError):
                os.close(log)
        self._finish(run, proc.wait())

    @staticmethod
    def _take(run: LiveRun, event: dict[str, Any]) -> None:
        """One event from the child's file, masked again (the child masked it with its own
        environment; this server may know other secrets), as the page gets it."""
        event = redact_obj({k: v for k, v in event.items() if k not in ("v", "seq")})
        event["t_emit"] = event.pop("t", None)
        kind = event.get("kind")
        if kind == "run_started":
            run.status, run.total_steps = "running", event.get("total")
            run.backend = event.get("backend") or run.backend
        elif kind == "plan":
            run.plan = event.get("steps")
        run.add_event(event)

    @staticmethod
    def _read_output(run: LiveRun, stream: IO[str] | None, log: int,
                     wake: threading.Event) -> None:
        """stdout or stderr: into the run's log and tail; ``error:`` is the run's error."""
        assert stream is not None
        for raw in stream:
            line = redact_text(raw.rstrip("\n"))
            if line.startswith(_PROGRESS):
                wake.set()  # its event is in the file already
            run.log_tail.append(line)
            if line.startswith("error: "):
                run.error = line[len("error: "):]
            with contextlib.suppress(OSError):
                os.write(log, (line + "\n").encode("utf-8", "replace"))
        wake.set()

    def _finish(self, run: LiveRun, exit_code: int) -> None:
        """Final status: the session's when it has one, else from the exit code."""
        record = _sessions.get_record(run.run_id)
        status = (record or {}).get("status")
        if status not in FINAL:
            if exit_code == 0:
                status = "ok"
            elif exit_code in (EXIT_INTERRUPTED, -signal.SIGTERM, -signal.SIGINT):
                status = "cancelled" if run.cancel_requested else "interrupted"
            else:
                status = "failed"
        run.exit_code = exit_code
        if record and record.get("error") and not run.error:
            run.error = record["error"]
        run.status = status
        logger.info("run %s ended: %s (exit %s)", run.run_id, status, exit_code)
        run.add_event({"kind": "exit", "status": status, "exit_code": exit_code,
                       "error": run.error})

    # -- asking ---------------------------------------------------------------------------
    def get(self, run_id: str) -> LiveRun | None:
        with self._lock:
            return self._runs.get(run_id)

    def runs(self) -> list[LiveRun]:
        """Runs this server started, newest first."""
        with self._lock:
            return sorted(self._runs.values(), key=lambda r: r.created_at, reverse=True)

    def cancel(self, run_id: str) -> bool:
        """Ask the run to cancel (SIGUSR1); False when it is not running any more."""
        run = self.get(run_id)
        proc = self._procs.get(run_id)
        if run is None or proc is None or run.done or proc.poll() is not None:
            return False
        first = not run.cancel_requested
        run.cancel_requested = True
        try:
            os.kill(proc.pid, signal.SIGUSR1)
        except ProcessLookupError:
            return False
        if first:
            run.add_event({"kind": "cancel_requested"})
        logger.info("run %s: cancel sent (pid %s)", run_id, proc.pid)
        return True

    def shutdown(self, *, grace: float = 10.0) -> None:
        """Cancel every running child, SIGTERM what is left after ``grace`` seconds, and
        return once each run's final status is known (idempotent)."""
        with self._lock:
            procs = [(rid, p) for rid, p in self._procs.items() if p.poll() is None]
            followers = [self._followers[rid] for rid, _ in procs]
        for run_id, _ in procs:
            self.cancel(run_id)
        deadline = time.monotonic() + grace
        for _, proc in procs:
            try:
                proc.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.terminate()
                try:
                    proc.wait(5)
                except subprocess.TimeoutExpired:
                    proc.kill()
        for follower in followers:
            follower.join(10)


def _spawn(argv: list[str], env: dict[str, str]) -> subprocess.Popen[str]:
    """Start ``argv`` with SIGUSR1 blocked (the mask survives fork and exec; the CLI
    unblocks it once its handler is in place, and a pending cancel is delivered then)."""
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR1})
    try:
        return subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True, encoding="utf-8", errors="replace", bufsize=1, env=env,
            start_new_session=True)
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)
