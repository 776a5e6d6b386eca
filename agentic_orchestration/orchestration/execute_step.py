"""The step worker: one step spec in, one ``result.json`` out (spec K2.1, K2.2, G3).

``execute_step_main`` is what ``main.py --execute-step SPEC --run-id RUN --step-id STEP``
and a warm fork-server child both call, so it takes plain arguments (no argparse, no
``__main__``) and returns the exit code instead of exiting.

Guardrail G3: the worker does not have its own CrewAI code. It turns the spec back into a
one-step ``WorkflowConfig`` and a ``Catalog`` holding only the spec's agent entry and MCP
entries (rebuilt from ``resolved``), then runs ``runner.build_workflow`` and
``CrewAIExecutionBackend.execute_built``: the exact code of the in-process backend, so a
step behaves the same whichever backend ran it.

Contract with the coordinator:

- A spec that cannot be used (missing, unreadable, not JSON, not schema v0.1, ids not
  matching the flags) is the coordinator's bug or the user's: one ``error:`` line on
  stderr, exit 2, and *nothing* written, so no stale or half-valid result.json can be read.
- Once the spec is valid, a result.json is always written, on success (exit 0) and on
  failure (exit 1, with ``recoverable``/``recovery_hint`` for the coordinator's retry
  policy), including failures while building the crew (e.g. an API key variable unset).
- Interrupted (exit 130, result.json written): by Ctrl-C, final (``error: interrupted``);
  by SIGTERM, ``error: interrupted by SIGTERM`` with ``recovery_hint: worker_retry`` so the
  coordinator runs the step again (a Kubernetes pod stopped, the warm zygote stopping).

CrewAI-dependent modules are imported inside ``run_step`` so importing this module is
cheap; a warm fork server imports CrewAI itself before forking.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
import time
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import best_match
from pydantic import ValidationError

from agentic_orchestration._signals import sigterm_interrupts
from agentic_orchestration.catalogs.catalog import Catalog
from agentic_orchestration.catalogs.models import (
    AgentProviderEntry,
    MCPProviderEntry,
    StepConfig,
    WorkflowConfig,
)
from agentic_orchestration.errors import (
    EXIT_INTERRUPTED,
    EXIT_STEP_FAILED,
    AgenticError,
    StepSpecError,
    Terminated,
    from_validation_error,
    interrupt_reason,
)
from agentic_orchestration.log import StepLoggerAdapter, configure_logging
from agentic_orchestration.orchestration.backends.base import (
    SCHEMA_VERSION,
    RecoveryHint,
    RunOptions,
    StepResult,
    StepSpec,
    StepTiming,
    utc_now,
)
from agentic_orchestration.orchestration.execution_fallback import (
    classify_exception,
    error_text,
)
from agentic_orchestration.orchestration.progress import one_line

if TYPE_CHECKING:
    from agentic_orchestration.orchestration.run_store import FileSystemRunStore

logger = logging.getLogger(__name__)

SPEC_SCHEMA_PATH = Path(__file__).resolve().parent.parent / "schemas" / "step_spec.v0.1.json"

#: StepConfig field -> the spec field it comes from (for error messages).
_STEP_FIELDS = {"id": "step_id", "description": "task.description",
                "expected_output": "task.expected_output", "agent_provider": "agent_provider.id"}

__all__ = ["execute_step_main", "load_step_spec", "run_step", "step_workflow"]


@lru_cache(maxsize=1)
def _spec_validator() -> Draft202012Validator:
    return Draft202012Validator(json.loads(SPEC_SCHEMA_PATH.read_text(encoding="utf-8")))


def _field_path(parts: Any) -> str:
    """``task.description`` / ``mcp_providers[0].resolved``, as a reader would write it."""
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "(top level)"


def load_step_spec(path: str | Path, *, run_id: str, step_id: str) -> StepSpec:
    """Read and check a step spec file: JSON schema v0.1 first, then the pydantic model.

    The raw JSON is checked against the checked-in schema (not only the model) because the
    schema is the cross-language contract a Kubernetes or other coordinator writes to.

    Raises:
        StepSpecError: One line naming the file and the problem (the field path for a
            schema error). Raised for a missing or unreadable file, bad JSON, a schema
            violation (wrong ``schema_version`` included), ids that differ from the flags,
            or agent/MCP entries the catalog models reject.
    """
    where = f"step spec {path}"
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise StepSpecError(f"{where}: file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        raise StepSpecError(f"{where}: cannot read file: {one_line(reason)}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise StepSpecError(
            f"{where}: not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from None
    except RecursionError:
        raise StepSpecError(f"{where}: not a step spec: nested too deeply") from None
    version = data.get("schema_version") if isinstance(data, dict) else None
    if version is not None and version != SCHEMA_VERSION:
        # Said first and plainly: a newer spec may break many fields, the version is the cause.
        raise StepSpecError(f"{where}: field schema_version: {version!r} is not supported "
                            f"(this worker reads {SCHEMA_VERSION!r})")
    error = best_match(_spec_validator().iter_errors(data))
    if error is not None:
        raise StepSpecError(
            f"{where}: field {_field_path(error.absolute_path)}: {one_line(error.message)}")
    try:
        spec = StepSpec.model_validate(data)
    except ValidationError as exc:
        raise StepSpecError(from_validation_error(exc, file=where)) from None
    for name, flag in (("run_id", run_id), ("step_id", step_id)):
        value = getattr(spec, name)
        if value != flag:
            raise StepSpecError(f"{where}: field {name}: {value!r} does not match "
                                f"--{name.replace('_', '-')} {flag!r}")
    _check_ids(spec, where)
    try:
        step_workflow(spec)
    except StepSpecError as exc:
        raise StepSpecError(f"{where}: {exc}") from None
    return spec


def _check_ids(spec: StepSpec, where: str) -> None:
    """Ids become directory names in the run store: reject them here, before any work."""
    from agentic_orchestration.orchestration.run_store import validate_id

    for kind, value in (("run_id", spec.run_id), ("step_id", spec.step_id)):
        try:
            validate_id(value, kind)
        except (ValueError, AgenticError) as exc:
            raise StepSpecError(f"{where}: field {kind}: {one_line(exc)}") from None


def step_workflow(spec: StepSpec) -> tuple[WorkflowConfig, Catalog]:
    """The spec as a one-step plan and a catalog holding only what that step uses (G3).

    ``build_workflow`` then resolves the agent and MCP servers exactly as it does for an
    in-process run; nothing else in the catalog exists, so nothing else can be picked.

    Raises:
        StepSpecError: The agent entry, an MCP entry or the task does not fit the catalog
            models; the message names the spec field.
    """
    try:
        entry = AgentProviderEntry.model_validate(spec.agent_provider)
    except ValidationError as exc:
        raise StepSpecError(f"field {from_validation_error(exc, prefix='agent_provider')}"
                            ) from None
    mcps: dict[str, MCPProviderEntry] = {}
    for index, ref in enumerate(spec.mcp_providers):
        try:
            mcps[ref.id] = MCPProviderEntry.model_validate({"id": ref.id, **ref.resolved})
        except ValidationError as exc:
            line = from_validation_error(exc, prefix=f"mcp_providers[{index}]")
            raise StepSpecError(f"field {line}") from None
    try:
        step = StepConfig(id=spec.step_id, agent_provider=entry.id, mcp_providers=list(mcps),
                          description=spec.task.description,
                          expected_output=spec.task.expected_output)
    except ValidationError as exc:
        first = exc.errors()[0]
        name = _STEP_FIELDS.get(str(first["loc"][0]) if first["loc"] else "", "task")
        raise StepSpecError(f"field {name}: {one_line(first['msg'])}") from None
    # A spec's workflow_name may be empty; WorkflowConfig requires a name (logs only).
    config = WorkflowConfig(name=spec.workflow_name or spec.run_id, topic=spec.topic,
                            steps=[step])
    return config, Catalog(agents={entry.id: entry}, mcps=mcps)


def _failed(spec: StepSpec, exc: BaseException, *, started_at: str, began: float,
            agent_provider_id: str | None) -> StepResult:
    verdict = classify_exception(exc)
    return StepResult(
        run_id=spec.run_id, step_id=spec.step_id, exit_code=EXIT_STEP_FAILED,
        error=error_text(exc), recoverable=verdict.recoverable,
        recovery_hint=verdict.hint, agent_provider_id=agent_provider_id,
        timing=StepTiming(started_at=started_at, finished_at=utc_now(),
                          duration_seconds=round(time.perf_counter() - began, 4)),
    )


def _interrupted(spec: StepSpec, exc: KeyboardInterrupt, *, started_at: str,
                 began: float) -> StepResult:
    """The result of a step stopped by Ctrl-C or SIGTERM (exit 130).

    SIGTERM comes from outside (a pod evicted, ``docker stop``), not from the user, so the
    step is marked ``worker_retry``: the coordinator runs the same spec again. Ctrl-C is
    the user's decision and is final.
    """
    result = _failed(spec, exc, started_at=started_at, began=began,
                     agent_provider_id=spec.agent_provider.get("id"))
    if isinstance(exc, Terminated):
        return result.model_copy(update={
            "exit_code": EXIT_INTERRUPTED, "error": interrupt_reason(exc),
            "recoverable": True, "recovery_hint": RecoveryHint.WORKER_RETRY})
    return result.model_copy(update={"exit_code": EXIT_INTERRUPTED, "error": "interrupted",
                                     "recoverable": False, "recovery_hint": None})


def run_step(spec: StepSpec) -> StepResult:
    """Run one step as a mini-crew (1 agent, 1 task) and return its result.

    A failure, while building (e.g. an API key variable unset) or during kickoff, comes
    back as a failed result, never as an exception, so the worker always has a result.json
    to write; ``KeyboardInterrupt`` still propagates. Progress lines are off: the
    coordinator prints progress for the whole run.
    """
    from agentic_orchestration.orchestration.backends.crewai import CrewAIExecutionBackend
    from agentic_orchestration.orchestration.runner import build_workflow

    log = StepLoggerAdapter(logger, run_id=spec.run_id, step_id=spec.step_id)
    agent_id = spec.agent_provider.get("id")
    started_at, began = utc_now(), time.perf_counter()
    try:
        config, catalog = step_workflow(spec)
        built = build_workflow(config, catalog, fill_topic=False)
    except Exception as exc:
        log.error("step could not be built: %s: %s", type(exc).__name__, exc)
        return _failed(spec, exc, started_at=started_at, began=began, agent_provider_id=agent_id)
    # The step owns its files: they are saved here, in the worker, under the spec's folder
    # (on Kubernetes that is the pod, not the coordinator's machine).
    options = RunOptions(run_id=spec.run_id, artifacts_dir=spec.paths.artifacts_dir or None,
                         quiet=True, emit_stdout_summary=False,
                         emit_progress_lines=False, log_terminal_execution_failure=False)
    try:
        outcome = CrewAIExecutionBackend(live_progress=False).execute_built(built,
                                                                          options=options)
    except Exception as exc:  # the backend records kickoff errors; this is a safety net
        log.exception("step run raised")
        return _failed(spec, exc, started_at=started_at, began=began, agent_provider_id=agent_id)
    if outcome.step_results:
        return outcome.step_results[-1].model_copy(
            update={"run_id": spec.run_id, "step_id": spec.step_id})
    error = outcome.error or RuntimeError("the crew finished without a step result")
    return _failed(spec, error, started_at=started_at, began=began, agent_provider_id=agent_id)


class _StampStep(logging.Filter):
    """Stamp run_id/step_id on records that lack them (CrewAI's, the runner's): in a worker
    every line belongs to this one step, and the coordinator's log collector needs the ids.
    """

    def __init__(self, run_id: str, step_id: str) -> None:
        super().__init__()
        self.ids = {"run_id": run_id, "step_id": step_id}

    def filter(self, record: logging.LogRecord) -> bool:
        for key, value in self.ids.items():
            if getattr(record, key, None) is None:
                setattr(record, key, value)
        return True


def _store_for(spec: StepSpec) -> FileSystemRunStore:
    from agentic_orchestration.orchestration.run_store import (
        FileSystemRunStore,
        run_store_from_env,
    )

    if spec.paths.run_store:
        return FileSystemRunStore(Path(spec.paths.run_store))
    return run_store_from_env()


def execute_step_main(spec_path: str | Path, *, run_id: str, step_id: str,
                      run_store: FileSystemRunStore | None = None) -> int:
    """Worker entry point: validate the spec, run the step, write result.json.

    Args:
        spec_path: The step spec JSON file.
        run_id: ``--run-id``; must equal the spec's ``run_id``.
        step_id: ``--step-id``; must equal the spec's ``step_id``.
        run_store: Where result.json goes; default the spec's ``paths.run_store``, else
            ``run_store_from_env()``.

    Returns:
        The exit code: 0 step ok, 1 step failed (result.json written), 2 bad spec or
        settings (nothing written), 130 interrupted (result.json written).
    """
    try:
        handler = configure_logging()
    except AgenticError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return exc.exit_code
    handler.addFilter(_StampStep(run_id, step_id))
    log = StepLoggerAdapter(logger, run_id=run_id, step_id=step_id)
    try:
        spec = load_step_spec(spec_path, run_id=run_id, step_id=step_id)
        store = run_store if run_store is not None else _store_for(spec)
    except AgenticError as exc:
        log.debug("spec rejected: %s", exc)  # debug: the error line below is the message
        sys.stderr.write(f"error: {exc}\n")
        return exc.exit_code
    log.info("step started: agent %s, %d MCP server(s)", spec.agent_provider.get("id"),
             len(spec.mcp_providers))
    started_at, began = utc_now(), time.perf_counter()

    def stop_on_sigterm() -> None:
        # A pod stopped, the warm zygote stopping: write the interrupted result now and
        # leave; the coordinator retries the step (worker_retry). MCP servers this worker
        # started are in its process group, which the coordinator kills after it ends.
        interrupted = _interrupted(spec, Terminated("SIGTERM"), started_at=started_at,
                                   began=began)
        code = EXIT_INTERRUPTED
        try:
            store.write_result(interrupted, durable=False)
        except (OSError, ValueError, AgenticError) as exc:
            sys.stderr.write(f"error: cannot write result.json: {one_line(exc)}\n")
            code = EXIT_STEP_FAILED
        log.error("step %s", interrupted.error)
        logging.shutdown()
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        os._exit(code)

    # One SIGTERM arriving once the step is over only waits for result.json to be written.
    with sigterm_interrupts(stop_on_sigterm) as sigterm:
        try:
            result = run_step(spec)
        except KeyboardInterrupt as exc:
            result = _interrupted(spec, exc, started_at=started_at, began=began)
        sigterm.disarm()  # the step is over: its result.json must get written
        try:
            # Not fsynced here: the coordinator records it (run_store: durable once).
            path = store.write_result(result, durable=False)
        except (OSError, ValueError, AgenticError) as exc:
            log.error("cannot write result.json: %s", exc)
            sys.stderr.write(f"error: cannot write result.json: {one_line(exc)}\n")
            return EXIT_STEP_FAILED
    if result.ok:
        log.info("step finished in %ss; result at %s",
                 result.timing.duration_seconds if result.timing else "?", path)
    else:
        log.error("step failed (recoverable=%s, hint=%s): %s", result.recoverable,
                  result.recovery_hint, result.error)
    return result.exit_code
