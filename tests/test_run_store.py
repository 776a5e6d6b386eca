"""Run store: the spec's layout, atomic writes under crash and concurrent reads, safe ids."""

from __future__ import annotations

import json
import os
import re
import stat
import tempfile
import threading
from pathlib import Path

import pytest

from agentic_orchestration import _fs
from agentic_orchestration.errors import ConfigError, StepSpecError
from agentic_orchestration.orchestration.backends.base import StepResult, StepSpec, TaskSpec
from agentic_orchestration.orchestration.run_store import (
    FileSystemRunStore,
    RunStore,
    build_run_meta,
    run_store_from_env,
    run_store_session,
    validate_id,
)

RUN = "20250626T120000Z-abcd1234"


def spec(step_id: str = "step_1", run_id: str = RUN, **extra: object) -> StepSpec:
    return StepSpec(
        run_id=run_id, step_id=step_id, step_index=0, workflow_name="wf", topic="bees",
        task=TaskSpec(description="research bees", expected_output="facts"),
        agent_provider={"id": "a", "type": "local", "role": "r", "goal": "g", "backstory": "b"},
        **extra,
    )


def result(step_id: str = "step_1", text: str = "done", exit_code: int = 0,
           run_id: str = RUN) -> StepResult:
    return StepResult(run_id=run_id, step_id=step_id, exit_code=exit_code, result_text=text)


@pytest.fixture
def store(tmp_path: Path) -> FileSystemRunStore:
    return FileSystemRunStore(tmp_path / "store")


def all_files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def test_layout_is_the_spec_contract(store: FileSystemRunStore) -> None:
    assert isinstance(store, RunStore)
    base = store.base
    assert store.run_dir(RUN) == base / RUN
    assert store.spec_path(RUN, "step_2") == base / RUN / "step_2-spec.json"
    assert store.result_path(RUN, "step_2") == base / RUN / "step_2" / "result.json"

    assert store.write_spec(spec("step_2")) == base / RUN / "step_2-spec.json"
    assert store.write_result(result("step_2")) == base / RUN / "step_2" / "result.json"
    store.write_attempt(result("step_2"), 1)
    store.write_run_meta(RUN, {"backend": "subprocess"})
    assert all_files(base) == [
        f"{RUN}/run.json", f"{RUN}/step_2-spec.json",
        f"{RUN}/step_2/attempts/1.json", f"{RUN}/step_2/result.json",
    ]


def test_spec_and_result_round_trip(store: FileSystemRunStore) -> None:
    original = spec(prior_output="earlier text", inputs={"topic": "bees"})
    store.write_spec(original)
    assert store.read_spec(RUN, "step_1") == original
    written = result(text="ünïcode ✓ answer", exit_code=1)
    store.write_result(written)
    assert store.read_result(RUN, "step_1") == written
    # readable by a plain JSON reader (the worker contract), not only by pydantic
    raw = json.loads(store.result_path(RUN, "step_1").read_text(encoding="utf-8"))
    assert raw["result_text"] == "ünïcode ✓ answer" and raw["schema_version"] == "0.1"
    # Private: goals, prior outputs and answers (tests/test_secret_masking.py checks a run).
    for path in (store.result_path(RUN, "step_1"), store.spec_path(RUN, "step_1")):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    for folder in (store.run_dir(RUN), store.result_path(RUN, "step_1").parent):
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700


def test_read_result_missing_is_none_and_corrupt_names_the_file(
    store: FileSystemRunStore,
) -> None:
    assert store.read_result(RUN, "step_1") is None
    path = store.result_path(RUN, "step_1")
    path.parent.mkdir(parents=True)
    path.write_text('{"schema_version": "0.1", "run_id": ')  # truncated
    with pytest.raises(StepSpecError, match=re.escape(str(path))):
        store.read_result(RUN, "step_1")
    path.write_text(json.dumps({"schema_version": "0.1", "run_id": RUN, "step_id": "step_1",
                                "exit_code": "not a number"}))
    with pytest.raises(StepSpecError, match="exit_code"):
        store.read_result(RUN, "step_1")


def test_result_of_another_step_is_rejected(store: FileSystemRunStore) -> None:
    path = store.result_path(RUN, "step_1")
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(result("step_9").to_dict()))
    with pytest.raises(StepSpecError, match="step_9"):
        store.read_result(RUN, "step_1")


def test_read_spec_missing_or_invalid_names_the_file(store: FileSystemRunStore) -> None:
    with pytest.raises(StepSpecError, match=r"step_1-spec\.json"):
        store.read_spec(RUN, "step_1")
    path = store.spec_path(RUN, "step_1")
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({**spec().to_dict(), "schema_version": "9.9"}))
    with pytest.raises(StepSpecError, match=re.escape(str(path))):
        store.read_spec(RUN, "step_1")


def test_clear_result_removes_only_result_json(store: FileSystemRunStore) -> None:
    store.clear_result(RUN, "step_1")  # nothing there yet: not an error
    store.write_result(result(text="attempt 1"))
    store.write_attempt(result(text="attempt 1"), 1)
    store.clear_result(RUN, "step_1")
    assert store.read_result(RUN, "step_1") is None
    assert [r.result_text for r in store.list_attempts(RUN, "step_1")] == ["attempt 1"]


def test_attempts_listed_in_numeric_order(store: FileSystemRunStore) -> None:
    assert store.list_attempts(RUN, "step_1") == []
    for n in (2, 10, 1, 3):
        store.write_attempt(result(text=f"try {n}", exit_code=0 if n == 10 else 1), n)
    (store.step_dir(RUN, "step_1") / "attempts" / "notes.json").write_text("{}")  # not ours
    attempts = store.list_attempts(RUN, "step_1")
    assert [a.result_text for a in attempts] == ["try 1", "try 2", "try 3", "try 10"]
    assert [a.ok for a in attempts] == [False, False, False, True]
    with pytest.raises(ValueError, match="attempt"):
        store.write_attempt(result(), 0)


def test_run_meta_round_trip_and_missing_run(store: FileSystemRunStore) -> None:
    with pytest.raises(ConfigError, match=re.escape(f"no run {RUN} in run store {store.base}")):
        store.read_run_meta(RUN)
    meta = build_run_meta(RUN, plan={"name": "wf", "steps": []}, backend="subprocess",
                          step_ids=["step_1", "step_2"], fingerprint="abc")
    store.write_run_meta(RUN, meta)
    loaded = store.read_run_meta(RUN)
    assert loaded == meta
    assert loaded["schema_version"] == "0.1" and loaded["created_at"]
    # schema_version and run_id are filled in when a caller leaves them out
    store.write_run_meta(RUN, {"backend": "kubernetes"})
    assert store.read_run_meta(RUN) == {"schema_version": "0.1", "run_id": RUN,
                                        "backend": "kubernetes"}
    with pytest.raises(StepSpecError, match="other"):
        store.write_run_meta(RUN, {"run_id": "other"})
    store.meta_path(RUN).write_text("[1, 2]")
    with pytest.raises(ConfigError, match=r"run\.json"):
        store.read_run_meta(RUN)


def test_list_runs_sorted_and_ignores_foreign_entries(store: FileSystemRunStore) -> None:
    assert store.list_runs() == []
    for run_id in ("20250627T000000Z-b", "20250626T000000Z-a"):
        store.write_run_meta(run_id, {})
    (store.base / "lost+found").mkdir()
    (store.base / ".hidden").mkdir()
    (store.base / "stray.txt").write_text("x")
    assert store.list_runs() == ["20250626T000000Z-a", "20250627T000000Z-b"]


BAD_IDS = ["../x", "a/b", "", "..", "x" * 200, ".hidden", "a..b", "a\\b", "a b", "/abs"]


@pytest.mark.parametrize("bad", BAD_IDS)
def test_bad_ids_raise_and_write_nothing(tmp_path: Path, bad: str) -> None:
    root = tmp_path / "root"
    root.mkdir()
    store = FileSystemRunStore(root / "store")
    attempts = [
        lambda: store.write_spec(spec(step_id=bad)),
        lambda: store.write_spec(spec(run_id=bad)),
        lambda: store.write_result(result(step_id=bad)),
        lambda: store.write_result(result(run_id=bad)),
        lambda: store.write_attempt(result(step_id=bad), 1),
        lambda: store.write_run_meta(bad, {}),
        lambda: store.read_result(bad, "step_1"),
        lambda: store.clear_result(RUN, bad),
    ]
    for attempt in attempts:
        with pytest.raises(StepSpecError, match=r"run_id|step_id"):
            attempt()
    assert list(root.rglob("*")) == []
    assert not Path("/abs").exists()


def test_validate_id_accepts_generated_ids_and_names_the_kind() -> None:
    assert validate_id("step_1", "step_id") == "step_1"
    assert validate_id("a" * 128, "run_id") == "a" * 128
    assert validate_id("20250626T120000Z-abcd1234", "run_id")
    with pytest.raises(StepSpecError, match=r"invalid run_id '\.\./x'"):
        validate_id("../x", "run_id")
    with pytest.raises(StepSpecError, match="200 characters"):
        validate_id("a" * 200, "step_id")
    # step ids that would collide with the run folder's own files
    for colliding in ("run.json", "step_1-spec.json"):
        with pytest.raises(StepSpecError, match="collides"):
            validate_id(colliding, "step_id")


def test_atomic_write_leaves_no_temp_file(store: FileSystemRunStore) -> None:
    for n in range(5):
        store.write_result(result(text=f"v{n}"))
    assert os.listdir(store.step_dir(RUN, "step_1")) == ["result.json"]
    assert store.read_result(RUN, "step_1").result_text == "v4"


def test_crash_mid_write_keeps_previous_result(store: FileSystemRunStore,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    store.write_result(result(text="the good one"))

    def crash(src: str, dst: str) -> None:
        raise OSError("simulated crash before rename")

    monkeypatch.setattr(_fs.os, "replace", crash)
    with pytest.raises(OSError, match="simulated crash"):
        store.write_result(result(text="never lands"))
    monkeypatch.undo()
    assert os.listdir(store.step_dir(RUN, "step_1")) == ["result.json"]
    assert store.read_result(RUN, "step_1").result_text == "the good one"


def test_unserializable_json_creates_nothing(tmp_path: Path) -> None:
    target = tmp_path / "out" / "x.json"
    target.parent.mkdir()
    target.write_text('{"old": true}\n')
    with pytest.raises(TypeError):
        _fs.atomic_write_json(target, {"bad": object()})
    assert os.listdir(target.parent) == ["x.json"]
    assert json.loads(target.read_text()) == {"old": True}


def test_atomic_write_text_sets_mode_before_content(tmp_path: Path) -> None:
    path = _fs.atomic_write_text(tmp_path / "private.txt", "secret-ish", mode=0o600)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_text() == "secret-ish"


def test_concurrent_reader_never_sees_a_partial_result(store: FileSystemRunStore) -> None:
    big = "x" * 400_000  # several pages, so a non-atomic write would be caught mid-way
    store.write_result(result(text=big + "0"))
    stop = threading.Event()
    seen: list[str] = []
    errors: list[BaseException] = []

    def reader() -> None:
        while not stop.is_set():
            try:
                got = store.read_result(RUN, "step_1")
                assert got is not None, "result.json vanished between writes"
                seen.append(got.result_text[-3:])
            except BaseException as exc:
                errors.append(exc)
                return

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        for n in range(1, 60):
            store.write_result(result(text=big + str(n)))
    finally:
        stop.set()
        thread.join(timeout=30)
    assert not errors, errors[0]
    assert len(seen) > 10  # the reader really did read while writes happened
    assert store.read_result(RUN, "step_1").result_text.endswith("59")


def test_run_store_from_env_honours_the_variable(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # the default root is created
    assert run_store_from_env().base == tmp_path / f"agentic-run-store-{os.getuid()}"
    monkeypatch.setenv("AGENTIC_RUN_STORE_PATH", str(tmp_path / "pvc"))
    assert run_store_from_env().base == tmp_path / "pvc"


def test_run_store_session_creates_the_run_folder(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENTIC_RUN_STORE_PATH", str(tmp_path / "pvc"))
    with run_store_session() as (store, run_id):
        assert store.base == tmp_path / "pvc"
        assert store.run_dir(run_id).is_dir()
        validate_id(run_id, "run_id")
    assert store.run_dir(run_id).is_dir()  # kept for --resume
    with run_store_session("my-run") as (_, run_id2):
        assert run_id2 == "my-run" and (tmp_path / "pvc" / "my-run").is_dir()
    with pytest.raises(StepSpecError), run_store_session("../escape"):
        pass
    assert not (tmp_path / "escape").exists()


def test_a_store_that_cannot_be_created_is_one_clear_error(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")  # a parent that is a file: fails for root too
    monkeypatch.setenv("AGENTIC_RUN_STORE_PATH", str(blocker / "store"))
    with pytest.raises(ConfigError, match=r"run store .*a-file/store: cannot create .*"
                       r"AGENTIC_RUN_STORE_PATH") as info:
        with run_store_session():
            pass
    assert info.value.exit_code == 2
    monkeypatch.delenv("AGENTIC_RUN_STORE_PATH")
    monkeypatch.setattr(tempfile, "tempdir", str(blocker))  # the default root's parent
    with pytest.raises(ConfigError, match=r"default run store .*: cannot create it"):
        run_store_from_env()
