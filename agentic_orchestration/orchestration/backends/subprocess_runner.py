"""Where a subprocess step runs: launch one worker, wait for it, stop it.

Order, retries and hand-off belong to the coordinator; this module only starts
``execute-step`` for one spec, checks on it and kills it. Two launchers:

* ``ColdLauncher``: a fresh ``python main.py --execute-step ...`` per step: isolated, but
  every step pays ``import crewai`` (4-6 s) and the first kickoff's lazy imports.
* ``WarmLauncher``: a long-lived zygote (``_warm_worker``) imports all that once, in the
  background, and forks one child per step. ``FallbackLauncher`` goes cold when it cannot.

Every worker gets its own session (process group) and writes stdout/stderr to a log file:
``kill()`` then takes down whatever it started (MCP servers), and Ctrl-C in the terminal
reaches only the coordinator, which kills the worker itself. ``run_step_process`` turns
whatever happened (result.json, timeout, signal, silent exit) into a ``StepResult``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import select
import signal
import subprocess
import sys
import tempfile
import threading
import time
from abc import ABC, abstractmethod
from collections import deque
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, ClassVar

from agentic_orchestration.errors import BackendError
from agentic_orchestration.orchestration.backends._warm_worker import kill_step_group
from agentic_orchestration.orchestration.backends.base import StepResult, StepTiming, utc_now
from agentic_orchestration.orchestration.execution_fallback import HINT_WORKER_RETRY

if TYPE_CHECKING:
    from agentic_orchestration.orchestration.run_store import RunStore

logger = logging.getLogger(__name__)

#: ``execute_step_main``'s exit code for a spec it cannot use: retrying cannot help.
EXIT_BAD_SPEC = 2
#: The checkout (holds ``main.py``) or site-packages: what ``-m`` needs on ``sys.path``.
_REPO = Path(__file__).resolve().parents[3]
_ZYGOTE_MODULE = "agentic_orchestration.orchestration.backends._warm_worker"
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
    main_py = _REPO / "main.py"
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
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(log_path, "ab") as log:  # the child keeps its own copy of the fd
            try:
                proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log,
                                        stderr=subprocess.STDOUT, env=self.env,
                                        start_new_session=True)
            except OSError as exc:
                raise BackendError(f"cannot start step worker {argv[0]}: {exc}") from exc
        return _PopenHandle(proc, log_path)


class ZygoteGone(BackendError):
    """The warm worker process is not serving (crashed, killed, or failed to start)."""

    recoverable = True


class WarmLauncher(StepLauncher):
    """Forks steps from a pre-started zygote; ``_warm_worker`` documents the protocol.

    Args:
        env: Environment of the zygote, hence of every step (default: this process's).
        preload: Import crewai and its lazily loaded modules in the zygote (off: tests).
        target: ``module:function`` the children run (default ``execute_step_main``).
        ready_timeout: Seconds the first ``launch`` waits for the zygote's imports.
    """

    name: ClassVar[str] = "warm"

    def __init__(self, env: dict[str, str] | None = None, preload: bool = True, *,
                 target: str | None = None, ready_timeout: float = 180.0) -> None:
        self.env = dict(os.environ if env is None else env)
        self.preload, self.target, self.ready_timeout = preload, target, ready_timeout
        self.ready_info: dict[str, Any] | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._stderr: IO[bytes] | None = None  # unlinked temp file: nothing left behind
        self._buffer, self._eof = b"", False
        self._replies: deque[dict[str, Any]] = deque()  # ready / pid / error, in order
        self._exits: dict[int, dict[str, Any]] = {}  # pid -> exit reply, whoever read it
        self._read_lock, self._launch_lock = threading.Lock(), threading.Lock()

    @property
    def zygote_pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def start(self) -> None:
        """Start the zygote and return: its imports overlap with the caller's planning."""
        if self._proc is not None:
            return
        argv = [sys.executable, "-m", _ZYGOTE_MODULE]
        argv += ["--target", self.target] if self.target else []
        argv += [] if self.preload else ["--no-preload"]
        env = dict(self.env)  # -m must find this package wherever the coordinator started
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(_REPO), env.get("PYTHONPATH")]))
        self._stderr = tempfile.TemporaryFile(prefix="agentic-warm-worker-")
        self._proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                      stderr=self._stderr, env=env, start_new_session=True)

    def close(self) -> None:
        """Close the zygote's stdin (it kills leftover steps and exits), then reap it."""
        proc, self._proc = self._proc, None
        if proc is None or proc.stdin is None or proc.stdout is None:
            return
        with contextlib.suppress(OSError):
            proc.stdin.close()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        proc.stdout.close()
        if self._stderr is not None:
            self._stderr.close()

    def launch(self, spec_path: Path, *, run_id: str, step_id: str,
               log_path: Path) -> StepHandle:
        """Fork the step (the first call waits for the zygote's imports).

        Raises:
            ZygoteGone: The zygote died or never got ready (the message has the last lines
                of its log); nothing was started.
        """
        self.wait_ready()
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with self._launch_lock:
            request = {"spec": str(spec_path), "run_id": run_id, "step_id": step_id,
                       "log": str(log_path)}
            stdin = self._proc.stdin if self._proc else None
            try:
                if stdin is None:
                    raise BrokenPipeError("zygote closed")
                stdin.write(json.dumps(request).encode() + b"\n")
                stdin.flush()
            except (BrokenPipeError, ValueError) as exc:
                raise self._gone("when asked to fork a step") from exc
            reply = self._next_reply(30.0, "when asked to fork a step")
        return _WarmHandle(self, int(reply["pid"]), log_path)

    def wait_ready(self) -> dict[str, Any]:
        """Start the zygote if needed and block until its imports are done."""
        self.start()
        with self._launch_lock:
            if self.ready_info is None:
                self.ready_info = self._next_reply(self.ready_timeout, "before it was ready")
            return self.ready_info

    def wait_exit(self, pid: int, timeout: float | None) -> dict[str, Any] | None:
        """The zygote's exit reply for ``pid``, or None after ``timeout`` seconds."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while pid not in self._exits:
            remaining = 0.5 if deadline is None else deadline - time.monotonic()
            if remaining <= 0:
                return None
            self._pump(min(remaining, 0.5))
        return self._exits.pop(pid)

    def _next_reply(self, timeout: float, doing: str) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while not self._replies:
            if time.monotonic() >= deadline:
                self.close()
                raise ZygoteGone(f"warm worker gave no answer in {timeout:g}s {doing}; stopped")
            try:
                self._pump(min(deadline - time.monotonic(), 0.5))
            except ZygoteGone:
                raise self._gone(doing) from None
        reply = self._replies.popleft()
        if "error" not in reply:
            return reply
        if self.ready_info is not None:
            raise BackendError(f"warm worker refused the step: {reply['error']}")
        raise self._gone(doing, reply["error"])

    def _pump(self, timeout: float) -> None:
        """File the reply lines that arrive within ``timeout``; any waiter may read them."""
        with self._read_lock:
            if self._eof or self._proc is None or self._proc.stdout is None:
                raise ZygoteGone("warm worker is not running")
            fd = self._proc.stdout.fileno()
            if not select.select([fd], [], [], max(timeout, 0.0))[0]:
                return
            chunk = os.read(fd, 65536)
            if not chunk:
                self._eof = True
                raise ZygoteGone("warm worker closed its output")
            *lines, self._buffer = (self._buffer + chunk).split(b"\n")
            for reply in map(json.loads, filter(None, lines)):
                if "exit" in reply:
                    self._exits[int(reply["pid"])] = reply
                else:
                    self._replies.append(reply)

    def _gone(self, doing: str, error: str = "") -> ZygoteGone:
        code = None
        if self._proc is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                code = self._proc.wait(2)
        what = ("stopped answering" if code is None else f"exited with code {code}"
                if code >= 0 else f"was killed by signal {_signal_name(-code)}")
        message = f"warm worker process (pid {self.zygote_pid}) {what} {doing}"
        message += f": {error}" if error else ""
        tail = ""
        if self._stderr is not None and not self._stderr.closed:
            self._stderr.seek(0)
            tail = _tail(self._stderr.read().decode(errors="replace"))
        return ZygoteGone(message + (f"; last log lines: {tail}" if tail else ""))


class _WarmHandle(StepHandle):
    def __init__(self, launcher: WarmLauncher, pid: int, log_path: Path) -> None:
        super().__init__(pid, log_path)
        self._launcher = launcher
        self.status: int | None = None
        self.maxrss_kb: int | None = None

    def wait(self, timeout: float | None) -> int | None:
        if self.status is not None:
            return self.status
        try:
            reply = self._launcher.wait_exit(self.pid, timeout)
        except ZygoteGone:
            # Nobody can report this child's end any more: stop it rather than orphan it.
            logger.warning("warm worker died while step process %s ran; killing it", self.pid)
            kill_step_group(self.pid, unreaped=False)
            self.status = -signal.SIGKILL
            return self.status
        if reply is None:
            return None
        self.status, self.maxrss_kb = int(reply["exit"]), reply.get("maxrss_kb")
        return self.status

    def kill(self) -> None:
        # Until the zygote reported the exit it has not reaped the child: the pid is its.
        kill_step_group(self.pid, unreaped=self.status is None)
        if self.status is None and self.wait(10.0) is None:
            logger.warning("step process %s did not report its end after SIGKILL", self.pid)


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
    return _tail(text, lines)


def _tail(text: str, lines: int = 5) -> str:
    return " | ".join(text.strip().splitlines()[-lines:])


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
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "a") as log:  # lets tail_log quote only this attempt
        log.write(f"{_LAUNCH_MARK}{utc_now()} via {launcher.name} ===\n")
    started_at, began = utc_now(), time.monotonic()
    handle = launcher.launch(Path(spec_path), run_id=run_id, step_id=step_id, log_path=log_path)
    try:
        status = handle.wait(timeout)
    except BaseException:
        logger.warning("step %s interrupted; killing worker %s", step_id, handle.pid)
        handle.kill()
        raise
    handle.kill()  # kills a timed-out worker; sweeps what a finished one left in its group
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
        error, recoverable = f"worker killed by signal {_signal_name(-status)}", True
    else:
        tail = tail_log(log_path)
        error = (f"worker exited with code {status} without writing result.json; "
                 + (f"last log lines: {tail}" if tail else "its log is empty"))
        recoverable = status != EXIT_BAD_SPEC
    logger.warning("step %s failed in worker %s: %s", step_id, handle.pid, error)
    return _failed(run_id, step_id, timing, error, recoverable=recoverable)


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return str(number)


def _failed(run_id: str, step_id: str, timing: StepTiming, error: str, *,
            recoverable: bool) -> StepResult:
    return StepResult(run_id=run_id, step_id=step_id, exit_code=1, error=error,
                      recoverable=recoverable,
                      recovery_hint=HINT_WORKER_RETRY if recoverable else None, timing=timing)
