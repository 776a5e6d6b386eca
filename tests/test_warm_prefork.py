"""Pre-forked warm children: spares forked ahead, handed a step, replaced; real processes.

Most tests fork the fake worker of ``test_subprocess_runner`` (``--target fake_worker:main``,
no CrewAI); one runs the real zygote (CrewAI preloaded, spares primed with the canned
kickoff) on a real step against the scripted LLM server.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from agentic_orchestration.orchestration.backends.launcher import StepExit
from agentic_orchestration.orchestration.backends.warm_launcher import WarmLauncher
from agentic_orchestration.orchestration.run_store import FileSystemRunStore
from tests.test_subprocess_runner import (
    FAKE_WORKER,
    RUN,
    alive,
    assert_gone,
    launch,
    make_spec,
    run,
    worker_info,
    zygote_threads,
)

pytestmark = [pytest.mark.backend_subprocess, pytest.mark.timeout(180)]


@pytest.fixture
def fake(tmp_path: Path) -> Path:
    path = tmp_path / "fakes" / "fake_worker.py"
    path.parent.mkdir()
    path.write_text(FAKE_WORKER)
    return path


@pytest.fixture
def store(tmp_path: Path) -> FileSystemRunStore:
    return FileSystemRunStore(tmp_path / "store")


def fake_launcher(fake: Path, **kwargs: object) -> WarmLauncher:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(fake.parent),
                                                        os.environ.get("PYTHONPATH", "")]))
    return WarmLauncher(env=env, preload=False, target="fake_worker:main", **kwargs)


def children_of(pid: int) -> set[int]:
    """Live (non-zombie) children of ``pid``."""
    found = set()
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                fields = (proc / "stat").read_text().rsplit(")", 1)[1].split()
            except (OSError, IndexError):
                continue
            if int(fields[1]) == pid and fields[0] != "Z":
                found.add(int(proc.name))
    return found


def wait_for(predicate, timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError("condition not reached")


@pytest.fixture
def spares2(fake: Path) -> Iterator[WarmLauncher]:
    launcher = fake_launcher(fake, spares=2)
    launcher.wait_ready()
    yield launcher
    zygote = launcher.zygote_pid
    left = children_of(zygote) if zygote else set()
    launcher.close()
    assert zygote is not None
    assert_gone(zygote, *left)  # spares die with the zygote


def test_spares_wait_before_any_launch_and_are_replaced_after(spares2, store) -> None:
    zygote = spares2.zygote_pid
    assert spares2.ready_info is not None and spares2.ready_info["spares"] == 2
    before = wait_for(lambda: len(children_of(zygote)) == 2 and children_of(zygote))
    result = run(spares2, store, "s1", "ok")
    assert result.ok
    pid = worker_info(result)["pid"]
    assert pid in before  # the step ran in a child forked before it was launched
    after = wait_for(lambda: len(children_of(zygote)) == 2 and children_of(zygote))
    assert pid not in after and len(after - before) == 1  # one new spare took its place


def test_every_step_gets_a_fresh_child(spares2, store) -> None:
    pids = [worker_info(run(spares2, store, f"s{i}", "ok"))["pid"] for i in range(4)]
    assert len(set(pids)) == 4 and spares2.zygote_pid not in pids
    for i, pid in enumerate(pids):
        assert worker_info(store.read_result(RUN, f"s{i}"))["pid"] == pid


def test_as_many_spares_as_steps_start_at_once(fake, store) -> None:
    launcher = fake_launcher(fake, spares=3)
    launcher.wait_ready()
    try:
        spares = wait_for(lambda: len(children_of(launcher.zygote_pid)) == 3
                          and children_of(launcher.zygote_pid))
        handles = [launch(launcher, make_spec(store, f"p{i}", "hang"), f"p{i}",
                          store.run_dir(RUN) / f"p{i}.log") for i in range(3)]
        assert {int(h.ref) for h in handles} == spares
        assert all(h.wait(0.2) is None for h in handles)
        stoppers = [threading.Thread(target=h.terminate) for h in handles]
        for stopper in stoppers:
            stopper.start()
        assert_gone(*(int(h.ref) for h in handles), within=1.0)
        for stopper in stoppers:
            stopper.join(5)
        assert all(h.wait(1.0) == StepExit("signalled", signal="SIGKILL") for h in handles)
    finally:
        launcher.close()


def test_a_spare_killed_while_waiting_is_replaced(spares2, store) -> None:
    zygote = spares2.zygote_pid
    spares = wait_for(lambda: len(children_of(zygote)) == 2 and children_of(zygote))
    for pid in spares:
        os.kill(pid, signal.SIGKILL)
    assert_gone(*spares)
    result = run(spares2, store, "s1", "ok")
    assert result.ok and worker_info(result)["pid"] not in spares


def test_phase_stamps_come_back_in_order(spares2, store) -> None:
    spec = make_spec(store, "s1", "ok")
    handle = launch(spares2, spec, "s1", store.run_dir(RUN) / "s1.log")
    assert handle.wait(30) == StepExit("exited", exit_code=0)
    m = handle.marks
    assert m["zygote_fork"] <= m["child_started"] <= m["child_ready"] <= m["spec_received"]
    assert m["launch"] <= m["zygote_request"] <= m["spec_received"] <= m["child_done"]
    assert m["child_done"] <= m["noticed"] <= m["returned"]
    assert m["zygote_fork"] < m["launch"]  # forked ahead, not on request
    handle.terminate()


def test_without_spares_a_child_is_forked_per_launch(fake, store) -> None:
    launcher = fake_launcher(fake, spares=0)
    launcher.wait_ready()
    try:
        assert children_of(launcher.zygote_pid) == set()
        spec = make_spec(store, "s1", "ok")
        handle = launch(launcher, spec, "s1", store.run_dir(RUN) / "s1.log")
        assert handle.wait(30) == StepExit("exited", exit_code=0)
        assert handle.marks["zygote_fork"] >= handle.marks["launch"]
        handle.terminate()
    finally:
        launcher.close()


def test_sigterm_to_the_zygote_kills_its_spares(spares2) -> None:
    zygote = spares2.zygote_pid
    spares = wait_for(lambda: len(children_of(zygote)) == 2 and children_of(zygote))
    os.kill(zygote, signal.SIGTERM)
    assert spares2._proc is not None and spares2._proc.wait(15) == 0
    assert_gone(*spares)


def test_spares_default_to_the_parallel_steps_setting(monkeypatch, fake) -> None:
    monkeypatch.setenv("AGENTIC_MAX_PARALLEL_STEPS", "3")
    launcher = fake_launcher(fake)
    assert launcher.spares == 3
    try:
        assert launcher.wait_ready()["spares"] == 3
    finally:
        launcher.close()


def test_primed_spare_runs_a_real_step_and_the_warm_up_stays_inside_it(
        tmp_path: Path, scripted_llm) -> None:
    """Real zygote (CrewAI preloaded), spare primed with the canned kickoff, a real step."""
    store = FileSystemRunStore(tmp_path / "store")
    spec = {
        "schema_version": "0.1", "run_id": RUN, "step_id": "draft", "step_index": 0,
        "workflow_name": "w", "topic": "tea",
        "task": {"description": "DRAFT a text about tea", "expected_output": "text"},
        "agent_provider": {"id": "fake_writer", "type": "openai", "model": "fake-model",
                           "openai_base_url": scripted_llm.base_url, "role": "Writer",
                           "goal": "Write.", "backstory": "Clear."},
        "mcp_providers": [], "prior_output": "", "inputs": {},
        "paths": {"run_store": str(store.base), "artifacts_dir": ""},
    }
    path = tmp_path / "draft-spec.json"
    path.write_text(json.dumps(spec))
    scripted_llm.add_rule("DRAFT", "Final Answer: Tea is a drink.")
    launcher = WarmLauncher(spares=1)
    try:
        info = launcher.wait_ready()
        assert info["primed"] is True and info["threads"] == 1
        zygote = launcher.zygote_pid
        [spare] = wait_for(lambda: children_of(zygote))
        from agentic_orchestration.orchestration.backends.base import StepSpec

        handle = launcher.launch(StepSpec.model_validate(spec), spec_path=path,
                                 log_path=tmp_path / "draft.log")
        assert int(handle.ref) == spare
        assert handle.wait(120) == StepExit("exited", exit_code=0), (
            tmp_path / "draft.log").read_text()
        handle.terminate()
        assert zygote_threads(zygote) == 1  # the children kicked off, the zygote did not
    finally:
        launcher.close()
    assert handle.marks["child_ready"] < handle.marks["spec_received"]
    result = store.read_result(RUN, "draft")
    assert result is not None and result.ok and result.result_text == "Tea is a drink."
    # The canned warm-up kickoff talked to its own responder, never to the step's endpoint.
    assert len(scripted_llm.requests) == 1
    assert not alive(spare)


def test_deferred_models_are_completed_before_the_fork_without_a_thread() -> None:
    """What the zygote builds ahead, in a fresh interpreter (nothing built yet): openai's
    reply models and CrewAI's deferred models, no thread started, each built once, and a
    model completed this way validates like one built on first use."""
    script = """
import json, threading
import crewai
from openai.types.chat.chat_completion import ChatCompletion
from agentic_orchestration.orchestration.backends._warm_prime import complete_deferred_models
before = ChatCompletion.__pydantic_complete__
first = complete_deferred_models()
reply = ChatCompletion.model_validate({
    "id": "c1", "object": "chat.completion", "created": 1, "model": "m",
    "choices": [{"index": 0, "finish_reason": "stop",
                 "message": {"role": "assistant", "content": "hi"}}]})
print(json.dumps({"before": before, "after": ChatCompletion.__pydantic_complete__,
                  "first": first, "second": complete_deferred_models(),
                  "threads": threading.active_count(),
                  "content": reply.choices[0].message.content}))
"""
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         check=True, timeout=120).stdout
    found = json.loads(out.strip().splitlines()[-1])
    assert found["before"] is False and found["after"] is True
    assert found["first"] >= 3 and found["second"] == 0
    assert found["threads"] == 1 and found["content"] == "hi"
