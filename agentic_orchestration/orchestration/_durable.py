"""fsync off the step's critical path: one background thread makes written files durable.

Why: an fsync costs 1-10 ms on this machine's disk (more under load), and the run store used
to pay about eight per step (spec, worker result, attempt, a second copy of the result,
each file and folder) between one step's end and the next one's start. The coordinator's
record of a step's final ``result.json`` (the one file ``--resume`` trusts) must still reach
the disk, but the next step need not wait for it: a SIGKILLed coordinator loses nothing
that is in the page cache, and a power cut within those milliseconds costs a rerun of the
step on ``--resume``, never a wrong result (writes stay atomic).

``sync_later(path)`` queues the file; ``flush()`` waits until everything queued so far is
synced (also run at interpreter exit, so a finished run's results are on disk before the
process is gone).
"""

from __future__ import annotations

import atexit
import logging
import queue
import threading
from pathlib import Path

from agentic_orchestration._fs import fsync_file

logger = logging.getLogger(__name__)

__all__ = ["flush", "sync_later"]

_queue: queue.Queue[Path | threading.Event] = queue.Queue()
_lock = threading.Lock()
_thread: threading.Thread | None = None


def sync_later(path: Path) -> None:
    """fsync ``path`` (and its folder) soon, on the background thread."""
    _ensure_thread()
    _queue.put(path)


def flush(timeout: float | None = 30.0) -> bool:
    """Wait until every file queued before this call is synced; False on timeout."""
    if _thread is None:
        return True
    done = threading.Event()
    _queue.put(done)
    return done.wait(timeout)


def _ensure_thread() -> None:
    global _thread
    with _lock:
        if _thread is None or not _thread.is_alive():
            _thread = threading.Thread(target=_run, name="run-store-fsync", daemon=True)
            _thread.start()


def _run() -> None:
    while True:
        item = _queue.get()
        if isinstance(item, threading.Event):
            item.set()
            continue
        try:
            fsync_file(item)
        except OSError as exc:  # durability is best effort here, as for folder fsyncs
            logger.warning("cannot fsync %s: %s", item, exc)


atexit.register(flush)
