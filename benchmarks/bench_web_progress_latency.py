"""Web UI: time from a run event written by the coordinator to the event shown in the page.

The web server starts a stand-in for ``main.py`` (same argv) whose "coordinator" is the
real ``ProgressReporter``: it reports a run's steps a few hundred milliseconds apart, so
each event is appended to the run's ``AGENTIC_EVENTS_FILE`` (with its emit time ``t``) and
its ``(progress)`` line printed, as in a real run. The page (real Chromium, driven by
Playwright) records ``Date.now()`` when it draws the event. Both clocks are this machine's
wall clock. The stand-in keeps CrewAI and any LLM out of the figure: what is measured is
the events file, the server's follower thread, the server-sent event and the page's
drawing. ``benchmarks/bench_web_sessions.py`` measures the same path end to end from a
real worker's ``finished_at``.

    .venv/bin/python benchmarks/bench_web_progress_latency.py [--runs 3] [--steps 4]
"""

from __future__ import annotations

import argparse
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
    import os, sys, time
    sys.path.insert(0, os.environ["BENCH_REPO"])
    from agentic_orchestration.orchestration.backends.base import RunOptions, StepResult
    from agentic_orchestration.orchestration.progress import ProgressReporter
    run_id = sys.argv[sys.argv.index("--run-id") + 1]
    steps, gap = int(os.environ["BENCH_STEPS"]), float(os.environ["BENCH_GAP"])
    go = os.path.join(os.environ["BENCH_DIR"], run_id + ".go")
    while not os.path.exists(go):  # the page is subscribed once the bench creates it
        time.sleep(0.01)
    reporter = ProgressReporter(RunOptions(run_id=run_id), live=False)
    time.sleep(gap)
    reporter.run_started(run_id, steps, "inprocess")
    for i in range(steps):
        time.sleep(gap)
        reporter.step_started(i, f"s{i + 1}", "bench")
        time.sleep(gap)
        reporter.step_finished(i, f"s{i + 1}", gap, result=StepResult(
            run_id=run_id, step_id=f"s{i + 1}", result_text="ok", agent_provider_id="bench"))
    time.sleep(gap)
    reporter.run_finished(run_id, True)
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
                              "BENCH_GAP": str(args.gap),
                              "BENCH_REPO": str(Path(__file__).resolve().parents[1])})
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
            shown = page.locator("#progress li").evaluate_all(
                "els => els.map(e => [e.dataset.kind, Number(e.dataset.tEmit), "
                "Number(e.dataset.tShown)])")
            for kind, emitted_ms, shown_ms in shown:
                if kind != "exit":  # made by the server at the end, not by the run
                    latencies.append(shown_ms - emitted_ms)
        browser.close()
    latencies.sort()
    p90 = latencies[max(0, round(0.9 * len(latencies)) - 1)]
    print(f"run event written -> shown in the page, {len(latencies)} events over "
          f"{args.runs} runs: median {statistics.median(latencies):.1f} ms, "
          f"p90 {p90:.1f} ms, max {latencies[-1]:.1f} ms, min {latencies[0]:.1f} ms")


if __name__ == "__main__":
    main()
