"""Property tests of bad input (issue 7 item 7), with Hypothesis.

Generated and mutated catalog YAML (agent and MCP providers), workflow YAML, step specs
(the ``--execute-step`` worker's input) and ``run.json`` files (``--resume``'s input).
Each one either works or ends in an ``AgenticError`` with exit code 2 whose one-line
message names the file; never another exception, never a partial write (a rejected spec
or run.json leaves the run store and the sessions folder as they were). The bases are the
shipped ``config/`` files and well-formed contracts; mutations act on the parsed structure
(replace, delete or add a field, anywhere) and on the text (cut, insert, bad bytes).
A few real ``main.py`` runs check the CLI's one line and no traceback.
"""

from __future__ import annotations

import contextlib
import copy
import json
import logging
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
import yaml
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from agentic_orchestration.catalogs import load_catalog, load_workflow
from agentic_orchestration.catalogs.catalog_loader import load_agent_providers
from agentic_orchestration.catalogs.mcp_providers_catalog import load_mcp_providers
from agentic_orchestration.cli.main import main
from agentic_orchestration.errors import EXIT_BAD_INPUT, AgenticError
from agentic_orchestration.log import NOISY_LOGGERS
from agentic_orchestration.orchestration.execute_step import execute_step_main, load_step_spec
from agentic_orchestration.orchestration.run_store import FileSystemRunStore, load_run_meta

REPO = Path(__file__).resolve().parent.parent
CONFIG = REPO / "config"
RUN, STEP = "20260101T000000Z-5eed5eed", "step_1"

T = TypeVar("T")

PROPERTY = settings(max_examples=80, deadline=None, derandomize=False,
                    suppress_health_check=[HealthCheck.function_scoped_fixture,
                                           HealthCheck.too_slow])
FEW = settings(PROPERTY, max_examples=30)


# -- strategies ----------------------------------------------------------------------------

_TEXT = st.text(max_size=12)
_KEYS = (st.booleans() | st.integers(-(2**70), 2**70)
         | st.floats(allow_nan=False, allow_infinity=False) | _TEXT)
_SCALARS = st.none() | _KEYS
#: What a JSON document can hold.
JSON_VALUES = st.recursive(
    _SCALARS, lambda inner: st.lists(inner, max_size=3)
    | st.dictionaries(_TEXT, inner, max_size=3), max_leaves=8)
#: What YAML can hold beyond JSON: nan/inf, non-string keys (dates are left to mutations).
YAML_VALUES = st.recursive(
    _SCALARS | st.floats(), lambda inner: st.lists(inner, max_size=3)
    | st.dictionaries(_KEYS, inner, max_size=3),
    max_leaves=8)


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Every location in a nested value (the root included)."""
    yield prefix
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _paths(item, (*prefix, index))


def _mutate_once(draw: Callable[[st.SearchStrategy[T]], T], value: Any,
                 leaves: st.SearchStrategy[Any]) -> Any:
    path = draw(st.sampled_from(list(_paths(value))))
    op = draw(st.sampled_from(["replace", "delete", "add", "wrap", "empty"]))
    if not path:
        return draw(leaves) if op == "replace" else [value] if op == "wrap" else value
    parent = value
    for part in path[:-1]:
        parent = parent[part]
    last = path[-1]
    if op == "replace":
        parent[last] = draw(leaves)
    elif op == "delete":
        del parent[last]
    elif op == "add" and isinstance(parent[last], dict):
        parent[last][draw(st.sampled_from(["extra", "id", "type", "steps", "env", ""]))] = (
            draw(leaves))
    elif op == "wrap":
        parent[last] = [parent[last]]
    elif op == "empty":
        parent[last] = type(parent[last])() if isinstance(parent[last], (dict, list, str)) \
            else None
    return value


@st.composite
def mutated(draw: Callable[[st.SearchStrategy[T]], T], base: Any,
            leaves: st.SearchStrategy[Any] = JSON_VALUES) -> Any:
    """``base`` with one to three structural mutations (any of them may be a no-op)."""
    value = copy.deepcopy(base)
    for _ in range(draw(st.integers(1, 3))):
        value = _mutate_once(draw, value, leaves)
    return value


@st.composite
def garbled(draw: Callable[[st.SearchStrategy[T]], T], text: str) -> bytes:
    """``text`` cut, with text inserted, or with bytes that are not UTF-8."""
    data = text.encode()
    for _ in range(draw(st.integers(1, 3))):
        at = draw(st.integers(0, len(data)))
        op = draw(st.sampled_from(["cut", "insert", "bytes", "truncate"]))
        if op == "cut":
            data = data[:at] + data[at + draw(st.integers(1, 20)):]
        elif op == "insert":
            chunk = draw(st.sampled_from(["\n", ":", "- ", "{", "[", "\"", "'", "&a ", "*a",
                                          "!!python/object:os.system", "\t", "\\u0000", "#"]))
            data = data[:at] + chunk.encode() + data[at:]
        elif op == "bytes":
            data = data[:at] + draw(st.binary(min_size=1, max_size=4)) + data[at:]
        else:
            data = data[:at]
    return data


def yaml_documents(bases: list[Any]) -> st.SearchStrategy[bytes]:
    """Shipped YAML, mutated as structure (then dumped) or as text; or made up."""
    structural = st.sampled_from(bases).flatmap(lambda b: mutated(b, YAML_VALUES)).map(
        lambda v: yaml.safe_dump(v, allow_unicode=True, sort_keys=False).encode())
    textual = st.sampled_from(bases).flatmap(
        lambda b: garbled(yaml.safe_dump(b, allow_unicode=True, sort_keys=False)))
    made_up = YAML_VALUES.map(lambda v: yaml.safe_dump(v, sort_keys=False).encode())
    return st.one_of(structural, textual, made_up)


def _load_yaml_bases(folder: Path) -> list[Any]:
    return [yaml.safe_load(p.read_text()) for p in sorted(folder.glob("*.yaml"))]


AGENT_BASES = _load_yaml_bases(CONFIG / "agent_providers")
MCP_BASES = _load_yaml_bases(CONFIG / "mcp_providers")
WORKFLOW_BASES = _load_yaml_bases(CONFIG / "workflows")


# -- helpers --------------------------------------------------------------------------------


def works_or_exit_2(call: Callable[[], T], *, names: str) -> T | None:
    """``call()``'s value, or None after an exit-2 AgenticError on one line naming ``names``.

    Any other exception fails the test (Hypothesis then shrinks the input).
    """
    try:
        value = call()
    except AgenticError as exc:
        event(f"rejected: {type(exc).__name__}")
        message = str(exc)
        assert exc.exit_code == EXIT_BAD_INPUT, f"{type(exc).__name__} exit {exc.exit_code}"
        assert names in message, message
        assert "\n" not in message and "\r" not in message, repr(message)
        return None
    event("accepted")
    return value


@contextlib.contextmanager
def scratch() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="agentic-prop-") as folder:
        yield Path(folder)


def tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@contextlib.contextmanager
def kept_logging() -> Iterator[None]:
    """The worker configures process-wide logging; put it back after each example."""
    root = logging.getLogger()
    watched = [logging.getLogger(n) for n in ("agentic_orchestration", *NOISY_LOGGERS)]
    handlers, level, levels = list(root.handlers), root.level, [w.level for w in watched]
    try:
        yield
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
        for logger_, saved in zip(watched, levels, strict=True):
            logger_.setLevel(saved)


@pytest.fixture(autouse=True)
def no_gpu_probe(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENTIC_VRAM_GB", "0")


# -- catalog and workflow YAML -----------------------------------------------------------


def _config_dir(root: Path, kind: str, document: bytes) -> Path:
    for name in ("agent_providers", "mcp_providers", "workflows"):
        (root / name).mkdir()
    path = root / kind / "generated.yaml"
    path.write_bytes(document)
    return path


@PROPERTY
@given(document=yaml_documents(AGENT_BASES))
@example(document=b"- id: a\n  type: local\n  role: \xff\n")
@example(document=b"&a [*a]\n")
@example(document=b"- id: 5\n  type: [local]\n")
def test_agent_provider_yaml_works_or_names_the_file(document: bytes) -> None:
    with scratch() as root:
        path = _config_dir(root, "agent_providers", document)
        works_or_exit_2(lambda: load_agent_providers(root), names=str(path))
        works_or_exit_2(lambda: load_catalog(root), names=str(path))


@PROPERTY
@given(document=yaml_documents(MCP_BASES))
@example(document=b'- id: m\n  stdio: {command: "a\\0b"}\n')
@example(document=b'- id: m\n  stdio: {command: x, args: ["\\0"], env: {"A": 1}}\n')
@example(document=b"- id: m\n  streamable_http: {url: 'http://h', headers: {1: 2}}\n")
def test_mcp_provider_yaml_works_or_names_the_file(document: bytes) -> None:
    with scratch() as root:
        path = _config_dir(root, "mcp_providers", document)
        works_or_exit_2(lambda: load_mcp_providers(root), names=str(path))
        works_or_exit_2(lambda: load_catalog(root), names=str(path))


@PROPERTY
@given(document=yaml_documents(WORKFLOW_BASES))
@example(document=b"steps: [{agent_provider: a, description: x}]\nrouter: {patterns: ['(']}\n")
@example(document=b"steps:\n- {agent_provider: a, description: x, id: s}\n"
                  b"- {agent_provider: a, description: y, id: s}\n")
def test_workflow_yaml_works_or_names_the_file(document: bytes) -> None:
    with scratch() as root:
        path = _config_dir(root, "workflows", document)
        works_or_exit_2(lambda: load_workflow(str(path)), names=str(path))
        works_or_exit_2(lambda: load_catalog(root), names=str(path))


# -- step specs (the worker's input) ---------------------------------------------------------

GOOD_SPEC: dict[str, Any] = {
    "schema_version": "0.1", "run_id": RUN, "step_id": STEP, "step_index": 0,
    "workflow_name": "generated", "topic": "bees",
    "task": {"description": "Explain how bees talk.", "expected_output": "Two sentences."},
    "agent_provider": {"id": "fake_worker", "type": "openai", "model": "fake-model",
                       "openai_base_url": "http://127.0.0.1:9/v1", "role": "Bee Persona",
                       "goal": "Explain bees.", "backstory": "Keeps hives.",
                       "required_env": []},
    "mcp_providers": [
        {"id": "fetch_url", "resolved": {"stdio": {"command": "mcp-server-fetch",
                                                   "args": [], "env": {"K": "${VAR}"}}}},
        {"id": "search_x", "resolved": {"streamable_http": {
            "url": "https://s.example/mcp", "headers": {"Authorization": "${TOKEN}"}}}},
    ],
    "prior_output": "", "inputs": {"topic": "bees"},
    "paths": {"run_store": "", "artifacts_dir": ""},
}

SPEC_DOCUMENTS = st.one_of(
    mutated(GOOD_SPEC).map(lambda v: json.dumps(v).encode()),
    garbled(json.dumps(GOOD_SPEC, indent=1)),
    JSON_VALUES.map(lambda v: json.dumps(v).encode()),
)


@PROPERTY
@given(document=SPEC_DOCUMENTS)
@example(document=json.dumps({**GOOD_SPEC, "step_id": "../x"}).encode())
@example(document=json.dumps({**GOOD_SPEC, "agent_provider": {"id": "a"}}).encode())
@example(document=b"[" * 5000)
def test_step_spec_loads_or_names_the_file(document: bytes) -> None:
    with scratch() as root:
        path = root / f"{STEP}-spec.json"
        path.write_bytes(document)
        works_or_exit_2(lambda: load_step_spec(path, run_id=RUN, step_id=STEP),
                        names=str(path))


@FEW
@given(document=SPEC_DOCUMENTS)
@example(document=json.dumps({**GOOD_SPEC, "step_index": -1}).encode())
def test_worker_given_a_bad_spec_writes_nothing(document: bytes, capsys) -> None:
    """A spec the worker refuses: exit 2, one error line, the run store untouched."""
    with scratch() as root:
        store = root / "store"
        (store / RUN).mkdir(parents=True)
        text = document.replace(b'"run_store": ""', f'"run_store": "{store}"'.encode())
        path = store / RUN / f"{STEP}-spec.json"
        path.write_bytes(text)
        if works_or_exit_2(lambda: load_step_spec(path, run_id=RUN, step_id=STEP),
                           names=str(path)) is not None:
            return  # a usable spec would run the step: not this test's business
        before = tree(store)
        capsys.readouterr()
        with kept_logging():
            assert execute_step_main(path, run_id=RUN, step_id=STEP) == EXIT_BAD_INPUT
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith("error: ") and str(path) in err, err
        assert tree(store) == before


# -- run.json (what --resume starts from) ------------------------------------------------

GOOD_META: dict[str, Any] = {
    "schema_version": "0.1", "run_id": RUN, "backend": "subprocess",
    "created_at": "2026-01-01T00:00:00.000+00:00", "fingerprint": "0" * 64,
    "plan": {"name": "research_report", "description": "", "topic": "bees", "router": None,
             "steps": [{"id": "research", "agent_provider": "local_researcher",
                        "mcp_providers": [], "description": "Facts about {topic}",
                        "expected_output": "Facts."}]},
    "step_ids": ["research"],
}

META_DOCUMENTS = st.one_of(
    mutated(GOOD_META).map(lambda v: json.dumps(v).encode()),
    garbled(json.dumps(GOOD_META, indent=1)),
    JSON_VALUES.map(lambda v: json.dumps(v).encode()),
)


@PROPERTY
@given(document=META_DOCUMENTS)
@example(document=json.dumps({k: v for k, v in GOOD_META.items() if k != "plan"}).encode())
@example(document=json.dumps({**GOOD_META, "plan": {"name": "x", "steps": []}}).encode())
@example(document=json.dumps({**GOOD_META, "backend": 5}).encode())
def test_run_json_loads_or_names_the_file(document: bytes) -> None:
    with scratch() as root:
        store = FileSystemRunStore(root)
        (root / RUN).mkdir()
        path = root / RUN / "run.json"
        path.write_bytes(document)
        works_or_exit_2(lambda: load_run_meta(store, RUN), names=str(path))


@FEW
@given(document=META_DOCUMENTS)
def test_resume_of_a_bad_run_json_is_one_line_and_writes_nothing(
        document: bytes, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    with scratch() as root:
        monkeypatch.setenv("AGENTIC_RUN_STORE_PATH", str(root))
        (root / RUN).mkdir()
        path = root / RUN / "run.json"
        path.write_bytes(document)
        if works_or_exit_2(lambda: load_run_meta(FileSystemRunStore(root), RUN),
                           names=str(path)) is not None:
            return  # a usable run.json would resume the run
        capsys.readouterr()
        assert main(["--resume", RUN]) == EXIT_BAD_INPUT
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and str(path) in err, err
        assert tree(root) == {f"{RUN}/run.json": document}
        assert not (tmp_path / "sessions").exists() or not any((tmp_path / "sessions").iterdir())


# -- the real command line: one line, no traceback --------------------------------------------


def run_main(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(REPO / "main.py"), *args], capture_output=True,
                          text=True, env={**os.environ, **env}, timeout=120)


def assert_one_error_line(proc: subprocess.CompletedProcess[str], *, names: str) -> None:
    assert proc.returncode == EXIT_BAD_INPUT, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("error: "), proc.stderr
    assert names in proc.stderr


def test_cli_bad_catalog_bytes_is_one_line(tmp_path: Path) -> None:
    extra = tmp_path / "extra.yaml"
    extra.write_bytes(b"- id: mine\n  type: local\n  role: \xff\xfe\n")
    proc = run_main("--list-agents", env={"AGENTIC_EXTRA_AGENT_PROVIDERS_PATH": str(extra)})
    assert_one_error_line(proc, names=str(extra))


def test_cli_resume_of_a_garbled_run_json_is_one_line(tmp_path: Path) -> None:
    store = tmp_path / "store"
    (store / RUN).mkdir(parents=True)
    (store / RUN / "run.json").write_text(json.dumps({**GOOD_META, "plan": {"steps": []}}))
    proc = run_main("--resume", RUN, env={"AGENTIC_RUN_STORE_PATH": str(store)})
    assert_one_error_line(proc, names=str(store / RUN / "run.json"))
    assert sorted(p.name for p in (store / RUN).iterdir()) == ["run.json"]


def test_cli_worker_with_a_bad_spec_is_one_line_and_writes_nothing(tmp_path: Path) -> None:
    store = tmp_path / "store"
    spec = store / RUN / f"{STEP}-spec.json"
    spec.parent.mkdir(parents=True)
    bad = {**GOOD_SPEC, "paths": {"run_store": str(store), "artifacts_dir": ""},
           "mcp_providers": [{"id": "m", "resolved": {"stdio": {"command": ""}}}]}
    spec.write_text(json.dumps(bad))
    proc = run_main("--execute-step", str(spec), "--run-id", RUN, "--step-id", STEP, env={})
    assert_one_error_line(proc, names=str(spec))
    assert [p.name for p in (store / RUN).iterdir()] == [spec.name]
