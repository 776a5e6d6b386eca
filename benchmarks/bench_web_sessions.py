"""Web UI with a large sessions database: memory, history and search times, and the time
from a step finishing in its worker to its status shown in the browser.

1. Writes ``--sessions`` records (default 10,000) through ``SessionStore.save``, each with
   a goal, a plan, 2-4 steps (timing, tokens, output text) and an answer.
2. Starts ``main.py --web --port 0`` as a child process on that database and reports its
   resident memory (VmRSS, and VmHWM: the peak) after startup and after the requests.
3. Times ``GET /api/runs`` (the history page's first page, and a page 5,000 runs deep),
   a text search (``?q=``) and a status filter: median and p90 over ``--repeat`` requests.
4. Runs a real 3-step workflow through that server (real CrewAI against the scripted LLM
   server, worker processes with ``--backend subprocess``) with the run page open in
   Chromium, and compares each step's ``timing.finished_at`` in the session (written by the
   worker when the step ends) with the moment the page marked the step done
   (``Date.now()`` when its event was drawn). Same machine, same wall clock.

    .venv/bin/python benchmarks/bench_web_sessions.py [--sessions 10000] [--repeat 30]
"""

from __future__ import annotations

import argparse
import os
import random
import re
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--no-first-run"]
WORDS = ("bees honey rust go kubernetes pods latency sqlite search index python agents "
         "planner tokens cache compiler garden weather river market poem summary report "
         "compare explain draft review translate").split()
AGENTS = """\
- id: bench_agent
  type: openai
  model: fake-model
  openai_base_url: {base_url}
  role: Worker
  goal: Do the step.
  backstory: Quick.
  priority: 1
"""
WORKFLOW = """\
description: Three steps.
steps:
  - id: one
    agent_provider: bench_agent
    description: "Step one on {topic}."
    expected_output: Text.
  - id: two
    agent_provider: bench_agent
    description: "Step two on {topic}."
    expected_output: Text.
  - id: three
    agent_provider: bench_agent
    description: "Step three on {topic}."
    expected_output: Text.
"""


def write_sessions(count: int, seed: int = 7) -> float:
    """``count`` finished runs through the store; returns the seconds it took."""
    from agentic_orchestration.sessions.orchestrator_session import SessionRecord
    from agentic_orchestration.sessions.store import SessionStore

    rng = random.Random(seed)
    store = SessionStore(json_mirror=False)
    start = datetime(2024, 1, 1, tzinfo=UTC)
    began = time.perf_counter()
    for i in range(count):
        created = start + timedelta(minutes=7 * i)
        goal = " ".join(rng.choice(WORDS) for _ in range(rng.randint(4, 12)))
        status = rng.choices(["ok", "failed", "cancelled"], [85, 10, 5])[0]
        steps, t = [], created
        n = rng.randint(2, 4)
        for k in range(n):
            seconds = rng.uniform(0.5, 30)
            finished = t + timedelta(seconds=seconds)
            failed = status == "failed" and k == n - 1
            steps.append({
                "step_id": f"s{k + 1}", "agent_provider_id": rng.choice(["openai_a", "local"]),
                "exit_code": 1 if failed else 0, "status": "failed" if failed else "ok",
                "result_text": " ".join(rng.choice(WORDS) for _ in range(80)),
                "error": "provider timed out" if failed else None, "recoverable": failed,
                "timing": {"started_at": t.isoformat(timespec="milliseconds"),
                           "finished_at": finished.isoformat(timespec="milliseconds"),
                           "duration_seconds": seconds},
                "usage": {"total_tokens": rng.randint(100, 3000)}, "artifacts": [],
            })
            t = finished
        run_id = f"{created:%Y%m%dT%H%M%SZ}-b{i:05d}"
        plan = {"name": "dynamic", "topic": goal,
                "steps": [{"id": s["step_id"], "agent_provider": s["agent_provider_id"],
                           "description": f"do {s['step_id']}", "expected_output": "x"}
                          for s in steps]}
        store.save(SessionRecord(
            session_id=run_id, run_id=run_id, created_at=created.isoformat(),
            updated_at=t.isoformat(), goal=goal, mode="dynamic", route="planner:openai_a",
            plan=plan, last_execution_backend="inprocess", status=status,
            exit_code={"ok": 0, "failed": 1, "cancelled": 130}[status],
            result_text=None if status != "ok" else steps[-1]["result_text"],
            error=None if status == "ok" else "a step failed", steps=steps))
    return time.perf_counter() - began


def rss_kib(pid: int) -> tuple[int, int]:
    """(VmRSS, VmHWM) of ``pid`` in KiB."""
    fields = dict(line.split(":", 1) for line in
                  Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    return int(fields["VmRSS"].split()[0]), int(fields["VmHWM"].split()[0])


def timed(client, path: str, repeat: int) -> tuple[float, float, dict]:
    times, body = [], {}
    for _ in range(repeat):
        began = time.perf_counter()
        response = client.get(path)
        times.append((time.perf_counter() - began) * 1000)
        response.raise_for_status()
        body = response.json()
    times.sort()
    return statistics.median(times), times[max(0, round(0.9 * len(times)) - 1)], body


def step_to_page(url: str, backend: str) -> list[tuple[str, float]]:
    """(step id, ms from the worker's finished_at to the page showing it done)."""
    import httpx
    from playwright.sync_api import sync_playwright

    from agentic_orchestration.sessions.store import SessionStore

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        page = browser.new_page()
        page.add_init_script("""
            new MutationObserver((records) => {
              for (const r of records) {
                const row = r.target.closest && r.target.closest("#steps tr[data-step-id]");
                if (row && row.dataset.status === "done" && !row.dataset.doneAt)
                  row.dataset.doneAt = String(Date.now());
              }
            }).observe(document, {subtree: true, attributes: true,
                                  attributeFilter: ["data-status"]});
            """)
        run = httpx.post(url + "api/runs", json={"goal": "latency", "workflow": "three",
                                                 "backend": backend}).json()["run"]
        page.goto(f"{url}runs/{run['run_id']}")
        page.wait_for_selector("#run[data-finished]", timeout=300_000)
        shown = dict(page.locator("#steps tr[data-step-id]").evaluate_all(
            "els => els.map(e => [e.dataset.stepId, Number(e.dataset.doneAt || 0)])"))
        status = page.inner_text("#run-status")
        browser.close()
    record = SessionStore().get(run["run_id"])
    if status != "ok":
        raise SystemExit(f"the latency run ended {status}: {record.error}")
    out = []
    for step in record.steps:
        finished = datetime.fromisoformat(step["timing"]["finished_at"]).timestamp() * 1000
        out.append((step["step_id"], shown[step["step_id"]] - finished))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--backend", default="subprocess", help="for the latency run")
    parser.add_argument("--latency-runs", type=int, default=2)
    args = parser.parse_args()

    import httpx

    from agentic_orchestration.testing import ScriptedLLMServer

    work = Path(tempfile.mkdtemp(prefix="bench-web-sessions-"))
    config = work / "config"
    for sub in ("agent_providers", "mcp_providers", "workflows"):
        (config / sub).mkdir(parents=True)
    os.environ.update({"AGENTIC_SESSIONS_PATH": str(work / "sessions"),
                       "AGENTIC_RUN_STORE_PATH": str(work / "store"),
                       "AGENTIC_CONFIG_DIR": str(config), "AGENTIC_KB": "0",
                       "CREWAI_DISABLE_TELEMETRY": "true", "OTEL_SDK_DISABLED": "true",
                       "CREWAI_DISABLE_VERSION_CHECK": "true"})
    os.environ.setdefault("OPENAI_API_KEY", "sk-bench-not-a-real-key")

    seconds = write_sessions(args.sessions)
    db = work / "sessions" / "sessions.sqlite3"
    print(f"{args.sessions} sessions written through SessionStore in {seconds:.1f} s "
          f"({seconds / args.sessions * 1000:.2f} ms each); database "
          f"{db.stat().st_size / 2**20:.1f} MiB")

    with ScriptedLLMServer(default="Final Answer: done.") as llm:
        (config / "agent_providers" / "agents.yaml").write_text(
            AGENTS.format(base_url=llm.base_url))
        (config / "mcp_providers" / "mcps.yaml").write_text("")
        (config / "workflows" / "three.yaml").write_text(textwrap.dedent(WORKFLOW))
        server = subprocess.Popen([sys.executable, str(ROOT / "main.py"), "--web", "--port", "0"],
                                  stdout=subprocess.PIPE, text=True)
        try:
            assert server.stdout is not None
            first = server.stdout.readline()
            match = re.search(r"(http://\S+/)", first)
            if not match:
                raise SystemExit(f"the web server did not start: {first!r}")
            url = match.group(1)
            with httpx.Client(base_url=url, timeout=60) as client:
                client.get("/api/config").raise_for_status()
                rss, _ = rss_kib(server.pid)
                print(f"web server RSS after startup: {rss / 1024:.1f} MiB")
                cases = [("history, first page (limit 50)", "/api/runs?limit=50"),
                         ("history, page at offset 5000", "/api/runs?limit=50&offset=5000"),
                         ("search q=kubernetes", "/api/runs?limit=50&q=kubernetes"),
                         ("search q=honey garden (a phrase, rarer)",
                          "/api/runs?limit=50&q=honey%20garden"),
                         ("status=failed", "/api/runs?limit=50&status=failed"),
                         ("one run's detail", "/api/runs/20240101T000000Z-b00000")]
                for label, path in cases:
                    median, p90, body = timed(client, path, args.repeat)
                    total = f", total {body['total']}" if "total" in body else ""
                    print(f"GET {label}: median {median:.1f} ms, p90 {p90:.1f} ms{total}")
                rss, hwm = rss_kib(server.pid)
                print(f"web server RSS after the requests: {rss / 1024:.1f} MiB "
                      f"(peak {hwm / 1024:.1f} MiB)")
            latencies: list[float] = []
            for _ in range(args.latency_runs):
                for step_id, ms in step_to_page(url, args.backend):
                    latencies.append(ms)
                    print(f"  step {step_id}: worker finished -> shown done in the page "
                          f"{ms:.0f} ms")
            latencies.sort()
            print(f"step finished in the worker ({args.backend}) -> status in the browser, "
                  f"{len(latencies)} steps: median {statistics.median(latencies):.0f} ms, "
                  f"max {latencies[-1]:.0f} ms")
            rss, hwm = rss_kib(server.pid)
            print(f"web server RSS at the end: {rss / 1024:.1f} MiB (peak {hwm / 1024:.1f} MiB)")
        finally:
            server.terminate()
            server.wait(60)


if __name__ == "__main__":
    main()
