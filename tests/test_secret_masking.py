"""No secret value in anything the tool writes or prints, and a private run store.

Two leaks, each run through the real CLI (``main.py`` as a subprocess) on the in-process
backend and on subprocess workers, then every file of the run store, the sessions folder,
the artifacts folder and the CLI's stdout/stderr is searched for the secret:

- a provider whose HTTP error quotes the API key, held in a variable whose name does not
  look secret (``MY_WEIRD_NAME``, the entry's ``api_key_env``);
- an MCP server whose tool error quotes a ``${PLAIN_SETTING_VALUE}`` it was started with;
  the LLM echoes that error into its answer and into a file it "writes", and the next
  step's provider quotes its prompt (holding the answer) in its own HTTP error.

Each check also proves the leaking text did come through (masked as ``***``), so a test
cannot pass because the secret never travelled. Then: the modes of everything a
subprocess run leaves in the run store, and the per-user default root.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path
from typing import Any

import pytest
from conftest import write_catalog

from agentic_orchestration.errors import ConfigError
from agentic_orchestration.redaction import (
    MaskingStream,
    clear_registry,
    redact_obj,
    redact_text,
    register_env_names,
    register_values,
)
from agentic_orchestration.testing import (
    ERROR_DETAIL_ENV,
    HTTPErrorReply,
    ScriptedLLMServer,
    ToolCallReply,
    stdio_server_command,
)
from agentic_orchestration.testing.fake_llm import last_user_text, message_text

REPO = Path(__file__).resolve().parent.parent
WORKERS = {"AGENTIC_EXECUTION_BACKEND": "subprocess", "AGENTIC_SUBPROCESS_WORKERS": "1"}
BACKENDS = {"inprocess": {"AGENTIC_EXECUTION_BACKEND": "inprocess"}, "subprocess": WORKERS}

pytestmark = pytest.mark.filterwarnings("ignore::ImportWarning")


@pytest.fixture(autouse=True)
def fresh_registry() -> Any:
    """Registered names and values are process-wide: start and end each test empty."""
    clear_registry()
    yield
    clear_registry()


def agents_yaml(base_url: str, *, key_env: str = "") -> str:
    key = f"  api_key_env: {key_env}\n" if key_env else ""
    return "".join(
        f"- id: {agent_id}\n  type: openai\n  model: fake-model\n"
        f"  openai_base_url: {base_url}\n{key}  role: {role}\n  goal: Work.\n"
        f"  backstory: Careful.\n  planner_hint: {role}\n  priority: {priority}\n"
        for agent_id, role, priority in (("fake_researcher", "Researcher", 10),
                                         ("fake_writer", "Writer", 11)))


def run_cli(tmp_path: Path, config: Path, flow: Path, backend: str,
            extra_env: dict[str, str]) -> tuple[subprocess.CompletedProcess[str], Path]:
    store = tmp_path / "store"
    env = {**os.environ, **BACKENDS[backend], **extra_env, "AGENTIC_CONFIG_DIR": str(config),
           "AGENTIC_RUN_STORE_PATH": str(store), "AGENTIC_LOG_LEVEL": "DEBUG"}
    proc = subprocess.run([sys.executable, str(REPO / "main.py"), "--workflow", str(flow),
                           "tea"], capture_output=True, text=True, env=env, timeout=240,
                          check=False)
    return proc, store


def files_under(*folders: Path) -> list[Path]:
    return [path for folder in folders if folder.exists()
            for path in sorted(folder.rglob("*")) if path.is_file()]


def assert_nowhere(secret: str, proc: subprocess.CompletedProcess[str], tmp_path: Path,
                   store: Path) -> str:
    """The secret is in no file of the store, sessions or artifacts, nor in stdout/stderr.

    Returns everything searched, joined, for the caller's "it did travel" checks.
    """
    folders = [store, tmp_path / "sessions", tmp_path / "artifacts"]
    files = files_under(*folders)
    assert files, "the run left no file to search"
    texts = {"stdout": proc.stdout, "stderr": proc.stderr}
    texts.update({str(path): path.read_text(errors="replace") for path in files})
    leaks = [where for where, text in texts.items() if secret in text]
    assert not leaks, f"secret found in {leaks}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    return "\n".join(texts.values())


# --- a provider quoting its API key ---------------------------------------------------------

PROVIDER_FLOW = """\
steps:
  - id: gather
    agent_provider: fake_researcher
    description: "GATHER facts about {topic}"
"""


@pytest.mark.parametrize("backend", ["inprocess", "subprocess"])
def test_provider_error_quoting_its_key_is_masked_everywhere(
        backend: str, tmp_path: Path, scripted_llm: ScriptedLLMServer) -> None:
    secret = f"wk-{uuid.uuid4().hex}"
    scripted_llm.default = HTTPErrorReply(401, f"Incorrect API key provided: {secret}")
    config = write_catalog(tmp_path / "config", base_url=scripted_llm.base_url,
                           agents=agents_yaml(scripted_llm.base_url, key_env="MY_WEIRD_NAME"))
    flow = tmp_path / "flow.yaml"
    flow.write_text(PROVIDER_FLOW)

    proc, store = run_cli(tmp_path, config, flow, backend, {"MY_WEIRD_NAME": secret})

    assert proc.returncode == 1, proc.stderr
    assert scripted_llm.requests, "the provider was never called"
    everything = assert_nowhere(secret, proc, tmp_path, store)
    assert "Incorrect API key provided: ***" in proc.stdout  # summary and progress line
    assert "Incorrect API key provided: ***" in everything
    if backend == "subprocess":
        result = json.loads(next(store.rglob("gather/result.json")).read_text())
        assert "Incorrect API key provided: ***" in result["error"]
        assert list(store.rglob("attempts/1.json"))


# --- an MCP server quoting an expanded ${VAR} -----------------------------------------------

MCP_FLOW = """\
steps:
  - id: probe
    agent_provider: fake_researcher
    mcp_providers: [settings_probe]
    description: "PROBE the settings for {topic}"
  - id: report
    agent_provider: fake_writer
    description: "REPORT on what the probe found"
"""


def probe_then_echo(request: dict[str, Any]) -> Any:
    """Call the server's ``refuse`` tool; once its (error) answer is in, echo it into the
    answer and into a named file."""
    results = [m for m in request.get("messages", []) if m.get("role") == "tool"]
    if results:
        said = message_text(results[-1])
        return f"Final Answer: TOOL SAID: {said}\n\n```text probe.txt\n{said}\n```\n"
    names = [tool["function"]["name"] for tool in request.get("tools") or []]
    refuse = [name for name in names if name.endswith("refuse")]
    assert len(refuse) == 1, f"want the refuse tool, the LLM got {names}"
    return ToolCallReply(refuse[0], {"reason": "probing"})


def quote_prompt(request: dict[str, Any]) -> HTTPErrorReply:
    """A provider whose 400 error quotes the prompt it got (which holds the prior output)."""
    return HTTPErrorReply(400, "cannot process request: " + last_user_text(request))


@pytest.mark.parametrize("backend", ["inprocess", "subprocess"])
def test_mcp_error_quoting_an_expanded_var_is_masked_everywhere(
        backend: str, tmp_path: Path, scripted_llm: ScriptedLLMServer) -> None:
    secret = f"plain-{uuid.uuid4().hex}"
    scripted_llm.add_rule(r"REPORT on what", quote_prompt)
    scripted_llm.add_rule(r"PROBE the settings", probe_then_echo)
    command, args = stdio_server_command("echo")
    mcps = textwrap.dedent(f"""\
        - id: settings_probe
          stdio:
            command: {json.dumps(command)}
            args: {json.dumps(args)}
            env: {{{ERROR_DETAIL_ENV}: "${{PLAIN_SETTING_VALUE}}"}}
          required_env: [PLAIN_SETTING_VALUE]
        """)
    config = write_catalog(tmp_path / "config", base_url=scripted_llm.base_url, mcps=mcps)
    flow = tmp_path / "flow.yaml"
    flow.write_text(MCP_FLOW)

    proc, store = run_cli(tmp_path, config, flow, backend, {"PLAIN_SETTING_VALUE": secret})

    assert proc.returncode == 1, proc.stderr
    everything = assert_nowhere(secret, proc, tmp_path, store)
    assert "configured with ***" in everything  # the tool's error did travel
    probe_file = tmp_path / "artifacts"
    saved = [path for path in files_under(probe_file) if path.name == "probe.txt"]
    assert saved and "configured with ***" in saved[0].read_text()
    assert "cannot process request" in proc.stdout  # the second step's error is shown


# --- the registry itself ----------------------------------------------------------------------

def test_registered_names_and_values_are_masked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MY_WEIRD_NAME", "value-of-the-weird-one")
    monkeypatch.setenv("PLAIN_SETTING", "not-a-secret-value")
    text = "a value-of-the-weird-one b expanded-value-1234 c not-a-secret-value"
    assert redact_text(text) == text
    register_env_names(["MY_WEIRD_NAME"])
    register_values(["expanded-value-1234", "short"])  # 5 characters: never masked
    assert redact_text(text) == "a *** b *** c not-a-secret-value"
    assert redact_obj({"k": ["short", "expanded-value-1234"]}) == {"k": ["short", "***"]}
    monkeypatch.setenv("MY_WEIRD_NAME", "a-new-value-later")  # read at masking time
    assert redact_text("x a-new-value-later") == "x ***"


def test_masking_stream_masks_a_secret_written_in_pieces(tmp_path: Path) -> None:
    register_values(["split-secret-value"])
    target = (tmp_path / "out.txt").open("w")
    stream = MaskingStream(target)
    stream.write("before split-se")
    stream.write("cret-value after\nand a tail split-secret-value")
    stream.flush()
    target.close()
    assert (tmp_path / "out.txt").read_text() == "before *** after\nand a tail ***"


def test_mcp_expansion_registers_values_and_credential_headers() -> None:
    from agentic_orchestration.mcp.resolution import expand_env

    resolved = {"streamable_http": {"url": "https://h.example/${PLAIN_PATH}",
                                    "headers": {"X-Api-Key": "literal-key-12345",
                                                "Accept": "application/json"}}}
    expand_env(resolved, {"PLAIN_PATH": "tenant-0123456"}, mcp_id="m")
    out = redact_text("tenant-0123456 literal-key-12345 application/json")
    assert out == "*** *** application/json"


# --- a private run store ----------------------------------------------------------------------

def test_subprocess_run_store_is_private(tmp_path: Path, scripted_llm: ScriptedLLMServer
                                         ) -> None:
    scripted_llm.add_rule(r"GATHER", "Fact one.")
    config = write_catalog(tmp_path / "config", base_url=scripted_llm.base_url)
    flow = tmp_path / "flow.yaml"
    flow.write_text(PROVIDER_FLOW + '  - id: draft\n    agent_provider: fake_writer\n'
                    '    description: "DRAFT notes"\n')
    scripted_llm.add_rule(r"DRAFT", "Final Answer: here\n\n```text notes.txt\nnotes\n```\n")

    proc, store = run_cli(tmp_path, config, flow, "subprocess", {})

    assert proc.returncode == 0, proc.stderr
    dirs = [store, *sorted(p for p in store.rglob("*") if p.is_dir())]
    files = sorted(p for p in store.rglob("*") if p.is_file())
    names = {p.name for p in files}
    assert {"run.json", "gather-spec.json", "result.json", "1.json", "worker.log"} <= names
    assert {str(p): oct(stat.S_IMODE(p.stat().st_mode)) for p in dirs} == {
        str(p): "0o700" for p in dirs}
    assert {str(p): oct(stat.S_IMODE(p.stat().st_mode)) for p in files} == {
        str(p): "0o600" for p in files}
    # Artifacts are the user's files: ordinary mode, not private.
    saved = [p for p in files_under(tmp_path / "artifacts") if p.name == "notes.txt"]
    assert saved and stat.S_IMODE(saved[0].stat().st_mode) & 0o044


def test_default_root_is_per_user_and_private(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    from agentic_orchestration.orchestration.run_store import run_store_from_env

    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    store = run_store_from_env()
    assert store.base == tmp_path / f"agentic-run-store-{os.getuid()}"
    assert stat.S_IMODE(store.base.stat().st_mode) == 0o700
    store.base.chmod(0o755)  # one of ours that others can read is made private again
    run_store_from_env()
    assert stat.S_IMODE(store.base.stat().st_mode) == 0o700


def test_default_root_owned_by_another_user_is_refused(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from agentic_orchestration.cli.main import main
    from agentic_orchestration.orchestration.run_store import run_store_from_env

    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    real_uid = os.getuid()
    (tmp_path / f"agentic-run-store-{real_uid + 1}").mkdir()  # made by "someone else"
    monkeypatch.setattr(os, "getuid", lambda: real_uid + 1)
    # ... and seen by us as uid real_uid + 1, so the folder's owner (real_uid) is another.
    with pytest.raises(ConfigError, match="AGENTIC_RUN_STORE_PATH"):
        run_store_from_env()
    code = main(["--execution-backend", "subprocess", "--resume", "20260101T000000Z-abc"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and "AGENTIC_RUN_STORE_PATH" in err and "owned by uid" in err
