"""Tokens/s of llama.cpp builds side by side: the installed (portable) one and others.

Each build runs in its own child process (``PYTHONPATH`` puts that build's ``llama_cpp``
first), loads the bundled Gemma 3 270M, then measures prompt evaluation (a ~250-token
prompt) and free generation (128 tokens, greedy) ``--repeat`` times; the median is printed.

Run: ``PYTHONPATH=. .venv/bin/python benchmarks/bench_llama_builds.py \
        [--wheel native=/path/llama_cpp_python-...whl ...] [--threads 2]``
A ``--wheel`` is unpacked into a temp dir (nothing is installed). No asserts: figures only.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

_MEASURE = r"""
import json, statistics, sys, time
from llama_cpp import Llama
path, threads, repeat = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
llama = Llama(model_path=path, n_ctx=2048, n_threads=threads, n_threads_batch=threads,
              verbose=False)
prompt = "The history of tea. " * 50
tokens = llama.tokenize(prompt.encode())
evals, gens = [], []
for _ in range(repeat):
    llama.reset()
    started = time.perf_counter()
    llama.eval(tokens)
    evals.append(len(tokens) / (time.perf_counter() - started))
    llama.reset()
    started = time.perf_counter()
    out = llama.create_completion("Once upon a time", max_tokens=128, temperature=0,
                                  repeat_penalty=1.0)
    n = out["usage"]["completion_tokens"]
    gens.append(n / (time.perf_counter() - started))
print(json.dumps({"prompt_tps": statistics.median(evals), "gen_tps": statistics.median(gens),
                  "prompt_tokens": len(tokens)}))
"""


def _measure(label: str, pythonpath: str | None, model: str, threads: int, repeat: int) -> dict:
    env = dict(os.environ)
    if pythonpath:
        env["PYTHONPATH"] = pythonpath + os.pathsep + env.get("PYTHONPATH", "")
    proc = subprocess.run([sys.executable, "-c", _MEASURE, model, str(threads), str(repeat)],
                          capture_output=True, text=True, env=env, timeout=900)
    if proc.returncode != 0:
        return {"label": label, "error": f"exit {proc.returncode}: {proc.stderr[-300:]}"}
    return {"label": label, **json.loads(proc.stdout.strip().splitlines()[-1])}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--wheel", action="append", default=[], metavar="LABEL=PATH",
                        help="another llama-cpp-python wheel to compare")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    from agentic_orchestration.providers.local_model import local_model_path

    model = str(local_model_path())
    rows = [_measure("installed (portable)", None, model, args.threads, args.repeat)]
    with tempfile.TemporaryDirectory() as tmp:
        for item in args.wheel:
            label, _, path = item.partition("=")
            target = Path(tmp) / label
            with zipfile.ZipFile(path) as wheel:
                wheel.extractall(target)
            for lib in target.rglob("*.so*"):
                lib.chmod(0o755)
            rows.append(_measure(label, str(target), model, args.threads, args.repeat))

    print(f"llama.cpp builds, Gemma 3 270M Q4_K_M, {args.threads} threads, "
          f"median of {args.repeat}")
    print(f"{'build':<24} {'prompt tok/s':>13} {'generate tok/s':>15}")
    for row in rows:
        if "error" in row:
            print(f"{row['label']:<24} {row['error']}")
        else:
            print(f"{row['label']:<24} {row['prompt_tps']:>13.0f} {row['gen_tps']:>15.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
