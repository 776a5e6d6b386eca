"""The embedded model in a child process, behind a loopback front that survives its crash.

``ensure_local_server()`` starts two things, once per process (the coordinator's, or the
in-process run's):

- ``LocalModelProcess``: ``python -m agentic_orchestration.providers.local_model_server``,
  which loads the GGUF with llama.cpp and serves it on a random loopback port. Its stderr
  (with ``faulthandler``'s stack if native code crashes) goes to a log file under
  ``$XDG_STATE_HOME/agentic-orchestration/logs/`` (default ``~/.local/state/...``, 0600).
- ``LocalModelFront``: an OpenAI-compatible server in this process that forwards each
  request to the child. Its URL is what the planner, the in-process crew and every worker
  (``AGENTIC_LOCAL_LLM_URL``) use.

Why the front: when llama.cpp dies (SIGSEGV, SIGILL, OOM kill) the front is still there and
answers HTTP 503 ``embedded model process died: SIGSEGV; see <log>``. Every client, in this
process or in a worker, then sees that one line as the step's error; a 5xx is a recoverable
failure, so the provider fallback chain applies, and a run with nothing left to fall back
on ends with exit code 1 (a step failed). Forwarding costs well under a millisecond per
request on loopback against seconds of generation.

A dead model is not restarted within a run: the crashes this guards against (an instruction
the CPU lacks, a bad model file) repeat on every start, and each restart would cost a load.
A model that cannot be loaded at all (no such file, not a GGUF) is bad configuration: the
child says so and ``ensure_local_server`` raises ``ConfigError`` (exit code 2).
"""

from __future__ import annotations

import atexit
import contextlib
import http.client
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlsplit

from agentic_orchestration import settings
from agentic_orchestration.errors import AgenticError, ConfigError
from agentic_orchestration.providers.openai_http import CompletionHTTPError, OpenAICompatServer

logger = logging.getLogger(__name__)

__all__ = [
    "LocalModelFront",
    "LocalModelProcess",
    "describe_exit",
    "ensure_local_server",
    "local_model_process",
    "stop_local_server",
]

#: Log files kept in the logs folder (oldest removed at each start).
_LOGS_KEPT = 20
_SERVER_MODULE = "agentic_orchestration.providers.local_model_server"


def describe_exit(returncode: int) -> str:
    """``SIGSEGV`` for a process killed by signal 11, ``exit code 3`` for ``exit(3)``."""
    if returncode < 0:
        try:
            return signal.Signals(-returncode).name
        except ValueError:
            return f"signal {-returncode}"
    return f"exit code {returncode}"


def logs_dir() -> Path:
    """Private per-user folder for the embedded model's logs."""
    base = os.environ.get("XDG_STATE_HOME", "").strip() or "~/.local/state"
    return Path(base).expanduser() / "agentic-orchestration" / "logs"


def _open_log() -> tuple[Path, int]:
    folder = logs_dir()
    try:
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        old = sorted(folder.glob("local-model-*.log"), key=lambda p: p.stat().st_mtime)
        for stale in old[: max(0, len(old) - _LOGS_KEPT + 1)]:
            stale.unlink(missing_ok=True)
        path = folder / f"local-model-{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}.log"
        return path, os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    except OSError as exc:
        raise ConfigError(f"cannot write the embedded model's log under {folder}: "
                          f"{exc.strerror or exc} (check XDG_STATE_HOME)") from exc


class LocalModelProcess:
    """One child process serving the GGUF: started, watched, stopped.

    ``failure`` is None while the child runs (or after a requested stop) and the one-line
    reason once it died on its own.
    """

    def __init__(self) -> None:
        self.log_path: Path | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._done = threading.Event()  # READY seen, or the child has exited
        self._url: str | None = None
        self._error: str | None = None  # the child's ERROR line
        self._stopping = False
        self._phase = "while loading"

    def start(self) -> LocalModelProcess:
        self.log_path, log_fd = _open_log()
        try:
            self._proc = subprocess.Popen(
                [sys.executable, "-m", _SERVER_MODULE], stdin=subprocess.PIPE,
                stdout=subprocess.PIPE, stderr=log_fd, close_fds=True,
                # Its own session: a Ctrl-C meant for the tool must not kill the model
                # mid-step; the tool stops it (stdin EOF) when it is done.
                start_new_session=True)
        finally:
            os.close(log_fd)
        assert self._proc.stdout is not None
        threading.Thread(target=self._watch, args=(self._proc.stdout,), daemon=True,
                         name="local-model-watch").start()
        return self

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def _watch(self, stdout: IO[bytes]) -> None:
        for raw in stdout:
            line = raw.decode(errors="replace").strip()
            if line.startswith("READY "):
                self._url = line.split(" ", 1)[1]
                self._phase = "while generating"
                self._done.set()
            elif line.startswith("ERROR "):
                self._error = line.split(" ", 1)[1]
        assert self._proc is not None
        self._proc.wait()
        self._done.set()
        failure = self.failure
        if failure is not None and self._error is None:
            logger.error("%s", failure)

    def wait_ready(self, timeout: float) -> str | None:
        """The child's URL once it is ready; None when it died or ``timeout`` passed.

        Raises:
            ConfigError: the child could not load the model (its ERROR line).
        """
        self._done.wait(timeout)
        if self._error is not None:
            raise ConfigError(self._error)
        return self._url if self.failure is None and self._url else None

    @property
    def returncode(self) -> int | None:
        return self._proc.poll() if self._proc is not None else None

    @property
    def failure(self) -> str | None:
        """``embedded model process died: SIGSEGV while generating; see LOG``, or None."""
        code = self.returncode
        if code is None or self._stopping:
            return None
        return (f"embedded model process died: {describe_exit(code)} {self._phase}; "
                f"see {self.log_path}")

    def wait_exit(self, timeout: float) -> None:
        """Give a child that just broke a connection time to finish dying."""
        if self._proc is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._proc.wait(timeout)

    def stop(self, timeout: float = 5.0) -> None:
        """Close the child's stdin (it exits), then kill it if it lingers."""
        proc = self._proc
        if proc is None or proc.poll() is not None:
            return
        self._stopping = True
        with contextlib.suppress(OSError):
            assert proc.stdin is not None
            proc.stdin.close()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class LocalModelFront(OpenAICompatServer):
    """The loopback URL clients use; forwards to the child, or reports its death."""

    model_name = "local-gguf"

    def __init__(self, process: LocalModelProcess, *, host: str = "127.0.0.1") -> None:
        super().__init__(host, 0)
        self.process = process

    def complete(self, request: dict[str, Any]) -> dict[str, Any]:
        timeout = float(settings.get_int("AGENTIC_LLM_TIMEOUT_SECONDS", minimum=1))
        url = self.process.wait_ready(timeout)
        if url is None:
            raise CompletionHTTPError(503, self.process.failure
                                      or "embedded model process is not ready yet")
        body = json.dumps({k: v for k, v in request.items() if k != "stream"}).encode()
        target = urlsplit(url)
        connection = http.client.HTTPConnection(target.hostname or "127.0.0.1", target.port,
                                                timeout=timeout)
        try:
            connection.request("POST", target.path + "/chat/completions", body,
                               {"Content-Type": "application/json"})
            reply = connection.getresponse()
            status, payload = reply.status, reply.read()
        except (OSError, http.client.HTTPException) as exc:
            self.process.wait_exit(5.0)
            failure = self.process.failure
            if failure is not None:
                raise CompletionHTTPError(503, failure) from exc
            raise CompletionHTTPError(502, f"embedded model process did not answer: {exc}"
                                      ) from exc
        finally:
            connection.close()
        data = json.loads(payload or b"{}")
        if status != 200:
            message = (data.get("error") or {}).get("message") or f"HTTP {status}"
            raise CompletionHTTPError(status, message)
        return data

    def stop(self) -> None:
        super().stop()
        self.process.stop()


_front: LocalModelFront | None = None
_front_lock = threading.Lock()


def local_model_process() -> LocalModelProcess | None:
    """This process's embedded model child, if one was started (tests, ``--list-agents``)."""
    front = _front
    return front.process if front is not None else None


def ensure_local_server() -> str:
    """Base URL (ending in ``/v1``) of the embedded model, starting it if needed.

    ``AGENTIC_LOCAL_LLM_URL`` wins, so worker processes share the one model their
    coordinator started. Otherwise the child is started and its load awaited here, so the
    load does not count against the first step.

    Raises:
        ConfigError: the model cannot be found or loaded (nothing is left running).
    """
    global _front
    shared = settings.get("AGENTIC_LOCAL_LLM_URL").strip().rstrip("/")
    if shared:
        return shared if shared.endswith("/v1") else shared + "/v1"
    with _front_lock:
        if _front is None:
            process = LocalModelProcess().start()
            front = LocalModelFront(process)
            timeout = float(settings.get_int("AGENTIC_LLM_TIMEOUT_SECONDS", minimum=1))
            try:
                if process.wait_ready(timeout) is None and process.failure is None:
                    logger.warning("embedded model still loading after %.0fs", timeout)
            except AgenticError:
                front.server_close()
                process.stop()
                raise
            front.start()
            _front = front
            atexit.register(stop_local_server)
            logger.info("embedded model (pid %s) behind %s; log %s", process.pid,
                        front.base_url, process.log_path)
        return _front.base_url


def stop_local_server() -> None:
    """Stop the front and the model process (at exit; tests; the next call restarts it)."""
    global _front
    with _front_lock:
        front, _front = _front, None
    if front is not None:
        front.stop()
