"""Launching step workers cold and warm, and turning their fate into a StepResult.

Fault injection needs workers that misbehave on purpose, so most tests run a tiny fake
worker (``fake_worker.py`` written below): as a script for ``ColdLauncher`` (injected command
prefix) and as ``--target fake_worker:main`` for the warm zygote. One test runs the real
zygote with crewai preloaded. Every test checks that no worker process is left behind.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from agentic_orchestration.errors import BackendError, ZygoteGone
from agentic_orchestration.orchestration.backends.base import StepSpec, TaskSpec
from agentic_orchestration.orchestration.backends.launcher import (
    CancelToken,
    StepExit,
    StepHandle,
    StepLauncher,
)
from agentic_orchestration.orchestration.backends.subprocess_runner import (
    ColdLauncher,
    FallbackLauncher,
    tail_log,
)
from agentic_orchestration.orchestration.backends.warm_launcher import WarmLauncher
from agentic_orchestration.orchestration.run_store import FileSystemRunStore
from agentic_orchestration.orchestration.step_coordinator import launch_and_await

pytestmark = [pytest.mark.backend_subprocess, pytest.mark.timeout(120)]

RUN = "run-1"

FAKE_WORKER = textwrap.dedent('''\
    """A fake step worker. The "spec" is {"mode": ..., "result": path}."""
    import json, os, signal, subprocess, sys, threading, time

    def main(spec_path, *, run_id, step_id):
        spec = json.load(open(spec_path))
        mode = spec["mode"]
        for i in range(1, 8):
            print(f"fake log line {i}", flush=True)
        if mode == "hang":
            time.sleep(3600)
        if mode == "sigkill":
            os.kill(os.getpid(), signal.SIGKILL)
        if mode in ("exit3", "exit2"):
            return int(mode[-1])
        if mode == "raise":
            raise RuntimeError("boom in the step")
        if mode == "straggler":  # leaves a grandchild in the worker's process group
            child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(3600)"])
            open(spec["result"] + ".straggler", "w").write(str(child.pid))
        text = {"pid": os.getpid(), "ppid": os.getppid(), "pgid": os.getpgid(0),
                "threads": threading.active_count(), "stdin": os.readlink("/proc/self/fd/0")}
        if mode == "probe":
            text["modules"] = {m: m in sys.modules for m in spec["modules"]}
        os.makedirs(os.path.dirname(spec["result"]), exist_ok=True)
        result = {"schema_version": "0.1", "run_id": run_id, "step_id": step_id,
                  "exit_code": 0, "result_text": json.dumps(text)}
        json.dump(result, open(spec["result"], "w"))
        return 0

    if __name__ == "__main__":
        args = dict(zip(sys.argv[1::2], sys.argv[2::2]))
        sys.exit(main(args["--execute-step"], run_id=args["--run-id"],
                      step_id=args["--step-id"]))
    ''')


def alive(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie waiting for a parent we do not own."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def assert_gone(*pids: int, within: float = 2.0) -> None:
    deadline = time.monotonic() + within
    while any(alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not [p for p in pids if alive(p)], "worker processes left behind"


@pytest.fixture
def fake(tmp_path: Path) -> Path:
    path = tmp_path / "fakes" / "fake_worker.py"
    path.parent.mkdir()
    path.write_text(FAKE_WORKER)
    return path


@pytest.fixture
def store(tmp_path: Path) -> FileSystemRunStore:
    return FileSystemRunStore(tmp_path / "store")


def make_spec(store: FileSystemRunStore, step_id: str, mode: str, **extra: object) -> Path:
    spec = store.run_dir(RUN) / f"{step_id}.fake.json"
    spec.parent.mkdir(parents=True, exist_ok=True)
    spec.write_text(json.dumps({"mode": mode, "result": str(store.result_path(RUN, step_id)),
                                **extra}))
    return spec


@pytest.fixture
def cold(fake: Path) -> ColdLauncher:
    return ColdLauncher(command=[sys.executable, str(fake)])


def warm_launcher(fake: Path, *, preload: bool = False, spares: int | None = None
                  ) -> WarmLauncher:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(fake.parent),
                                                        os.environ.get("PYTHONPATH", "")]))
    return WarmLauncher(env=env, preload=preload, target="fake_worker:main", spares=spares)


def _started(launcher: WarmLauncher) -> Iterator[WarmLauncher]:
    launcher.start()
    yield launcher
    zygote = launcher.zygote_pid
    launcher.close()
    assert zygote is not None
    assert_gone(zygote)


@pytest.fixture
def warm(fake: Path) -> Iterator[WarmLauncher]:
    """Spares forked ahead (as many as AGENTIC_MAX_PARALLEL_STEPS, the default)."""
    yield from _started(warm_launcher(fake))


@pytest.fixture
def warm_fork(fake: Path) -> Iterator[WarmLauncher]:
    """No spares: a child is forked when the step is launched."""
    yield from _started(warm_launcher(fake, spares=0))


@pytest.fixture(params=["cold", "warm", "warm_fork"])
def launcher(request: pytest.FixtureRequest) -> StepLauncher:
    return request.getfixturevalue(request.param)


def step(step_id: str) -> StepSpec:
    """The coordinator's view of the step; the fake worker reads its own spec file."""
    return StepSpec(run_id=RUN, step_id=step_id, step_index=0, workflow_name="w",
                    task=TaskSpec(description="d", expected_output="e"), agent_provider={})


def run_path(launcher: StepLauncher, store: FileSystemRunStore, step_id: str, spec_path: Path,
             *, timeout: float = 60.0, cancel: CancelToken | None = None):
    """One attempt exactly as the coordinator makes it (``launch_and_await``)."""
    return launch_and_await(launcher, store, step(step_id), spec_path=spec_path,
                            timeout=timeout, cancel=cancel)


def run(launcher: StepLauncher, store: FileSystemRunStore, step_id: str, mode: str,
        timeout: float = 60.0, cancel: CancelToken | None = None):
    return run_path(launcher, store, step_id, make_spec(store, step_id, mode), timeout=timeout,
                    cancel=cancel)


def launch(launcher: StepLauncher, spec_path: Path, step_id: str, log: Path) -> StepHandle:
    return launcher.launch(step(step_id), spec_path=spec_path, log_path=log)


def worker_info(result) -> dict:
    return json.loads(result.result_text)


# -- outcomes ---------------------------------------------------------------------------

def test_result_json_is_returned_with_coordinator_timing(launcher, store) -> None:
    result = run(launcher, store, "s1", "ok")
    assert result.ok and result.error is None
    info = worker_info(result)
    assert info["pgid"] == info["pid"]  # its own process group, so kill() reaches all of it
    assert info["stdin"] == os.devnull  # never the coordinator's terminal or request pipe
    assert result.timing is not None and result.timing.duration_seconds is not None
    log = store.result_path(RUN, "s1").parent / "worker.log"
    assert "=== launch" in log.read_text() and "fake log line 7" in log.read_text()
    assert_gone(info["pid"])


def test_hang_is_killed_at_the_timeout(launcher, store) -> None:
    began = time.monotonic()
    result = run(launcher, store, "s1", "hang", timeout=1.0)
    assert time.monotonic() - began < 1.0 + 5.0  # the 1 s timeout, plus slack for a busy CI box
    assert not result.ok
    assert result.error == "step timed out after 1s (worker stopped)"
    assert result.recoverable and result.recovery_hint == "worker_retry"
    assert result.timing is not None


def test_sigkill_mid_step(launcher, store) -> None:
    result = run(launcher, store, "s1", "sigkill")
    assert result.error == "worker killed by signal SIGKILL"
    assert result.recoverable and result.recovery_hint == "worker_retry"


def test_exit_without_result_reports_the_last_log_lines(launcher, store) -> None:
    result = run(launcher, store, "s1", "exit3")
    assert result.error is not None
    assert result.error.startswith("worker exited with code 3 without writing result.json")
    assert "fake log line 7" in result.error and "fake log line 3" in result.error
    assert "fake log line 2" not in result.error  # only the last five
    assert result.recoverable and result.recovery_hint == "worker_retry"


def test_bad_spec_exit_is_not_recoverable(launcher, store) -> None:
    result = run(launcher, store, "s1", "exit2")
    assert "code 2" in (result.error or "")
    assert not result.recoverable and result.recovery_hint is None


def test_leftover_processes_of_a_finished_step_are_killed(launcher, store) -> None:
    result = run(launcher, store, "s1", "straggler")
    assert result.ok
    straggler = int(Path(str(store.result_path(RUN, "s1")) + ".straggler").read_text())
    assert_gone(straggler)


def test_warm_step_that_raises_exits_1_with_the_traceback_in_its_log(warm, store) -> None:
    result = run(warm, store, "s1", "raise")
    assert "code 1" in (result.error or "") and "boom in the step" in (result.error or "")


# -- kill and interrupt -------------------------------------------------------------------

def test_handle_terminate_stops_a_running_worker(launcher, store) -> None:
    spec = make_spec(store, "s1", "hang")
    log = store.result_path(RUN, "s1").parent / "worker.log"
    handle = launch(launcher, spec, "s1", log)
    assert handle.wait(0.3) is None
    handle.terminate()
    assert handle.wait(1.0) == StepExit("signalled", signal="SIGKILL")
    handle.terminate()  # idempotent
    assert_gone(int(handle.ref))


class _Recording(StepLauncher):
    """Wraps a real launcher and keeps the handles it returned."""

    name = "recording"

    def __init__(self, inner: StepLauncher) -> None:
        self.inner = inner
        self.handles: list[StepHandle] = []

    def launch(self, spec, *, spec_path, log_path):
        self.handles.append(self.inner.launch(spec, spec_path=spec_path, log_path=log_path))
        return self.handles[-1]


def test_cancel_from_another_thread_stops_the_worker_within_a_second(launcher, store) -> None:
    import threading

    token = CancelToken()
    recording = _Recording(launcher)
    timer = threading.Timer(1.0, token.cancel, args=("cancel button",))
    began = time.monotonic()
    timer.start()
    result = run(recording, store, "s1", "hang", cancel=token)
    stopped = time.monotonic() - began - 1.0
    assert result.cancelled and result.error == "cancelled: cancel button"
    assert not result.recoverable and result.exit_code == 130
    assert stopped < 1.0, f"the step took {stopped:.2f}s to stop after the cancel"
    assert_gone(int(recording.handles[0].ref), within=0.5)


class _InterruptingLauncher(StepLauncher):
    """Wraps a real launcher; its handles raise KeyboardInterrupt from ``wait`` (Ctrl-C)."""

    name = "interrupting"

    def __init__(self, inner: StepLauncher) -> None:
        self.inner = inner
        self.handle: StepHandle | None = None

    def launch(self, spec, *, spec_path, log_path):
        handle = self.inner.launch(spec, spec_path=spec_path, log_path=log_path)
        self.handle = handle
        real_wait = handle.wait

        def wait(timeout):
            real_wait(0.2)
            raise KeyboardInterrupt

        handle.wait = wait  # type: ignore[method-assign]
        return handle


def test_keyboard_interrupt_kills_the_worker_and_propagates(launcher, store) -> None:
    interrupting = _InterruptingLauncher(launcher)
    with pytest.raises(KeyboardInterrupt):
        run(interrupting, store, "s1", "hang")
    assert interrupting.handle is not None
    assert_gone(int(interrupting.handle.ref))


# -- the warm zygote ----------------------------------------------------------------------

def test_warm_steps_run_in_distinct_forked_children(warm, store) -> None:
    first, second = run(warm, store, "s1", "ok"), run(warm, store, "s2", "ok")
    pids = {worker_info(first)["pid"], worker_info(second)["pid"], warm.zygote_pid}
    assert len(pids) == 3
    assert store.read_result(RUN, "s1").result_text == first.result_text
    assert store.read_result(RUN, "s2").result_text == second.result_text


def test_start_does_not_block_and_first_launch_waits_for_ready(fake, store) -> None:
    launcher = warm_launcher(fake, preload=True)
    began = time.monotonic()
    launcher.start()
    try:
        assert time.monotonic() - began < 2.0  # the zygote needs ~2.7 s to get ready
        assert run(launcher, store, "s1", "ok").ok
        assert launcher.ready_info is not None and launcher.ready_info["preloaded"] > 20
    finally:
        launcher.close()


def test_killed_zygote_gives_a_clear_error(warm, store) -> None:
    assert run(warm, store, "s0", "ok").ok  # ready and serving
    os.kill(warm.zygote_pid, signal.SIGKILL)
    spec = make_spec(store, "s1", "ok")
    with pytest.raises(ZygoteGone, match=r"warm worker process \(pid \d+\) was killed by "
                                         r"signal SIGKILL when asked to fork a step"):
        launch(warm, spec, "s1", spec.with_suffix(".log"))


def test_fallback_launcher_goes_cold_when_the_zygote_is_gone(warm, cold, store) -> None:
    fallback = FallbackLauncher(warm, cold)
    fallback.start()
    first = run(fallback, store, "s1", "ok")
    zygote = warm.zygote_pid
    os.kill(zygote, signal.SIGKILL)
    second = run(fallback, store, "s2", "ok")
    assert first.ok and second.ok and fallback.warm_failed
    assert worker_info(first)["ppid"] == zygote  # forked by the zygote
    assert worker_info(second)["ppid"] == os.getpid()  # a cold worker, started by us


def test_zygote_that_cannot_import_its_target_fails_launch(fake, store) -> None:
    launcher = WarmLauncher(preload=False, target="no_such_module_here:main")
    try:
        spec = make_spec(store, "s1", "ok")
        with pytest.raises(BackendError, match=r"start-up failed.*no_such_module_here"):
            launch(launcher, spec, "s1", spec.with_suffix(".log"))
    finally:
        launcher.close()


def test_zygote_dying_mid_step_kills_the_step(warm, store) -> None:
    spec = make_spec(store, "s1", "hang")
    handle = launch(warm, spec, "s1", spec.with_suffix(".log"))
    os.kill(warm.zygote_pid, signal.SIGKILL)
    outcome = handle.wait(5.0)
    assert outcome is not None and outcome.reason == "lost"
    assert "warm worker process died" in outcome.detail
    assert_gone(int(handle.ref))


def test_zygote_exits_on_stdin_eof_and_kills_running_steps(warm, store) -> None:
    spec = make_spec(store, "s1", "hang")
    handle = launch(warm, spec, "s1", spec.with_suffix(".log"))
    zygote = warm._proc
    assert zygote is not None and zygote.stdin is not None
    zygote.stdin.close()  # what the kernel does when the coordinator dies
    assert zygote.wait(5) == 0
    assert_gone(int(handle.ref))


def zygote_threads(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(next(line for line in status.splitlines() if line.startswith("Threads:")).split()[1])


def test_real_zygote_preloads_crewai_and_forks_each_step(fake, store) -> None:
    """The default zygote (crewai and the first-kickoff modules preloaded, primed), probed."""
    launcher = warm_launcher(fake, preload=True)
    launcher.start()
    modules = ["crewai", "openai.resources", "httpcore", "h11", "crewai.llms.cache"]
    try:
        results = []
        for step_id in ("s1", "s2"):
            spec = make_spec(store, step_id, "probe", modules=modules)
            results.append(run_path(launcher, store, step_id, spec))
        zygote = launcher.zygote_pid
        assert zygote is not None
        # The zygote stayed single-threaded (safe to fork) although its children kicked off.
        assert zygote_threads(zygote) == 1
    finally:
        launcher.close()
    infos = [worker_info(r) for r in results]
    assert all(info["modules"] == dict.fromkeys(modules, True) for info in infos)
    assert infos[0]["pid"] != infos[1]["pid"]
    assert launcher.ready_info is not None and launcher.ready_info["threads"] == 1
    assert launcher.ready_info["primed"] is True
    for step_id, result in zip(("s1", "s2"), results, strict=True):
        assert store.read_result(RUN, step_id).result_text == result.result_text
    assert_gone(zygote, *(info["pid"] for info in infos))


def test_cold_launcher_runs_main_py_by_default(store) -> None:
    """The real command line rejects a spec that does not exist with exit 2, no result."""
    result = run_path(ColdLauncher(), store, "s1", store.run_dir(RUN) / "missing.json",
                      timeout=120)
    assert "code 2" in (result.error or "") and not result.recoverable


def test_tail_log_reads_only_the_latest_attempt(tmp_path: Path) -> None:
    log = tmp_path / "worker.log"
    log.write_text("=== launch a ===\nold\n=== launch b ===\nnew 1\nnew 2\n")
    assert tail_log(log) == "new 1 | new 2"
    assert tail_log(tmp_path / "missing.log") == ""


def test_warm_worker_module_runs_standalone(fake: Path, tmp_path: Path) -> None:
    """The protocol by hand: ready, fork reply, exit reply, bad request, clean EOF exit."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(fake.parent), str(Path.cwd())]))
    store = FileSystemRunStore(tmp_path / "s")
    spec = make_spec(store, "s1", "ok")
    proc = subprocess.Popen(
        [sys.executable, "-m", "agentic_orchestration.orchestration.backends._warm_worker",
         "--no-preload", "--target", "fake_worker:main"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env,
        text=True)
    request = {"spec": str(spec), "run_id": RUN, "step_id": "s1", "log": str(tmp_path / "l")}
    assert proc.stdin is not None and proc.stdout is not None
    try:
        proc.stdin.write(json.dumps(request) + "\n")
        proc.stdin.flush()
        ready, forked, ended = (json.loads(proc.stdout.readline()) for _ in range(3))
        proc.stdin.write("{}\n")
        proc.stdin.flush()
        refused = json.loads(proc.stdout.readline())
        proc.stdin.close()
        assert proc.wait(10) == 0
    finally:
        proc.kill()
        proc.wait()
        proc.stdout.close()
    assert ready["ready"] is True and ready["threads"] == 1
    assert ended["pid"] == forked["pid"] and ended["exit"] == 0 and ended["maxrss_kb"] > 0
    assert "bad request" in refused["error"]
    assert_gone(forked["pid"])
