"""One root exception and a few subclasses that say what went wrong.

Every error carries the process exit code the CLI should use, so the CLI turns any
``AgenticError`` into one clear line and that code, without a traceback.

Exit codes (documented in the README):

====  ==========================================================
0     success
1     a step failed (after retries and fallback)
2     bad input or configuration (catalog, workflow, flag, spec, run.json, an
      ``AGENTIC_*_PATH`` that cannot be a folder, an MCP ``${VAR}`` unset)
3     the planner could not produce a valid plan
4     no usable agent provider (nothing available to run a step)
5     a run budget (``AGENTIC_RUN_MAX_TOKENS`` / ``AGENTIC_RUN_MAX_SECONDS``) was spent:
      running steps were stopped, finished ones kept; ``--resume`` continues it
130   interrupted (Ctrl-C or SIGTERM); finished steps are kept and the session
      records the run as interrupted
====  ==========================================================

Once a run has an id, every failure (planning included) is also recorded in its session
(``status`` and ``error``), so the one-line message is never the only trace.
"""

from __future__ import annotations

import os
from typing import Any

__all__ = [
    "EXIT_BAD_INPUT",
    "EXIT_BUDGET_EXCEEDED",
    "EXIT_INTERRUPTED",
    "EXIT_NO_PROVIDER",
    "EXIT_OK",
    "EXIT_PLAN_FAILED",
    "EXIT_STEP_FAILED",
    "AgenticError",
    "BackendError",
    "BudgetExceeded",
    "CatalogError",
    "ConfigError",
    "MCPServerError",
    "NoProviderError",
    "PlanError",
    "RunCancelled",
    "StepFailed",
    "StepSpecError",
    "Terminated",
    "ZygoteGone",
    "from_validation_error",
    "interrupt_reason",
]

EXIT_OK = 0
EXIT_STEP_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_PLAN_FAILED = 3
EXIT_NO_PROVIDER = 4
EXIT_BUDGET_EXCEEDED = 5
EXIT_INTERRUPTED = 130


class AgenticError(Exception):
    """Root of every error this tool raises on purpose."""

    exit_code: int = EXIT_BAD_INPUT
    #: Whether retrying (possibly on another provider) may succeed.
    recoverable: bool = False


class ConfigError(AgenticError):
    """Bad configuration: an env var, a flag, a file that cannot be used."""


class CatalogError(ConfigError):
    """A catalog or workflow YAML file is malformed; names file, entry id and field."""

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        entry_id: str | None = None,
        field: str | None = None,
    ) -> None:
        self.file = file
        self.entry_id = entry_id
        self.field = field
        where = []
        if file:
            where.append(f"file {file}")
        if entry_id:
            where.append(f"id {entry_id!r}")
        if field:
            where.append(f"field {field!r}")
        prefix = ", ".join(where)
        super().__init__(f"{prefix}: {message}" if prefix else message)


class PlanError(AgenticError):
    """The planner could not turn the goal into a valid WorkflowConfig."""

    exit_code = 3


class StepSpecError(AgenticError):
    """A step spec file is missing, unreadable or does not match schema v0.1."""


class BackendError(AgenticError):
    """An execution backend cannot be selected or is not built yet."""


class ZygoteGone(BackendError):
    """The warm worker process is not serving (crashed, killed, or failed to start).

    Raised by ``backends.warm_launcher``; recoverable, since a new worker process may serve.
    """

    recoverable = True


class NoProviderError(AgenticError):
    """No agent provider is available to run (all filtered out)."""

    exit_code = EXIT_NO_PROVIDER


class MCPServerError(AgenticError):
    """An MCP server of a step cannot be used: not installed, not answering, crashed.

    Fails the step (exit code 1) and is not recoverable: another LLM provider would meet
    the same server. The message starts with the MCP id and never holds a secret value.
    """

    exit_code = EXIT_STEP_FAILED
    recoverable = False

    def __init__(self, mcp_id: str, message: str) -> None:
        self.mcp_id = mcp_id
        super().__init__(f"MCP server {mcp_id!r}: {message}")


class Terminated(KeyboardInterrupt):
    """SIGTERM arrived (``docker stop``, Kubernetes evicting a pod).

    A ``KeyboardInterrupt`` on purpose: every path that cleans up after Ctrl-C (kill the
    running worker, keep finished steps, record the run as interrupted) handles it too,
    and no ``except Exception`` swallows it. Installed by ``_signals.sigterm_interrupts``.
    """

    def __init__(self, signal_name: str = "SIGTERM") -> None:
        self.signal_name = signal_name
        super().__init__(f"interrupted by {signal_name}")


def interrupt_reason(exc: BaseException) -> str:
    """``interrupted by SIGTERM`` for a ``Terminated``, ``interrupted (Ctrl-C)`` otherwise."""
    if isinstance(exc, Terminated):
        return f"interrupted by {exc.signal_name}"
    return "interrupted (Ctrl-C)"


#: pydantic error types whose own wording ("Field required") reads worse than ours.
_PROBLEM_WORDS = {"extra_forbidden": "unknown field", "missing": "missing required field"}


def from_validation_error(
    exc: BaseException, *, file: str | os.PathLike[str] | None = None, prefix: str = "",
) -> str:
    """One line for a pydantic ``ValidationError``: the field path and the first problem.

    The one place that words validation errors (catalog YAML, step specs, ``run.json``,
    result files). Fields are written as a reader would: ``steps[0].description``.

    Args:
        exc: A pydantic ``ValidationError``; any other exception gives the first line of
            its message (callers that also catch ``OSError`` pass it through unchanged).
        file: What was validated; makes the line whole: ``<file>: field <path>: ...``.
            Without it the line is a fragment, ``<path>: <problem>``, that the caller
            frames (``f"field {line}"``, a ``CatalogError``'s ``field``).
        prefix: Path of the validated object inside a larger document
            (``agent_provider``, ``mcp_providers[0]``).

    Returns:
        ``[<file>: field ]<path>: <problem>[ (and N more problems)]``; the path is
        ``(top level)`` for an error of the whole object.
    """
    problems: list[Any] = exc.errors() if callable(getattr(exc, "errors", None)) else []
    if not problems:
        lines = str(exc).strip().splitlines()
        text = lines[0] if lines else type(exc).__name__
        return f"{file}: {text}" if file else text
    first = problems[0]
    path = _field_path([prefix, *first["loc"]] if prefix else first["loc"])
    problem = _PROBLEM_WORDS.get(first["type"]) or " ".join(str(first["msg"]).split())
    more = len(problems) - 1
    if more:
        problem += f" (and {more} more problem{'s' if more > 1 else ''})"
    return f"{file}: field {path}: {problem}" if file else f"{path}: {problem}"


def _field_path(parts: Any) -> str:
    """``task.description`` / ``mcp_providers[0].resolved`` from a pydantic ``loc``."""
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "(top level)"


class StepFailed(AgenticError):
    """A step failed; ``recoverable`` says whether another attempt may help."""

    exit_code = EXIT_STEP_FAILED

    def __init__(
        self,
        message: str,
        *,
        step_id: str | None = None,
        recoverable: bool = False,
        recovery_hint: str | None = None,
    ) -> None:
        self.step_id = step_id
        self.recoverable = recoverable
        self.recovery_hint = recovery_hint
        super().__init__(f"step {step_id}: {message}" if step_id else message)


class RunCancelled(StepFailed):
    """The run was cancelled (``RunOptions.cancel``): not a failure, not retried.

    Raised inside an in-process crew between tasks (CrewAI offers no way to stop a kickoff
    mid-task); distributed runs terminate the running step through its handle instead.
    """

    exit_code = EXIT_INTERRUPTED

    def __init__(self, reason: str = "cancelled", *, step_id: str | None = None) -> None:
        self.reason = reason
        super().__init__(f"cancelled: {reason}", step_id=step_id)


class BudgetExceeded(RunCancelled):
    """A run budget was spent (``orchestration.budget``): the run stops as if cancelled,
    finished steps kept, and ends with the status ``budget_exceeded`` and exit code 5.

    A ``RunCancelled`` so that every path that stops a run on cancel stops it here too.
    """

    exit_code = EXIT_BUDGET_EXCEEDED
