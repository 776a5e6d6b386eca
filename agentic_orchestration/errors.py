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
130   interrupted (Ctrl-C or SIGTERM); finished steps are kept and the session
      records the run as interrupted
====  ==========================================================

Once a run has an id, every failure (planning included) is also recorded in its session
(``status`` and ``error``), so the one-line message is never the only trace.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_STEP_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_PLAN_FAILED = 3
EXIT_NO_PROVIDER = 4
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


class NoProviderError(AgenticError):
    """No agent provider is available to run (all filtered out)."""

    exit_code = EXIT_NO_PROVIDER


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
