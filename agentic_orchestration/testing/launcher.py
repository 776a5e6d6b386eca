"""``ScriptedLauncher``: a test double of the launcher seam (``backends.launcher``).

It plays scripted outcomes per step, attempt by attempt, as a worker would: writes the
step's ``result.json`` into the run store and reports how it "exited". Outcomes:

- a string: the step succeeds with that text;
- a ``StepResult``, or a callable ``spec -> StepResult | StepExit``: written / reported;
- ``"hang"``: the step runs until the coordinator terminates it (timeout, cancel);
- ``"die"``: the worker is killed by SIGKILL without writing anything;
- an exception: ``launch`` raises it (a launcher that cannot start anything, or Ctrl-C).

A step missing from the script answers ``OUT-<n>`` (its 1-based index); a step whose script
is used up fails the test loudly, so an unexpected extra attempt cannot pass unnoticed.
Coordinator tests use it, and later backends' tests can check their wiring with it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import ClassVar

from agentic_orchestration.orchestration.backends.base import StepResult, StepSpec
from agentic_orchestration.orchestration.backends.launcher import (
    StepExit,
    StepHandle,
    StepLauncher,
)
from agentic_orchestration.orchestration.run_store import RunStore

__all__ = ["Outcome", "ScriptedHandle", "ScriptedLauncher"]

Outcome = str | StepResult | Callable[[StepSpec], "StepResult | StepExit"] | BaseException


class ScriptedHandle(StepHandle):
    """A finished step (``exit`` given) or a hanging one (until ``terminate``)."""

    def __init__(self, ref: str, exit_: StepExit | None) -> None:
        self.ref = ref
        self._exit = exit_
        self._stopped = threading.Event()
        self.terminated = False

    def wait(self, timeout: float | None) -> StepExit | None:
        if self._exit is not None:
            return self._exit
        if self._stopped.wait(timeout):
            return StepExit("signalled", signal="SIGKILL")
        return None

    def terminate(self) -> None:
        self.terminated = True
        self._stopped.set()


class ScriptedLauncher(StepLauncher):
    """Plays ``script[step_id]`` attempt by attempt; see the module docstring.

    Args:
        script: Outcomes per step id, in attempt order.
        store: Where results are written (may be set later, before the first launch).

    Attributes:
        received: Every spec launched, in order.
        handles: Every handle returned, in order.
    """

    name: ClassVar[str] = "scripted"

    def __init__(self, script: dict[str, list[Outcome]] | None = None, *,
                 store: RunStore | None = None) -> None:
        self.store = store
        self.remaining = {k: list(v) for k, v in (script or {}).items()}
        self.received: list[StepSpec] = []
        self.handles: list[ScriptedHandle] = []

    def launch(self, spec: StepSpec, *, spec_path: Path, log_path: Path) -> StepHandle:
        self.received.append(spec)
        handle = ScriptedHandle(f"scripted-{len(self.received)}", self._play(spec))
        self.handles.append(handle)
        return handle

    def _play(self, spec: StepSpec) -> StepExit | None:
        if spec.step_id not in self.remaining:
            return self._write(StepResult(run_id=spec.run_id, step_id=spec.step_id,
                                          result_text=f"OUT-{spec.step_index + 1}"))
        assert self.remaining[spec.step_id], f"unexpected extra attempt of {spec.step_id}"
        outcome = self.remaining[spec.step_id].pop(0)
        if isinstance(outcome, BaseException):
            raise outcome
        if outcome == "hang":
            return None
        if outcome == "die":
            return StepExit("signalled", signal="SIGKILL")
        if isinstance(outcome, str):
            outcome = StepResult(run_id=spec.run_id, step_id=spec.step_id, result_text=outcome)
        produced = outcome if isinstance(outcome, StepResult) else outcome(spec)
        if isinstance(produced, StepExit):
            return produced
        return self._write(produced)

    def _write(self, result: StepResult) -> StepExit:
        assert self.store is not None, "ScriptedLauncher needs a run store to write results"
        self.store.write_result(result)
        return StepExit("exited", exit_code=result.exit_code)
