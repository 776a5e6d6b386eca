"""What issue 11 took off a warm step's critical path, checked on real files and processes.

- The run store fsyncs only what ``--resume`` trusts: ``run.json`` and a step's final
  ``result.json``, the latter once (the coordinator's record of a result the worker already
  wrote is not rewritten, only synced in the background); specs, attempt records and the
  worker's own write stay atomic but are not fsynced.
- Each warm child keeps CrewAI's storage in a private folder of its own, under a root the
  zygote removes (and the launcher, should the zygote be killed).
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from agentic_orchestration import _fs
from agentic_orchestration.orchestration import _durable
from agentic_orchestration.orchestration.backends._warm_process import STORAGE_PREFIX
from agentic_orchestration.orchestration.backends.warm_launcher import WarmLauncher
from agentic_orchestration.orchestration.run_store import FileSystemRunStore
from tests.test_run_store import RUN, result, spec
from tests.test_subprocess_runner import assert_gone, launch, make_spec, run, worker_info
from tests.test_warm_prefork import wait_for


@pytest.fixture
def fsyncs(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Every fsync the store makes (real ones: the calls go through)."""
    calls: list[int] = []
    real = os.fsync

    def counting(fd: int) -> None:
        calls.append(fd)
        real(fd)

    monkeypatch.setattr(_fs.os, "fsync", counting)
    return calls


def test_spec_attempt_and_worker_write_are_atomic_but_not_fsynced(tmp_path, fsyncs) -> None:
    store = FileSystemRunStore(tmp_path / "store")
    store.write_spec(spec())
    store.write_result(result(), durable=False)  # the worker's write
    store.write_attempt(result(), 1)
    assert fsyncs == []
    assert store.read_spec(RUN, "step_1") == spec()
    assert store.read_result(RUN, "step_1") == result()
    assert store.list_attempts(RUN, "step_1") == [result()]
    assert not [p for p in store.step_dir(RUN, "step_1").rglob(".*.tmp")]


def test_the_coordinators_record_of_the_workers_result_is_synced_not_rewritten(
        tmp_path, fsyncs) -> None:
    store = FileSystemRunStore(tmp_path / "store")
    path = store.write_result(result(), durable=False)
    inode = path.stat().st_ino
    store.write_result(result())  # the coordinator: the same result
    assert _durable.flush(10)
    assert path.stat().st_ino == inode  # not written again
    assert len(fsyncs) == 2  # the file, then its folder, once, on the background thread
    store.write_result(result(text="changed by QA"))
    assert path.stat().st_ino != inode and len(fsyncs) == 4  # a new content: durable now
    assert store.read_result(RUN, "step_1").result_text == "changed by QA"


def test_run_json_is_fsynced(tmp_path, fsyncs) -> None:
    store = FileSystemRunStore(tmp_path / "store")
    store.write_run_meta(RUN, {"backend": "subprocess", "plan": {}, "step_ids": []})
    assert len(fsyncs) == 2


STORAGE_PROBE = textwrap.dedent('''\
    """A fake step that reports the CrewAI storage folder it was given."""
    import json, os

    def main(spec_path, *, run_id, step_id):
        spec = json.load(open(spec_path))
        folder = os.environ.get("CREWAI_STORAGE_DIR", "")
        text = {"pid": os.getpid(), "storage": folder, "exists": os.path.isdir(folder),
                "mode": oct(os.stat(folder).st_mode & 0o777) if folder else ""}
        os.makedirs(os.path.dirname(spec["result"]), exist_ok=True)
        json.dump({"schema_version": "0.1", "run_id": run_id, "step_id": step_id,
                   "exit_code": 0, "result_text": json.dumps(text)}, open(spec["result"], "w"))
        return 0
    ''')


@pytest.mark.backend_subprocess
@pytest.mark.timeout(120)
@pytest.mark.parametrize("spares", [1, 0])
def test_each_warm_child_gets_a_private_crewai_storage_folder(tmp_path, spares) -> None:
    (tmp_path / "fakes").mkdir()
    (tmp_path / "fakes" / "storage_probe.py").write_text(STORAGE_PROBE)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(tmp_path / "fakes"),
                                                        os.environ.get("PYTHONPATH", "")]))
    env.pop("CREWAI_STORAGE_DIR", None)
    launcher = WarmLauncher(env=env, preload=False, target="storage_probe:main", spares=spares)
    store = FileSystemRunStore(tmp_path / "store")
    try:
        seen = [worker_info(run(launcher, store, f"s{i}", "ok")) for i in range(3)]
        root = Path(launcher.ready_info["storage"])
        assert root.name.startswith(STORAGE_PREFIX) and root.is_dir()
        folders = {Path(info["storage"]) for info in seen}
        assert len(folders) == 3  # one per child, none shared
        for info in seen:
            assert info["exists"] and info["mode"] == "0o700"
            assert Path(info["storage"]) == root / str(info["pid"])
            # removed once the zygote reaped the child (just after it reported the end)
            wait_for(lambda folder=Path(info["storage"]): not folder.exists())
    finally:
        launcher.close()
    assert not root.exists()


@pytest.mark.backend_subprocess
@pytest.mark.timeout(120)
def test_storage_root_of_a_killed_zygote_is_removed_by_the_launcher(tmp_path) -> None:
    (tmp_path / "fakes").mkdir()
    (tmp_path / "fakes" / "storage_probe.py").write_text(STORAGE_PROBE)
    env = dict(os.environ, PYTHONPATH=str(tmp_path / "fakes"))
    launcher = WarmLauncher(env=env, preload=False, target="storage_probe:main", spares=1)
    store = FileSystemRunStore(tmp_path / "store")
    handle = launch(launcher, make_spec(store, "s1", "ok"), "s1", tmp_path / "s1.log")
    handle.wait(30)
    handle.terminate()
    root = Path(launcher.ready_info["storage"])
    zygote = launcher.zygote_pid
    assert zygote is not None and root.is_dir()
    os.kill(zygote, 9)
    assert_gone(zygote, within=5.0)
    launcher.close()
    assert not root.exists()


def test_storage_roots_of_gone_zygotes_are_swept_and_live_ones_kept(tmp_path) -> None:
    """Zygote and coordinator both SIGKILLed leave a root nobody removes: the next zygote
    sweeps it; a root whose zygote still runs, and any other folder, stay."""
    from agentic_orchestration.orchestration.backends._warm_process import sweep_storage_roots

    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    stale = tmp_path / f"{STORAGE_PREFIX}{gone.pid}-abc123"
    live = tmp_path / f"{STORAGE_PREFIX}{os.getpid()}-def456"
    other = tmp_path / "someone-elses-folder"
    for folder in (stale, live, other):
        (folder / "42").mkdir(parents=True)
    assert sweep_storage_roots(str(tmp_path)) == [str(stale)]
    assert not stale.exists() and live.is_dir() and other.is_dir()
