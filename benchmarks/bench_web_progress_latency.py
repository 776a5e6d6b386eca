"""Web UI: time from a ``(progress)`` line printed by a run to that line shown in the page.

The web server starts a stand-in for ``main.py`` (same argv, same line formats) that prints
a run's progress lines a few hundred milliseconds apart and records the wall time just
before each print; the page (real Chromium, driven by Playwright) records ``Date.now()``
when it appends the line. Both clocks are this machine's wall clock. The stand-in keeps
CrewAI and any LLM out of the figure: what is measured is the pipe, the server's reader
thread, the server-sent event and the page's drawing.

    .venv/bin/python benchmarks/bench_web_progress_latency.py [--runs 3] [--steps 4]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import sys
import tempfile
import textwrap
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--no-first-run"]

FAKE_CLI = textwrap.dedent("""\
    import json, os, sys, time
    run_id = sys.argv[sys.argv.index("--run-id") + 1]
    steps, gap = int(os.environ["BENCH_STEPS"]), float(os.environ["BENCH_GAP"])
    go = os.path.join(os.environ["BENCH_DIR"], run_id + ".go")
    while not os.path.exists(go):  # the page is subscribed once the bench creates it
        time.sleep(0.01)
    printed = {}
    def emit(text):
        time.sleep(gap)
        printed[text] = time.time()
        sys.stdout.write("(progress) " + text + "\\n")
        sys.stdout.flush()
    emit(f"run {run_id} started: {steps} steps [inprocess]")
    for i in range(1, steps + 1):
        emit(f"step {i}/{steps} s{i} started [agent bench]")
        emit(f"step {i}/{steps} s{i} finished in {gap:.2f}s")
    emit(f"run {run_id} finished: ok")
    with open(os.path.join(os.environ["BENCH_DIR"], run_id + ".json"), "w") as f:
        json.dump(printed, f)
    """)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--gap", type=float, default=0.25, help="seconds between lines")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    from playwright.sync_api import sync_playwright

    from agentic_orchestration.web.runs import RunManager
    from agentic_orchestration.web.server import create_app
    from agentic_orchestration.web.serving import BackgroundServer

    work = Path(tempfile.mkdtemp(prefix="bench-web-"))
    os.environ.setdefault("AGENTIC_SESSIONS_PATH", str(work / "sessions"))
    fake = work / "fake_main.py"
    fake.write_text(FAKE_CLI)
    manager = RunManager(command=[sys.executable, str(fake)],
                         env={"BENCH_DIR": str(work), "BENCH_STEPS": str(args.steps),
                              "BENCH_GAP": str(args.gap)})
    latencies: list[float] = []
    with BackgroundServer(create_app(runs=manager)) as server, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        page = browser.new_page()
        for _ in range(args.runs):
            run = manager.start(goal="latency", workflow=None, backend=None)
            page.goto(f"{server.url}runs/{run.run_id}")
            page.wait_for_selector("#cancel:not([hidden])")  # the page has its event stream
            time.sleep(0.3)
            (work / f"{run.run_id}.go").touch()
            page.wait_for_selector("#run[data-finished]", timeout=60_000)
            printed = json.loads((work / f"{run.run_id}.json").read_text())
            shown = page.locator("#progress li").evaluate_all(
                "els => els.map(e => [e.textContent, Number(e.dataset.tShown)])")
            for text, shown_ms in shown:
                if text in printed:
                    latencies.append(shown_ms - printed[text] * 1000)
        browser.close()
    latencies.sort()
    p90 = latencies[max(0, round(0.9 * len(latencies)) - 1)]
    print(f"progress line printed -> shown in the page, {len(latencies)} lines over "
          f"{args.runs} runs: median {statistics.median(latencies):.1f} ms, "
          f"p90 {p90:.1f} ms, max {latencies[-1]:.1f} ms, min {latencies[0]:.1f} ms")


if __name__ == "__main__":
    main()
