"""``JobHandle``: one step Job, watched until it ends (see ``kubernetes_runner``).

Two watches per Job, each in a daemon thread: its pods (the worker container's exit code,
node and times; why it cannot start) and the Job itself (deleted from outside, deadline
exceeded). Each lists first, watches from the list's ``resourceVersion``, resumes from the
last version it saw when the server ends the stream, lists again on ``410 Gone``, and
retries a dropped or refused connection for the launcher's ``api_retry_seconds`` before
the step is reported lost with "Kubernetes API unreachable". The first verdict
(``_kubernetes_status``) ends the step; ``wait`` only waits on an event, so the
coordinator has the exit within milliseconds of the watch event.

The watch alone would add most of a second after the worker is done: the worker's
interpreter teardown, then the 1.20 kubelet notices the exit on its next relist (every
second) before the pod's status changes. So a third thread looks for the attempt's
``result.json`` on the run store (the coordinator clears it before each attempt; the worker
writes it atomically as its last act) and ends the step when it appears, as the warm
launcher's child reports its exit before its teardown. The ``k8s`` block then takes the
exit code and end time the worker wrote; the pod's log is still copied whole (followed until
the container exits).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import math
import os
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agentic_orchestration.errors import BackendError
from agentic_orchestration.orchestration.backends._kubernetes_job import CONTAINER
from agentic_orchestration.orchestration.backends._kubernetes_status import (
    container_status,
    job_verdict,
    pending_pod,
    pod_is_idle,
    pod_record,
    pod_verdict,
)
from agentic_orchestration.orchestration.backends.base import K8sInfo, StepSpec
from agentic_orchestration.orchestration.backends.launcher import StepExit, StepHandle
from agentic_orchestration.orchestration.backends.subprocess_runner import tail_log
from agentic_orchestration.orchestration.run_store import RESULT
from agentic_orchestration.redaction import redact_text

if TYPE_CHECKING:
    from agentic_orchestration.orchestration.backends.kubernetes_runner import (
        KubernetesLauncher,
    )

logger = logging.getLogger(__name__)

__all__ = ["CONNECT_SECONDS", "JobHandle", "api_message"]

#: Seconds to connect; a request's read timeout is longer (a watch's: its own plus this).
CONNECT_SECONDS = 5.0
#: Server-side timeout of one watch request (then it is resumed from its last version).
_WATCH_SECONDS = 60
#: Bytes of the pod log copied to worker.log.
_LOG_BYTES = 2_000_000
#: How often the run store is checked for the attempt's result.json (a stat).
_RESULT_POLL_SECONDS = 0.02
#: A result.json whose step started this long before the Job was created is not its own.
_CLOCK_SKEW_SECONDS = 1.0


def api_message(exc: Any) -> str:
    """The API's own message from an ``ApiException`` (its JSON body), else its reason."""
    with contextlib.suppress(TypeError, ValueError, AttributeError):
        message = json.loads(exc.body).get("message")
        if message:
            return str(message)
    return f"{exc.status} {exc.reason}".strip()


class JobHandle(StepHandle):
    """One step Job; ``wait`` returns once a watch saw how it ended."""

    def __init__(self, launcher: KubernetesLauncher, name: str, spec: StepSpec,
                 log_path: Path) -> None:
        self.ref = name
        self.log_path = log_path
        self._launcher = launcher
        self._spec = spec
        self._namespace = launcher.config.namespace
        self._lock = threading.Lock()
        self._done = threading.Event()
        self._stopped = threading.Event()
        self._exit: StepExit | None = None
        self._finished = False  # the container ended: nothing left to stop
        self._terminating = False
        self._pod: Any = None
        self._info: dict[str, Any] = {"job_name": name, "namespace": self._namespace}
        self._log_lock = threading.Lock()
        self._log_saved = False
        self._watches: list[Any] = []
        self._extra = {"run_id": spec.run_id, "step_id": spec.step_id, "job": name}
        self._early = False  # ended by result.json before the container exited
        self._created = time.time()
        self._log_thread: threading.Thread | None = None
        for kind in ("pod", "job"):
            threading.Thread(target=self._watch, args=(kind,), daemon=True,
                             name=f"watch-{kind}-{name}").start()
        if log_path is not None:
            threading.Thread(target=self._await_result, args=(log_path.parent / RESULT,),
                             daemon=True, name=f"result-{name}").start()

    # -- the seam ----------------------------------------------------------------------------

    def wait(self, timeout: float | None) -> StepExit | None:
        return self._exit if self._done.wait(timeout) else None

    def terminate(self) -> None:
        """Delete the Job (Foreground) unless its container already ended; wait until gone."""
        with self._lock:
            if self._finished:
                return
            self._terminating = True
        grace = 30.0
        try:
            self._launcher.delete_job(self.ref)
            self._await_gone(grace + 15.0)
        except BackendError as exc:
            logger.error("cannot delete Job %s: %s", self.ref, exc, extra=self._extra)
        logger.info("run %s step %s: Job %s deleted", self._spec.run_id, self._spec.step_id,
                    self.ref, extra=self._extra)
        self._settle(StepExit("lost", detail=f"Job {self.ref} deleted by the coordinator"))

    def log_tail(self, lines: int = 5) -> str:
        self._save_log()
        return tail_log(self.log_path, lines) if self.log_path else ""

    # -- watching ----------------------------------------------------------------------------

    def _watch(self, kind: str) -> None:
        from kubernetes import watch
        from kubernetes.client.exceptions import ApiException

        launcher = self._launcher
        if kind == "pod":
            fn, selector = launcher.core.list_namespaced_pod, {"label_selector":
                                                              f"job-name={self.ref}"}
        else:
            fn, selector = launcher.batch.list_namespaced_job, {"field_selector":
                                                               f"metadata.name={self.ref}"}
        version: str | None = None
        failing_since: float | None = None
        while not self._stopped.is_set():
            try:
                if version is None:
                    listed = fn(self._namespace, **selector,
                                _request_timeout=(CONNECT_SECONDS, 30.0))
                    version = listed.metadata.resource_version
                    failing_since = None
                    if kind == "job" and not listed.items:
                        self._observe_job("DELETED", None)
                    for item in listed.items:
                        self._observe(kind, "ADDED", item)
                seconds = self._watch_seconds()
                stream = watch.Watch()
                self._watches.append(stream)
                for event in stream.stream(fn, self._namespace, **selector,
                                           resource_version=version, timeout_seconds=seconds,
                                           allow_watch_bookmarks=True,
                                           _request_timeout=(CONNECT_SECONDS, seconds + 15)):
                    version = stream.resource_version or version
                    failing_since = None
                    if event["type"] != "BOOKMARK":
                        self._observe(kind, event["type"], event["object"])
                    if self._stopped.is_set():
                        return
                    if kind == "pod" and self._watch_seconds() < seconds:
                        break  # a pod now waits on a timeout: resume with a shorter watch
                failing_since = None
                if kind == "pod" and self._pod is not None:
                    self._observe("pod", "RECHECK", self._pod)  # a pending pod's timeout
            except ApiException as exc:
                if exc.status == 410:  # expired: list again, watch from there
                    version = None
                    continue
                if exc.status in (401, 403):
                    self._settle(StepExit("lost", permanent=True, detail=(
                        f"forbidden: cannot watch {kind}s in namespace {self._namespace}: "
                        f"{api_message(exc)}")))
                    return
                failing_since = self._retry_or_give_up(exc, failing_since)
            except Exception as exc:  # a dropped connection, a read timeout, DNS...
                if self._stopped.is_set():
                    return
                failing_since = self._retry_or_give_up(exc, failing_since)

    def _await_result(self, path: Path) -> None:
        """End the step when the worker's ``result.json`` appears (see the module doc)."""
        while not self._stopped.wait(_RESULT_POLL_SECONDS):
            if not path.exists():
                continue
            try:
                result = json.loads(path.read_text())
                code = int(result["exit_code"])
                timing = result.get("timing") or {}
                began = datetime.fromisoformat(timing["started_at"]).timestamp()
            except (OSError, ValueError, KeyError, TypeError) as exc:  # not this attempt's
                logger.debug("unreadable %s: %s", path, exc)
                return
            if began < self._created - _CLOCK_SKEW_SECONDS:
                continue  # an earlier attempt's worker, late: the watch will tell
            with self._lock:
                if self._done.is_set() or self._terminating:
                    return
                self._finished = self._early = True
                self._info.setdefault("exit_code", code)
                self._info.setdefault("finished_at", timing.get("finished_at") or "")
                if not self._info.get("started_at"):
                    self._info["started_at"] = timing.get("started_at") or ""
            self._settle(StepExit("exited", exit_code=code))
            return

    def _retry_or_give_up(self, exc: BaseException, since: float | None) -> float | None:
        now = time.monotonic()
        since = since or now
        if now - since > self._launcher.api_retry_seconds:
            self._settle(StepExit("lost", detail=(
                f"Kubernetes API unreachable for {now - since:.0f}s while watching Job "
                f"{self.ref}: {redact_text(str(exc))[:300]}")))
        else:
            logger.debug("watch of %s interrupted (%s); resuming", self.ref, exc)
            self._stopped.wait(min(2.0, 0.2 + (now - since) / 4))
        return since

    def _watch_seconds(self) -> int:
        """Short while a pod waits on a timeout (so it is re-checked), else the default."""
        pod = self._pod
        if pod is None or not pending_pod(pod):
            return _WATCH_SECONDS
        created = pod.metadata.creation_timestamp
        age = time.time() - created.timestamp() if created is not None else 0.0
        left = self._launcher.config.schedule_timeout_seconds - age
        return max(1, min(_WATCH_SECONDS, math.ceil(left) + 1))

    def _observe(self, kind: str, event: str, obj: Any) -> None:
        if kind == "job":
            self._observe_job(event, obj)
            return
        self._pod = obj
        self._record_pod(obj)
        verdict = pod_verdict(obj, deleted=event == "DELETED",
                              schedule_timeout=self._launcher.config.schedule_timeout_seconds)
        if verdict is not None:
            status = container_status(obj)
            if status is not None and status.state and status.state.terminated is not None:
                self._finished = True
            self._settle(verdict)

    def _observe_job(self, event: str, job: Any) -> None:
        gone = event == "DELETED" or job is None or job.metadata.deletion_timestamp is not None
        if gone:
            if not self._terminating:
                self._settle(StepExit("lost", detail=(
                    f"Job {self.ref} was deleted from outside the coordinator")))
            return
        verdict = job_verdict(job)
        if verdict is None:
            return
        if verdict.reason != "timeout":  # the pod says more (exit code): read it once
            with contextlib.suppress(Exception):
                pods = self._launcher.core.list_namespaced_pod(
                    self._namespace, label_selector=f"job-name={self.ref}",
                    _request_timeout=(CONNECT_SECONDS, 10.0))
                for pod in pods.items:
                    self._observe("pod", "MODIFIED", pod)
            if self._done.is_set():
                return
        self._finished = True
        self._settle(verdict)

    def _record_pod(self, pod: Any) -> None:
        self._info.update(pod_record(pod, self._info))

    def _settle(self, outcome: StepExit) -> None:
        with self._lock:
            if self._done.is_set():
                return
            self._exit = dataclasses.replace(outcome, k8s=K8sInfo(**self._info))
            self._done.set()
        self._stopped.set()
        for stream in list(self._watches):
            with contextlib.suppress(Exception):
                stream.stop()
                response = getattr(stream, "_resp", None)  # unblock a thread in a read
                if response is not None:
                    response.close()
        log = logger.info if outcome.reason == "exited" and outcome.exit_code == 0 else \
            logger.warning
        log("run %s step %s: Job %s ended: %s%s%s", self._spec.run_id, self._spec.step_id,
            self.ref, outcome.reason,
            f" (exit code {outcome.exit_code})" if outcome.exit_code is not None else "",
            f": {outcome.detail}" if outcome.detail else "", extra=self._extra)
        if self._finished:
            self._log_thread = threading.Thread(target=self._save_log, daemon=True,
                                                name=f"log-{self.ref}")
            self._log_thread.start()

    def flush_log(self, timeout: float) -> None:
        """Wait (at most ``timeout``) for the pod log's copy to ``worker.log`` to finish."""
        thread = self._log_thread
        if thread is not None:
            thread.join(timeout)

    def _await_gone(self, seconds: float) -> None:
        """Until the Job is gone (Foreground: after its pods), at most ``seconds``.

        A pod whose worker has exited, or never started, is removed at once (grace 0): there
        is no process left to stop gracefully, and waiting on the kubelet would cost about
        10 s after an exit (its status sync) and 50 s for a pod stuck on a missing image
        (measured on 1.20). A running worker keeps its grace period (SIGTERM, then its
        interrupted ``result.json``).
        """
        from kubernetes.client.exceptions import ApiException

        deadline = time.monotonic() + seconds
        forced: set[str] = set()
        while time.monotonic() < deadline:
            try:
                self._launcher.batch.read_namespaced_job(
                    self.ref, self._namespace, _request_timeout=(CONNECT_SECONDS, 10.0))
            except ApiException as exc:
                if exc.status == 404:
                    return
            except Exception as exc:  # unreachable for a moment: try until the deadline
                logger.debug("cannot read Job %s: %s", self.ref, exc)
            self._remove_idle_pods(forced)
            time.sleep(0.2)
        logger.warning("Job %s still being deleted after %.0fs", self.ref, seconds,
                       extra=self._extra)

    def _remove_idle_pods(self, forced: set[str]) -> None:
        """Delete with grace 0 this Job's pods that run no container (exited or never
        started), each once; without the right (``pods: delete``) just wait."""
        core = self._launcher.core
        try:
            pods = core.list_namespaced_pod(self._namespace,
                                            label_selector=f"job-name={self.ref}",
                                            _request_timeout=(CONNECT_SECONDS, 10.0)).items
        except Exception as exc:
            logger.debug("cannot list the pods of Job %s: %s", self.ref, exc)
            return
        for pod in pods:
            name = pod.metadata.name
            if name in forced or not pod_is_idle(pod):
                continue
            forced.add(name)
            self._save_log_of(pod)
            try:
                core.delete_namespaced_pod(name, self._namespace, grace_period_seconds=0,
                                           _request_timeout=(CONNECT_SECONDS, 10.0))
            except Exception as exc:  # gone already, or not allowed: the kubelet will do
                logger.debug("cannot remove pod %s of Job %s: %s", name, self.ref, exc)

    def _save_log_of(self, pod: Any) -> None:
        """Copy an exited worker's log before its pod is removed (once)."""
        status = container_status(pod)
        if status is not None and status.state is not None and \
                status.state.terminated is not None:
            self._info.setdefault("pod_name", pod.metadata.name)
            self._save_log()

    def _save_log(self) -> None:
        """Copy the pod's log, secrets masked, to ``worker.log`` in the run store (once)."""
        with self._log_lock:
            pod_name = self._info.get("pod_name")
            if self._log_saved or not pod_name or self.log_path is None:
                return
            try:  # ended by result.json: the container may still be exiting, follow it
                text = self._launcher.core.read_namespaced_pod_log(
                    pod_name, self._namespace, container=CONTAINER, limit_bytes=_LOG_BYTES,
                    follow=self._early,
                    _request_timeout=(CONNECT_SECONDS, 15.0))
            except Exception as exc:  # pod gone, API away: the log is a nicety
                logger.debug("no log for pod %s: %s", pod_name, exc)
                return
            self._log_saved = True
            fd = os.open(self.log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            with os.fdopen(fd, "a") as log:
                log.write(redact_text(text or ""))
