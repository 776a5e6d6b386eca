"""Typed settings: every AGENTIC_* variable parses to its type and range, bad values fail
before any work (exit 2, one line naming the variable), and call sites agree with the table."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from agentic_orchestration import settings
from agentic_orchestration.cli.main import main
from agentic_orchestration.errors import EXIT_BAD_INPUT, ConfigError
from agentic_orchestration.settings import ENV_VARS, EnvVar

REPO = Path(__file__).resolve().parent.parent
PACKAGE = REPO / "agentic_orchestration"


# --- each kind parses ------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "raw", "expected"), [
    ("AGENTIC_STEP_TIMEOUT_SECONDS", " 30 ", 30),
    ("AGENTIC_STEP_TIMEOUT_SECONDS", "", 1800),  # blank is the default
    ("AGENTIC_STEP_CONTEXT_CHARS", "0", 0),
    ("AGENTIC_WEB_PORT", "65535", 65535),
    ("AGENTIC_MCP_CALL_TIMEOUT_SECONDS", "0.5", 0.5),
    ("AGENTIC_PROGRESS", "false", False),
    ("AGENTIC_PROGRESS", "ON", True),
    ("AGENTIC_SUBPROCESS_WORKERS", "1", True),
    ("AGENTIC_EXECUTION_BACKEND", "SubProcess", "subprocess"),  # any case, canonical back
    ("AGENTIC_LOCAL_PROMPT", "chat", "chat"),
    ("AGENTIC_LOG_LEVEL", "debug", "DEBUG"),
    ("AGENTIC_LOG_FORMAT", "JSON", "json"),
    ("AGENTIC_PLANNER_PROVIDER", " fake_writer ", "fake_writer"),
    ("AGENTIC_PLANNER_PROVIDER", "", ""),
    ("AGENTIC_RUN_STORE_PATH", "/srv/store", Path("/srv/store")),
    ("AGENTIC_RUN_STORE_PATH", "", None),  # unset optional
    ("AGENTIC_LOCAL_THREADS", "", None),
    ("AGENTIC_VRAM_GB", "7.5", 7.5),
    ("AGENTIC_LOCAL_LLM_URL", "http://127.0.0.1:8080/v1", "http://127.0.0.1:8080/v1"),
    ("AGENTIC_K8S_WORKER_RESOURCES", '{"limits": {"cpu": "1"}}', {"limits": {"cpu": "1"}}),
    ("AGENTIC_K8S_WORKER_STDIO_MCPS", "", ("fetch_url",)),
    ("AGENTIC_K8S_POD_SIDECAR_MCPS", "fetch_url, filesystem_local,", ("fetch_url",
                                                                     "filesystem_local")),
    ("AGENTIC_K8S_GPU_PROVIDER_IDS", "", ()),
])
def test_each_kind_parses(name: str, raw: str, expected: object) -> None:
    assert settings.value(name, {name: raw}) == expected


def test_paths_expand_the_home_folder(isolated_env: Path) -> None:
    assert settings.value("AGENTIC_SESSIONS_PATH", {}) == (
        isolated_env / ".local/share/agentic-orchestration/sessions")


# --- and rejects -----------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "raw", "why"), [
    ("AGENTIC_STEP_TIMEOUT_SECONDS", "ten", "not an integer"),
    ("AGENTIC_STEP_TIMEOUT_SECONDS", "1.5", "not an integer"),
    ("AGENTIC_STEP_TIMEOUT_SECONDS", "0", "must be at least 1"),
    ("AGENTIC_LOCAL_N_CTX", "128", "must be at least 256"),
    ("AGENTIC_WEB_PORT", "70000", "must be at most 65535"),
    ("AGENTIC_MCP_CALL_TIMEOUT_SECONDS", "soon", "not a number"),
    ("AGENTIC_MCP_CALL_TIMEOUT_SECONDS", "0.01", "must be at least 0.1"),
    ("AGENTIC_MCP_CALL_TIMEOUT_SECONDS", "nan", "must be a finite number"),
    ("AGENTIC_VRAM_GB", "-1", "must be at least 0"),
    ("AGENTIC_PROGRESS", "maybe", "not a boolean (use 1 or 0)"),
    ("AGENTIC_EXECUTION_BACKEND", "argo",
     "not a valid choice (use inprocess, subprocess or kubernetes)"),
    ("AGENTIC_LOCAL_PROMPT", "poem", "not a valid choice (use auto, document or chat)"),
    ("AGENTIC_LOG_LEVEL", "LOUD", "not a valid choice (use DEBUG, INFO, WARNING, ERROR or"),
    ("AGENTIC_LOCAL_LLM_URL", "127.0.0.1:8080", "not an http(s) URL with a host"),
    ("AGENTIC_LOCAL_LLM_URL", "http://host:99999", "not a URL"),
    ("AGENTIC_K8S_WORKER_RESOURCES", "{cpu: 1}", "not valid JSON"),
    ("AGENTIC_K8S_GPU_NODE_SELECTOR", '["gpu"]', "not a JSON object"),
])
def test_each_kind_rejects_naming_the_variable_and_value(name: str, raw: str, why: str) -> None:
    with pytest.raises(ConfigError) as caught:
        settings.value(name, {name: raw})
    assert str(caught.value).startswith(f"{name}={raw!r}: {why}")
    assert "\n" not in str(caught.value)


def test_validate_all_reports_every_bad_value_on_one_line() -> None:
    bad = {"AGENTIC_STEP_TIMEOUT_SECONDS": "0", "AGENTIC_PROGRESS": "maybe"}
    with pytest.raises(ConfigError) as caught:
        settings.validate_all(bad)
    assert str(caught.value) == ("AGENTIC_PROGRESS='maybe': not a boolean (use 1 or 0); "
                                 "AGENTIC_STEP_TIMEOUT_SECONDS='0': must be at least 1")


def test_validate_all_passes_on_the_default_environment() -> None:
    settings.validate_all({})
    settings.validate_all()  # the test environment (isolated HOME, sessions paths set)
    settings.validate_all({v.name: v.default for v in ENV_VARS})


# --- the typed object and the older accessors ------------------------------------------------


def test_current_gives_typed_attributes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENTIC_STEP_MAX_ATTEMPTS", "3")
    now = settings.current()
    assert now.step_max_attempts == 3 and now["AGENTIC_STEP_MAX_ATTEMPTS"] == 3
    assert now.execution_backend == "inprocess" and now.fallback is True
    assert now.run_max_tokens is None and now.k8s_namespace == "agentic-orchestration"
    with pytest.raises(AttributeError, match="AGENTIC_NO_SUCH"):
        _ = now.no_such
    with pytest.raises(AttributeError):
        now.step_max_attempts = 4  # type: ignore[misc]
    monkeypatch.setenv("AGENTIC_STEP_MAX_ATTEMPTS", "0")
    with pytest.raises(ConfigError, match="AGENTIC_STEP_MAX_ATTEMPTS='0'"):
        settings.current()


def test_get_accessors_parse_as_the_table_does(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENTIC_STEP_TIMEOUT_SECONDS", "0")
    with pytest.raises(ConfigError, match=r"^AGENTIC_STEP_TIMEOUT_SECONDS='0': must be at "
                                          r"least 1$"):
        settings.get_int("AGENTIC_STEP_TIMEOUT_SECONDS")  # the table's minimum applies
    monkeypatch.setenv("AGENTIC_STEP_TIMEOUT_SECONDS", "5")
    assert settings.get_int("AGENTIC_STEP_TIMEOUT_SECONDS", minimum=1) == 5
    with pytest.raises(ConfigError, match="must be at least 10"):
        settings.get_int("AGENTIC_STEP_TIMEOUT_SECONDS", minimum=10)  # a stricter caller
    assert settings.get("AGENTIC_STEP_TIMEOUT_SECONDS") == "5"  # raw text stays raw
    monkeypatch.setenv("AGENTIC_FALLBACK", "no")
    assert settings.get_bool("AGENTIC_FALLBACK") is False
    monkeypatch.setenv("AGENTIC_FALLBACK", "2")
    with pytest.raises(ConfigError, match="AGENTIC_FALLBACK='2': not a boolean"):
        settings.get_bool("AGENTIC_FALLBACK")
    monkeypatch.setenv("AGENTIC_MCP_CONNECT_TIMEOUT_SECONDS", "4.5")
    assert settings.get_float("AGENTIC_MCP_CONNECT_TIMEOUT_SECONDS", minimum=0.1) == 4.5
    monkeypatch.setenv("AGENTIC_RUN_STORE_PATH", "~/store")
    assert settings.get_path("AGENTIC_RUN_STORE_PATH") == settings.value(
        "AGENTIC_RUN_STORE_PATH")


# --- the table is consistent with itself and with the code -----------------------------------


def test_table_is_well_formed() -> None:
    names = [v.name for v in ENV_VARS]
    assert len(names) == len(set(names))
    for var in ENV_VARS:
        assert re.fullmatch(r"AGENTIC_[A-Z0-9_]+", var.name)
        assert var.meaning.endswith(".") and "\n" not in var.meaning
        assert (var.kind == "choice") == bool(var.choices), var.name
        if var.minimum is not None or var.maximum is not None:
            assert var.kind in {"int", "float"}, var.name
    # Built variables come first, then those of features not built yet (README order).
    planned = [bool(v.planned) for v in ENV_VARS]
    assert planned == sorted(planned)


def test_spec_names_are_registered() -> None:
    """The spec's env var table (Kubernetes upgrade page) and the next issues' names."""
    for name in ("AGENTIC_K8S_NAMESPACE", "AGENTIC_K8S_WORKER_IMAGE",
                 "AGENTIC_K8S_RUN_STORE_PVC", "AGENTIC_K8S_RUN_STORE_MOUNT",
                 "AGENTIC_K8S_JOB_TTL_SECONDS", "AGENTIC_K8S_ALLOW_STDIO_MCPS",
                 "AGENTIC_K8S_WORKER_STDIO_MCPS", "AGENTIC_K8S_ENV_SECRET",
                 "AGENTIC_K8S_WORKER_RESOURCES", "AGENTIC_K8S_GPU_PROVIDER_IDS"):
        assert not settings.spec(name).planned, name  # built: the kubernetes backend
    for name in ("AGENTIC_WEB_HOST", "AGENTIC_WEB_PORT", "AGENTIC_WEB_TOKEN"):
        assert not settings.spec(name).planned, name  # built: the web UI
    for name in ("AGENTIC_K8S_WARM_POOL_ENABLED",):
        assert settings.spec(name).planned, name
    assert settings.value("AGENTIC_K8S_RUN_STORE_MOUNT", {}) == "/run/store"
    assert settings.value("AGENTIC_K8S_JOB_TTL_SECONDS", {}) == 3600


def test_choices_match_the_code_that_uses_them() -> None:
    from agentic_orchestration.log import LOG_FORMATS
    from agentic_orchestration.orchestration.backends.factory import BACKENDS
    from agentic_orchestration.providers.local_model import PROMPT_STYLES

    assert settings.spec("AGENTIC_EXECUTION_BACKEND").choices == tuple(BACKENDS)
    assert settings.spec("AGENTIC_LOCAL_PROMPT").choices == PROMPT_STYLES
    assert settings.spec("AGENTIC_LOG_FORMAT").choices == LOG_FORMATS


_CALL = re.compile(r"get_(int|float)\(\s*([\"']?)([A-Z][A-Z0-9_]*)\2\s*,\s*minimum=([0-9.]+)")


def test_call_site_minimums_agree_with_the_table() -> None:
    """Each ``settings.get_int(NAME, minimum=m)`` in the package asks what the table says."""
    seen: dict[str, float] = {}
    for path in PACKAGE.rglob("*.py"):
        text = path.read_text()
        for _, quote, ident, minimum in _CALL.findall(text):
            name = ident
            if not quote:  # a module constant: CONNECT_VAR = "AGENTIC_..."
                found = re.search(rf"^{ident}\s*=\s*[\"'](AGENTIC_\w+)[\"']", text, re.M)
                assert found, f"{path.name}: cannot resolve {ident}"
                name = found.group(1)
            table = settings.spec(name).minimum
            assert table == float(minimum), (
                f"{path.relative_to(REPO)}: {name} minimum={minimum}, table says {table}")
            seen[name] = float(minimum)
    assert {"AGENTIC_STEP_TIMEOUT_SECONDS", "AGENTIC_LLM_TIMEOUT_SECONDS",
            "AGENTIC_MCP_CALL_TIMEOUT_SECONDS"} <= set(seen)


def test_default_table_entry_kind_is_text() -> None:
    assert EnvVar("AGENTIC_X", "", "x.").parse(None) == ""  # older 3-field entries still work


# --- the CLI fails before any work -----------------------------------------------------------


def test_cli_exits_2_naming_the_variable_before_planning(
        fake_config: Path, scripted_llm, tmp_path: Path) -> None:
    env = {**os.environ, "AGENTIC_STEP_TIMEOUT_SECONDS": "0",
           "AGENTIC_RUN_STORE_PATH": str(tmp_path / "store")}
    proc = subprocess.run([sys.executable, str(REPO / "main.py"), "--dynamic", "Tell me about tea"],
                          capture_output=True, text=True, env=env, timeout=60)
    assert proc.returncode == EXIT_BAD_INPUT
    assert proc.stderr == "error: AGENTIC_STEP_TIMEOUT_SECONDS='0': must be at least 1\n"
    assert proc.stdout == ""
    assert scripted_llm.requests == []  # no planning
    assert not (tmp_path / "sessions").exists() and not (tmp_path / "store").exists()

    # --help is argparse's, before any check: it works whatever the environment holds.
    proc = subprocess.run([sys.executable, str(REPO / "main.py"), "--help"],
                          capture_output=True, text=True, env=env, timeout=60)
    assert proc.returncode == 0 and "exit codes" in proc.stdout


def test_every_command_but_the_worker_checks_first(monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("AGENTIC_EXECUTION_BACKEND", "nomad")
    monkeypatch.setenv("AGENTIC_LOG_LEVEL", "LOUD")
    assert main(["--list-workflows"]) == EXIT_BAD_INPUT
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == (
        "error: AGENTIC_EXECUTION_BACKEND='nomad': not a valid choice (use inprocess, "
        "subprocess or kubernetes); AGENTIC_LOG_LEVEL='LOUD': not a valid choice (use DEBUG, "
        "INFO, WARNING, ERROR or CRITICAL)\n")
