"""The embedded model in its own process: a crash fails a step with one clear line, the
fallback chain applies, nothing outlives the tool, and the built wheel is portable."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from conftest import write_catalog

from agentic_orchestration.cli.main import main
from agentic_orchestration.errors import EXIT_STEP_FAILED
from agentic_orchestration.providers.local_model_check import cpu_flags
from agentic_orchestration.providers.local_model_process import (
    describe_exit,
    ensure_local_server,
    local_model_process,
)

REPO = Path(__file__).resolve().parent.parent
#: Read at import, before the autouse fixture clears AGENTIC_* for each test.
CUSTOM_BUILD = bool(os.environ.get("AGENTIC_LLAMA_CMAKE_ARGS"))
DIED = r"embedded model process died: SIGSEGV while generating; see \S+local-model-\S+\.log"


def test_describe_exit_names_signals_and_codes() -> None:
    assert describe_exit(-signal.SIGSEGV) == "SIGSEGV"
    assert describe_exit(-signal.SIGILL) == "SIGILL"
    assert describe_exit(3) == "exit code 3"


def test_cpu_flags_reads_x86_and_arm_lines(tmp_path: Path) -> None:
    info = tmp_path / "cpuinfo"
    info.write_text("processor: 0\nflags\t\t: fpu sse4_2 avx2 amx_tile\n"
                    "Features\t: asimd asimddp\n")
    assert cpu_flags(info) == ["sse4_2", "avx2", "amx_tile", "asimd", "asimddp"]


def _crash_model() -> int:
    """Start the embedded model in this process and kill it the way a bad build dies."""
    ensure_local_server()
    process = local_model_process()
    assert process is not None and process.pid is not None
    os.kill(process.pid, signal.SIGSEGV)
    process.wait_exit(10)
    assert process.returncode == -signal.SIGSEGV
    return process.pid


@pytest.mark.slow
def test_dead_model_answers_503_with_one_clear_line(local_model: Path) -> None:
    from openai import InternalServerError, OpenAI

    client = OpenAI(base_url=ensure_local_server(), api_key="not-needed", max_retries=0)
    ok = client.chat.completions.create(model="local-gguf", max_tokens=4,
                                        messages=[{"role": "user", "content": "Hi"}])
    assert ok.usage is not None and ok.usage.completion_tokens > 0
    _crash_model()
    with pytest.raises(InternalServerError) as caught:
        client.chat.completions.create(model="local-gguf", max_tokens=4,
                                       messages=[{"role": "user", "content": "Hi"}])
    assert caught.value.status_code == 503
    process = local_model_process()
    assert process is not None and process.log_path is not None
    assert process.log_path.is_file() and oct(process.log_path.stat().st_mode)[-3:] == "600"
    assert re.search(DIED, str(caught.value))


def _local_then_fake(tmp_path: Path, base_url: str, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A catalog whose best provider is the embedded model, with a scripted fallback."""
    agents = textwrap.dedent(f"""\
        - id: local_writer
          type: local
          role: Writer
          goal: Write text.
          backstory: Clear.
          priority: 1
        - id: fake_writer
          type: openai
          model: fake-model
          openai_base_url: {base_url}
          role: Writer
          goal: Write text.
          backstory: Clear.
          priority: 50
        """)
    root = write_catalog(tmp_path / "config", base_url=base_url, agents=agents, workflows={
        "one": """\
            name: one
            steps:
              - id: draft
                agent_provider: local_writer
                description: Write about {topic}
                expected_output: text
            """})
    monkeypatch.setenv("AGENTIC_CONFIG_DIR", str(root))
    return root


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["inprocess", "subprocess"])
def test_crash_fails_the_step_clearly_then_falls_back(
        backend: str, local_model: Path, tmp_path: Path, scripted_llm,
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    _local_then_fake(tmp_path, scripted_llm.base_url, monkeypatch)
    monkeypatch.setenv("AGENTIC_EXECUTION_BACKEND", backend)
    monkeypatch.setenv("AGENTIC_SUBPROCESS_WORKERS", "1")
    monkeypatch.setenv("AGENTIC_SUBPROCESS_WARM", "0")
    monkeypatch.setenv("AGENTIC_RUN_STORE_PATH", str(tmp_path / "store"))
    _crash_model()
    assert main(["--workflow", "one", "tea"]) == 0
    captured = capsys.readouterr()
    assert "Final answer" in captured.out
    assert re.search(r"\(progress\) step 1/1 draft failed.*" + DIED, captured.out)
    session = json.loads(next((tmp_path / "sessions").glob("*.json")).read_text())
    draft = [s for s in session["steps"] if s["step_id"] == "draft"]
    assert draft[-1]["exit_code"] == 0 and draft[-1]["agent_provider_id"] != "local_writer"
    assert "Traceback" not in captured.err


@pytest.mark.slow
def test_crash_with_nothing_to_fall_back_on_exits_1(
        local_model: Path, tmp_path: Path, scripted_llm, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    _local_then_fake(tmp_path, scripted_llm.base_url, monkeypatch)
    monkeypatch.setenv("AGENTIC_FALLBACK", "0")
    _crash_model()
    assert main(["--workflow", "one", "tea"]) == EXIT_STEP_FAILED
    captured = capsys.readouterr()
    assert re.search(DIED, captured.out + captured.err)
    assert "Traceback" not in captured.err


@pytest.mark.slow
def test_model_process_does_not_outlive_a_killed_tool(local_model: Path) -> None:
    code = ("from agentic_orchestration.providers.local_model_process import ensure_local_server,"
            " local_model_process\nensure_local_server()\n"
            "print(local_model_process().pid, flush=True)\nimport time\ntime.sleep(60)\n")
    parent = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True,
                              cwd=REPO)
    assert parent.stdout is not None
    child = int(parent.stdout.readline())
    os.kill(parent.pid, signal.SIGKILL)
    parent.wait()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            os.kill(child, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    os.kill(child, signal.SIGKILL)
    pytest.fail("the embedded model process outlived its SIGKILLed parent")


def _ggml_cpu_library() -> Path:
    import llama_cpp

    found = sorted(Path(llama_cpp.__file__).parent.glob("lib/libggml-cpu*.so*"))
    assert found, "libggml-cpu.so not found in the installed llama_cpp package"
    return found[0]


@pytest.mark.slow
@pytest.mark.skipif(os.uname().machine != "x86_64", reason="x86 instruction check")
def test_installed_wheel_has_no_amx_or_avx512_code() -> None:
    """The portable baseline (scripts/llama_build_flags.sh) is x86-64-v3: a native build on
    an AMX or AVX-512 machine would contain tile/zmm instructions that fault elsewhere."""
    if CUSTOM_BUILD:
        pytest.skip("a user-chosen build (AGENTIC_LLAMA_CMAKE_ARGS) may use any instruction")
    disassembly = subprocess.run(["objdump", "-d", "--no-show-raw-insn",
                                  str(_ggml_cpu_library())], capture_output=True, text=True,
                                 check=True).stdout
    assert "vfmadd" in disassembly  # the AVX2/FMA baseline is really in there
    for marker in ("ldtilecfg", "tdpbssd", "tileloadd", "%zmm"):
        assert marker not in disassembly, f"{marker} found: the build is not portable"


@pytest.mark.slow
def test_install_check_passes_on_this_machine(local_model: Path) -> None:
    module = "agentic_orchestration.providers.local_model_check"
    proc = subprocess.run([sys.executable, "-m", module, "--tokens", "4"],
                          capture_output=True, text=True, timeout=300, cwd=REPO)
    assert proc.returncode == 0, proc.stderr
    assert re.search(r"embedded model ok: loaded in [\d.]+s, \d+ tokens at \d+ tokens/s",
                     proc.stderr)


@pytest.mark.slow
def test_install_check_reports_signal_flags_and_what_to_try(
        local_model: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    from agentic_orchestration.providers.local_model_check import check
    from agentic_orchestration.providers.local_model_process import LocalModelProcess

    ready = LocalModelProcess.wait_ready

    def crash_once_ready(self: LocalModelProcess, timeout: float) -> str | None:
        url = ready(self, timeout)
        if self.returncode is None and self.pid is not None:
            os.kill(self.pid, signal.SIGSEGV)  # what a build with foreign instructions does
            self.wait_exit(10)
        return url

    monkeypatch.setattr(LocalModelProcess, "wait_ready", crash_once_ready)
    assert check(tokens=4, cmake_args="-DGGML_NATIVE=OFF -DGGML_AVX2=ON") == 1
    err = capsys.readouterr().err
    assert re.search(DIED, err)
    assert "CMAKE_ARGS=-DGGML_NATIVE=OFF -DGGML_AVX2=ON" in err
    assert "this CPU" in err and "AGENTIC_LLAMA_CMAKE_ARGS=" in err
