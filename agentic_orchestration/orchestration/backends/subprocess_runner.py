"""Where a subprocess step runs: the cold launcher, the warm-or-cold fallback, log helpers.

Order, retries, timeouts and hand-off belong to the coordinator; a launcher only starts
``execute-step`` for one spec and returns a ``StepHandle`` (``launcher``) that checks on it
and terminates it. Two launchers:

* ``ColdLauncher``: a fresh ``python main.py --execute-step ...`` per step: isolated, but
  every step pays ``import crewai`` (4-6 s) and the first kickoff's lazy imports.
* ``WarmLauncher`` (``warm_launcher``): a long-lived zygote (``_warm_worker``) imports all
  that once, in the background, and forks one child per step. ``FallbackLauncher`` goes
  cold when it cannot.

Every worker gets its own session (process group) and writes stdout/stderr to a log file:
``terminate()`` then takes down whatever it started (MCP servers), and Ctrl-C in the
terminal reaches only the coordinator, which terminates the worker itself.

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
import threading
from pathlib import Path
from typing import ClassVar

from agentic_orchestration._fs import atomic_write_text
from agentic_orchestration.errors import BackendError
from agentic_orchestration.orchestration.backends._warm_worker import kill_step_group
from agentic_orchestration.orchestration.backends.base import StepSpec, utc_now
from agentic_orchestration.orchestration.backends.launcher import (
    StepExit,
    StepHandle,
    StepLauncher,
)
from agentic_orchestration.redaction import redact_text

logger = logging.getLogger(__name__)

#: The checkout (holds ``main.py``) or site-packages: what ``-m`` needs on ``sys.path``.
REPO_ROOT = Path(__file__).resolve().parents[3]
_LAUNCH_MARK = "=== launch "


def exit_of(status: int) -> StepExit:
    """A ``StepExit`` from a wait status as ``subprocess`` reports it (negative: signal)."""
    if status < 0:
        return StepExit("signalled", signal=signal_name(-status))
    return StepExit("exited", exit_code=status)


class LoggedProcessHandle(StepHandle):
    """Shared by the local launchers: the pid is the ``ref`` and the process group; the
    log is masked once the worker is gone."""

    def __init__(self, pid: int, log_path: Path) -> None:
        self.ref = str(pid)
        self.pid = pid
        self.log_path = log_path
        self._terminated = threading.Lock()

    def log_tail(self, lines: int = 5) -> str:
        return tail_log(self.log_path, lines) if self.log_path else ""

    def _finish(self) -> None:
        if self.log_path is not None:
            mask_log_file(self.log_path)


class _PopenHandle(LoggedProcessHandle):
    def __init__(self, proc: subprocess.Popen[bytes], log_path: Path) -> None:
        super().__init__(proc.pid, log_path)
        self._proc = proc

    def wait(self, timeout: float | None) -> StepExit | None:
        try:
            return exit_of(self._proc.wait(timeout))
        except subprocess.TimeoutExpired:
            return None

    def terminate(self) -> None:
        with self._terminated:
            kill_step_group(self.pid, unreaped=self._proc.returncode is None)
            self._proc.wait()
            self._finish()


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

    def launch(self, spec: StepSpec, *, spec_path: Path, log_path: Path) -> StepHandle:
        argv = [*self.command, "--execute-step", str(spec_path), "--run-id", spec.run_id,
                "--step-id", spec.step_id]
        mark_launch(log_path, self.name)
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

    def launch(self, spec: StepSpec, *, spec_path: Path, log_path: Path) -> StepHandle:
        if not self.warm_failed:
            try:
                return self.warm.launch(spec, spec_path=spec_path, log_path=log_path)
            except BackendError as exc:
                self.warm_failed = True
                logger.warning("%s; running steps in cold worker processes from now on", exc)
        return self.cold.launch(spec, spec_path=spec_path, log_path=log_path)


def mark_launch(log_path: Path, launcher_name: str) -> None:
    """Append this attempt's mark to the step's log: ``tail_log`` quotes only what follows."""
    log_path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    with os.fdopen(fd, "a") as log:
        log.write(f"{_LAUNCH_MARK}{utc_now()} via {launcher_name} ===\n")


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


def signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return str(number)
