"""Is the process that owns a ``running`` session still there?

A run killed with SIGKILL (or by the OOM killer, or a power cut) never gets to write its
final status: its session stays ``running``. Each record therefore carries the coordinator's
``pid``, ``host`` and the process start time (``pid_start``, clock ticks since boot, from
``/proc/<pid>/stat``; None where there is no ``/proc``). A reader on the same host decides:

- the pid does not exist, or exists with another start time (the pid was reused): the run
  is gone, mark it ``interrupted``;
- otherwise it is still running (or, on another host, we cannot tell: left as it is).

The start time is what makes pid reuse safe: without it a busy machine could hand the dead
run's pid to an unrelated process and keep the session "running" forever.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

__all__ = ["current_process", "process_alive"]


def _proc_stat(pid: int) -> tuple[str, int] | None:
    """(state, start time in clock ticks) from ``/proc/<pid>/stat``, None if unreadable."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) is in parentheses and may contain spaces or ')'.
    fields = text[text.rfind(")") + 2:].split()
    try:
        return fields[0], int(fields[19])  # fields 3 and 22 of the line
    except (IndexError, ValueError):
        return None


def _start_ticks(pid: int) -> int | None:
    stat = _proc_stat(pid)
    return None if stat is None else stat[1]


def current_process() -> tuple[int, str, int | None]:
    """``(pid, host, pid_start)`` of this process, recorded in a running session."""
    pid = os.getpid()
    return pid, socket.gethostname(), _start_ticks(pid)


def process_alive(pid: int, pid_start: int | None) -> bool:
    """Whether ``pid`` is alive here and (when known) is the same process that started."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else: compare start times below
        pass
    stat = _proc_stat(pid)
    if stat is None:  # no /proc here (not Linux), or the process went away meanwhile
        return pid_start is None and not Path("/proc/self").exists()
    state, ticks = stat
    if state in ("Z", "X"):  # killed, not yet reaped by its parent: it will never write
        return False
    return pid_start is None or ticks == pid_start
