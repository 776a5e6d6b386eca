"""CLI start-up: wall time of ``main.py --help`` (target: under 0.5 s).

Also reports whether CrewAI was imported (it must not be) and the slowest imports.
Run: .venv/bin/python benchmarks/bench_cli_startup.py
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
RUNS = 10


def main() -> None:
    cmd = [sys.executable, str(REPO / "main.py"), "--help"]
    subprocess.run(cmd, capture_output=True, check=True)  # warm the OS file cache
    times = []
    for _ in range(RUNS):
        started = time.perf_counter()
        subprocess.run(cmd, capture_output=True, check=True)
        times.append(time.perf_counter() - started)
    baseline = []
    for _ in range(RUNS):
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", "pass"], capture_output=True, check=True)
        baseline.append(time.perf_counter() - started)
    trace = subprocess.run([sys.executable, "-X", "importtime", *cmd[1:]],
                           capture_output=True, text=True, check=True).stderr
    imported = [line.split("|")[-1].strip() for line in trace.splitlines() if "|" in line]
    print(f"main.py --help: median {statistics.median(times) * 1000:.1f} ms, "
          f"max {max(times) * 1000:.1f} ms over {RUNS} runs (target < 500 ms)")
    print(f"bare interpreter start: median {statistics.median(baseline) * 1000:.1f} ms")
    print(f"modules imported: {len(imported)}; crewai imported: "
          f"{any(m.startswith('crewai') for m in imported)}")


if __name__ == "__main__":
    main()
