"""Where a Kubernetes step runs: one Job per step attempt (spec K3.1-K3.3), watched.

Mirrors ``subprocess_runner``: order, retries, timeouts and hand-off belong to the
coordinator; ``KubernetesLauncher.launch`` creates the Job that runs ``main.py
--execute-step`` for one spec (``build_job``, a pure function of the spec and
``K8sSettings``) and returns a ``JobHandle`` whose ``ref`` is the Job's name.

Completion is seen through watches, not polling: one on the Job's pods (container exit
code, node, times) and one on the Job (deleted from outside, deadline exceeded). Each
lists first and watches from the list's ``resourceVersion``, re-watches from the last
version when the server ends the stream, lists again on ``410 Gone``, and retries a
dropped or refused connection for ``api_retry_seconds`` before reporting the API
unreachable. So a step's result is read a few milliseconds after its container exits.
How the Job ended is told apart in ``_kubernetes_status``.

``terminate`` deletes the Job with Foreground propagation (deleting only the pod would
make the Job controller start a new one, which would run the step again) and waits until
it is gone, so a worker writing its interrupted ``result.json`` on SIGTERM is done before
the coordinator reads the store. A finished step's Job is kept for
``AGENTIC_K8S_JOB_TTL_SECONDS`` (its pod log stays readable); its log is also copied,
secrets masked, to ``worker.log`` in the run store.

The official ``kubernetes`` client is imported only by this backend's modules (lazily, in
functions): other backends and ``--help`` never load it.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Any, ClassVar

from agentic_orchestration.errors import BackendError, ConfigError
from agentic_orchestration.orchestration.backends._kubernetes_handle import (
    CONNECT_SECONDS,
    JobHandle,
    api_message,
)
from agentic_orchestration.orchestration.backends._kubernetes_job import (
    K8sSettings,
    build_job,
    run_selector,
)
from agentic_orchestration.orchestration.backends.base import StepSpec
from agentic_orchestration.orchestration.backends.launcher import StepHandle, StepLauncher
from agentic_orchestration.orchestration.backends.subprocess_runner import mark_launch
from agentic_orchestration.redaction import redact_text

logger = logging.getLogger(__name__)

__all__ = ["JobHandle", "K8sSettings", "KubernetesLauncher", "api_client_from_env",
           "build_job"]

#: Statuses worth a retry: the API server overloaded or restarting.
_TRANSIENT_STATUS = {0, 429, 500, 502, 503, 504}


def api_client_from_env() -> Any:
    """An API client: in-cluster (a coordinator pod's ServiceAccount) or ``KUBECONFIG``.

    Raises:
        ConfigError: No usable configuration (one line; exit 2).
    """
    from kubernetes import client, config

    try:
        if os.environ.get("KUBERNETES_SERVICE_HOST") and not os.environ.get("KUBECONFIG"):
            configuration = client.Configuration()
            config.load_incluster_config(client_configuration=configuration)
            return client.ApiClient(configuration)
        return config.new_client_from_config(config_file=os.environ.get("KUBECONFIG") or None)
    except (config.ConfigException, OSError, ValueError) as exc:
        raise ConfigError(f"cannot configure the Kubernetes client: {exc} (set KUBECONFIG, "
                          "or run the coordinator in a pod)") from None


def _transient(exc: BaseException) -> bool:
    from kubernetes.client.exceptions import ApiException
    from urllib3.exceptions import HTTPError

    if isinstance(exc, ApiException):
        return exc.status in _TRANSIENT_STATUS
    return isinstance(exc, HTTPError | OSError)


class KubernetesLauncher(StepLauncher):
    """Creates one Job per step attempt; see the module docstring.

    Args:
        config: ``K8sSettings.load()``.
        api_client: A ``kubernetes.client.ApiClient`` (default ``api_client_from_env``).
        run_id: The run whose Jobs ``start`` clears (left by a coordinator that was killed).
        api_retry_seconds: How long a refused or dropped API connection is retried.
    """

    name: ClassVar[str] = "kubernetes"

    def __init__(self, config: K8sSettings, *, api_client: Any = None, run_id: str = "",
                 api_retry_seconds: float = 30.0) -> None:
        self.config = config
        self.run_id = run_id
        self.api_retry_seconds = api_retry_seconds
        self._api_client = api_client
        self._batch: Any = None
        self._core: Any = None
        self._handles: list[JobHandle] = []

    @property
    def batch(self) -> Any:
        self._connect()
        return self._batch

    @property
    def core(self) -> Any:
        self._connect()
        return self._core

    def _connect(self) -> None:
        if self._batch is None:
            from kubernetes import client

            self._api_client = self._api_client or api_client_from_env()
            self._batch = client.BatchV1Api(self._api_client)
            self._core = client.CoreV1Api(self._api_client)

    def call(self, what: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        """``fn(*args, **kwargs)``, retried while the API is unreachable or overloaded.

        Raises:
            BackendError: Forbidden, namespace missing, refused, or unreachable for
                ``api_retry_seconds`` (one line saying which).
            ApiException: Other statuses (404 on a read...), for the caller to judge.
        """
        from kubernetes.client.exceptions import ApiException

        deadline, delay = time.monotonic() + self.api_retry_seconds, 0.2
        kwargs.setdefault("_request_timeout", (CONNECT_SECONDS, 30.0))
        while True:
            try:
                return fn(*args, **kwargs)
            except Exception as exc:
                if not _transient(exc):
                    if isinstance(exc, ApiException) and exc.status in (401, 403):
                        raise BackendError(f"Kubernetes API refused to {what}: forbidden: "
                                           f"{api_message(exc)}") from None
                    raise
                if time.monotonic() + delay > deadline:
                    detail = api_message(exc) if isinstance(exc, ApiException) else exc
                    raise BackendError(f"Kubernetes API unreachable: cannot {what} "
                                       f"(tried for {self.api_retry_seconds:g}s): "
                                       f"{redact_text(str(detail))[:300]}") from None
                logger.debug("cannot %s yet (%s); retrying in %.1fs", what, exc, delay)
                time.sleep(delay)
                delay = min(delay * 2, 2.0)

    def close(self) -> None:
        """Let the last pod logs finish their copy to ``worker.log`` (at most 15 s in all):
        a step ended by its ``result.json`` has its log followed until its container exits.
        """
        deadline = time.monotonic() + 15.0
        for handle in self._handles:
            handle.flush_log(max(0.0, deadline - time.monotonic()))
        self._handles.clear()

    def start(self) -> None:
        """Delete this run's Jobs left by a coordinator that was killed (``--resume``)."""
        if self.run_id:
            self.delete_run_jobs(self.run_id)

    def delete_run_jobs(self, run_id: str, *, wait_seconds: float = 90.0) -> list[str]:
        """Delete (Foreground) every Job of ``run_id`` and wait until they are gone.

        Waiting matters on ``--resume``: a leftover worker still running a step writes its
        interrupted ``result.json`` on SIGTERM, which must land before the step's new
        attempt starts, not over its result. A worker blocked in an LLM call only unwinds
        when the call returns, so it may use its whole grace period (30 s) before the
        SIGKILL, and a 1.20 kubelet takes about 10 s more to release the pod: the wait
        leaves room for both on a loaded machine.

        Returns:
            The names of the Jobs deleted.
        """
        selector = run_selector(run_id)
        listed = self.call("list Jobs", self.batch.list_namespaced_job, self.config.namespace,
                           label_selector=selector)
        names = [job.metadata.name for job in listed.items]
        for name in names:
            logger.info("run %s: deleting Job %s left by an earlier coordinator", run_id, name,
                        extra={"run_id": run_id, "job": name})
            self.delete_job(name)
        deadline = time.monotonic() + wait_seconds
        while names and time.monotonic() < deadline:
            left = self.call("list Jobs", self.batch.list_namespaced_job,
                             self.config.namespace, label_selector=selector).items
            if not left:
                break
            time.sleep(0.2)
        else:
            if names:
                logger.warning("run %s: Jobs left by an earlier coordinator still being "
                               "deleted after %.0fs", run_id, wait_seconds,
                               extra={"run_id": run_id})
        return names

    def delete_job(self, name: str) -> None:
        from kubernetes import client
        from kubernetes.client.exceptions import ApiException

        try:
            self.call(f"delete Job {name}", self.batch.delete_namespaced_job, name,
                      self.config.namespace,
                      body=client.V1DeleteOptions(propagation_policy="Foreground"))
        except ApiException as exc:
            if exc.status != 404:
                raise BackendError(f"cannot delete Job {name}: {api_message(exc)}") from None

    def launch(self, spec: StepSpec, *, spec_path: Path, log_path: Path) -> StepHandle:
        from kubernetes.client.exceptions import ApiException

        job = build_job(spec, self.config)
        name, namespace = job.metadata.name, self.config.namespace
        mark_launch(log_path, f"{self.name} Job {name}")
        try:
            self.call(f"create Job {name} in namespace {namespace}",
                      self.batch.create_namespaced_job, namespace, job)
        except ApiException as exc:
            if exc.status == 404:
                raise BackendError(f"namespace {namespace!r} not found "
                                   "(AGENTIC_K8S_NAMESPACE)") from None
            if exc.status != 409:  # 409: our own earlier try got through
                raise BackendError(f"the Kubernetes API refused Job {name}: "
                                   f"{api_message(exc)}") from None
        logger.info("run %s step %s: Job %s created in namespace %s (image %s)", spec.run_id,
                    spec.step_id, name, namespace, self.config.image,
                    extra={"run_id": spec.run_id, "step_id": spec.step_id, "job": name})
        handle = JobHandle(self, name, spec, log_path)
        self._handles.append(handle)
        return handle
