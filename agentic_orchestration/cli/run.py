"""The main job: goal or workflow -> plan -> execute on a backend -> answer, files, session.

Order matters for the user: the backend name is checked before any planning (a typo must
not cost an LLM call), and the session is saved even when the run fails, so nothing
already produced is lost.
"""

from __future__ import annotations

import json
import logging
import sys

from agentic_orchestration.catalogs import Catalog, WorkflowConfig, load_catalog, load_workflow
from agentic_orchestration.errors import EXIT_OK, ConfigError

logger = logging.getLogger(__name__)


def _resolve_config(
    catalog: Catalog, *, goal: str, workflow: str | None, use_router: bool
) -> tuple[WorkflowConfig, str]:
    if workflow is not None:
        config = load_workflow(workflow)
        uses_topic = any("{topic}" in s.description for s in config.steps)
        if uses_topic and not goal:
            raise ConfigError(f"workflow {config.name!r} uses {{topic}}: give a goal "
                              f"(main.py --workflow {workflow} \"your goal\")")
        return config.with_topic(goal or config.topic), f"workflow:{config.name}"

    from agentic_orchestration.planning import DynamicPlanner, plan_or_route

    if use_router:
        return plan_or_route(goal, catalog)
    planner = DynamicPlanner(catalog)
    return planner.plan(goal), f"planner:{planner.provider_id}"


def _print_summary(result, artifacts, artifacts_dir, session_path, *, quiet: bool) -> None:
    out = sys.stdout
    if result.result_text is not None:
        if not quiet:
            out.write("\n=== Final answer ===\n")
        out.write(result.result_text.rstrip() + "\n")
    if quiet:
        return
    if artifacts:
        out.write(f"\nSaved {len(artifacts)} file(s) under {artifacts_dir}:\n")
        for ref in artifacts:
            out.write(f"  {ref.relative_path}\n")
    failed = [s for s in result.step_results if not s.ok]
    for step in failed:
        out.write(f"\nstep {step.step_id} failed: {step.error}\n")
    out.write(f"\nRun {result.run_id} on {result.backend}: "
              f"{'ok' if result.ok else 'failed'}; session {session_path}\n")


def _execute_and_keep(config, *, backend, catalog, options, record, resume: bool = False) -> int:
    """Execute, then save files and the session whatever the outcome (nothing is lost)."""
    from agentic_orchestration.orchestration.execution_dispatch import (
        execute_workflow_config_resolved,
    )
    from agentic_orchestration.output.output_artifacts import (
        artifacts_dir_for,
        offer_save_extracted_files_from_execution,
    )
    from agentic_orchestration.sessions.orchestrator_session import save_session, update_session

    run_store = None
    if backend.supports_distributed_steps:
        from agentic_orchestration.orchestration.run_store import run_store_from_env

        run_store = str(run_store_from_env().run_dir(options.run_id))
    update_session(record, plan=config, backend=backend.name, run_store=run_store)
    save_session(record)
    result = execute_workflow_config_resolved(config, options=options, catalog=catalog,
                                              backend=backend, resume=resume)
    artifacts_dir = artifacts_dir_for(result.run_id or options.run_id)
    artifacts = offer_save_extracted_files_from_execution(result, artifacts_dir=artifacts_dir)
    update_session(record, execution=result, backend=backend.name, artifacts=artifacts)
    session_path = save_session(record)
    _print_summary(result, artifacts, artifacts_dir, session_path, quiet=options.quiet)
    return result.exit_code


def run(
    *,
    goal: str,
    workflow: str | None,
    use_router: bool = True,
    plan_only: bool = False,
    backend_override: str | None = None,
    quiet: bool = False,
) -> int:
    from agentic_orchestration.orchestration.backends import RunOptions
    from agentic_orchestration.orchestration.execution_dispatch import resolve_backend

    backend = None if plan_only else resolve_backend(backend_override)
    catalog = load_catalog()
    config, route_name = _resolve_config(catalog, goal=goal, workflow=workflow,
                                         use_router=use_router)
    catalog.check_workflow(config)
    if plan_only:
        print(json.dumps(config.model_dump(mode="json", exclude_none=True), indent=2))
        return EXIT_OK
    assert backend is not None

    from agentic_orchestration.sessions.orchestrator_session import start_session, update_session

    options = RunOptions(quiet=quiet, emit_progress_lines=not quiet)
    record = start_session(goal or config.topic, mode="workflow" if workflow else "dynamic",
                           run_id=options.run_id)
    update_session(record, route=route_name)
    return _execute_and_keep(config, backend=backend, catalog=catalog, options=options,
                             record=record)


def resume(run_id: str, *, backend_override: str | None = None, quiet: bool = False) -> int:
    """Continue a distributed run from its run store (``main.py --resume RUN_ID``)."""
    from agentic_orchestration.orchestration.backends import RunOptions, execution_backend_from_env
    from agentic_orchestration.orchestration.run_store import run_store_from_env
    from agentic_orchestration.sessions.orchestrator_session import load_session, start_session

    meta = run_store_from_env().read_run_meta(run_id)
    config = WorkflowConfig.model_validate(meta["plan"])
    backend = execution_backend_from_env(backend_override or meta.get("backend"))
    if not backend.supports_distributed_steps:
        raise ConfigError(f"--resume needs a distributed backend, not {backend.name!r}")
    try:
        record = load_session(run_id)
    except ConfigError:
        record = start_session(config.topic, mode="dynamic", run_id=run_id)
    options = RunOptions(quiet=quiet, emit_progress_lines=not quiet, run_id=run_id)
    return _execute_and_keep(config, backend=backend, catalog=load_catalog(), options=options,
                             record=record, resume=True)
