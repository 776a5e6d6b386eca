"""The step Job as a pure function of (spec, settings): ``K8sSettings`` and ``build_job``.

Kept apart from the launcher so the manifest can be inspected, validated offline
(``kubernetes-validate``) and tested without a cluster, and so every bad setting is found
when the backend is built, before a run writes or creates anything: ``K8sSettings.load``
raises one ``ConfigError`` line naming the variable (exit 2).

Only fields that Kubernetes 1.20 and current releases share are used. What the Job carries
and why:

- ``backoffLimit: 0`` and ``restartPolicy: Never``: the coordinator owns retries (a failed
  attempt becomes a new Job, on the fallback provider when the hint says so);
- ``activeDeadlineSeconds`` a minute past ``AGENTIC_STEP_TIMEOUT_SECONDS``: the coordinator
  stops a step at its timeout; the deadline only bounds a Job whose coordinator died;
- ``ttlSecondsAfterFinished``: finished Jobs (and their pod logs) go away by themselves;
- labels ``run_id``, ``step_id``, ``agent_provider_id`` (sanitised, full values in
  annotations) so one selector finds a run's Jobs and pods;
- the run store PVC at ``AGENTIC_K8S_RUN_STORE_MOUNT``, ``--execute-step
  {mount}/{run_id}/{step_id}-spec.json`` (the run store's layout contract);
- secrets only by reference (``envFrom`` the Secret ``AGENTIC_K8S_ENV_SECRET``): a Job
  spec is readable by anyone who may ``get jobs``, so no value is ever copied into it.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Any

from agentic_orchestration import settings
from agentic_orchestration.errors import ConfigError
from agentic_orchestration.orchestration.run_store import SPEC_SUFFIX

if TYPE_CHECKING:
    from kubernetes.client import V1Job

    from agentic_orchestration.orchestration.backends.base import StepSpec

__all__ = ["CONTAINER", "MANAGED_BY", "K8sSettings", "build_job", "job_manifest",
           "label_value", "run_selector"]

#: The worker's container name (log reads and status lookups use it).
CONTAINER = "worker"
#: ``app.kubernetes.io/managed-by`` of every Job this tool creates.
MANAGED_BY = "agentic-orchestration"
#: Seconds the Job's deadline adds to the step timeout (the coordinator acts first).
DEADLINE_MARGIN_SECONDS = 60
#: Settings a worker reads that are not secrets: copied from the coordinator's environment.
FORWARDED = ("AGENTIC_LOG_FORMAT", "AGENTIC_LOG_LEVEL", "AGENTIC_LLM_TIMEOUT_SECONDS",
             "AGENTIC_MCP_CONNECT_TIMEOUT_SECONDS", "AGENTIC_MCP_CALL_TIMEOUT_SECONDS",
             "AGENTIC_CREWAI_TELEMETRY", "AGENTIC_LOCAL_LLM_URL")

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_QUANTITY = re.compile(r"^[+]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+|[numkMGTPE]i?|Ki)?$")
_LABEL_KEY = re.compile(r"^([a-z0-9]([-a-z0-9.]*[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]*"
                        r"[A-Za-z0-9])?$")


def _name(var: str, value: str, *, subdomain: bool = False, limit: int = 63) -> str:
    pattern = _DNS_SUBDOMAIN if subdomain else _DNS_LABEL
    if len(value) > limit or not pattern.match(value):
        kind = "DNS subdomain" if subdomain else "DNS label"
        raise ConfigError(f"{var}={value!r}: not a Kubernetes name (a {kind} of at most "
                          f"{limit} characters: lowercase letters, digits and '-')")
    return value


def _resources(value: dict[str, Any] | None) -> dict[str, dict[str, str]]:
    var = "AGENTIC_K8S_WORKER_RESOURCES"
    out: dict[str, dict[str, str]] = {}
    for key, quantities in (value or {}).items():
        if key not in ("requests", "limits") or not isinstance(quantities, dict):
            raise ConfigError(f"{var}: key {key!r} must be \"requests\" or \"limits\" holding "
                              "an object such as {\"cpu\": \"500m\"}")
        for resource, amount in quantities.items():
            text = str(amount) if isinstance(amount, int | float) else amount
            if not isinstance(text, str) or not _QUANTITY.match(text):
                raise ConfigError(f"{var}: {key}.{resource}={amount!r} is not a quantity "
                                  "(e.g. \"500m\", \"1\", \"2Gi\")")
        out[key] = {str(r): str(a) for r, a in quantities.items()}
    return out


def _selector(value: dict[str, Any] | None) -> dict[str, str]:
    var = "AGENTIC_K8S_GPU_NODE_SELECTOR"
    for key, val in (value or {}).items():
        if not isinstance(val, str) or not _LABEL_KEY.match(key):
            raise ConfigError(f"{var}: {key!r}: {val!r} is not a label key with a string value")
    return dict(value or {})


@dataclass(frozen=True)
class K8sSettings:
    """The kubernetes backend's settings, checked together (see ``load``)."""

    image: str
    run_store_pvc: str
    namespace: str = "agentic-orchestration"
    run_store_mount: str = "/run/store"
    image_pull_policy: str = "IfNotPresent"
    service_account: str = ""
    env_secret: str = ""
    job_ttl_seconds: int = 3600
    resources: dict[str, dict[str, str]] = field(default_factory=dict)
    gpu_provider_ids: tuple[str, ...] = ()
    gpu_node_selector: dict[str, str] = field(default_factory=dict)
    host_network: bool = False
    step_timeout_seconds: int = 1800
    schedule_timeout_seconds: int = 120
    #: Non-secret settings copied into every worker's environment (``FORWARDED``).
    forwarded_env: dict[str, str] = field(default_factory=dict)
    #: The uid/gid workers run as: the coordinator's own (``load``), because the run store
    #: is private to one user (folders 0700, files 0600), as with subprocess workers.
    run_as_user: int | None = None
    run_as_group: int | None = None

    @classmethod
    def load(cls, environ: Mapping[str, str] | None = None) -> K8sSettings:
        """Read and check every ``AGENTIC_K8S_*`` setting the launcher uses.

        Raises:
            ConfigError: One line naming the variable: the image or PVC unset, a name
                Kubernetes would refuse, a relative mount path, resources or a node
                selector of the wrong shape, GPU provider ids without a selector.
        """
        import os

        source = os.environ if environ is None else environ
        s = settings.load(source)
        for var in ("AGENTIC_K8S_WORKER_IMAGE", "AGENTIC_K8S_RUN_STORE_PVC"):
            if not s[var]:
                raise ConfigError(f"{var} is unset: the kubernetes backend needs it (see the "
                                  "README's Kubernetes section)")
        image = s["AGENTIC_K8S_WORKER_IMAGE"]
        if any(ch.isspace() for ch in image):
            raise ConfigError(f"AGENTIC_K8S_WORKER_IMAGE={image!r}: an image reference has "
                              "no spaces")
        mount = s["AGENTIC_K8S_RUN_STORE_MOUNT"]
        if not mount.startswith("/") or ".." in PurePosixPath(mount).parts or mount == "/":
            raise ConfigError(f"AGENTIC_K8S_RUN_STORE_MOUNT={mount!r}: must be an absolute "
                              "path in the container other than /, without '..'")
        selector = _selector(s["AGENTIC_K8S_GPU_NODE_SELECTOR"])
        if s["AGENTIC_K8S_GPU_PROVIDER_IDS"] and not selector:
            raise ConfigError("AGENTIC_K8S_GPU_PROVIDER_IDS is set but "
                              "AGENTIC_K8S_GPU_NODE_SELECTOR is empty: say which nodes "
                              "have the GPUs, e.g. {\"gpu\": \"true\"}")
        optional = {var: s[var] for var in ("AGENTIC_K8S_SERVICE_ACCOUNT",
                                            "AGENTIC_K8S_ENV_SECRET")}
        for var, value in optional.items():
            if value:
                _name(var, value, subdomain=True, limit=253)
        return cls(
            image=image,
            run_store_pvc=_name("AGENTIC_K8S_RUN_STORE_PVC", s["AGENTIC_K8S_RUN_STORE_PVC"],
                                subdomain=True, limit=253),
            namespace=_name("AGENTIC_K8S_NAMESPACE", s["AGENTIC_K8S_NAMESPACE"]),
            run_store_mount=str(PurePosixPath(mount)),
            image_pull_policy=s["AGENTIC_K8S_IMAGE_PULL_POLICY"],
            service_account=optional["AGENTIC_K8S_SERVICE_ACCOUNT"],
            env_secret=optional["AGENTIC_K8S_ENV_SECRET"],
            job_ttl_seconds=s["AGENTIC_K8S_JOB_TTL_SECONDS"],
            resources=_resources(s["AGENTIC_K8S_WORKER_RESOURCES"]),
            gpu_provider_ids=tuple(s["AGENTIC_K8S_GPU_PROVIDER_IDS"]),
            gpu_node_selector=selector,
            host_network=bool(s["AGENTIC_K8S_HOST_NETWORK"]),
            step_timeout_seconds=s["AGENTIC_STEP_TIMEOUT_SECONDS"],
            schedule_timeout_seconds=s["AGENTIC_K8S_SCHEDULE_TIMEOUT_SECONDS"],
            forwarded_env={var: source[var].strip() for var in FORWARDED
                           if source.get(var, "").strip()},
            run_as_user=os.getuid(), run_as_group=os.getgid(),
        )


def label_value(text: str) -> str:
    """``text`` as a label value: at most 63 of ``[A-Za-z0-9._-]``, alphanumeric ends."""
    cleaned = re.sub(r"[^A-Za-z0-9._-]", "_", text)[:63]
    return re.sub(r"^[^A-Za-z0-9]+|[^A-Za-z0-9]+$", "", cleaned)


def run_selector(run_id: str) -> str:
    """The label selector of every Job (and pod) of one run."""
    return f"app.kubernetes.io/managed-by={MANAGED_BY},run_id={label_value(run_id)}"


def job_name(spec: StepSpec, suffix: str | None = None) -> str:
    """``ao-{step}-{run hash}-{suffix}``: unique per attempt, at most 52 characters (the
    pods' names add 6 and a ``job-name`` label value may hold 63)."""
    step = re.sub(r"[^a-z0-9]+", "-", spec.step_id.lower()).strip("-")[:30].strip("-")
    run = hashlib.sha256(spec.run_id.encode()).hexdigest()[:6]
    return f"ao-{step or 'step'}-{run}-{suffix or secrets.token_hex(3)}"


def container_spec_path(spec: StepSpec, mount: str) -> str:
    """Where the worker finds its spec on the mounted run store (run store layout)."""
    return str(PurePosixPath(mount) / spec.run_id / f"{spec.step_id}{SPEC_SUFFIX}")


def _env(spec: StepSpec, config: K8sSettings) -> list[Any]:
    from kubernetes import client

    values = {**config.forwarded_env, "AGENTIC_RUN_STORE_PATH": config.run_store_mount,
              "PYTHONUNBUFFERED": "1"}
    if spec.agent_provider.get("type") != "local":
        values.pop("AGENTIC_LOCAL_LLM_URL", None)
    return [client.V1EnvVar(name=k, value=v) for k, v in sorted(values.items())]


def build_job(spec: StepSpec, config: K8sSettings, *, name: str | None = None) -> V1Job:
    """The Job that runs ``spec`` (pure but for a random name suffix when ``name`` is None).

    Args:
        spec: The step, as the coordinator wrote it to the run store.
        config: ``K8sSettings.load()``.
        name: The Job's name; default ``job_name(spec)`` (unique per attempt).
    """
    from kubernetes import client

    name = name or job_name(spec)
    provider = str(spec.agent_provider.get("id", ""))
    labels = {"app.kubernetes.io/name": "agentic-worker", "app.kubernetes.io/managed-by":
              MANAGED_BY, "run_id": label_value(spec.run_id),
              "step_id": label_value(spec.step_id), "agent_provider_id": label_value(provider)}
    annotations = {"agentic-orchestration/run-id": spec.run_id,
                   "agentic-orchestration/step-id": spec.step_id,
                   "agentic-orchestration/agent-provider-id": provider}
    env_from = ([client.V1EnvFromSource(secret_ref=client.V1SecretEnvSource(
        name=config.env_secret))] if config.env_secret else None)
    container = client.V1Container(
        name=CONTAINER, image=config.image, image_pull_policy=config.image_pull_policy,
        args=["--execute-step", container_spec_path(spec, config.run_store_mount),
              "--run-id", spec.run_id, "--step-id", spec.step_id],
        env=_env(spec, config), env_from=env_from,
        resources=client.V1ResourceRequirements(**config.resources) if config.resources
        else None,
        volume_mounts=[client.V1VolumeMount(name="run-store",
                                            mount_path=config.run_store_mount)],
        security_context=client.V1SecurityContext(
            allow_privilege_escalation=False,
            capabilities=client.V1Capabilities(drop=["ALL"])),
        termination_message_policy="FallbackToLogsOnError",
    )
    gpu = provider in config.gpu_provider_ids
    pod = client.V1PodSpec(
        restart_policy="Never", containers=[container],
        service_account_name=config.service_account or None,
        automount_service_account_token=False,
        host_network=config.host_network or None,
        dns_policy="ClusterFirstWithHostNet" if config.host_network else None,
        node_selector=dict(config.gpu_node_selector) if gpu else None,
        termination_grace_period_seconds=30,
        security_context=client.V1PodSecurityContext(
            run_as_user=config.run_as_user, run_as_group=config.run_as_group,
            run_as_non_root=True if config.run_as_user else None)
        if config.run_as_user is not None else None,
        volumes=[client.V1Volume(name="run-store", persistent_volume_claim=(
            client.V1PersistentVolumeClaimVolumeSource(claim_name=config.run_store_pvc)))],
    )
    return client.V1Job(
        api_version="batch/v1", kind="Job",
        metadata=client.V1ObjectMeta(name=name, namespace=config.namespace, labels=labels,
                                     annotations=annotations),
        spec=client.V1JobSpec(
            backoff_limit=0, ttl_seconds_after_finished=config.job_ttl_seconds,
            active_deadline_seconds=config.step_timeout_seconds + DEADLINE_MARGIN_SECONDS,
            template=client.V1PodTemplateSpec(
                metadata=client.V1ObjectMeta(labels=labels, annotations=annotations),
                spec=pod)),
    )


def job_manifest(job: V1Job) -> dict[str, Any]:
    """The Job as the API's JSON (camelCase, no nulls): for validation, logs and tests."""
    from kubernetes.client import ApiClient

    return ApiClient().sanitize_for_serialization(job)
