"""The warm worker "zygote": pays for ``import crewai`` once, then forks one child per step.

Why: a cold worker pays 4-6 s for ``import crewai`` plus 0.6-1.1 s for the ~530 modules the
first kickoff imports lazily (openai resources, httpcore, h11, a few crewai internals). A
child forked from a process that already imported all of them starts its kickoff at once
(platform-notes.md, "Per-step cost of CrewAI"). Forking is only safe while this process has
ONE thread and has never run a kickoff (CrewAI and HTTP-client threads hang a forked child),
so the zygote only imports, never runs agent code itself, and checks its thread count before
every fork.

Protocol: JSON lines, requests on stdin, replies on the original stdout (fd 1 is pointed at
stderr so that a stray ``print`` in an imported module cannot corrupt the channel):

* ``{"ready": true, "pid": P, "preloaded": N, "threads": T, "seconds": S}`` once, after the
  imports; or ``{"error": "..."}`` and exit 1 when the target cannot be imported.
* request ``{"spec": ..., "run_id": ..., "step_id": ..., "log": ...}`` ->
  ``{"pid": P}`` as soon as the child exists (``{"error": "..."}`` for a bad request), then
  ``{"pid": P, "exit": E, "maxrss_kb": K}`` when it ended; ``E`` is
  ``os.waitstatus_to_exitcode`` (the negative signal number when the child was killed).
* EOF on stdin (the coordinator closed it, or died): children still running are killed,
  since nobody is left to read their results, and the zygote exits 0.
* SIGTERM to the zygote: it is passed on to the running children (each writes an
  interrupted ``result.json`` that the coordinator retries), their exits are reported,
  stragglers are killed after ``TERM_GRACE_SECONDS``, and the zygote exits 0.

Run as ``python -m agentic_orchestration.orchestration.backends._warm_worker
[--target module:function] [--no-preload]``; ``--target`` lets tests fork something other
than ``execute_step_main`` (same signature: ``(spec_path, *, run_id, step_id) -> int``).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import logging
import os
import random
import select
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable
from typing import Any, NoReturn

from agentic_orchestration._signals import sigterm_interrupts
from agentic_orchestration.errors import Terminated

logger = logging.getLogger(__name__)

DEFAULT_TARGET = "agentic_orchestration.orchestration.execute_step:execute_step_main"
#: Seconds running steps get to write their interrupted result.json when the zygote is
#: sent SIGTERM, before they are killed.
TERM_GRACE_SECONDS = 10.0

#: What a first kickoff imports lazily on top of ``import crewai`` (crewai 1.15.30: the
#: ``sys.modules`` difference around a one-task kickoff against ``ScriptedLLMServer``).
#: ``openai.resources`` pulls in ~480 of the ~530. Importing them starts no thread; after
#: this list a first kickoff imported no further module. Names missing in another version
#: are skipped.
PRELOAD_MODULES: tuple[str, ...] = (
    "crewai",
    "openai",
    "openai.resources",
    "openai.resources.chat.completions.messages",
    "openai.pagination",
    "openai._extras",
    "openai._event_handler",
    "openai._send_queue",
    "h11",
    "httpcore",
    "httpcore._backends.sync",
    "httpcore._backends.anyio",
    "httpcore._backends.auto",
    "httpcore._sync.connection_pool",
    "httpcore._sync.http11",
    "httpcore._sync.http_proxy",
    "httpcore._async.connection_pool",
    "crewai.hooks.contexts",
    "crewai.llms.cache",
    "crewai.skills.tool",
    "crewai.telemetry.tracing.ephemeral",
    "crewai.telemetry.tracing.gen_ai_shapes",
    "crewai.telemetry.tracing.grants",
    "crewai.telemetry.tracing.handlers",
    "crewai.telemetry.tracing.last_run",
    "crewai.telemetry.tracing.providers",
    "crewai.telemetry.tracing.semantic_conventions",
    # Our own step path (about 0.23 s per MCP step otherwise): import only, nothing runs.
    "agentic_orchestration.orchestration.runner",
    "agentic_orchestration.orchestration.backends.crewai",
    "agentic_orchestration.mcp.crewai_hotfix",
)

StepTarget = Callable[..., Any]


def preload(modules: tuple[str, ...] = PRELOAD_MODULES) -> int:
    """Import ``modules``; returns how many imported. A missing one is logged, not fatal."""
    count = 0
    for name in modules:
        try:
            importlib.import_module(name)
            count += 1
        except ImportError as exc:
            logger.debug("warm worker: cannot preload %s: %s", name, exc)
    return count


def resolve_target(spec: str) -> StepTarget:
    """``"package.module:function"`` -> the function (imported here, once, before any fork)."""
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise ValueError(f"--target must look like 'module:function', got {spec!r}")
    return getattr(importlib.import_module(module_name), attr)


def _send(chan: int, message: dict[str, Any]) -> None:
    data = (json.dumps(message) + "\n").encode()
    while data:
        data = data[os.write(chan, data):]


def _run_child(target: StepTarget, request: dict[str, Any], inherited: list[int]) -> NoReturn:
    """In the forked child: detach, point stdout/stderr at the step log, run, ``_exit``.

    ``os._exit`` because the zygote's atexit handlers and buffers are not the child's to run.
    """
    code = 1
    try:
        # The zygote's SIGTERM handler is not the step's: until execute_step_main installs
        # its own (interrupted result.json), SIGTERM ends the child as usual.
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        os.setsid()  # own process group: the coordinator kills the step with killpg
        for fd in inherited:  # the reply channel and pidfds are the zygote's business
            os.close(fd)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)  # never read the zygote's request pipe
        if null != 0:
            os.close(null)
        log = os.open(request["log"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        os.dup2(log, 1)
        os.dup2(log, 2)
        os.close(log)
        random.seed()  # every child would otherwise draw the same "random" numbers
        result = target(request["spec"], run_id=request["run_id"], step_id=request["step_id"])
        code = result if isinstance(result, int) else 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException:
        traceback.print_exc()
        code = 1
    finally:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        os._exit(code & 0xFF)


class Zygote:
    """The request loop: fork on a request, report each child's end, exit on stdin EOF."""

    def __init__(self, target: StepTarget, *, in_fd: int, chan: int) -> None:
        self.target = target
        self.in_fd = in_fd
        self.chan = chan
        #: pid -> pidfd (readable when the child ends), or None where pidfds are missing.
        self.children: dict[int, int | None] = {}

    def serve(self) -> int:
        buffer = b""
        try:
            while True:
                fds = [self.in_fd, *(fd for fd in self.children.values() if fd is not None)]
                polling = any(fd is None for fd in self.children.values())
                readable, _, _ = select.select(fds, [], [], 0.05 if polling else None)
                self._reap()
                if self.in_fd not in readable:
                    continue
                chunk = os.read(self.in_fd, 65536)
                if not chunk:
                    break
                buffer += chunk
                while b"\n" in buffer:
                    line, buffer = buffer.split(b"\n", 1)
                    if line.strip():
                        self._handle(line)
        except BrokenPipeError:
            logger.warning("warm worker: the coordinator stopped reading; shutting down")
        except Terminated:
            self._terminate_children()
        self._shutdown()
        return 0

    def _terminate_children(self, grace: float = TERM_GRACE_SECONDS) -> None:
        """SIGTERM (the zygote is being stopped): pass it on to each running step, which
        writes an interrupted result.json (``worker_retry``), and report their ends; what
        still runs after ``grace`` seconds is killed by ``_shutdown``."""
        logger.warning("warm worker: SIGTERM; stopping %d step process(es)", len(self.children))
        for pid in self.children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        while self.children and time.monotonic() < deadline:
            try:
                self._reap()
            except BrokenPipeError:  # nobody reads the exits any more; still wait
                pass
            time.sleep(0.05)

    def _handle(self, line: bytes) -> None:
        try:
            request = json.loads(line)
            if not isinstance(request, dict):
                raise ValueError("not a JSON object")
            missing = [k for k in ("spec", "run_id", "step_id", "log") if k not in request]
            if missing:
                raise ValueError(f"request lacks {missing}")
        except ValueError as exc:
            _send(self.chan, {"error": f"bad request: {exc}"})
            return
        if threading.active_count() != 1:
            # A thread here means an import started one; a child forked now may hang.
            logger.warning("warm worker: %d threads alive before fork (%s); the child may hang",
                           threading.active_count(),
                           [t.name for t in threading.enumerate()])
        for stream in (sys.stdout, sys.stderr):
            stream.flush()  # or the child would write the zygote's buffered text again
        try:
            pid = os.fork()
        except OSError as exc:  # out of processes or memory: the coordinator can go cold
            _send(self.chan, {"error": f"fork failed: {exc}"})
            return
        if pid == 0:
            inherited = [self.chan, *(fd for fd in self.children.values() if fd is not None)]
            if self.in_fd > 2:  # fd 0 is replaced by /dev/null in the child anyway
                inherited.append(self.in_fd)
            _run_child(self.target, request, inherited)
        self.children[pid] = _pidfd(pid)
        _send(self.chan, {"pid": pid})

    def _reap(self) -> None:
        for pid, fd in list(self.children.items()):
            wpid, status, usage = os.wait4(pid, os.WNOHANG)
            if wpid != pid:
                continue
            if fd is not None:
                os.close(fd)
            del self.children[pid]
            _send(self.chan, {"pid": pid, "exit": os.waitstatus_to_exitcode(status),
                              "maxrss_kb": usage.ru_maxrss})

    def _shutdown(self) -> None:
        for pid, fd in self.children.items():
            logger.warning("warm worker: killing step process %s (coordinator gone)", pid)
            kill_step_group(pid)
            os.waitpid(pid, 0)
            if fd is not None:
                os.close(fd)
        self.children.clear()


def kill_step_group(pid: int, *, unreaped: bool = True) -> None:
    """SIGKILL a step's process group (the step called setsid, so its pid is the group id).

    ``unreaped``: the step's own pid cannot have been reused yet, so it may be signalled
    alone while it has no group (between fork and setsid). Once it was reaped only the group
    is signalled: Linux does not reuse a pid that is still a process group id, so a group
    that still exists is the step's stragglers (MCP servers it started).
    """
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        if unreaped:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def _pidfd(pid: int) -> int | None:
    try:
        return os.pidfd_open(pid)
    except (AttributeError, OSError):  # old kernel: serve() falls back to polling
        return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="_warm_worker", description=__doc__.splitlines()[0])
    parser.add_argument("--target", default=DEFAULT_TARGET, help="module:function to fork")
    parser.add_argument("--no-preload", action="store_true",
                        help="skip importing crewai and its lazy modules (tests only)")
    args = parser.parse_args(argv)

    chan = os.dup(1)
    os.dup2(2, 1)
    from agentic_orchestration import settings
    from agentic_orchestration.log import configure_logging

    configure_logging()
    settings.quiet_crewai_network()  # children inherit the environment
    started = time.perf_counter()
    try:
        count = 0 if args.no_preload else preload()
        target = resolve_target(args.target)
    except Exception as exc:
        logger.exception("warm worker: start-up failed")
        _send(chan, {"error": f"warm worker start-up failed: {type(exc).__name__}: {exc}"})
        return 1
    _send(chan, {"ready": True, "pid": os.getpid(), "preloaded": count,
                 "threads": threading.active_count(),
                 "seconds": round(time.perf_counter() - started, 3)})
    with sigterm_interrupts():
        return Zygote(target, in_fd=0, chan=chan).serve()


if __name__ == "__main__":
    sys.exit(main())
