"""Where a subprocess step runs: launch one worker, wait for it, stop it.

Order, retries and hand-off belong to the coordinator; this module only starts
``execute-step`` for one spec, checks on it and kills it. Two launchers:

* ``ColdLauncher``: a fresh ``python main.py --execute-step ...`` per step: isolated, but
  every step pays ``import crewai`` (4-6 s) and the first kickoff's lazy imports.
* ``WarmLauncher`` (``warm_launcher``): a long-lived zygote (``_warm_worker``) imports all
  that once, in the background, and forks one child per step. ``FallbackLauncher`` goes
  cold when it cannot.

Every worker gets its own session (process group) and writes stdout/stderr to a log file:
``kill()`` then takes down whatever it started (MCP servers), and Ctrl-C in the terminal
reaches only the coordinator, which kills the worker itself. ``run_step_process`` turns
whatever happened (result.json, timeout, signal, silent exit) into a ``StepResult``.

The log is created 0600 in the step's 0700 folder (it is part of the private run store).
What a worker or the MCP servers it started print there bypasses this process, so once the
worker has ended its log is rewritten with secrets masked (``mask_log_file``), and the tail
quoted in a failed result's ``error`` is masked too.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from abc import ABC, abstractmethod
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from agentic_orchestration._fs import atomic_write_text
from agentic_orchestration.errors import BackendError
from agentic_orchestration.orchestration.backends._warm_worker import kill_step_group
from agentic_orchestration.orchestration.backends.base import StepResult, StepTiming, utc_now
from agentic_orchestration.orchestration.execution_fallback import HINT_WORKER_RETRY
from agentic_orchestration.redaction import redact_text

if TYPE_CHECKING:
    from agentic_orchestration.orchestration.run_store import RunStore

logger = logging.getLogger(__name__)

#: ``execute_step_main``'s exit code for a spec it cannot use: retrying cannot help.
EXIT_BAD_SPEC = 2
#: The checkout (holds ``main.py``) or site-packages: what ``-m`` needs on ``sys.path``.
REPO_ROOT = Path(__file__).resolve().parents[3]
_LAUNCH_MARK = "=== launch "


class StepHandle(ABC):
    """One running worker: ``pid``, ``log_path``, ``wait`` and ``kill``."""

    def __init__(self, pid: int, log_path: Path) -> None:
        self.pid = pid
        self.log_path = log_path

    @abstractmethod
    def wait(self, timeout: float | None) -> int | None:
        """Exit status (negative signal number if killed), or None after ``timeout`` s."""

    @abstractmethod
    def kill(self) -> None:
        """SIGKILL the worker's process group and reap it. Safe to call after it ended."""


class StepLauncher(ABC):
    """Starts ``execute-step`` for one spec somewhere. ``start``/``close`` bracket a run."""

    name: ClassVar[str]

    def start(self) -> None:
        """Prepare (slow work goes to the background); must not block."""
        return None

    def close(self) -> None:
        """Release what ``start`` created."""
        return None

    @abstractmethod
    def launch(self, spec_path: Path, *, run_id: str, step_id: str,
               log_path: Path) -> StepHandle:
        """Start the step; its stdout and stderr are appended to ``log_path``."""


class _PopenHandle(StepHandle):
    def __init__(self, proc: subprocess.Popen[bytes], log_path: Path) -> None:
        super().__init__(proc.pid, log_path)
        self._proc = proc

    def wait(self, timeout: float | None) -> int | None:
        try:
            return self._proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def kill(self) -> None:
        kill_step_group(self.pid, unreaped=self._proc.returncode is None)
        self._proc.wait()


def default_worker_command() -> list[str]:
    """``python <repo>/main.py``, or the CLI module when installed without ``main.py``."""
    main_py = REPO_ROOT / "main.py"
    if main_py.is_file():
        return [sys.executable, str(main_py)]
    return [sys.executable, "-m", "agentic_orchestration.cli.main"]


class ColdLauncher(StepLauncher):
    """A new interpreter per step. ``command`` replaces ``python main.py`` (tests)."""

    name: ClassVar[str] = "cold"

    def __init__(self, command: list[str] | None = None, env: dict[str, str] | None = None):
        self.command = list(command) if command else default_worker_command()
        self.env = env

    def launch(self, spec_path: Path, *, run_id: str, step_id: str,
               log_path: Path) -> StepHandle:
        argv = [*self.command, "--execute-step", str(spec_path), "--run-id", run_id,
                "--step-id", step_id]
        log_path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        with os.fdopen(fd, "ab") as log:  # the child keeps its own copy of the fd
            try:
                proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log,
                                        stderr=subprocess.STDOUT, env=self.env,
                                        start_new_session=True)
            except OSError as exc:
                raise BackendError(f"cannot start step worker {argv[0]}: {exc}") from exc
        return _PopenHandle(proc, log_path)


class FallbackLauncher(StepLauncher):
    """Warm first; cold for this and every later step once warm failed to start one."""

    name: ClassVar[str] = "warm+cold"

    def __init__(self, warm: StepLauncher, cold: StepLauncher) -> None:
        self.warm, self.cold = warm, cold
        self.warm_failed = False

    def start(self) -> None:
        self.warm.start()
        self.cold.start()

    def close(self) -> None:
        try:
            self.warm.close()
        finally:
            self.cold.close()

    def launch(self, spec_path: Path, *, run_id: str, step_id: str,
               log_path: Path) -> StepHandle:
        if not self.warm_failed:
            try:
                return self.warm.launch(spec_path, run_id=run_id, step_id=step_id,
                                        log_path=log_path)
            except BackendError as exc:
                self.warm_failed = True
                logger.warning("%s; running steps in cold worker processes from now on", exc)
        return self.cold.launch(spec_path, run_id=run_id, step_id=step_id, log_path=log_path)


def tail_log(path: Path, lines: int = 5) -> str:
    """The last ``lines`` lines written after the latest launch mark, joined by `` | ``."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    if _LAUNCH_MARK in text:
        text = text.rsplit(_LAUNCH_MARK, 1)[1].partition("\n")[2]
    return tail_text(text, lines)


def tail_text(text: str, lines: int = 5) -> str:
    return redact_text(" | ".join(text.strip().splitlines()[-lines:]))


def mask_log_file(path: Path) -> None:
    """Rewrite a finished worker's log with secret values masked (when it holds any)."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return
    masked = redact_text(text)
    if masked != text:
        try:
            atomic_write_text(path, masked, mode=0o600)
        except OSError as exc:
            logger.warning("cannot mask secrets in %s: %s", path, exc)


def run_step_process(launcher: StepLauncher, store: RunStore, spec_path: Path, *,
                     run_id: str, step_id: str, timeout: float) -> StepResult:
    """Run one step in a worker and return its ``StepResult``, whatever became of it.

    The worker's own result.json wins (the coordinator clears the previous one before each
    attempt). Otherwise the outcome becomes a failed result: timeouts and crashes are
    recoverable (``worker_retry``), a rejected spec (exit 2) is not. If waiting is
    interrupted (KeyboardInterrupt), the worker is killed and the exception re-raised.
    Timing is measured here when the worker recorded none.
    """
    log_path = store.result_path(run_id, step_id).parent / "worker.log"
    log_path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    with os.fdopen(fd, "a") as log:  # the mark lets tail_log quote only this attempt
        log.write(f"{_LAUNCH_MARK}{utc_now()} via {launcher.name} ===\n")
    started_at, began = utc_now(), time.monotonic()
    handle = launcher.launch(Path(spec_path), run_id=run_id, step_id=step_id, log_path=log_path)
    try:
        status = handle.wait(timeout)
    except BaseException:
        logger.warning("step %s interrupted; killing worker %s", step_id, handle.pid)
        handle.kill()
        mask_log_file(log_path)
        raise
    handle.kill()  # kills a timed-out worker; sweeps what a finished one left in its group
    mask_log_file(log_path)
    timing = StepTiming(started_at=started_at, finished_at=utc_now(),
                        duration_seconds=round(time.monotonic() - began, 3))

    try:
        result = store.read_result(run_id, step_id)
    except Exception as exc:
        return _failed(run_id, step_id, timing, f"worker wrote an unusable result.json: {exc}",
                       recoverable=True)
    if result is not None:
        return result if result.timing else result.model_copy(update={"timing": timing})
    if status is None:
        error, recoverable = f"step timed out after {timeout:g}s (worker killed)", True
    elif status < 0:
        error, recoverable = f"worker killed by signal {signal_name(-status)}", True
    else:
        tail = tail_log(log_path)
        error = (f"worker exited with code {status} without writing result.json; "
                 + (f"last log lines: {tail}" if tail else "its log is empty"))
        recoverable = status != EXIT_BAD_SPEC
    logger.warning("step %s failed in worker %s: %s", step_id, handle.pid, error)
    return _failed(run_id, step_id, timing, error, recoverable=recoverable)


def signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return str(number)


def _failed(run_id: str, step_id: str, timing: StepTiming, error: str, *,
            recoverable: bool) -> StepResult:
    return StepResult(run_id=run_id, step_id=step_id, exit_code=1, error=redact_text(error),
                      recoverable=recoverable,
                      recovery_hint=HINT_WORKER_RETRY if recoverable else None, timing=timing)
