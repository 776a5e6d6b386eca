"""``SubprocessExecutionBackend``: one worker process per step (spec F4).

Order and policy belong to ``StepCoordinator`` and everything distributed backends share to
``DistributedExecutionBackend``; this backend only says where a step runs:
``main.py --execute-step`` in a fresh interpreter (cold) or a child forked from a pre-started
process that already imported CrewAI (warm, the default: ``AGENTIC_SUBPROCESS_WARM``).
Steps meet through the run store (``{run_id}/{step_id}/result.json``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from agentic_orchestration import settings
from agentic_orchestration.orchestration.backends.distributed import (
    DistributedExecutionBackend,
    worker_env,
)

if TYPE_CHECKING:
    from agentic_orchestration.orchestration.backends.base import StepSpec
    from agentic_orchestration.orchestration.backends.launcher import StepLauncher
    from agentic_orchestration.orchestration.run_store import FileSystemRunStore

__all__ = ["SubprocessExecutionBackend"]


class SubprocessExecutionBackend(DistributedExecutionBackend):
    """Runs each step in its own worker process; see the module docstring."""

    name: ClassVar[str] = "subprocess"

    def make_launcher(self, specs: list[StepSpec], store: FileSystemRunStore) -> StepLauncher:
        from agentic_orchestration.orchestration.backends.subprocess_runner import (
            ColdLauncher,
            FallbackLauncher,
        )
        from agentic_orchestration.orchestration.backends.warm_launcher import WarmLauncher

        env = worker_env(specs, may_add_local=self.may_add_local)
        cold = ColdLauncher(env=env)
        if not settings.get_bool("AGENTIC_SUBPROCESS_WARM"):
            return cold
        from agentic_orchestration.orchestration.step_scheduler import graph_of

        # As many spares as steps can run at once, not more: each one primes a crew, and on
        # a small machine idle spares priming slow down the step that runs.
        limit = settings.get_int("AGENTIC_MAX_PARALLEL_STEPS", minimum=1)
        spares = max(1, min(limit, graph_of(specs).widest_level()))
        return FallbackLauncher(WarmLauncher(env=env, spares=spares), cold)
