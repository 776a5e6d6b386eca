"""StepCoordinator and per-step recovery, in isolation (spec F2.3, F2.6, K3.4, K3.5).

The launcher is the coordinator's seam (a backend's "launch, check, terminate one step"),
so the double here is ``testing.ScriptedLauncher`` playing scripted outcomes and recording
the specs it received. Everything else is real: the filesystem run store in ``tmp_path``,
the catalog's fallback chain, the progress reporter writing to (captured) stdout.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from agentic_orchestration.catalogs import AgentProviderEntry, Catalog
from agentic_orchestration.errors import StepFailed, StepSpecError
from agentic_orchestration.orchestration.backends.base import (
    RecoveryHint,
    RunOptions,
    StepResult,
    StepSpec,
    TaskSpec,
)
from agentic_orchestration.orchestration.backends.launcher import CancelToken
from agentic_orchestration.orchestration.run_store import FileSystemRunStore
from agentic_orchestration.orchestration.step_context import PRIOR_OUTPUT_START
from agentic_orchestration.orchestration.step_coordinator import StepCoordinator
from agentic_orchestration.orchestration.step_recovery import (
    provider_recovery,
)
from agentic_orchestration.testing.launcher import Outcome, ScriptedLauncher

RUN = "run-test"
STEP_IDS = ("step_1", "step_2", "step_3")


def entry(id_: str, url: str, priority: int, role: str = "Writer") -> AgentProviderEntry:
    return AgentProviderEntry(id=id_, type="openai", model="m", openai_base_url=url,
                              role=role, goal="g", backstory="b", priority=priority)


PRIMARY = entry("primary", "http://a/v1", 1, role="Researcher")


@pytest.fixture
def catalog() -> Catalog:
    agents = [PRIMARY, entry("primary_twin", "http://a/v1", 2), entry("backup", "http://b/v1", 3),
              entry("third", "http://c/v1", 4)]
    return Catalog(agents={e.id: e for e in agents}, mcps={})


@pytest.fixture
def store(tmp_path: Path) -> FileSystemRunStore:
    return FileSystemRunStore(tmp_path / "store")


def specs(n: int = 3) -> list[StepSpec]:
    """Specs as the materializer builds them: base description, no prior output."""
    return [StepSpec(run_id=RUN, step_id=STEP_IDS[i], step_index=i, workflow_name="w",
                     task=TaskSpec(description=f"Do part {i + 1} of the job.",
                                   expected_output="text"),
                     agent_provider=PRIMARY.model_dump(mode="json"))
            for i in range(n)]


def ok(spec: StepSpec, text: str) -> StepResult:
    return StepResult(run_id=spec.run_id, step_id=spec.step_id, result_text=text)


def fail(spec: StepSpec, error: str = "HTTP 500 from the LLM", *, recoverable: bool = True,
         hint: str | None = RecoveryHint.PROVIDER_FALLBACK) -> StepResult:
    return StepResult(run_id=spec.run_id, step_id=spec.step_id, exit_code=1, error=error,
                      recoverable=recoverable, recovery_hint=hint)


def scripted(script: dict[str, list[Outcome]]
             ) -> tuple[ScriptedLauncher, list[StepSpec]]:
    """A launcher playing ``script[step_id]`` attempt by attempt, and its inbox."""
    launcher = ScriptedLauncher(script)
    return launcher, launcher.received


def run(launcher: ScriptedLauncher, store: FileSystemRunStore, *,
        steps: list[StepSpec] | None = None, resume: bool = False, sink: list[str] | None = None,
        cancel: CancelToken | None = None, timeout: float = 60.0,
        **coordinator_kwargs: object):
    launcher.store = store
    coordinator = StepCoordinator(backend_name="fake", **coordinator_kwargs)  # type: ignore[arg-type]
    return coordinator.run_workflow(
        steps if steps is not None else specs(), launcher=launcher, run_store=store,
        run_options=RunOptions(run_id=RUN, execution_error_sink=sink, cancel=cancel),
        resume=resume, timeout=timeout)


def progress_lines(out: str) -> list[str]:
    return [line for line in out.splitlines() if line.startswith("(progress)")]


def ids(received: list[StepSpec]) -> list[str]:
    return [s.step_id for s in received]


# -- the loop -----------------------------------------------------------------------------


def test_steps_run_in_order_and_each_gets_the_previous_output_once(
        store: FileSystemRunStore) -> None:
    execute_step, received = scripted({})
    plan = specs()
    result = run(execute_step, store, steps=plan)

    assert result.ok and result.exit_code == 0 and result.error is None
    assert ids(received) == list(STEP_IDS)
    first, second, third = received
    assert first.prior_output == "" and first.task.description == "Do part 1 of the job."
    assert second.prior_output == "OUT-1" and third.prior_output == "OUT-2"
    for spec, prior in ((second, "OUT-1"), (third, "OUT-2")):
        assert spec.task.description.startswith(f"Do part {spec.step_index + 1} of the job.")
        assert spec.task.description.count(prior) == 1
        assert spec.task.description.count(PRIOR_OUTPUT_START) == 1
    assert "OUT-1" not in third.task.description  # only the immediately previous output
    # The caller's specs keep their base description (a rerun must not inject twice).
    assert [s.task.description for s in plan] == [f"Do part {i} of the job." for i in (1, 2, 3)]

    assert result.result_text == "OUT-3"
    assert [r.result_text for r in result.step_results] == ["OUT-1", "OUT-2", "OUT-3"]
    assert (result.run_id, result.backend, result.providers_tried) == (RUN, "fake", ["primary"])
    for spec in received:  # the store holds exactly what the worker got, and its result
        assert store.read_spec(RUN, spec.step_id) == spec
        stored = store.read_result(RUN, spec.step_id)
        assert stored is not None and stored.result_text == f"OUT-{spec.step_index + 1}"
        assert stored.agent_provider_id == "primary"
        assert [a.ok for a in store.list_attempts(RUN, spec.step_id)] == [True]


def test_progress_lines_match_the_in_process_format(
        store: FileSystemRunStore, capsys: pytest.CaptureFixture[str]) -> None:
    execute_step, _ = scripted({})
    assert run(execute_step, store).ok
    out = capsys.readouterr().out
    lines = progress_lines(out)
    expected = [r"run run-test started: 3 steps \[fake\]"]
    for i, step_id in enumerate(STEP_IDS, start=1):
        expected += [rf"step {i}/3 {step_id} started \[agent primary\]",
                     rf"step {i}/3 {step_id} finished in \d+\.\d\ds"]
    expected.append("run run-test finished: ok")
    assert len(lines) == len(expected), lines
    for line, pattern in zip(lines, expected, strict=True):
        assert re.fullmatch(r"\(progress\) " + pattern, line), line
    assert [line for line in out.splitlines() if line.strip()] == lines


def test_non_recoverable_failure_stops_the_run(
        store: FileSystemRunStore, capsys: pytest.CaptureFixture[str]) -> None:
    execute_step, received = scripted({"step_2": [
        lambda s: fail(s, "401 bad key", recoverable=False, hint=None)]})
    recover_calls: list[int] = []

    def recover(spec: StepSpec, result: StepResult, attempt: int) -> StepSpec | None:
        recover_calls.append(attempt)
        return spec

    sink: list[str] = []
    result = run(execute_step, store, recover=recover, sink=sink)

    assert ids(received) == ["step_1", "step_2"]
    assert result.exit_code == 1 and not result.ok
    assert isinstance(result.error, StepFailed) and "401 bad key" in str(result.error)
    assert result.error.step_id == "step_2" and not result.error.recoverable
    assert result.result_text is None  # as in-process: no final answer on failure
    assert result.step_results[0].result_text == "OUT-1"
    assert [r.ok for r in result.step_results] == [True, False]
    assert recover_calls == []
    assert sink == ["step step_2 attempt 1 on primary: 401 bad key"]
    assert store.read_result(RUN, "step_3") is None
    assert not store.spec_path(RUN, "step_3").exists()
    lines = progress_lines(capsys.readouterr().out)
    assert "(progress) step 2/3 step_2 failed: 401 bad key" in lines
    assert not any("step_3" in line for line in lines)
    assert lines[-1] == "(progress) run run-test finished: failed"


def test_an_exception_from_launch_becomes_a_failed_result(
        store: FileSystemRunStore) -> None:
    execute_step, received = scripted({"step_2": [RuntimeError("launcher bug")]})
    result = run(execute_step, store, recover=lambda spec, res, n: spec, max_attempts=3)

    assert ids(received) == ["step_1", "step_2"]  # not retried: a bug is not recoverable
    assert result.exit_code == 1
    failed = result.step_results[-1]
    assert not failed.ok and not failed.recoverable
    assert "RuntimeError" in (failed.error or "") and "launcher bug" in (failed.error or "")
    assert failed.timing is not None and failed.agent_provider_id == "primary"
    stored = store.read_result(RUN, "step_2")
    assert stored is not None and stored.error == failed.error


def test_a_blank_answer_fails_the_step_recoverably(store: FileSystemRunStore) -> None:
    execute_step, _ = scripted({"step_1": ["   "]})
    result = run(execute_step, store)
    assert result.exit_code == 1
    failed = result.step_results[0]
    assert failed.recoverable and failed.recovery_hint == RecoveryHint.PROVIDER_FALLBACK
    assert "empty answer" in (failed.error or "")


def test_specs_of_another_run_are_refused(store: FileSystemRunStore) -> None:
    execute_step, received = scripted({})
    stray = specs()[0].model_copy(update={"run_id": "other-run"})
    with pytest.raises(StepSpecError, match="do not belong to run run-test"):
        run(execute_step, store, steps=[stray])
    assert received == []


# -- retries ------------------------------------------------------------------------------


@pytest.mark.parametrize("hint", [RecoveryHint.PROVIDER_FALLBACK, RecoveryHint.HF_LITELLM_FALLBACK])
def test_recoverable_failure_is_retried_on_the_next_provider(
        hint: str, catalog: Catalog, store: FileSystemRunStore,
        capsys: pytest.CaptureFixture[str]) -> None:
    execute_step, received = scripted({"step_2": [lambda s: fail(s, hint=hint), "OUT-2"]})
    sink: list[str] = []
    result = run(execute_step, store, recover=provider_recovery(catalog), sink=sink)

    assert result.ok, result.error
    assert ids(received) == ["step_1", "step_2", "step_2", "step_3"]
    before, after = received[1], received[2]
    # Next endpoint of the chain (primary_twin shares primary's endpoint: skipped).
    assert (before.agent_provider["id"], after.agent_provider["id"]) == ("primary", "backup")
    assert after.agent_provider["openai_base_url"] == "http://b/v1"
    assert after.agent_provider["role"] == before.agent_provider["role"] == "Researcher"
    assert after.task == before.task and after.task.description.count("OUT-1") == 1
    assert received[3].agent_provider["id"] == "primary"  # the next step keeps its own
    assert received[3].prior_output == "OUT-2"
    assert result.providers_tried == ["primary", "backup"]
    assert [r.agent_provider_id for r in result.step_results] == ["primary", "backup", "primary"]

    attempts = store.list_attempts(RUN, "step_2")
    assert [(a.ok, a.recovery_hint) for a in attempts] == [(False, hint), (True, None)]
    assert store.read_spec(RUN, "step_2").agent_provider["id"] == "backup"
    stored = store.read_result(RUN, "step_2")
    assert stored is not None and stored.ok
    assert sink == ["step step_2 attempt 1 on primary: HTTP 500 from the LLM"]

    lines = progress_lines(capsys.readouterr().out)
    failed = lines.index("(progress) step 2/3 step_2 failed: HTTP 500 from the LLM")
    assert lines[failed + 1:failed + 3] == [
        "(progress) fallback: retrying on backup from step 2/3 step_2",
        "(progress) step 2/3 step_2 started [agent backup]"]
    assert lines[-1] == "(progress) run run-test finished: ok"


@pytest.mark.parametrize(("max_attempts", "env", "providers"), [
    (3, None, ["primary", "backup", "third"]),
    (9, None, ["primary", "backup", "third"]),  # chain used up before the bound
    (None, None, ["primary", "backup"]),  # AGENTIC_STEP_MAX_ATTEMPTS defaults to 2
    (None, "1", ["primary"]),
])
def test_max_attempts_bounds_retries(
        max_attempts: int | None, env: str | None, providers: list[str], catalog: Catalog,
        store: FileSystemRunStore, monkeypatch: pytest.MonkeyPatch) -> None:
    if env is not None:
        monkeypatch.setenv("AGENTIC_STEP_MAX_ATTEMPTS", env)
    execute_step, received = scripted({"step_1": [fail] * 9})
    sink: list[str] = []
    result = run(execute_step, store, recover=provider_recovery(catalog),
                 max_attempts=max_attempts, sink=sink)

    assert result.exit_code == 1 and result.result_text is None
    assert [s.agent_provider["id"] for s in received] == providers
    assert len(store.list_attempts(RUN, "step_1")) == len(providers) == len(sink)
    assert result.providers_tried == providers
    assert [r.step_id for r in result.step_results] == ["step_1"]  # final result only


def test_fallback_off_gives_up_after_the_first_attempt(
        catalog: Catalog, store: FileSystemRunStore, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENTIC_FALLBACK", "0")
    execute_step, received = scripted({"step_1": [fail]})
    result = run(execute_step, store, recover=provider_recovery(catalog), max_attempts=3)
    assert result.exit_code == 1 and len(received) == 1


def test_worker_retry_runs_the_same_spec_again(
        catalog: Catalog, store: FileSystemRunStore, capsys: pytest.CaptureFixture[str]) -> None:
    crashed = "worker exited with code -9 and no result.json"
    execute_step, received = scripted({"step_1": [
        lambda s: fail(s, crashed, hint=RecoveryHint.WORKER_RETRY), "OUT-1"]})
    result = run(execute_step, store, recover=provider_recovery(catalog))

    assert result.ok, result.error
    assert ids(received) == ["step_1", "step_1", "step_2", "step_3"]
    assert received[0] == received[1]
    assert result.providers_tried == ["primary"]
    assert len(store.list_attempts(RUN, "step_1")) == 2
    lines = progress_lines(capsys.readouterr().out)
    assert "(progress) fallback: retrying on primary from step 1/3 step_1" in lines


def test_unknown_hint_is_not_retried(catalog: Catalog, store: FileSystemRunStore) -> None:
    execute_step, received = scripted({"step_1": [lambda s: fail(s, hint="mystery")]})
    result = run(execute_step, store, recover=provider_recovery(catalog), max_attempts=3)
    assert result.exit_code == 1 and len(received) == 1


def test_recovery_after_a_worker_retry_does_not_skip_a_provider(catalog: Catalog) -> None:
    recover = provider_recovery(catalog)
    spec = specs(1)[0]
    same = recover(spec, fail(spec, hint=RecoveryHint.WORKER_RETRY), 1)
    assert same == spec
    second = recover(spec, fail(spec), 2)
    assert second is not None and second.agent_provider["id"] == "backup"
    third = recover(second, fail(second), 3)
    assert third is not None and third.agent_provider["id"] == "third"
    assert third.agent_provider["role"] == "Researcher"
    assert recover(third, fail(third), 4) is None  # chain used up


# -- resume and interruption ---------------------------------------------------------------


def test_resume_skips_ok_steps_and_reruns_the_failed_one(
        store: FileSystemRunStore, capsys: pytest.CaptureFixture[str]) -> None:
    first_try, _ = scripted({"step_2": [lambda s: fail(s, "boom", recoverable=False)]})
    assert run(first_try, store).exit_code == 1
    # A stale "ok" after the failed step must not be trusted: its input is about to change.
    store.write_result(StepResult(run_id=RUN, step_id="step_3", result_text="STALE"))
    capsys.readouterr()

    execute_step, received = scripted({})
    result = run(execute_step, store, resume=True)

    assert result.ok, result.error
    assert ids(received) == ["step_2", "step_3"]
    assert received[0].prior_output == "OUT-1"
    assert received[0].task.description.count("OUT-1") == 1
    assert received[1].prior_output == "OUT-2"
    assert [r.result_text for r in result.step_results] == ["OUT-1", "OUT-2", "OUT-3"]
    assert result.result_text == "OUT-3"
    assert len(store.list_attempts(RUN, "step_1")) == 1  # not run again
    lines = progress_lines(capsys.readouterr().out)
    assert lines[1] == "(progress) step 1/3 step_1 skipped: already done (resume)"
    assert lines[2] == "(progress) step 2/3 step_2 started [agent primary]"
    assert not any("step_1 started" in line for line in lines)


def test_resume_of_a_finished_run_runs_nothing(store: FileSystemRunStore) -> None:
    execute_step, _ = scripted({})
    assert run(execute_step, store).ok
    again, received = scripted({})
    result = run(again, store, resume=True)
    assert result.ok and received == [] and result.result_text == "OUT-3"


def test_interrupt_propagates_and_leaves_no_half_written_step(
        store: FileSystemRunStore, capsys: pytest.CaptureFixture[str]) -> None:
    execute_step, _ = scripted({"step_2": [KeyboardInterrupt()]})
    with pytest.raises(KeyboardInterrupt):
        run(execute_step, store)

    stored = store.read_result(RUN, "step_1")
    assert stored is not None and stored.ok
    assert store.read_result(RUN, "step_2") is None
    assert store.list_attempts(RUN, "step_2") == []
    lines = progress_lines(capsys.readouterr().out)
    assert lines[-2].startswith("(progress) step 2/3 step_2 failed: KeyboardInterrupt")
    assert lines[-1] == "(progress) run run-test finished: failed"

    resumed, received = scripted({})
    assert run(resumed, store, resume=True).ok
    assert ids(received) == ["step_2", "step_3"]


class _InterruptedBeforeSpec(FileSystemRunStore):
    """Ctrl-C landing after one step's result was written, before the next step's spec."""

    def __init__(self, base: Path, step_id: str) -> None:
        super().__init__(base)
        self.step_id = step_id

    def write_spec(self, spec: StepSpec) -> Path:
        if spec.step_id == self.step_id:
            raise KeyboardInterrupt
        return super().write_spec(spec)


def test_a_rerun_clears_later_results_before_anything_can_interrupt_it(
        tmp_path: Path) -> None:
    store = FileSystemRunStore(tmp_path / "store")
    execute_step, _ = scripted({"step_2": [lambda s: fail(s, "boom", recoverable=False)]})
    assert run(execute_step, store).exit_code == 1
    # Left by an older run of step 3, computed from an output step 2 no longer has.
    store.write_result(StepResult(run_id=RUN, step_id="step_3", result_text="STALE"))

    execute_step, received = scripted({"step_2": ["NEW-2"]})
    with pytest.raises(KeyboardInterrupt):
        run(execute_step, _InterruptedBeforeSpec(tmp_path / "store", "step_3"), resume=True)
    assert ids(received) == ["step_2"]
    assert store.read_result(RUN, "step_3") is None

    execute_step, received = scripted({})
    result = run(execute_step, store, resume=True)
    assert ids(received) == ["step_3"] and received[0].prior_output == "NEW-2"
    assert result.result_text == "OUT-3"
