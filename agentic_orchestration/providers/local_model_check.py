"""Install-time smoke check: does the embedded model load and generate on this CPU?

``python -m agentic_orchestration.providers.local_model_check`` (the last step of
``scripts/install.sh``) starts the embedded model in its own process, exactly as a run
does, asks it for a few tokens and reports the speed. When the model process dies (a
llama.cpp build using instructions this CPU lacks ends in SIGILL or SIGSEGV), it prints the
signal, the build flags, the CPU's relevant flags and what to try, and exits with 1, so a
broken build is caught at install time and not as a silent crash of the first run.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path

from agentic_orchestration.errors import AgenticError

__all__ = ["check", "cpu_flags", "main"]

#: CPU features that decide which llama.cpp build can run (shown on failure).
_RELEVANT_FLAGS = ("sse4_2", "avx", "avx2", "fma", "f16c", "bmi2", "avx512f", "avx512bw",
                   "avx512vnni", "avx_vnni", "amx_tile", "amx_int8", "amx_bf16",
                   "asimd", "asimddp", "sve", "i8mm")


def cpu_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> list[str]:
    """The relevant instruction-set flags this CPU advertises (x86 ``flags``, arm
    ``Features``)."""
    try:
        text = cpuinfo.read_text(errors="replace")
    except OSError:
        return []
    found: set[str] = set()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip().lower() in ("flags", "features"):
            found.update(value.split())
    return [flag for flag in _RELEVANT_FLAGS if flag in found]


def _say(message: str) -> None:
    sys.stderr.write(f"[install] {message}\n")
    sys.stderr.flush()


def check(*, tokens: int, cmake_args: str) -> int:
    """Start, generate, stop. Returns the process exit code (0 ok, 1 failed, 2 config)."""
    from agentic_orchestration.providers.local_model_process import (
        LocalModelFront,
        LocalModelProcess,
    )

    started = time.perf_counter()
    process = LocalModelProcess().start()
    front = LocalModelFront(process).start()
    try:
        try:
            process.wait_ready(300.0)
        except AgenticError as exc:
            _say(f"error: the embedded model cannot be loaded: {exc}")
            return exc.exit_code
        loaded = time.perf_counter() - started
        request = {"model": "local-gguf", "max_tokens": tokens, "temperature": 0,
                   "messages": [{"role": "user", "content": "Count from one to ten:"}]}
        began = time.perf_counter()
        try:
            with urllib.request.urlopen(urllib.request.Request(  # noqa: S310 (loopback)
                    front.base_url + "/chat/completions", json.dumps(request).encode(),
                    {"Content-Type": "application/json"}), timeout=300) as reply:
                usage = json.load(reply).get("usage") or {}
        except (urllib.error.URLError, OSError) as exc:
            failure = process.failure or f"no answer from the embedded model: {exc}"
            _say(f"error: {failure}")
            _say(f"  llama-cpp-python was built with CMAKE_ARGS={cmake_args or '(unknown)'}")
            _say(f"  this CPU ({platform.machine()}) advertises: {' '.join(cpu_flags())}")
            _say("  try a build for this CPU's baseline, e.g. "
                 "AGENTIC_LLAMA_CMAKE_ARGS=\"-DGGML_NATIVE=OFF -DGGML_AVX2=OFF -DGGML_FMA=OFF "
                 "-DGGML_F16C=OFF -DGGML_BMI2=OFF\" ./scripts/install.sh, and report the "
                 "log above")
            return 1
        elapsed = time.perf_counter() - began
        written = int(usage.get("completion_tokens") or 0)
        _say(f"embedded model ok: loaded in {loaded:.1f}s, {written} tokens at "
             f"{written / max(elapsed, 1e-9):.0f} tokens/s (log {process.log_path})")
        return 0
    finally:
        front.stop()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="local_model_check", description=__doc__)
    parser.add_argument("--tokens", type=int, default=16)
    parser.add_argument("--cmake-args", default="", help="flags the wheel was built with")
    args = parser.parse_args(argv)
    return check(tokens=args.tokens, cmake_args=args.cmake_args)


if __name__ == "__main__":
    sys.exit(main())
