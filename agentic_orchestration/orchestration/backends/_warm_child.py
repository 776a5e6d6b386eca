"""What runs in a child the zygote (``_warm_worker``) forked: set-up, warm-up, the step.

A spare child is forked ahead of its step: it detaches (own session, default SIGTERM,
stdin from /dev/null), primes itself (``prime_child``), says ``ready`` on its socket and
blocks there until the zygote writes a request. It then points stdout/stderr at the step
log, runs the target and, just before ``_exit``, writes ``{"done": code, ...}`` on the
socket so the zygote reports the end without waiting for the process teardown (about
10 ms for a 200 MB address space). A child that dies without saying so (crash, signal) is
reported from its wait status instead. A child forked for a request (no spares) skips the
spare part.

Kept apart from ``_warm_worker`` (the zygote's loop) because none of it runs in the zygote.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import random
import resource
import signal
import sys
import time
import traceback
from collections.abc import Callable
from typing import Any, NoReturn

from agentic_orchestration.orchestration.backends._warm_process import child_storage

logger = logging.getLogger(__name__)

__all__ = ["MARKS", "mark", "prime_child", "read_line", "run_child", "send"]

#: This process's phase stamps (``time.monotonic()``); a child sends them with its exit.
MARKS: dict[str, float] = {}


def mark(name: str) -> None:
    """Stamp phase ``name`` now (cheap; a tracing target calls it around step phases)."""
    MARKS[name] = time.monotonic()


def send(chan: int, message: dict[str, Any]) -> None:
    data = (json.dumps(message) + "\n").encode()
    while data:
        data = data[os.write(chan, data):]


def read_line(fd: int) -> dict[str, Any] | None:
    """One JSON line from ``fd`` (blocking); None at EOF."""
    data = b""
    while not data.endswith(b"\n"):
        chunk = os.read(fd, 65536)
        if not chunk:
            return None
        data += chunk
    return json.loads(data)


def run_child(target: Callable[..., Any], conn: int, inherited: list[int], *, prime: bool,
               request: dict[str, Any] | None, storage_root: str | None = None) -> NoReturn:
    """In a forked child: detach, take its private CrewAI storage under ``storage_root``
    (``_warm_process.child_storage``), (as a spare) prime and wait for the request, point
    stdout/stderr at the step log, run, report the exit code on ``conn``, ``_exit``.

    ``os._exit`` because the zygote's atexit handlers and buffers are not the child's to run.
    """
    code = 1
    try:
        # The zygote's SIGTERM handler is not the step's: until execute_step_main installs
        # its own (interrupted result.json), SIGTERM ends the child as usual.
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        os.setsid()  # own process group: the coordinator kills the step with killpg
        for fd in inherited:  # the reply channel, other children's sockets and pidfds
            os.close(fd)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)  # never read the zygote's request pipe
        if null != 0:
            os.close(null)
        random.seed()  # every child would otherwise draw the same "random" numbers
        MARKS.clear()
        mark("child_started")
        child_storage(storage_root)  # before any crew is built, the warm-up's included
        if request is None:  # a spare: get ready, then wait for a step
            if prime:
                prime_child()
            mark("child_ready")
            send(conn, {"ready": True})
            request = read_line(conn)
            if request is None:  # the zygote is shutting down: never had a step
                os._exit(0)
        mark("spec_received")
        log = os.open(request["log"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        os.dup2(log, 1)
        os.dup2(log, 2)
        os.close(log)
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
        mark("child_done")
        with contextlib.suppress(Exception):  # the zygote reports the exit from this
            send(conn, {"done": code & 0xFF, "marks": MARKS,
                         "maxrss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss})
        os._exit(code & 0xFF)


def prime_child() -> float:
    """In a spare child: a canned kickoff so the real step is not its process's first.

    Returns the seconds it took; a failure is logged and the step simply pays the cost.
    """
    began = time.perf_counter()
    try:
        from agentic_orchestration.orchestration.backends._warm_prime import (
            CANNED_ANSWER,
            canned_spec,
        )
        from agentic_orchestration.orchestration.backends.base import StepSpec
        from agentic_orchestration.orchestration.execute_step import run_step
        from agentic_orchestration.providers.openai_http import (
            OpenAICompatServer,
            chat_response,
        )

        class _Responder(OpenAICompatServer):
            model_name = "warm-up-model"
            poll_interval = 0.002  # stopping it waited 30-40 ms for the default loop

            def complete(self, request: dict[str, Any]) -> dict[str, Any]:
                return chat_response(self.model_name, CANNED_ANSWER, prompt_tokens=1,
                                     completion_tokens=2)

        with _Responder() as responder:
            result = run_step(StepSpec.model_validate(canned_spec(responder.base_url)))
        if not result.ok:
            logger.warning("warm worker: the canned warm-up step failed: %s", result.error)
    except Exception:
        logger.warning("warm worker: warm-up kickoff failed", exc_info=True)
    return time.perf_counter() - began
