"""``SubprocessExecutionBackend``: one worker process per step (spec F4).

Order and policy belong to ``StepCoordinator`` (hand-off, retries, resume, progress); this
backend only says where a step runs: ``main.py --execute-step`` in a fresh interpreter
(cold) or a child forked from a pre-started process that already imported CrewAI (warm,
the default: ``AGENTIC_SUBPROCESS_WARM``). Steps meet through the run store
(``{run_id}/{step_id}/result.json``).

When a step uses the embedded model, the coordinator starts it once and hands workers its
URL (``AGENTIC_LOCAL_LLM_URL``), so workers do not each load the GGUF.
"""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING, ClassVar

from agentic_orchestration import settings
from agentic_orchestration.orchestration.backends.base import (
    ExecutionBackend,
    RunOptions,
    StepSpec,
    WorkflowExecutionResult,
    utc_now,
)

if TYPE_CHECKING:
    from agentic_orchestration.catalogs import Catalog, WorkflowConfig
    from agentic_orchestration.orchestration.backends.subprocess_runner import StepLauncher
    from agentic_orchestration.orchestration.run_store import FileSystemRunStore

logger = logging.getLogger(__name__)


class SubprocessExecutionBackend(ExecutionBackend):
    """Runs each step in its own worker process; see the module docstring."""

    name: ClassVar[str] = "subprocess"

    def __init__(
        self,
        *,
        launcher: StepLauncher | None = None,
        run_store: FileSystemRunStore | None = None,
    ) -> None:
        self._launcher = launcher
        self._store = run_store

    @property
    def supports_distributed_steps(self) -> bool:
        return True

    def execute_config(
        self, config: WorkflowConfig, *, options: RunOptions, catalog: Catalog | None = None
    ) -> WorkflowExecutionResult:
        return self._run(config, options=options, catalog=catalog, resume=False)

    def resume_config(
        self, config: WorkflowConfig, *, options: RunOptions, catalog: Catalog | None = None
    ) -> WorkflowExecutionResult:
        """Continue ``options.run_id``: steps with an ok result.json are not run again."""
        return self._run(config, options=options, catalog=catalog, resume=True)

    def _run(
        self, config: WorkflowConfig, *, options: RunOptions, catalog: Catalog | None,
        resume: bool,
    ) -> WorkflowExecutionResult:
        from agentic_orchestration.catalogs import load_catalog
        from agentic_orchestration.orchestration.mcp_resolution import check_mcp_env
        from agentic_orchestration.orchestration.run_store import run_store_from_env
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
        specs = build_step_specs(
            config, catalog, run_id=run_id, run_store_path=str(store.base),
            artifacts_dir=str(store.run_dir(run_id) / "artifacts"),
        )
        fingerprint = step_specs_resolution_fingerprint(specs)
        if resume:
            previous = store.read_run_meta(run_id).get("fingerprint")
            if previous and previous != fingerprint:
                logger.warning("run %s: the catalog resolves the plan differently than when the "
                               "run started; resuming with the current resolution", run_id)
        else:
            store.write_run_meta(run_id, {
                "run_id": run_id, "backend": self.name, "created_at": utc_now(),
                "plan": config.model_dump(mode="json"), "fingerprint": fingerprint,
                "step_ids": [spec.step_id for spec in specs],
            })

        launcher = self._launcher or self._default_launcher(specs)
        launcher.start()
        try:
            coordinator = StepCoordinator(recover=provider_recovery(catalog),
                                          backend_name=self.name)
            return coordinator.run_workflow(
                specs, execute_step=self._step_executor(launcher, store), run_store=store,
                run_options=options, resume=resume,
            )
        finally:
            if self._launcher is None:
                launcher.close()

    @staticmethod
    def _step_executor(launcher: StepLauncher, store: FileSystemRunStore):
        from agentic_orchestration.orchestration.backends.subprocess_runner import (
            run_step_process,
        )

        timeout = float(settings.get_int("AGENTIC_STEP_TIMEOUT_SECONDS", minimum=1))

        def execute_step(spec: StepSpec):
            return run_step_process(
                launcher, store, store.spec_path(spec.run_id, spec.step_id),
                run_id=spec.run_id, step_id=spec.step_id, timeout=timeout,
            )

        return execute_step

    @staticmethod
    def _default_launcher(specs: list[StepSpec]) -> StepLauncher:
        from agentic_orchestration.orchestration.backends.subprocess_runner import (
            ColdLauncher,
            FallbackLauncher,
        )
        from agentic_orchestration.orchestration.backends.warm_launcher import WarmLauncher

        env = dict(os.environ)
        if any(spec.agent_provider.get("type") == "local" for spec in specs):
            from agentic_orchestration.providers.local_model import ensure_local_server

            env["AGENTIC_LOCAL_LLM_URL"] = ensure_local_server()
        cold = ColdLauncher(env=env)
        if not settings.get_bool("AGENTIC_SUBPROCESS_WARM"):
            return cold
        return FallbackLauncher(WarmLauncher(env=env), cold)
