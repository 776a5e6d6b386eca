"""How a step Job ended, read from its pod and Job objects: pure functions, no API calls.

The launcher's watches feed every pod and Job update here; the first verdict that is not
``None`` ends the step. Each way a Job can end is told apart, because each means something
different to the person reading the step's error and to the retry policy:

- the worker container exited (its code; a code above 128 is a signal, except the worker's
  own 130 for "interrupted", which comes with a result.json);
- the container cannot start: the image is not on the node (``ErrImageNeverPull``,
  ``InvalidImageName``), its Secret or config is missing (``CreateContainerConfigError``):
  permanent, running the step again cannot help;
- the image cannot be pulled, or the pod cannot be scheduled, for longer than
  ``AGENTIC_K8S_SCHEDULE_TIMEOUT_SECONDS`` (a cluster autoscaler or a registry hiccup may
  fix either, so they get that long): permanent;
- the Job's ``activeDeadlineSeconds`` passed: a timeout;
- the pod was evicted or deleted mid-step: lost (the step may run again).
"""

from __future__ import annotations

import signal
from datetime import UTC, datetime
from typing import Any

from agentic_orchestration.errors import EXIT_INTERRUPTED
from agentic_orchestration.orchestration.backends._kubernetes_job import CONTAINER
from agentic_orchestration.orchestration.backends.launcher import StepExit

__all__ = ["container_status", "job_verdict", "pod_is_idle", "pod_record", "pod_verdict"]

#: Waiting reasons that never resolve by themselves.
PERMANENT_WAITING = {
    "ErrImageNeverPull": "image not present on the node (imagePullPolicy Never)",
    "InvalidImageName": "invalid image name",
    "CreateContainerConfigError": "container configuration error (a missing Secret or key?)",
    "CreateContainerError": "the container could not be created",
}
#: Waiting reasons that may resolve (a registry back): permanent once past the timeout.
PULL_WAITING = {"ErrImagePull", "ImagePullBackOff", "RegistryUnavailable"}


def _seconds_since(when: datetime | None, now: datetime) -> float:
    if when is None:
        return 0.0
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return (now - when).total_seconds()


def container_status(pod: Any) -> Any:
    """The worker container's status in ``pod`` (a ``V1Pod``), or None."""
    statuses = (pod.status.container_statuses or []) if pod.status else []
    return next((s for s in statuses if s.name == CONTAINER), None)


def _exit_of_terminated(term: Any) -> StepExit:
    code = term.exit_code
    if term.reason == "OOMKilled":
        return StepExit("signalled", exit_code=code, signal="SIGKILL",
                        detail="OOMKilled: the container passed its memory limit")
    number = term.signal or (code - 128 if code is not None and code > 128
                             and code != EXIT_INTERRUPTED else None)
    if number:
        try:
            name = signal.Signals(number).name
        except ValueError:
            name = str(number)
        return StepExit("signalled", exit_code=code, signal=name,
                        detail=f"container {term.reason or 'terminated'}")
    return StepExit("exited", exit_code=code, detail=term.message or term.reason or "")


def pod_verdict(pod: Any, *, now: datetime | None = None,
                schedule_timeout: float = 120.0, deleted: bool = False) -> StepExit | None:
    """How the step ended according to its pod, or None while it has not.

    Args:
        pod: A ``V1Pod`` of the step's Job.
        now: The current time (UTC), for the pending timeouts.
        schedule_timeout: Seconds a pod may stay unschedulable or wait for its image.
        deleted: The watch reported the pod deleted.
    """
    now = now or datetime.now(UTC)
    status = container_status(pod)
    state = status.state if status is not None else None
    if state is not None and state.terminated is not None:
        return _exit_of_terminated(state.terminated)
    image = pod.spec.containers[0].image if pod.spec and pod.spec.containers else "?"
    if state is not None and state.waiting is not None:
        reason, message = state.waiting.reason or "", state.waiting.message or ""
        if reason in PERMANENT_WAITING:
            return StepExit("lost", permanent=True,
                            detail=f"{reason}: {PERMANENT_WAITING[reason]}: {image}"
                                   + (f" ({message})" if message else ""))
        waited = _seconds_since(pod.metadata.creation_timestamp, now)
        if reason in PULL_WAITING and waited > schedule_timeout:
            return StepExit("lost", permanent=True,
                            detail=f"{reason}: image {image} not pulled after "
                                   f"{waited:.0f}s" + (f" ({message})" if message else ""))
    phase = pod.status.phase if pod.status else None
    if phase == "Failed":  # no container result: evicted, node lost
        why = pod.status.reason or "Failed"
        return StepExit("lost", detail=f"pod {pod.metadata.name} {why}: "
                                       f"{pod.status.message or 'no message'}")
    if deleted or (pod.metadata.deletion_timestamp is not None and phase != "Succeeded"):
        return StepExit("lost", detail=f"pod {pod.metadata.name} was deleted mid-step")
    for cond in (pod.status.conditions or []) if pod.status else []:
        if (cond.type == "PodScheduled" and cond.status == "False"
                and cond.reason == "Unschedulable"):
            waited = _seconds_since(pod.metadata.creation_timestamp, now)
            if waited > schedule_timeout:
                return StepExit("lost", permanent=True,
                                detail=f"unschedulable for {waited:.0f}s: {cond.message}")
    return None


def pending_pod(pod: Any) -> bool:
    """The pod waits for something a timeout ends (scheduling, an image pull)."""
    status = container_status(pod)
    if status is not None and status.state is not None and status.state.waiting is not None:
        return (status.state.waiting.reason or "") in PULL_WAITING
    return bool(pod.status and pod.status.phase == "Pending")


def job_verdict(job: Any) -> StepExit | None:
    """How the Job ended according to its conditions, or None while it runs.

    Used when no pod says more (a deadline deletes the pod; a pod may be gone already).
    """
    for cond in (job.status.conditions or []) if job.status else []:
        if cond.status != "True":
            continue
        if cond.type == "Complete":
            return StepExit("exited", exit_code=0)
        if cond.type == "Failed":
            if cond.reason == "DeadlineExceeded":
                deadline = job.spec.active_deadline_seconds if job.spec else None
                return StepExit("timeout", detail=f"Job deadline exceeded "
                                                  f"(activeDeadlineSeconds {deadline})")
            return StepExit("lost", detail=f"Job failed: {cond.reason}: {cond.message}")
    return None


def _iso(value: Any) -> str:
    return value.isoformat() if value is not None else ""


def pod_record(pod: Any, known: dict[str, Any]) -> dict[str, Any]:
    """The ``k8s`` fields a pod update tells: pod and node names, the worker container's
    start, and its exit code and end once it ended (``known``: what was seen before)."""
    info: dict[str, Any] = {"pod_name": pod.metadata.name or known.get("pod_name", "")}
    if pod.spec is not None and pod.spec.node_name:
        info["node_name"] = pod.spec.node_name
    status = container_status(pod)
    state = status.state if status is not None else None
    if state is not None and state.running is not None:
        info["started_at"] = _iso(state.running.started_at)
    if state is not None and state.terminated is not None:
        term = state.terminated
        info.update(exit_code=term.exit_code, started_at=_iso(term.started_at),
                    finished_at=_iso(term.finished_at))
    return info


def pod_is_idle(pod: Any) -> bool:
    """The pod runs no worker and none is about to start: never scheduled, its container
    exited, or stuck waiting on an image or its config. A container being created is not
    idle: removed with grace 0 it would still start, be killed, and write an interrupted
    result.json where the step's next attempt looks for its own."""
    if pod.spec is None or not pod.spec.node_name:
        return True
    status = container_status(pod)
    state = status.state if status is not None else None
    if state is None:
        return False
    if state.terminated is not None:
        return True
    waiting = state.waiting.reason if state.waiting is not None else ""
    return waiting in _STUCK_WAITING


#: Waiting reasons of a container that will not start without a change.
_STUCK_WAITING = {"ErrImageNeverPull", "ErrImagePull", "ImagePullBackOff", "InvalidImageName",
                  "CreateContainerConfigError", "CreateContainerError"}
