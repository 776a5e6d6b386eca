"""The main job: goal or workflow -> plan -> execute on a backend -> answer, files, session.

Order matters for the user: the backend name and the folders a run writes to are checked
before any planning (a typo must not cost an LLM call), and once a run has an id its
session is saved whatever happens next (planning failed, a bad setting, a step failed,
Ctrl-C or SIGTERM), with ``status`` and ``error`` saying why, so nothing already produced
is lost.
"""

from __future__ import annotations

import contextlib
import json
import logging
import sys
from collections.abc import Iterator

from agentic_orchestration._signals import sigusr1_cancels
from agentic_orchestration.catalogs import Catalog, WorkflowConfig, load_catalog, load_workflow
from agentic_orchestration.errors import EXIT_OK, ConfigError

logger = logging.getLogger(__name__)

__all__ = ["resume", "run"]


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


def _plan_iterative(catalog: Catalog, goal: str):
    """``--dynamic-iterative``: always the planner (a static workflow is not replanned),
    and the ``IterativePlan`` that revises it between steps (``planning.replanner``)."""
    from agentic_orchestration.planning import DynamicPlanner
    from agentic_orchestration.planning.replanner import IterativePlan, Replanner

    planner = DynamicPlanner(catalog)
    config = planner.plan(goal)
    replan = IterativePlan(config, Replanner(catalog, planner=planner), goal=goal)
    return config, f"planner:{planner.provider_id}", replan


def _follow_revisions(replan, *, options, record) -> None:
    """Run with ``replan``; each revision goes into the session at once (latest plan and
    ``SessionRecord.revisions``), so a watcher sees it while the run goes on."""
    from agentic_orchestration.sessions.orchestrator_session import save_session, update_session

    options.replan = replan

    def keep(_revision) -> None:
        record.revisions = list(replan.records)
        update_session(record, plan=replan.plan)
        save_session(record)

    replan.listeners.append(keep)


def _resumed_replan(meta, catalog: Catalog):
    """The ``IterativePlan`` of an iterative run being resumed, from its ``run.json``
    (the last recorded plan and revisions), or None for a plain run."""
    extra = meta.model_extra or {}
    info = extra.get("iterative")
    if info is None:
        return None
    revisions = extra.get("revisions", [])
    if not isinstance(info, dict) or not isinstance(revisions, list) or not all(
            isinstance(r, dict) for r in revisions):
        raise ConfigError(f"run metadata of {meta.run_id}: field iterative/revisions: not "
                          "an iterative run's record")
    from agentic_orchestration.planning.replanner import IterativePlan, Replanner

    return IterativePlan(meta.plan, Replanner(catalog), goal=str(info.get("goal") or ""),
                         revisions=revisions)


def _print_summary(result, artifacts, artifacts_dir, session_path, *, quiet: bool) -> None:
    from agentic_orchestration.redaction import redact_text

    def write(text: str) -> None:  # an answer or an error may quote a key: mask it
        sys.stdout.write(redact_text(text))

    if result.result_text is not None:
        if not quiet:
            write("\n=== Final answer ===\n")
        write(result.result_text.rstrip() + "\n")
    if quiet:
        return
    if artifacts:
        write(f"\nSaved {len(artifacts)} file(s) under {artifacts_dir}:\n")
        for ref in artifacts:
            write(f"  {ref.relative_path}\n")
    failed = [s for s in result.step_results if not s.ok]
    for step in failed:
        write(f"\nstep {step.step_id} failed: {step.error}\n")
    # The session is a row in a database now: say how to see it, and where it lives.
    write(f"\nRun {result.run_id} on {result.backend}: {result.status}; "
          f"main.py --session {result.run_id} shows it (in {session_path})\n")


def _run_options(*, quiet: bool, run_id: str = ""):
    """The CLI's ``RunOptions``: steps save their files under the run's artifacts folder."""
    from agentic_orchestration.orchestration.backends import RunOptions
    from agentic_orchestration.orchestration.backends.launcher import CancelToken
    from agentic_orchestration.output.output_artifacts import artifacts_dir_for

    # SIGUSR1 cancels (``_signals.sigusr1_cancels``): the web UI's Cancel button.
    options = RunOptions(quiet=quiet, emit_progress_lines=not quiet, run_id=run_id,
                         cancel=CancelToken())
    options.artifacts_dir = str(artifacts_dir_for(options.run_id))
    return options


def _check_output_folders(*, run_store: bool) -> None:
    """Every folder the run will write to can be one; ConfigError naming the variable."""
    from agentic_orchestration import settings
    from agentic_orchestration.sessions.orchestrator_session import sessions_dir

    settings.check_folder_path("AGENTIC_SESSIONS_PATH", sessions_dir())
    settings.check_folder_path("AGENTIC_ARTIFACTS_PATH")
    if run_store:
        from agentic_orchestration.orchestration.run_store import run_store_from_env

        settings.check_folder_path("AGENTIC_RUN_STORE_PATH", run_store_from_env().base)


def _learned(catalog: Catalog) -> Catalog:
    """The catalog with its fallback chain ordered by past runs (``sessions.learning``)."""
    from agentic_orchestration.sessions.learning import chain_order

    catalog.chain_order = chain_order()
    return catalog


@contextlib.contextmanager
def _recorded(record) -> Iterator[None]:
    """Save ``record`` as failed or interrupted when the block raises, then re-raise."""
    from agentic_orchestration.sessions.orchestrator_session import end_session, save_session

    try:
        yield
    except BaseException as exc:
        end_session(record, exc)
        try:
            path = save_session(record)
        except Exception as save_exc:  # never hide the run's own error behind this one
            logger.error("run %s: cannot save its session: %s", record.run_id, save_exc)
        else:
            logger.info("run %s: %s; session %s", record.run_id, record.status, path)
        raise


def _keep_interrupted(exc: KeyboardInterrupt, *, backend, options, record) -> None:
    """Ctrl-C or SIGTERM mid-run: keep the finished steps' files and summaries."""
    from agentic_orchestration.errors import EXIT_INTERRUPTED
    from agentic_orchestration.orchestration.backends.base import (
        WorkflowExecutionResult,
        partial_step_results,
    )
    from agentic_orchestration.sessions.orchestrator_session import update_session

    finished = [r for r in partial_step_results(exc) if r.ok]
    partial = WorkflowExecutionResult(exit_code=EXIT_INTERRUPTED, result_text=None, error=exc,
                                      step_results=finished, run_id=options.run_id,
                                      backend=backend.name)
    # Finished steps saved their files when they finished; only the list is gathered here.
    update_session(record, execution=partial, backend=backend.name,
                   artifacts=_step_artifacts(partial))


def _session_keeper(record):
    """``RunOptions.on_step_result`` that saves each step into the session as it ends.

    So a run killed with SIGKILL later still shows its finished steps (and reads back
    ``interrupted``). Steps of parallel branches report from their own threads: one lock.
    """
    import threading

    from agentic_orchestration.sessions.orchestrator_session import record_step, save_session

    lock = threading.Lock()

    def keep(result) -> None:
        with lock:
            record_step(record, result)
            save_session(record)

    return keep


def _step_artifacts(result) -> list:
    """The run's files: every step's ``artifacts``, one entry per path, first-seen order.

    Each step saved its own files where it ran (a later step's version of a path replaced
    the earlier one on disk), so nothing is extracted here, on any backend.
    """
    return list({ref.relative_path: ref for step in result.step_results
                 for ref in step.artifacts}.values())


def _execute_and_keep(config, *, backend, catalog, options, record, resume: bool = False) -> int:
    """Execute, then save files and the session whatever the outcome (nothing is lost)."""
    from agentic_orchestration.orchestration.execution_dispatch import (
        execute_workflow_config_resolved,
    )
    from agentic_orchestration.sessions.orchestrator_session import save_session, update_session

    run_store = None
    if backend.supports_distributed_steps:
        from agentic_orchestration.orchestration.run_store import run_store_from_env

        run_store = str(run_store_from_env().run_dir(options.run_id))
    update_session(record, plan=config, backend=backend.name, run_store=run_store)
    save_session(record)
    options.on_step_result = _session_keeper(record)
    try:
        result = execute_workflow_config_resolved(config, options=options, catalog=catalog,
                                                  backend=backend, resume=resume)
    except KeyboardInterrupt as exc:  # the caller's _recorded saves the session
        _keep_interrupted(exc, backend=backend, options=options, record=record)
        raise
    artifacts = _step_artifacts(result)
    update_session(record, execution=result, backend=backend.name, artifacts=artifacts,
                   artifacts_dir=options.artifacts_dir if artifacts else None)
    from agentic_orchestration.orchestration.qa_hook import record_verdicts

    record_verdicts(record)  # QA verdicts (AGENTIC_QA) into the step summaries
    session_path = save_session(record)
    from agentic_orchestration.knowledge import index_finished_run  # best effort, logged

    index_finished_run(record)
    _print_summary(result, artifacts, options.artifacts_dir, session_path,
                   quiet=options.quiet)
    return result.exit_code


def run(
    *,
    goal: str,
    workflow: str | None,
    use_router: bool = True,
    plan_only: bool = False,
    backend_override: str | None = None,
    quiet: bool = False,
    run_id: str = "",
    iterative: bool = False,
) -> int:
    """``run_id``: use this id (the web UI picks it to follow the run); empty: a new one.
    ``iterative``: ``--dynamic-iterative`` (plan, then replan between steps)."""
    from agentic_orchestration.orchestration.execution_dispatch import resolve_backend
    from agentic_orchestration.orchestration.k8s_mcp_compat import catalog_for_backend

    if plan_only:  # nothing runs, so no run id and no session
        from agentic_orchestration.orchestration.backends.factory import backend_name_from_env

        # The planner is offered only what the backend can serve (kubernetes: MCP policy).
        catalog = catalog_for_backend(load_catalog(), backend_name_from_env(backend_override))
        config, _ = _resolve_config(catalog, goal=goal, workflow=workflow,
                                    use_router=use_router and not iterative)
        catalog.check_workflow(config)
        print(json.dumps(config.model_dump(mode="json", exclude_none=True), indent=2))
        return EXIT_OK

    from agentic_orchestration.sessions.orchestrator_session import (
        save_session,
        session_path,
        start_session,
        update_session,
    )

    if run_id:
        session_path(run_id)  # ConfigError unless the id can name a file
    backend = resolve_backend(backend_override)
    _check_output_folders(run_store=backend.supports_distributed_steps)
    options = _run_options(quiet=quiet, run_id=run_id)
    record = start_session(goal, mode="workflow" if workflow else
                           "dynamic-iterative" if iterative else "dynamic",
                           run_id=options.run_id)
    with sigusr1_cancels(options.cancel.cancel, "cancelled from the web UI"), _recorded(record):
        save_session(record)  # running, with pid and host: a SIGKILL from here is readable
        catalog = catalog_for_backend(_learned(load_catalog()), backend.name)
        if iterative:
            config, route_name, replan = _plan_iterative(catalog, goal)
            _follow_revisions(replan, options=options, record=record)
        else:
            config, route_name = _resolve_config(catalog, goal=goal, workflow=workflow,
                                                 use_router=use_router)
        catalog.check_workflow(config)
        record.goal = goal or config.topic
        update_session(record, route=route_name)
        return _execute_and_keep(config, backend=backend, catalog=catalog, options=options,
                                 record=record)


def _refuse_in_process_run(run_id: str) -> None:
    """One clear line (exit 2) for a run whose session says it ran in-process: that backend
    keeps no run store, so there is nothing to resume from (iterative runs included)."""
    from agentic_orchestration.sessions.orchestrator_session import load_session

    try:
        backend = load_session(run_id).last_execution_backend
    except ConfigError:
        return  # no session: load_run_meta names what is missing
    if backend == "inprocess":
        raise ConfigError(f"run {run_id} ran in-process, which keeps no run store: it cannot "
                          "be resumed (run it with --execution-backend subprocess to make "
                          "it resumable)")


def resume(run_id: str, *, backend_override: str | None = None, quiet: bool = False) -> int:
    """Continue a distributed run from its run store (``main.py --resume RUN_ID``)."""
    from agentic_orchestration.orchestration.backends import execution_backend_from_env
    from agentic_orchestration.orchestration.run_store import load_run_meta, run_store_from_env
    from agentic_orchestration.sessions.orchestrator_session import load_session, start_session

    _check_output_folders(run_store=True)
    store = run_store_from_env()
    if not store.meta_path(run_id).exists():  # never stored: in-process? (a bad run.json
        _refuse_in_process_run(run_id)         # is named below, and nothing is written)
    meta = load_run_meta(store, run_id)  # exit 2 naming run.json and field
    config: WorkflowConfig = meta.plan
    backend = execution_backend_from_env(backend_override or meta.backend)
    if not backend.supports_resume:
        raise ConfigError(f"--resume needs a backend that keeps a run store, not "
                          f"{backend.name!r}")
    try:
        record = load_session(run_id)
    except ConfigError:
        record = start_session(config.topic, mode="dynamic", run_id=run_id)
    options = _run_options(quiet=quiet, run_id=run_id)
    catalog = _learned(load_catalog())
    replan = _resumed_replan(meta, catalog)  # an iterative run goes on replanning
    if replan is not None:
        _follow_revisions(replan, options=options, record=record)
    with sigusr1_cancels(options.cancel.cancel, "cancelled from the web UI"), _recorded(record):
        return _execute_and_keep(config, backend=backend, catalog=catalog,
                                 options=options, record=record, resume=True)
