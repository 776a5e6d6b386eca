"""``DistributedExecutionBackend``: what every backend with one worker per step shares.

The plan becomes step specs (``workflow_materializer``, the same catalog resolution as
in-process), ``run.json`` records the run (plan, fingerprint of the resolution, step ids),
``--resume`` checks the fingerprint, and ``StepCoordinator`` runs the steps. A subclass only
says where a step runs: ``make_launcher`` returns its ``StepLauncher``. The subprocess
backend is that plus a few lines; a Kubernetes backend is one launcher module plus a few.
"""

from __future__ import annotations

import logging
import os
from abc import abstractmethod
from typing import TYPE_CHECKING

from agentic_orchestration import settings
from agentic_orchestration.orchestration.backends.base import (
    ExecutionBackend,
    RunOptions,
    StepSpec,
    WorkflowExecutionResult,
)
from agentic_orchestration.orchestration.budget import RunBudget

if TYPE_CHECKING:
    from agentic_orchestration.catalogs import Catalog, WorkflowConfig
    from agentic_orchestration.orchestration.backends.launcher import StepLauncher
    from agentic_orchestration.orchestration.run_store import FileSystemRunStore

logger = logging.getLogger(__name__)

__all__ = ["DistributedExecutionBackend", "worker_env"]


def uses_local_model(specs: list[StepSpec], *, may_add_local: bool = False) -> bool:
    """Whether workers need the embedded model's URL: a step uses it, or (``may_add_local``,
    an iterative run, ``iterative.may_add_local_steps``) a revision may add one."""
    return may_add_local or any(spec.agent_provider.get("type") == "local" for spec in specs)


def worker_env(specs: list[StepSpec], *, may_add_local: bool = False) -> dict[str, str]:
    """The environment workers get: this process's, plus the embedded model's URL when a
    step uses it or may (the coordinator starts the model once; workers share it)."""
    env = dict(os.environ)
    if uses_local_model(specs, may_add_local=may_add_local):
        from agentic_orchestration.providers.local_model import ensure_local_server

        env["AGENTIC_LOCAL_LLM_URL"] = ensure_local_server()
    return env


class DistributedExecutionBackend(ExecutionBackend):
    """Specs, ``run.json``, resume and coordinator wiring; subclasses give the launcher.

    Args:
        launcher: Use this launcher (started and closed by the caller) instead of
            ``make_launcher`` (tests, benchmarks).
        run_store: Default ``run_store_from_env()``.
    """

    def __init__(self, *, launcher: StepLauncher | None = None,
                 run_store: FileSystemRunStore | None = None) -> None:
        self._launcher = launcher
        self._store = run_store

    #: The running run replans and a revision may add an embedded-model step (``_run``).
    may_add_local: bool = False

    @property
    def supports_distributed_steps(self) -> bool:
        return True

    @property
    def supports_resume(self) -> bool:
        return True

    @abstractmethod
    def make_launcher(self, specs: list[StepSpec], store: FileSystemRunStore) -> StepLauncher:
        """The launcher for this run's steps (started, then closed, by ``_run``)."""

    def worker_paths(self, store: FileSystemRunStore, options: RunOptions) -> tuple[str, str]:
        """The run store root and artifacts folder as a worker sees them (the specs'
        ``paths``): here the coordinator's own; a pod mounts the store elsewhere."""
        return str(store.base), options.artifacts_dir or ""

    def execute_config(
        self, config: WorkflowConfig, *, options: RunOptions, catalog: Catalog | None = None
    ) -> WorkflowExecutionResult:
        return self._run(config, options=options, catalog=catalog, resume=False)

    def resume_config(
        self, config: WorkflowConfig, *, options: RunOptions, catalog: Catalog | None = None
    ) -> WorkflowExecutionResult:
        """Continue ``options.run_id``: steps with an ok result.json are not run again."""
        return self._run(config, options=options, catalog=catalog, resume=True)

    def _run(self, config: WorkflowConfig, *, options: RunOptions, catalog: Catalog | None,
             resume: bool) -> WorkflowExecutionResult:
        from agentic_orchestration.catalogs import load_catalog
        from agentic_orchestration.mcp.resolution import check_mcp_env
        from agentic_orchestration.orchestration.run_store import (
            build_run_meta,
            run_store_from_env,
        )
        from agentic_orchestration.orchestration.step_coordinator import StepCoordinator
        from agentic_orchestration.orchestration.step_recovery import provider_recovery
        from agentic_orchestration.orchestration.workflow_materializer import (
            build_step_specs,
            step_specs_resolution_fingerprint,
        )

        catalog = catalog or load_catalog()
        # Workers inherit this environment: an unset MCP ${VAR} is exit 2 before any step
        # runs, as in-process (not a failed step in a worker).
        check_mcp_env(config, catalog, getattr(self._launcher, "env", None))
        store = self._store or run_store_from_env()
        run_id = options.run_id
        store_path, artifacts_dir = self.worker_paths(store, options)
        specs = build_step_specs(config, catalog, run_id=run_id, run_store_path=store_path,
                                 artifacts_dir=artifacts_dir)
        fingerprint = step_specs_resolution_fingerprint(specs)
        if resume:
            if store.read_run_meta(run_id).get("fingerprint") not in (None, fingerprint):
                logger.warning("run %s: the catalog resolves the plan differently than when "
                               "the run started; resuming with the current resolution", run_id)
        else:
            store.write_run_meta(run_id, build_run_meta(
                run_id, plan=config.model_dump(mode="json"), backend=self.name,
                step_ids=[spec.step_id for spec in specs], fingerprint=fingerprint,
                **({"iterative": options.replan.meta(), "revisions": options.replan.records}
                   if options.replan is not None else {})))
        reviser = None
        budget = RunBudget.from_settings()
        self.may_add_local = False
        if options.replan is not None:  # --dynamic-iterative: replan between steps
            from agentic_orchestration.orchestration.iterative import (
                may_add_local_steps,
                spec_reviser,
            )

            options.replan.budget = budget  # the replanner's tokens count too
            self.may_add_local = may_add_local_steps(options.replan)
            reviser = spec_reviser(options.replan, store=store, run_id=run_id,
                                   materialize=lambda plan: build_step_specs(
                                       plan, catalog, run_id=run_id,
                                       run_store_path=store_path, artifacts_dir=artifacts_dir))

        launcher = self._launcher or self.make_launcher(specs, store)
        launcher.start()
        try:
            coordinator = StepCoordinator(recover=provider_recovery(catalog),
                                          backend_name=self.name)
            return coordinator.run_workflow(
                specs, launcher=launcher, run_store=store, run_options=options, resume=resume,
                timeout=float(settings.get_int("AGENTIC_STEP_TIMEOUT_SECONDS", minimum=1)),
                budget=budget, reviser=reviser)
        finally:
            if self._launcher is None:
                launcher.close()
