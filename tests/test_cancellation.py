"""Cancelling a run from another thread: through the launcher seam (scripted and real
subprocess workers) and between tasks in-process. The records say ``cancelled``, finished
steps are kept, and a resume runs the rest."""

from __future__ import annotations

import io
import threading
import time
from pathlib import Path

import pytest
from flows import GATHER_DRAFT_FLOW

from agentic_orchestration.catalogs import load_catalog, load_workflow
from agentic_orchestration.orchestration.backends.base import (
    RunOptions,
    StepResult,
    StepSpec,
    StepTiming,
    TaskSpec,
)
from agentic_orchestration.orchestration.backends.launcher import (
    CancelToken,
    StepExit,
    result_from_exit,
)
from agentic_orchestration.orchestration.run_store import FileSystemRunStore
from agentic_orchestration.orchestration.step_coordinator import StepCoordinator
from agentic_orchestration.testing import ScriptedLauncher

RUN = "run-cancel"
TIMING = StepTiming(started_at="t0", finished_at="t1")


def specs(n: int = 3) -> list[StepSpec]:
    return [StepSpec(run_id=RUN, step_id=f"s{i + 1}", step_index=i, workflow_name="w",
                     task=TaskSpec(description=f"part {i + 1}", expected_output="text"),
                     agent_provider={"id": "a", "type": "openai", "model": "m",
                                     "openai_base_url": "http://x/v1", "role": "r",
                                     "goal": "g", "backstory": "b"})
            for i in range(n)]


def coordinate(launcher: ScriptedLauncher, store: FileSystemRunStore, *, cancel=None,
               resume: bool = False, timeout: float = 60.0):
    launcher.store = store
    return StepCoordinator(backend_name="scripted").run_workflow(
        specs(), launcher=launcher, run_store=store,
        run_options=RunOptions(run_id=RUN, cancel=cancel), resume=resume, timeout=timeout)


@pytest.fixture
def store(tmp_path: Path) -> FileSystemRunStore:
    return FileSystemRunStore(tmp_path / "store")


# -- the pure mapping -----------------------------------------------------------------------

@pytest.mark.parametrize(("outcome", "error", "hint"), [
    (StepExit("timeout", detail="step timed out after 5s"),
     "step timed out after 5s (worker stopped)", "worker_retry"),
    (StepExit("signalled", signal="SIGSEGV"), "worker killed by signal SIGSEGV", "worker_retry"),
    (StepExit("lost", detail="Job deleted"), "worker lost: Job deleted", "worker_retry"),
    (StepExit("exited", exit_code=2), "worker exited with code 2 without writing "
     "result.json; its log is empty", None),
])
def test_result_from_exit_without_a_result(outcome: StepExit, error: str,
                                           hint: str | None) -> None:
    result = result_from_exit(specs(1)[0], outcome, None, timing=TIMING)
    assert (result.exit_code, result.error, result.recovery_hint) == (1, error, hint)
    assert result.recoverable is (hint is not None) and result.timing == TIMING


def test_result_from_exit_prefers_what_the_worker_wrote_unless_cancelled() -> None:
    spec = specs(1)[0]
    done = StepResult(run_id=RUN, step_id="s1", result_text="done")
    assert result_from_exit(spec, StepExit("exited", exit_code=0), done,
                            timing=TIMING).timing == TIMING
    # A step that finished just before the cancel keeps its answer...
    assert result_from_exit(spec, StepExit("cancelled", detail="x"), done, timing=TIMING).ok
    # ...one stopped by it is cancelled, whatever its SIGTERM handler wrote.
    interrupted = StepResult(run_id=RUN, step_id="s1", exit_code=130, recoverable=True,
                             recovery_hint="worker_retry", error="interrupted by SIGTERM")
    cancelled = result_from_exit(spec, StepExit("cancelled", detail="budget"), interrupted,
                                 timing=TIMING)
    assert cancelled.cancelled and cancelled.error == "cancelled: budget"


# -- the coordinator, with the scripted launcher ---------------------------------------------

def test_cancel_mid_step_terminates_it_and_keeps_the_finished_steps(store) -> None:
    launcher = ScriptedLauncher({"s2": ["hang"]})
    token = CancelToken()
    threading.Timer(0.3, token.cancel, args=("user pressed cancel",)).start()
    result = coordinate(launcher, store, cancel=token)
    assert (result.status, result.exit_code) == ("cancelled", 130)
    assert [s.step_id for s in launcher.received] == ["s1", "s2"]  # s3 never launched
    assert launcher.handles[1].terminated
    assert result.step_results[0].ok and result.step_results[1].cancelled
    stored = store.read_result(RUN, "s2")
    assert stored is not None and stored.cancelled
    assert stored.error == "cancelled: user pressed cancel"

    resumed = ScriptedLauncher()
    again = coordinate(resumed, store, resume=True)
    assert again.ok and [s.step_id for s in resumed.received] == ["s2", "s3"]


def test_a_cancelled_run_launches_nothing_more(store) -> None:
    token = CancelToken()
    token.cancel("before it started")
    launcher = ScriptedLauncher()
    result = coordinate(launcher, store, cancel=token)
    assert result.status == "cancelled" and launcher.received == []


def test_a_hanging_step_is_stopped_at_the_timeout_and_retried(store) -> None:
    launcher = ScriptedLauncher({"s1": ["hang", "ok now"]})
    launcher.store = store
    result = StepCoordinator(backend_name="scripted", recover=lambda spec, res, n: spec,
                             max_attempts=2).run_workflow(
        specs(), launcher=launcher, run_store=store, run_options=RunOptions(run_id=RUN),
        timeout=0.2)
    assert result.ok and launcher.handles[0].terminated
    first = store.list_attempts(RUN, "s1")[0]
    assert first.error == "step timed out after 0.2s (worker stopped)"


# -- real workers ------------------------------------------------------------------------------

FLOW = GATHER_DRAFT_FLOW


def _flow(tmp_path: Path):
    return load_workflow(str(tmp_path / "flow.yaml")).model_copy(update={"topic": "tea"})


def _pids_of(step_id: str) -> list[int]:
    pids = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                cmd = (proc / "cmdline").read_bytes()
            except OSError:
                continue
            if b"--execute-step" in cmd and step_id.encode() in cmd:
                pids.append(int(proc.name))
    return pids


def _running(pid: int) -> bool:
    """Still a process, not a zombie waiting to be reaped (that one has already died)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    return "\nState:\tZ" not in status


@pytest.mark.backend_subprocess
def test_cancel_a_subprocess_run_mid_step_from_another_thread(
        tmp_path: Path, fake_config: Path, scripted_llm, monkeypatch) -> None:
    from agentic_orchestration.orchestration.backends.subprocess import (
        SubprocessExecutionBackend,
    )

    monkeypatch.setenv("AGENTIC_SUBPROCESS_WARM", "0")  # cold: the worker's cmdline names it
    store = FileSystemRunStore(tmp_path / "store")
    (tmp_path / "flow.yaml").write_text(FLOW)
    reached, release = threading.Event(), threading.Event()

    def stall(request):
        reached.set()
        release.wait(60)
        return "too late"

    scripted_llm.add_rule(r"DRAFT", stall)
    scripted_llm.add_rule(r"GATHER", "Fact one.")
    token = CancelToken()
    stopped: dict[str, float] = {}

    def cancel_when_drafting() -> None:
        assert reached.wait(120)
        pids = _pids_of("draft")
        began = time.monotonic()
        token.cancel("cancel button")
        while any(_running(p) for p in pids) and time.monotonic() - began < 30:
            time.sleep(0.02)
        stopped["seconds"] = time.monotonic() - began
        stopped["left"] = float(len([p for p in pids if _running(p)]))

    watcher = threading.Thread(target=cancel_when_drafting)
    watcher.start()
    try:
        result = SubprocessExecutionBackend(run_store=store).execute_config(
            _flow(tmp_path), catalog=load_catalog(),
            options=RunOptions(run_id=RUN, cancel=token, emit_progress_lines=False))
    finally:
        release.set()
        watcher.join(30)
    assert result.status == "cancelled" and result.exit_code == 130
    # Stopped at once, not when the stalled LLM call ends (60 s): typically 0.05 s here; the
    # bound is loose because a loaded 2-core machine can take a second or two to tear a
    # 200 MB process down (timings belong in benchmarks, not in assertions).
    assert stopped["left"] == 0 and stopped["seconds"] < 10, stopped
    assert store.read_result(RUN, "gather").ok
    draft = store.read_result(RUN, "draft")
    assert draft is not None and draft.cancelled and draft.error == "cancelled: cancel button"


@pytest.mark.backend_inprocess
@pytest.mark.filterwarnings("ignore::ImportWarning")
def test_in_process_run_stops_between_tasks(tmp_path: Path, fake_config: Path,
                                            scripted_llm) -> None:
    from agentic_orchestration.orchestration.backends.crewai import CrewAIExecutionBackend

    (tmp_path / "flow.yaml").write_text(FLOW)
    token = CancelToken()

    def cancel_while_gathering(request):
        token.cancel("stop after this step")
        return "Fact one."

    scripted_llm.add_rule(r"DRAFT", "never asked")
    scripted_llm.add_rule(r"GATHER", cancel_while_gathering)
    backend = CrewAIExecutionBackend(progress_stream=io.StringIO(), live_progress=False)
    result = backend.execute_config(_flow(tmp_path),
                                    catalog=load_catalog(),
                                    options=RunOptions(run_id=RUN, cancel=token))
    assert (result.status, result.exit_code) == ("cancelled", 130)
    assert [r.step_id for r in result.step_results] == ["gather"]
    assert not any("DRAFT" in text for text in scripted_llm.user_texts())
