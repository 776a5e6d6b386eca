"""The warm launcher: steps forked from a long-lived process that already imported CrewAI.

A fresh interpreter pays ``import crewai`` (4-6 s here) on every step; the zygote
(``_warm_worker``) pays it once, at the start of the run, while the coordinator plans, and
then forks one child per step, each isolated in its own process with its own result.json.
It keeps ``spares`` children forked and primed ahead, so launching a step is a write to a
waiting child. The protocol is JSON lines over the zygote's stdin/stdout (see
``_warm_worker``); one reader thread here files the replies and wakes whoever waits for
them, so a step's end is seen the moment the zygote reports it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from pathlib import Path
from typing import IO, Any, ClassVar

from agentic_orchestration import settings
from agentic_orchestration.errors import BackendError, ZygoteGone
from agentic_orchestration.orchestration.backends._warm_process import (
    STORAGE_PREFIX,
    kill_step_group,
    remove_child_storage,
)
from agentic_orchestration.orchestration.backends.base import StepSpec
from agentic_orchestration.orchestration.backends.launcher import (
    StepExit,
    StepHandle,
    StepLauncher,
)
from agentic_orchestration.orchestration.backends.subprocess_runner import (
    REPO_ROOT,
    LoggedProcessHandle,
    exit_of,
    mark_launch,
    signal_name,
    tail_text,
)

logger = logging.getLogger(__name__)

_ZYGOTE_MODULE = "agentic_orchestration.orchestration.backends._warm_worker"


class WarmLauncher(StepLauncher):
    """Forks steps from a pre-started zygote; ``_warm_worker`` documents the protocol.

    Args:
        env: Environment of the zygote, hence of every step (default: this process's).
        preload: Import crewai and its lazily loaded modules in the zygote (off: tests).
        target: ``module:function`` the children run (default ``execute_step_main``).
        ready_timeout: Seconds the first ``launch`` waits for the zygote's imports.
        spares: Children kept forked and primed ahead of their step; default
            ``AGENTIC_MAX_PARALLEL_STEPS`` (as many as steps can start at once); 0 forks
            each child when its step is launched.
        prime: Warm the zygote and each spare up (``_warm_prime``); default ``preload``.
    """

    name: ClassVar[str] = "warm"

    def __init__(self, env: dict[str, str] | None = None, preload: bool = True, *,
                 target: str | None = None, ready_timeout: float = 180.0,
                 spares: int | None = None, prime: bool | None = None) -> None:
        self.env = dict(os.environ if env is None else env)
        self.preload, self.target, self.ready_timeout = preload, target, ready_timeout
        self.spares = (settings.get_int("AGENTIC_MAX_PARALLEL_STEPS", minimum=1)
                       if spares is None else max(spares, 0))
        self.prime = preload if prime is None else prime
        self.ready_info: dict[str, Any] | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._stderr: IO[bytes] | None = None  # unlinked temp file: nothing left behind
        self._reader: threading.Thread | None = None
        # Filled by the reader thread; every waiter sleeps on the condition, so an exit is
        # seen by its waiter as soon as the zygote writes it (no polling, any thread).
        self._cond = threading.Condition()
        self._eof = False
        self._replies: deque[dict[str, Any]] = deque()  # ready / pid / error, in order
        self._exits: dict[int, dict[str, Any]] = {}  # pid -> exit reply, whoever read it
        self._launch_lock = threading.Lock()

    @property
    def zygote_pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def start(self) -> None:
        """Start the zygote and return: its imports overlap with the caller's planning."""
        if self._proc is not None:
            return
        argv = [sys.executable, "-m", _ZYGOTE_MODULE, "--spares", str(self.spares)]
        argv += ["--target", self.target] if self.target else []
        argv += [] if self.preload else ["--no-preload"]
        argv += [] if self.prime else ["--no-prime"]
        env = dict(self.env)  # -m must find this package wherever the coordinator started
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
        self._stderr = tempfile.TemporaryFile(prefix="agentic-warm-worker-")
        self._proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                      stderr=self._stderr, env=env, start_new_session=True)
        self._eof = False
        self._reader = threading.Thread(target=self._read_replies, args=(self._proc,),
                                        name="warm-launcher-replies", daemon=True)
        self._reader.start()

    def close(self) -> None:
        """Close the zygote's stdin (it kills leftover steps and spares and exits), reap it."""
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
        if self._reader is not None:
            self._reader.join(5)  # it stops at the EOF the zygote's exit gave
        storage = (self.ready_info or {}).get("storage")
        if isinstance(storage, str) and Path(storage).name.startswith(STORAGE_PREFIX):
            remove_child_storage(storage)  # the zygote removes it, unless it was killed
        proc.stdout.close()
        if self._stderr is not None:
            self._stderr.close()

    def launch(self, spec: StepSpec, *, spec_path: Path, log_path: Path) -> StepHandle:
        """Hand the step to a spare child (or fork one); the first call waits for the
        zygote's imports.

        Raises:
            ZygoteGone: The zygote died or never got ready (the message has the last lines
                of its log); nothing was started.
        """
        self.wait_ready()
        mark_launch(log_path, self.name)
        launched = time.monotonic()
        with self._launch_lock:
            request = {"spec": str(spec_path), "run_id": spec.run_id,
                       "step_id": spec.step_id, "log": str(log_path)}
            stdin = self._proc.stdin if self._proc else None
            try:
                if stdin is None:
                    raise BrokenPipeError("zygote closed")
                stdin.write(json.dumps(request).encode() + b"\n")
                stdin.flush()
            except (BrokenPipeError, ValueError) as exc:
                raise self._gone("when asked to fork a step") from exc
            reply = self._next_reply(30.0, "when asked to fork a step")
        handle = _WarmHandle(self, int(reply["pid"]), log_path)
        handle.marks.update(launch=launched, launched=time.monotonic())
        return handle

    def wait_ready(self) -> dict[str, Any]:
        """Start the zygote if needed and block until its imports are done."""
        self.start()
        with self._launch_lock:
            if self.ready_info is None:
                self.ready_info = self._next_reply(self.ready_timeout, "before it was ready")
            return self.ready_info

    def wait_exit(self, pid: int, timeout: float | None) -> dict[str, Any] | None:
        """The zygote's exit reply for ``pid``, or None after ``timeout`` seconds.

        Raises:
            ZygoteGone: The zygote's output ended before it reported ``pid``'s end.
        """
        with self._cond:
            self._cond.wait_for(lambda: pid in self._exits or self._eof, timeout)
            if pid in self._exits:
                return self._exits[pid]  # kept: a terminate() and the coordinator may wait
            if self._eof:
                raise ZygoteGone("warm worker closed its output")
            return None

    def _read_replies(self, proc: subprocess.Popen[bytes]) -> None:
        """The reader thread: file every reply line and wake the waiters."""
        assert proc.stdout is not None
        fd, buffer = proc.stdout.fileno(), b""
        while True:
            try:
                chunk = os.read(fd, 65536)
            except OSError:
                chunk = b""
            noticed = time.monotonic()
            with self._cond:
                if not chunk:
                    self._eof = True
                    self._cond.notify_all()
                    return
                *lines, buffer = (buffer + chunk).split(b"\n")
                for line in filter(None, lines):
                    try:
                        reply = json.loads(line)
                    except ValueError:
                        logger.warning("warm worker sent a line that is not JSON: %.200r", line)
                        continue
                    if "exit" in reply:
                        reply["noticed"] = noticed
                        self._exits[int(reply["pid"])] = reply
                    else:
                        self._replies.append(reply)
                self._cond.notify_all()

    def _next_reply(self, timeout: float, doing: str) -> dict[str, Any]:
        with self._cond:
            self._cond.wait_for(lambda: self._replies or self._eof, timeout)
            reply = self._replies.popleft() if self._replies else None
        if reply is None:
            if not self._eof:
                self.close()
                raise ZygoteGone(f"warm worker gave no answer in {timeout:g}s {doing}; stopped")
            raise self._gone(doing)
        if "error" not in reply:
            return reply
        if self.ready_info is not None:
            raise BackendError(f"warm worker refused the step: {reply['error']}")
        raise self._gone(doing, reply["error"])

    def _gone(self, doing: str, error: str = "") -> ZygoteGone:
        code = None
        if self._proc is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                code = self._proc.wait(2)
        what = ("stopped answering" if code is None else f"exited with code {code}"
                if code >= 0 else f"was killed by signal {signal_name(-code)}")
        message = f"warm worker process (pid {self.zygote_pid}) {what} {doing}"
        message += f": {error}" if error else ""
        tail = ""
        if self._stderr is not None and not self._stderr.closed:
            self._stderr.seek(0)
            tail = tail_text(self._stderr.read().decode(errors="replace"))
        return ZygoteGone(message + (f"; last log lines: {tail}" if tail else ""))


class _WarmHandle(LoggedProcessHandle):
    def __init__(self, launcher: WarmLauncher, pid: int, log_path: Path) -> None:
        super().__init__(pid, log_path)
        self._launcher = launcher
        self.status: int | None = None
        self.maxrss_kb: int | None = None
        #: ``time.monotonic()`` stamps: the coordinator's (launch, launched, noticed,
        #: returned), the zygote's and the child's (``_warm_child.mark``); for benchmarks.
        self.marks: dict[str, float] = {}
        self._lost = ""

    def wait(self, timeout: float | None) -> StepExit | None:
        if self.status is None:
            try:
                reply = self._launcher.wait_exit(self.pid, timeout)
            except ZygoteGone:
                # Nobody can report this child's end any more: stop it rather than orphan it.
                logger.warning("warm worker died while step process %s ran; killing it",
                               self.pid)
                kill_step_group(self.pid, unreaped=False)
                self._lost = "the warm worker process died while the step ran"
                self.status = -signal.SIGKILL
            else:
                if reply is None:
                    return None
                self.status, self.maxrss_kb = int(reply["exit"]), reply.get("maxrss_kb")
                self.marks.update(reply.get("marks") or {}, noticed=reply["noticed"],
                                  returned=time.monotonic())
        if self._lost:
            return StepExit("lost", detail=self._lost)
        return exit_of(self.status)

    def terminate(self) -> None:
        with self._terminated:
            # Until the zygote reported the exit it has not reaped the child: the pid is its.
            kill_step_group(self.pid, unreaped=self.status is None)
            if self.status is None and self.wait(10.0) is None:
                logger.warning("step process %s did not report its end after SIGKILL",
                               self.pid)
            self._finish()
