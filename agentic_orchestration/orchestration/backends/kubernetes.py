"""``KubernetesExecutionBackend``: one Kubernetes Job per step (spec F5, K3).

Like the subprocess backend, this only says where a step runs (``kubernetes_runner``);
specs, ``run.json``, resume, timeouts, retries and cancel come from
``DistributedExecutionBackend`` and the coordinator. What differs:

- settings are checked when the backend is built, before planning: a missing image or PVC
  is one line and exit 2, and nothing is created;
- workers see the run store at ``AGENTIC_K8S_RUN_STORE_MOUNT`` (the specs' ``paths``), the
  coordinator at ``AGENTIC_RUN_STORE_PATH``: the same volume;
- the catalog goes through the MCP policy (``k8s_mcp_compat``): no step gets an MCP server
  its pod cannot run;
- a step saves its files on the volume (``{run_id}/_artifacts``), the pod's disk being
  gone with it; they are copied to the run's artifacts folder when the run ends;
- ``WorkflowExecutionResult.k8s_jobs`` lists every step Job, retries included.
"""

from __future__ import annotations

import dataclasses
import logging
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from agentic_orchestration import settings
from agentic_orchestration.errors import ConfigError
from agentic_orchestration.orchestration.backends.distributed import (
    DistributedExecutionBackend,
    uses_local_model,
)

if TYPE_CHECKING:
    from agentic_orchestration.catalogs import Catalog, WorkflowConfig
    from agentic_orchestration.orchestration.backends._kubernetes_job import K8sSettings
    from agentic_orchestration.orchestration.backends.base import (
        RunOptions,
        StepSpec,
        WorkflowExecutionResult,
    )
    from agentic_orchestration.orchestration.backends.launcher import StepLauncher
    from agentic_orchestration.orchestration.run_store import FileSystemRunStore

logger = logging.getLogger(__name__)

__all__ = ["ARTIFACTS_FOLDER", "KubernetesExecutionBackend"]

#: The run's files on the volume, ``{run_id}/_artifacts`` (no step id starts with ``_``).
ARTIFACTS_FOLDER = "_artifacts"


class KubernetesExecutionBackend(DistributedExecutionBackend):
    """Runs each step as a Kubernetes Job; see the module docstring.

    Args:
        launcher: Use this launcher instead (tests); settings are then not required.
        run_store: Default ``run_store_from_env()``.
        config: Default ``K8sSettings.load()`` (raises ``ConfigError`` naming the variable).
        api_client: A ``kubernetes.client.ApiClient``; default from KUBECONFIG or in-cluster.
    """

    name: ClassVar[str] = "kubernetes"

    def __init__(self, *, launcher: StepLauncher | None = None,
                 run_store: FileSystemRunStore | None = None,
                 config: K8sSettings | None = None, api_client: Any = None) -> None:
        super().__init__(launcher=launcher, run_store=run_store)
        from agentic_orchestration.orchestration.backends._kubernetes_job import K8sSettings

        self._api_client = api_client
        self.config = config
        if launcher is None:
            self.config = config or K8sSettings.load()
            if run_store is None and settings.get_path("AGENTIC_RUN_STORE_PATH") is None:
                raise ConfigError(
                    "AGENTIC_RUN_STORE_PATH is unset: on the kubernetes backend it must be "
                    "where this coordinator sees the volume of AGENTIC_K8S_RUN_STORE_PVC "
                    f"(workers mount it at {self.config.run_store_mount})")

    def worker_paths(self, store: FileSystemRunStore, options: RunOptions) -> tuple[str, str]:
        mount = self.config.run_store_mount if self.config is not None else str(store.base)
        artifacts = f"{mount}/{options.run_id}/{ARTIFACTS_FOLDER}" if options.artifacts_dir \
            else ""
        return mount, artifacts

    def make_launcher(self, specs: list[StepSpec], store: FileSystemRunStore) -> StepLauncher:
        from agentic_orchestration.orchestration.backends.kubernetes_runner import (
            KubernetesLauncher,
        )

        assert self.config is not None  # set whenever no launcher was injected
        config = self.config
        if uses_local_model(specs, may_add_local=self.may_add_local):
            from agentic_orchestration.providers.local_model import ensure_local_server

            url = ensure_local_server()  # AGENTIC_LOCAL_LLM_URL (a Service) wins
            if "//127." in url and not config.host_network:
                logger.warning("the embedded model listens on %s, which worker pods reach "
                               "only with AGENTIC_K8S_HOST_NETWORK=1; set "
                               "AGENTIC_LOCAL_LLM_URL to its Service instead", url)
            config = dataclasses.replace(config, forwarded_env={
                **config.forwarded_env, "AGENTIC_LOCAL_LLM_URL": url})
        return KubernetesLauncher(config, api_client=self._api_client,
                                  run_id=specs[0].run_id if specs else "")

    def execute_config(self, config: WorkflowConfig, *, options: RunOptions,
                       catalog: Catalog | None = None) -> WorkflowExecutionResult:
        return self._run_on_cluster(config, options=options, catalog=catalog, resume=False)

    def resume_config(self, config: WorkflowConfig, *, options: RunOptions,
                      catalog: Catalog | None = None) -> WorkflowExecutionResult:
        return self._run_on_cluster(config, options=options, catalog=catalog, resume=True)

    def _run_on_cluster(self, config: WorkflowConfig, *, options: RunOptions,
                        catalog: Catalog | None, resume: bool) -> WorkflowExecutionResult:
        from agentic_orchestration.catalogs import load_catalog
        from agentic_orchestration.orchestration.k8s_mcp_compat import catalog_for_backend
        from agentic_orchestration.orchestration.run_store import run_store_from_env

        catalog = catalog_for_backend(catalog or load_catalog(), self.name)
        result = self._run(config, options=options, catalog=catalog, resume=resume)
        store = self._store or run_store_from_env()
        result.k8s_jobs = k8s_jobs(store, result)
        if options.artifacts_dir:
            collect_artifacts(store.run_dir(options.run_id) / ARTIFACTS_FOLDER,
                              Path(options.artifacts_dir))
        return result


def k8s_jobs(store: FileSystemRunStore, result: WorkflowExecutionResult) -> list[dict[str, Any]]:
    """Every step Job of the run, attempt by attempt, from the run store's attempt files."""
    jobs = []
    for step in result.step_results:
        for number, attempt in enumerate(store.list_attempts(result.run_id, step.step_id), 1):
            if attempt.k8s is not None:
                jobs.append({"step_id": step.step_id, "attempt": number,
                             **attempt.k8s.to_dict()})
    return jobs


def collect_artifacts(source: Path, target: Path) -> None:
    """Copy the files steps saved on the volume into the run's artifacts folder."""
    if not source.is_dir():
        return
    try:
        shutil.copytree(source, target, dirs_exist_ok=True)
    except (OSError, shutil.Error) as exc:
        logger.error("cannot copy the run's files from %s to %s: %s", source, target, exc)
