"""The warm worker "zygote": pays for ``import crewai`` once, then forks one child per step.

Why: a cold worker pays 4-6 s for ``import crewai`` plus 0.6-1.1 s for the ~530 modules the
first kickoff imports lazily (openai resources, httpcore, h11, a few crewai internals). A
child forked from a process that already imported all of them starts its kickoff at once
(platform-notes.md, "Per-step cost of CrewAI"). Forking is only safe while this process has
ONE thread and has never run a kickoff (CrewAI and HTTP-client threads hang a forked child),
so the zygote only imports, never runs agent code itself, and checks its thread count before
every fork.

Pre-forked spares: what does not depend on the step is taken off its critical path. The
zygote keeps ``--spares N`` children forked ahead, each set up (own session, signals, stdin)
and primed (``_warm_prime.prime_child``: a canned kickoff, so the real step is not its
process's first) and then blocked on its own socket until a spec arrives; handing one out
is a write on that socket, and the next spare is forked while the step runs. With
``--spares 0`` a child is forked when the request arrives, as before. Either way each child
runs exactly one step and exits; crash containment and the per-step log are unchanged. Each
child keeps CrewAI's own storage in a private folder (``_warm_process``), so neither a
spare's warm-up nor a parallel step contends with a running step for CrewAI's database.

Protocol: JSON lines, requests on stdin, replies on the original stdout (fd 1 is pointed at
stderr so that a stray ``print`` in an imported module cannot corrupt the channel):

* ``{"ready": true, "pid": P, "preloaded": N, "threads": T, "seconds": S, "spares": N,
  "primed": B, "storage": D}`` once, after the imports (``D``: the children's CrewAI
  storage root, removed by the launcher too in case the zygote is killed); or
  ``{"error": "..."}`` and exit 1 when the target cannot be imported.
* request ``{"spec": ..., "run_id": ..., "step_id": ..., "log": ...}`` ->
  ``{"pid": P}`` as soon as a child has the request (``{"error": "..."}`` for a bad
  request), then ``{"pid": P, "exit": E, "maxrss_kb": K, "marks": {...}}`` when it ended.
  ``E`` is the code the child reported just before ``_exit`` (so its teardown is not
  waited for), or ``os.waitstatus_to_exitcode`` when it died without reporting (negative:
  killed by that signal). ``marks`` are ``time.monotonic()`` stamps of the step's phases
  (``mark``), comparable across processes; benchmarks read them.
* EOF on stdin (the coordinator closed it, or died): children still running are killed,
  since nobody is left to read their results, and the zygote exits 0.
* SIGTERM to the zygote: it is passed on to the running children (each writes an
  interrupted ``result.json`` that the coordinator retries), spares are killed, the
  running children's exits are reported, stragglers are killed after
  ``TERM_GRACE_SECONDS``, and the zygote exits 0.

Run as ``python -m agentic_orchestration.orchestration.backends._warm_worker
[--target module:function] [--no-preload] [--spares N] [--no-prime]``; ``--target`` lets
tests fork something other than ``execute_step_main`` (same signature: ``(spec_path, *,
run_id, step_id) -> int``).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import select
import signal
import socket
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from agentic_orchestration._signals import sigterm_interrupts
from agentic_orchestration.errors import Terminated
from agentic_orchestration.orchestration.backends._warm_child import run_child, send
from agentic_orchestration.orchestration.backends._warm_process import (
    PRELOAD_MODULES,
    StepTarget,
    kill_step_group,
    make_storage_root,
    pidfd_of,
    preload,
    remove_child_storage,
    resolve_target,
)

logger = logging.getLogger(__name__)

# Re-exported: the launchers and tests import these from here.
__all__ = ["DEFAULT_TARGET", "PRELOAD_MODULES", "Zygote", "kill_step_group", "main",
           "preload", "resolve_target"]

DEFAULT_TARGET = "agentic_orchestration.orchestration.execute_step:execute_step_main"
#: Seconds running steps get to write their interrupted result.json when the zygote is
#: sent SIGTERM, before they are killed.
TERM_GRACE_SECONDS = 10.0

@dataclass
class _Child:
    """A forked child: a spare until ``request`` is set, then a running step."""

    pid: int
    conn: int  # the zygote's end of the child's socket pair
    pidfd: int | None  # readable once the child ended; None where pidfds are missing
    request: dict[str, Any] | None = None
    ready: bool = False
    reported: bool = False
    buffer: bytes = b""
    marks: dict[str, float] = field(default_factory=dict)


class Zygote:
    """The request loop: hand a request to a spare (or fork), report each step's end,
    keep ``spares`` children ready, exit on stdin EOF."""

    def __init__(self, target: StepTarget, *, in_fd: int, chan: int, spares: int = 0,
                 prime: bool = False, storage_root: str | None = None) -> None:
        self.target = target
        self.storage_root = storage_root  # children's private CrewAI storage (_warm_process)
        self.in_fd = in_fd
        self.chan = chan
        self.spares_wanted = spares
        self.prime = prime
        self.spares: list[_Child] = []  # oldest first
        #: pid -> running step's child
        self.children: dict[int, _Child] = {}

    def serve(self, ready: dict[str, Any] | None = None) -> int:
        """Fork the first spares, then say ``ready`` (a launch right after it finds its
        spare forked), then serve requests until stdin's EOF or SIGTERM."""
        buffer = b""
        try:
            self.refill()
            if ready is not None:
                send(self.chan, ready)
            while True:
                everyone = [*self.spares, *self.children.values()]
                fds = [self.in_fd, *(c.conn for c in everyone if c.conn >= 0),
                       *(c.pidfd for c in everyone if c.pidfd is not None)]
                polling = any(c.pidfd is None for c in everyone)
                readable = set(select.select(fds, [], [], 0.05 if polling else None)[0])
                for child in everyone:
                    if child.conn in readable:
                        self._read_child(child)
                self._reap()
                if self.in_fd in readable:
                    chunk = os.read(self.in_fd, 65536)
                    if not chunk:
                        break
                    buffer += chunk
                    while b"\n" in buffer:
                        line, buffer = buffer.split(b"\n", 1)
                        if line.strip():
                            self._handle(line)
                self.refill()
        except BrokenPipeError:
            logger.warning("warm worker: the coordinator stopped reading; shutting down")
        except Terminated:
            self._terminate_children()
        self._shutdown()
        return 0

    def _terminate_children(self, grace: float = TERM_GRACE_SECONDS) -> None:
        """SIGTERM (the zygote is being stopped): pass it on to each running step, which
        writes an interrupted result.json (``worker_retry``), and report their ends; spares
        and what still runs after ``grace`` seconds are killed by ``_shutdown``."""
        logger.warning("warm worker: SIGTERM; stopping %d step process(es)", len(self.children))
        for pid in self.children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        while self.children and time.monotonic() < deadline:
            try:
                for child in list(self.children.values()):
                    self._read_child(child, block=False)
                self._reap()
            except BrokenPipeError:  # nobody reads the exits any more; still wait
                pass
            time.sleep(0.05)

    def _handle(self, line: bytes) -> None:
        received = time.monotonic()
        try:
            request = json.loads(line)
            if not isinstance(request, dict):
                raise ValueError("not a JSON object")
            missing = [k for k in ("spec", "run_id", "step_id", "log") if k not in request]
            if missing:
                raise ValueError(f"request lacks {missing}")
        except ValueError as exc:
            send(self.chan, {"error": f"bad request: {exc}"})
            return
        child = None
        while self.spares and child is None:
            spare = self.spares.pop(0)  # the oldest: primed, or closest to it
            try:
                send(spare.conn, request)
                child = spare
            except OSError:  # it died while waiting (killed from outside): the next one
                self._discard(spare)
        if child is None:
            child = self._fork(request)
            if child is None:
                return
        child.request = request
        child.marks["zygote_request"] = received
        self.children[child.pid] = child
        send(self.chan, {"pid": child.pid})

    def _fork(self, request: dict[str, Any] | None) -> _Child | None:
        """Fork a child: a spare (``request`` None) or one that runs ``request`` at once."""
        if threading.active_count() != 1:
            # A thread here means an import started one; a child forked now may hang.
            logger.warning("warm worker: %d threads alive before fork (%s); the child may hang",
                           threading.active_count(),
                           [t.name for t in threading.enumerate()])
        for stream in (sys.stdout, sys.stderr):
            stream.flush()  # or the child would write the zygote's buffered text again
        ours, theirs = (s.detach() for s in socket.socketpair())  # close-on-exec both
        forked_at = time.monotonic()
        try:
            pid = os.fork()
        except OSError as exc:  # out of processes or memory: the coordinator can go cold
            os.close(ours)
            os.close(theirs)
            if request is not None:
                send(self.chan, {"error": f"fork failed: {exc}"})
            else:
                logger.warning("warm worker: cannot fork a spare: %s", exc)
            return None
        if pid == 0:
            everyone = [*self.spares, *self.children.values()]
            inherited = [self.chan, ours, *(c.conn for c in everyone if c.conn >= 0),
                         *(c.pidfd for c in everyone if c.pidfd is not None)]
            if self.in_fd > 2:  # fd 0 is replaced by /dev/null in the child anyway
                inherited.append(self.in_fd)
            run_child(self.target, theirs, inherited, prime=self.prime, request=request,
                      storage_root=self.storage_root)
        os.close(theirs)
        child = _Child(pid, ours, pidfd_of(pid))
        child.marks["zygote_fork"] = forked_at
        return child

    def refill(self) -> None:
        """Fork spares up to the wanted number, one still priming at a time (priming is a
        kickoff's worth of CPU: several at once would slow the step that is running)."""
        while len(self.spares) < self.spares_wanted:
            if self.prime and any(not s.ready for s in self.spares):
                return
            spare = self._fork(None)
            if spare is None:
                return
            self.spares.append(spare)

    def _read_child(self, child: _Child, *, block: bool = True) -> None:
        """A spare's ``ready`` or a step's ``done`` line (reported to the coordinator now)."""
        if child.conn < 0:
            return
        if not block and not select.select([child.conn], [], [], 0)[0]:
            return
        try:
            chunk = os.read(child.conn, 65536)
        except OSError:
            chunk = b""
        if not chunk:  # the child is gone (or exiting): its pidfd tells the rest
            os.close(child.conn)
            child.conn = -1
            return
        *lines, child.buffer = (child.buffer + chunk).split(b"\n")
        for line in filter(None, lines):
            message = json.loads(line)
            if message.get("ready"):
                child.ready = True
            elif "done" in message and child.request is not None and not child.reported:
                child.reported = True
                marks = {**child.marks, **message.get("marks", {})}
                send(self.chan, {"pid": child.pid, "exit": int(message["done"]),
                                  "maxrss_kb": message.get("maxrss_kb"), "marks": marks})

    def _reap(self) -> None:
        for child in [*self.spares, *self.children.values()]:
            wpid, status, usage = os.wait4(child.pid, os.WNOHANG)
            if wpid != child.pid:
                continue
            if not child.reported:  # its "done" may have arrived after select() returned
                self._read_child(child, block=False)
            self._close(child)
            remove_child_storage(self.storage_root, child.pid)
            if child.request is None:  # a spare that never got a step
                logger.warning("warm worker: spare process %s ended before any step (%s)",
                               child.pid, os.waitstatus_to_exitcode(status))
                self.spares.remove(child)
                continue
            del self.children[child.pid]
            if not child.reported:  # died without saying: a crash, a signal
                send(self.chan, {"pid": child.pid, "exit": os.waitstatus_to_exitcode(status),
                                  "maxrss_kb": usage.ru_maxrss, "marks": child.marks})

    def _discard(self, child: _Child) -> None:
        kill_step_group(child.pid)
        os.waitpid(child.pid, 0)
        self._close(child)
        remove_child_storage(self.storage_root, child.pid)

    @staticmethod
    def _close(child: _Child) -> None:
        if child.conn >= 0:
            os.close(child.conn)
            child.conn = -1
        if child.pidfd is not None:
            os.close(child.pidfd)
            child.pidfd = None

    def _shutdown(self) -> None:
        for spare in self.spares:
            self._discard(spare)
        self.spares.clear()
        for pid, child in self.children.items():
            logger.warning("warm worker: killing step process %s (coordinator gone)", pid)
            self._discard(child)
        self.children.clear()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="_warm_worker", description=__doc__.splitlines()[0])
    parser.add_argument("--target", default=DEFAULT_TARGET, help="module:function to fork")
    parser.add_argument("--no-preload", action="store_true",
                        help="skip importing crewai and its lazy modules (tests only)")
    parser.add_argument("--spares", type=int, default=1,
                        help="children kept forked ahead (0: fork when a request arrives)")
    parser.add_argument("--no-prime", action="store_true",
                        help="no warm-up in the zygote or the spares (implied by --no-preload)")
    args = parser.parse_args(argv)

    chan = os.dup(1)
    os.dup2(2, 1)
    from agentic_orchestration import settings
    from agentic_orchestration.log import configure_logging

    configure_logging()
    settings.quiet_crewai_network()  # children inherit the environment
    started = time.perf_counter()
    prime = not (args.no_preload or args.no_prime)
    try:
        count = 0 if args.no_preload else preload()
        target = resolve_target(args.target)
    except Exception as exc:
        logger.exception("warm worker: start-up failed")
        send(chan, {"error": f"warm worker start-up failed: {type(exc).__name__}: {exc}"})
        return 1
    if prime:
        from agentic_orchestration.orchestration.backends._warm_prime import prime_zygote

        logger.debug("warm worker: primed %s", prime_zygote())
    storage_root = make_storage_root()
    ready = {"ready": True, "pid": os.getpid(), "preloaded": count,
             "threads": threading.active_count(),
             "seconds": round(time.perf_counter() - started, 3),
             "spares": max(args.spares, 0), "primed": prime, "storage": storage_root}
    try:
        with sigterm_interrupts():
            return Zygote(target, in_fd=0, chan=chan, spares=max(args.spares, 0), prime=prime,
                          storage_root=storage_root).serve(ready)
    finally:
        remove_child_storage(storage_root)


if __name__ == "__main__":
    sys.exit(main())
