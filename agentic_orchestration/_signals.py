"""SIGTERM handled like Ctrl-C, in the coordinator and in every step worker.

Kubernetes and ``docker stop`` end a process with SIGTERM, then SIGKILL after a grace
period. Python's default for SIGTERM is to die at once (and a Python PID 1 in a container
ignores it entirely), which would skip the clean-up a Ctrl-C gets: kill the running
worker, keep the finished steps, record the run (coordinator) or write an interrupted
``result.json`` (worker). So while a command runs, SIGTERM raises ``Terminated``, a
``KeyboardInterrupt``, and the existing interrupt paths do the rest.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
from collections.abc import Callable, Iterator
from types import FrameType

from agentic_orchestration.errors import Terminated

logger = logging.getLogger(__name__)


class SigtermGuard:
    """What ``sigterm_interrupts`` yields: ``disarm()`` before work that must not be cut
    short (writing the result of a finished step); a SIGTERM after it is only logged."""

    def __init__(self) -> None:
        self.armed = True
        self.received = False

    def disarm(self) -> None:
        self.armed = False


@contextlib.contextmanager
def sigterm_interrupts(
    on_sigterm: Callable[[], None] | None = None,
) -> Iterator[SigtermGuard]:
    """Within the block, SIGTERM raises ``Terminated`` (once; later ones are ignored).

    Only one raise: a second SIGTERM arriving while the first one's clean-up runs would
    otherwise cut the clean-up short (and lose the session or result.json it writes).
    Outside the main thread (signals only reach it) this does nothing. The previous
    handler is restored on exit.

    Args:
        on_sigterm: Called instead of raising (in the main thread, between two bytecodes).
            A step worker uses it to write its interrupted result.json and exit at once:
            unwinding may wait minutes for CrewAI's in-flight LLM call (its event loop
            waits for the call's thread when cancelled), past a pod's grace period.
    """
    guard = SigtermGuard()
    if threading.current_thread() is not threading.main_thread():
        yield guard
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        if guard.received or not guard.armed:
            guard.received = True
            logger.warning("SIGTERM received while stopping or saving; finishing that first")
            return
        guard.received = True
        logger.warning("SIGTERM received: stopping as for Ctrl-C")
        if on_sigterm is not None:
            on_sigterm()
            return
        raise Terminated("SIGTERM")

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield guard
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextlib.contextmanager
def sigusr1_cancels(cancel: Callable[[str], None], reason: str) -> Iterator[None]:
    """Within the block, SIGUSR1 calls ``cancel(reason)``: how the web UI cancels a run.

    The web UI starts ``main.py`` as a child with SIGUSR1 blocked, so a cancel sent before
    this handler exists stays pending instead of killing the process (the default action);
    unblocking here delivers it. ``cancel`` runs in a new thread, not in the handler: a
    ``CancelToken`` takes a lock the interrupted main thread may hold. On exit the previous
    handler and mask come back (a late SIGUSR1 to a web child stays pending, harmless).
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        logger.warning("SIGUSR1 received: cancelling the run (%s)", reason)
        threading.Thread(target=cancel, args=(reason,), name="sigusr1-cancel",
                         daemon=True).start()

    previous = signal.signal(signal.SIGUSR1, handler)
    mask = signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGUSR1})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        signal.signal(signal.SIGUSR1, previous)
