"""Process-level pieces of the warm worker: what the zygote loads before it forks, each
step child's private CrewAI storage, and stopping a step's process group.

Kept apart from ``_warm_worker`` (the zygote's request loop) and ``_warm_child`` (what runs
in a child) because the launchers use them too (``kill_step_group``) and because none of it
is the loop's logic.

Private CrewAI storage: CrewAI keeps a "latest kickoff" SQLite database under
``~/.local/share/<cwd name>/`` (``CREWAI_STORAGE_DIR`` names the folder), shared by every
process of the user and guarded by a cross-process file lock polled every 250 ms; each
kickoff initializes, clears and writes it, three commits, each an fsync on disk. A step child
and the spare priming next to it took turns on that lock, and a step waited for those
fsyncs. Each warm child instead gets its own folder (``CREWAI_STORAGE_DIR`` set to an
absolute path, which CrewAI uses as the folder itself) under a root the zygote makes on
``/dev/shm`` when it can (tmpfs: fsync is free) and removes with its children. The
database only serves ``crewai replay`` of the process's latest kickoff, which a one-step
child never does; a step also no longer sees what earlier steps left there (isolation).
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import os
import shutil
import signal
import tempfile
from collections.abc import Callable
from typing import Any

logger = logging.getLogger(__name__)

#: Name prefix of the children's CrewAI storage root (the launcher checks it before removal).
STORAGE_PREFIX = "agentic-warm-crewai-"

__all__ = [
    "PRELOAD_MODULES", "STORAGE_PREFIX", "StepTarget", "child_storage", "kill_step_group",
    "make_storage_root", "pidfd_of", "preload", "remove_child_storage", "resolve_target",
    "sweep_storage_roots",
]

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
    # anyio's asyncio backend: imported when an async httpx client is closed (CrewAI closes
    # an LLM's clients after its kickoff, sometimes only in the next one): ~11 ms, 10 modules.
    "anyio._backends._asyncio",
    # The spares' canned warm-up responder (http.server): imported by each spare otherwise.
    "agentic_orchestration.providers.openai_http",
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


def pidfd_of(pid: int) -> int | None:
    """A pidfd for ``pid`` (readable once it ended), or None on an old kernel."""
    try:
        return os.pidfd_open(pid)
    except (AttributeError, OSError):  # old kernel: serve() falls back to polling
        return None


def make_storage_root() -> str | None:
    """A private (0700) folder for the children's CrewAI storage: on ``/dev/shm`` when it
    is a writable folder, else in the temp dir; None (CrewAI's default) when neither works.

    The name carries this zygote's pid, so a later zygote removes the roots of zygotes that
    are gone (``sweep_storage_roots``): with the zygote and its coordinator both SIGKILLed
    nobody else would, and a root on ``/dev/shm`` holds memory until reboot."""
    # mkdtemp: a fresh 0700 folder with an unguessable name, safe in a shared folder.
    for parent in ("/dev/shm", None):  # noqa: S108
        if parent is not None and not (os.path.isdir(parent) and os.access(parent, os.W_OK)):
            continue
        sweep_storage_roots(parent or tempfile.gettempdir())
        try:
            return tempfile.mkdtemp(prefix=f"{STORAGE_PREFIX}{os.getpid()}-", dir=parent)
        except OSError as exc:
            logger.debug("warm worker: no CrewAI storage root in %s: %s", parent, exc)
    return None


def sweep_storage_roots(parent: str) -> list[str]:
    """Remove this user's storage roots in ``parent`` whose zygote (the pid in the name) no
    longer runs; a root whose pid is alive, or whose name has none, is left. Returns them."""
    removed = []
    with contextlib.suppress(OSError), os.scandir(parent) as entries:
        for entry in entries:
            pid = entry.name[len(STORAGE_PREFIX):].split("-", 1)[0]
            if not (entry.name.startswith(STORAGE_PREFIX) and pid.isdigit()):
                continue
            try:
                if entry.stat(follow_symlinks=False).st_uid != os.getuid():
                    continue
                os.kill(int(pid), 0)
            except ProcessLookupError:
                shutil.rmtree(entry.path, ignore_errors=True)
                removed.append(entry.path)
            except OSError:  # alive under another user, or unreadable: not ours to judge
                continue
    if removed:
        logger.info("warm worker: removed %d CrewAI storage roots of gone zygotes",
                    len(removed))
    return removed


def child_storage(root: str | None) -> None:
    """In a child, before anything builds a crew: point CrewAI at ``root/<pid>``."""
    if root is None:
        return
    folder = os.path.join(root, str(os.getpid()))
    try:
        os.mkdir(folder, 0o700)
    except OSError as exc:
        logger.warning("warm worker: CrewAI storage stays shared: %s", exc)
        return
    os.environ["CREWAI_STORAGE_DIR"] = folder


def remove_child_storage(root: str | None, pid: int | None = None) -> None:
    """In the zygote: remove a reaped child's folder (``pid``), or the whole root."""
    if root is not None:
        shutil.rmtree(root if pid is None else os.path.join(root, str(pid)),
                      ignore_errors=True)
