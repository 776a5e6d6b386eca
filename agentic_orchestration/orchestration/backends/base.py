"""Contracts shared by every backend (spec phase F0).

``StepSpec`` and ``StepResult`` cross process boundaries (worker, Kubernetes Job), so they
are versioned pydantic models whose JSON matches the checked-in schemas
``agentic_orchestration/schemas/step_spec.v0.1.json`` and ``step_result.v0.1.json`` (field
names exactly as the Kubernetes page's v0.1 examples). ``WorkflowExecutionResult`` and
``RunOptions`` stay in-process and are plain dataclasses.

The launcher seam (modelled on Dagster's ``StepHandler``: launch, check, terminate one step)
is in ``launcher``: ``StepLauncher``, ``StepHandle``, ``StepExit``, ``CancelToken`` and the
one pure mapping ``result_from_exit``; ``RecoveryHint`` below is the typed set of hints.
"""

from __future__ import annotations

import logging
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

if TYPE_CHECKING:
    from agentic_orchestration.catalogs import Catalog, WorkflowConfig
    from agentic_orchestration.orchestration.backends.launcher import CancelToken

SCHEMA_VERSION = "0.1"


class RecoveryHint(StrEnum):
    """Why a failed step may succeed on another attempt (``StepResult.recovery_hint``).

    A ``StrEnum``, so a member is the plain string on the wire (schema v0.1 keeps the field
    a string) and compares equal to it.
    """

    #: The provider failed (5xx, 429, timeout, refused connection, empty answer): the next
    #: provider of the fallback chain may answer (``execution_fallback.classify_exception``).
    PROVIDER_FALLBACK = "provider_fallback"
    #: The spec's name for a Hugging Face / LiteLLM failure; handled as provider_fallback.
    HF_LITELLM_FALLBACK = "hf_litellm_fallback"
    #: The worker failed (died, hung, no result.json, stopped by SIGTERM), not the agent:
    #: the same spec may simply run again.
    WORKER_RETRY = "worker_retry"

#: ``StepResult.exit_code`` of a step the run cancelled (as an interrupted process's 130).
EXIT_CANCELLED = 130


class _Contract(BaseModel):
    model_config = ConfigDict(extra="forbid")

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude_none=False)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> _Contract:
        return cls.model_validate(data)


class TaskSpec(_Contract):
    description: str
    expected_output: str


class MCPProviderRef(_Contract):
    id: str
    resolved: dict[str, Any] = Field(
        description="{'stdio': {...}} or {'streamable_http': {...}}; ${VAR} left unexpanded."
    )


class StepPaths(_Contract):
    run_store: str = ""
    artifacts_dir: str = ""


class StepSpec(_Contract):
    """One resolved step, as a worker receives it. Holds env var names, never secret values."""

    schema_version: Literal["0.1"] = SCHEMA_VERSION
    run_id: str
    step_id: str
    step_index: int = Field(ge=0)
    workflow_name: str
    topic: str = ""
    task: TaskSpec
    agent_provider: dict[str, Any]
    mcp_providers: list[MCPProviderRef] = Field(default_factory=list)
    prior_output: str = ""
    inputs: dict[str, Any] = Field(default_factory=dict)
    paths: StepPaths = Field(default_factory=StepPaths)
    #: Optional (added within v0.1): the step ids whose outputs ``task.description`` holds.
    #: None (the default, and left out of the JSON) means the previous step, as before.
    depends_on: list[str] | None = None

    def to_dict(self) -> dict[str, Any]:
        data = super().to_dict()
        if data.get("depends_on") is None:
            data.pop("depends_on", None)  # a chain's spec stays what v0.1 readers know
        return data


class ArtifactRef(_Contract):
    relative_path: str
    mime: str = "application/octet-stream"


class StepTiming(_Contract):
    started_at: str
    finished_at: str
    duration_seconds: float | None = None


class TokenUsage(_Contract):
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0


class K8sInfo(_Contract):
    """Where a step ran on Kubernetes (the launcher fills it from the Job and its pod).

    ``pod_name`` and ``node_name`` are the spec page's v0.1 fields; the rest were added
    within v0.1 as optional fields, so older readers and results stay valid.
    """

    pod_name: str = ""
    node_name: str = ""
    job_name: str = ""
    namespace: str = ""
    exit_code: int | None = None
    #: When the worker container started and finished (ISO-8601, from the pod status).
    started_at: str = ""
    finished_at: str = ""


class StepResult(_Contract):
    """One step's outcome (``result.json`` in the run store)."""

    schema_version: Literal["0.1"] = SCHEMA_VERSION
    run_id: str
    step_id: str
    exit_code: int = 0
    result_text: str | None = None
    result_format: Literal["plain", "markdown", "json"] = "plain"
    error: str | None = None
    recoverable: bool = False
    recovery_hint: str | None = None
    artifacts: list[ArtifactRef] = Field(default_factory=list)
    timing: StepTiming | None = None
    k8s: K8sInfo | None = None
    agent_provider_id: str | None = None
    usage: TokenUsage | None = None

    @property
    def ok(self) -> bool:
        return self.exit_code == 0

    @property
    def cancelled(self) -> bool:
        """The run cancelled this step (``result_from_exit``): not a failure to retry."""
        return self.exit_code == EXIT_CANCELLED and not self.recoverable


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def new_run_id() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ") + "-" + uuid.uuid4().hex[:8]


def keep_partial_results(exc: BaseException, results: list[StepResult]) -> None:
    """Attach the steps a run finished before ``exc`` (Ctrl-C, SIGTERM) stopped it.

    The interrupt must keep propagating (it is not a step failure), yet the CLI should
    still record those steps in the session; this is how they travel with it.
    """
    exc.step_results = list(results)  # type: ignore[attr-defined]


def partial_step_results(exc: BaseException) -> list[StepResult]:
    """The step results ``keep_partial_results`` attached to ``exc`` (none if it was not)."""
    return list(getattr(exc, "step_results", None) or [])


@dataclass
class RunOptions:
    """How a run reports itself. ``run_id`` is generated when empty."""

    quiet: bool = False
    emit_stdout_summary: bool = True
    emit_progress_lines: bool = True
    execution_error_sink: list[str] | None = None
    log_terminal_execution_failure: bool = True
    run_id: str = ""
    #: Cancels the run from another thread (web UI, budget): the running step is
    #: terminated through its handle and the run ends ``cancelled``.
    cancel: CancelToken | None = None
    #: Where each finished step saves the files its answer names (the step owns them and
    #: lists them in ``StepResult.artifacts``; the worker gets it as ``paths.artifacts_dir``).
    #: None: nothing is extracted (library use; the CLI sets the run's artifacts folder).
    artifacts_dir: str | None = None
    #: Iterative plans (``--dynamic-iterative``): a ``planning.replanner.IterativePlan``
    #: whose ``revise`` is called whenever no step is running; None: the plan as given.
    replan: Any = None
    #: Called with each step result as soon as it is recorded (every attempt, from the
    #: thread that ran it), so a caller can keep finished steps even if the run is killed
    #: later: the CLI saves them into the session. Must not raise.
    on_step_result: Callable[[StepResult], None] | None = None

    def step_result_recorded(self, result: StepResult) -> None:
        """Tell ``on_step_result``; a failing listener is logged, never fatal to the run."""
        if self.on_step_result is None:
            return
        try:
            self.on_step_result(result)
        except Exception:
            logging.getLogger(__name__).exception(
                "run %s: on_step_result for step %s failed", result.run_id, result.step_id)

    def __post_init__(self) -> None:
        if not self.run_id:
            self.run_id = new_run_id()


@dataclass
class WorkflowExecutionResult:
    """What callers (CLI, sessions, artifacts) see of a run, whatever the backend."""

    exit_code: int
    result_text: str | None
    error: BaseException | None
    step_results: list[StepResult] = field(default_factory=list)
    run_id: str = ""
    backend: str = ""
    #: Provider ids tried in order (more than one when the fallback chain was used).
    providers_tried: list[str] = field(default_factory=list)
    #: Kubernetes backend: one entry per step Job, retries included, in order (step_id,
    #: attempt, job_name, pod_name, node_name, exit_code, started_at, finished_at).
    k8s_jobs: list[dict[str, Any]] = field(default_factory=list)
    #: ``ok``, ``failed``, ``cancelled`` (``RunOptions.cancel``; exit code 130) or
    #: ``budget_exceeded`` (a run budget was spent; exit code 5).
    status: Literal["ok", "failed", "cancelled", "budget_exceeded"] | None = None

    def __post_init__(self) -> None:
        if self.status is None:
            self.status = "ok" if self.exit_code == 0 else "failed"

    @property
    def ok(self) -> bool:
        return self.exit_code == 0


class ExecutionBackend(ABC):
    """Runs a WorkflowConfig. Backends differ only in where a step runs.

    Optional abilities are ``supports_*`` properties, so callers ask for a capability, not
    for a backend's name.
    """

    name: ClassVar[str]

    @property
    def supports_distributed_steps(self) -> bool:
        """Steps run as separate workers meeting in a run store."""
        return False

    @property
    def supports_resume(self) -> bool:
        """``resume_config`` continues a run from its run store."""
        return False

    def resume_config(
        self, config: WorkflowConfig, *, options: RunOptions, catalog: Catalog | None = None
    ) -> WorkflowExecutionResult:
        """Continue ``options.run_id``: finished steps are not run again."""
        raise NotImplementedError(f"the {self.name} backend cannot resume a run")

    @abstractmethod
    def execute_config(
        self,
        config: WorkflowConfig,
        *,
        options: RunOptions,
        catalog: Catalog | None = None,
    ) -> WorkflowExecutionResult:
        """Run every step of ``config`` in order and return the outcome."""
