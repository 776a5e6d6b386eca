"""The web UI in a real browser (Debian's Chromium driven by Playwright) on real runs
(``main.py`` children, real CrewAI, the scripted LLM server): a run watched live from its
coordinator's events, a run cancelled, the history, the timeline of every attempt, and two
runs at once. Shared fixtures: ``web_fixtures``; helpers: ``web_helpers``.
"""

from __future__ import annotations

import json
import re
import threading
import time
from pathlib import Path

import httpx
import pytest
from web_helpers import (
    SECRET,
    WAIT_MS,
    Held,
    alive,
    descendants,
    finished_run,
    server_run,
    session_of,
    start_from_page,
    step_status,
)

from agentic_orchestration.testing import HTTPErrorReply, ScriptedLLMServer
from agentic_orchestration.web.serving import BackgroundServer

pytestmark = pytest.mark.web
#: The shared fixtures (server, browser, page, held LLM reply...).
pytest_plugins = ["web_fixtures"]


# -- the browser: a run watched live, a run cancelled, the history -------------------------

def test_watch_a_run_live_cancel_another_and_find_both_in_the_history(
        server: BackgroundServer, page, held: Held, tmp_path: Path) -> None:
    # Run 1, in-process: the page shows step 1 done and step 2 running while step 2's
    # LLM reply is held, so the lines arrive live, not after the run.
    first = start_from_page(page, server.url, goal="How do bees talk?", backend="inprocess")
    page.wait_for_selector('#steps tr[data-step-id="polish"][data-status="running"]')
    assert held.asked.wait(WAIT_MS / 1000)
    assert step_status(page, "draft") == "done"
    assert page.inner_text("#run-status") == "running"
    lines = page.locator("#progress li").all_inner_texts()
    assert lines[:3] == [f"run {first} started: 2 steps [inprocess]",
                         "step 1/2 draft started [agent fake_researcher]",
                         lines[2]] and lines[2].startswith("step 1/2 draft finished in ")
    assert lines[3] == "step 2/2 polish started [agent fake_writer]"
    page.screenshot(path=str(tmp_path / "live-run.png"), full_page=True)
    held.release()

    page.wait_for_selector("#run[data-finished]")
    assert page.inner_text("#run-status") == "ok"
    assert step_status(page, "polish") == "done"
    assert "Bees dance to share where flowers are." in page.inner_text("#answer")
    assert page.locator("#progress li").last.inner_text() == "run ended: ok"
    with page.expect_download() as download:
        page.click('#artifacts a:has-text("bees.py")')
    assert Path(download.value.path()).read_text() == "print('waggle')\n"
    page.click("#outputs-box summary")
    outputs = page.inner_text("#step-outputs")
    assert "Draft. The key is ***." in outputs and SECRET not in page.content()
    assert session_of(first).status == "ok"
    shown = [int(x) - int(y) for x, y in zip(
        page.locator("#progress li").evaluate_all("els => els.map(e => e.dataset.tShown)"),
        page.locator("#progress li").evaluate_all("els => els.map(e => e.dataset.tServer)"),
        strict=True)]
    print(f"server read -> shown in the page, ms: {sorted(shown)}")

    # Run 2, on worker processes: Cancel while step 2 runs (its LLM reply never comes).
    held.asked.clear()
    held._go.clear()
    second = start_from_page(page, server.url, goal="Why do bees swarm?",
                             backend="subprocess")
    page.wait_for_selector('#steps tr[data-step-id="polish"][data-status="running"]')
    assert held.asked.wait(WAIT_MS / 1000)  # the polish worker is waiting on the LLM
    run = server_run(server, second)
    workers = descendants(run.pid)
    assert workers, "the subprocess backend should have started worker processes"
    page.click("#cancel")
    page.wait_for_selector("#run[data-finished]")
    assert page.inner_text("#run-status") == "cancelled"
    assert step_status(page, "draft") == "done" and step_status(page, "polish") == "cancelled"
    assert "cancelled from the web UI" in page.inner_text("#run-error")
    record = session_of(second)
    assert record.status == "cancelled"
    assert [s["status"] for s in record.steps] == ["ok", "cancelled"]
    deadline = time.monotonic() + WAIT_MS / 1000
    while any(alive(p) for p in workers | {run.pid}) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [p for p in workers | {run.pid} if alive(p)], "a worker outlived the cancel"

    # The history lists both, newest first, and opens a past run from its session.
    page.click("#nav-runs")
    page.wait_for_selector(f'#runs tr[data-run-id="{first}"]')
    rows = page.locator("#runs tbody tr")
    assert [rows.nth(i).get_attribute("data-run-id") for i in range(rows.count())] == [
        second, first]
    assert [rows.nth(i).get_attribute("data-status") for i in range(2)] == ["cancelled", "ok"]
    page.screenshot(path=str(tmp_path / "history.png"), full_page=True)
    page.click(f'#runs tr[data-run-id="{first}"] a')
    page.wait_for_selector('#steps tr[data-step-id="polish"][data-status="done"]')
    assert "Bees dance" in page.inner_text("#answer")
    assert page.inner_text("#run-status") == "ok"


def test_the_run_page_draws_a_timeline_of_the_steps(server: BackgroundServer, page,
                                                    held: Held) -> None:
    run_id = finished_run(server, held)
    steps = {s["step_id"]: s["timing"] for s in session_of(run_id).steps}
    page.goto(f"{server.url}runs/{run_id}")
    page.wait_for_selector('#timeline .timeline-row[data-step-id="polish"]')
    rows = page.locator("#timeline .timeline-row")
    got = rows.evaluate_all("els => els.map(e => [e.dataset.stepId, e.dataset.status, "
                            "Number(e.dataset.startMs), Number(e.dataset.endMs)])")
    assert [(r[0], r[1]) for r in got] == [("draft", "done"), ("polish", "done")]
    (_, _, draft_start, draft_end), (_, _, polish_start, polish_end) = got
    # One axis from the first start: draft first, polish after it (it needs draft's output).
    assert draft_start == 0 and draft_end <= polish_start < polish_end
    from datetime import datetime

    def ms(text: str) -> float:
        return datetime.fromisoformat(text).timestamp() * 1000

    t0 = ms(steps["draft"]["started_at"])
    assert polish_end == pytest.approx(ms(steps["polish"]["finished_at"]) - t0, abs=1)
    bars = page.locator("#timeline .timeline-bar")
    widths = bars.evaluate_all("els => els.map(e => e.getBoundingClientRect().width)")
    assert all(w > 0 for w in widths)
    track = page.locator("#timeline .timeline-track").first.bounding_box()
    polish_bar = bars.nth(1).bounding_box()
    assert track and polish_bar  # the last bar ends at the track's right edge
    assert polish_bar["x"] + polish_bar["width"] == pytest.approx(track["x"] + track["width"],
                                                                  abs=1.5)


# -- every attempt, live and after -------------------------------------------------------

def test_the_timeline_grows_live_with_every_attempt_and_the_run_keeps_them(
        server: BackgroundServer, page, web_env: Path,
        scripted_llm: ScriptedLLMServer) -> None:
    """The writer's endpoint fails polish once (HTTP 500, recoverable): the fallback retries
    it on the researcher. The page draws both attempts as they happen, and the run's page
    opened afterwards (from its session) still shows both."""
    with ScriptedLLMServer() as writer_llm:  # its own endpoint, so the fallback leaves it
        agents = web_env / "agent_providers" / "agents.yaml"
        agents.write_text(re.sub(r"(id: fake_writer\n(?:.*\n)*?\s+openai_base_url: ).*",
                                 rf"\g<1>{writer_llm.base_url}", agents.read_text()))
        writer_llm.add_rule("Polish the notes", HTTPErrorReply(500, "writer down"))
        scripted_llm.add_rule("Draft notes", "Final Answer: Draft.")
        scripted_llm.add_rule("Polish the notes", "Final Answer: Polished.")
        run_id = start_from_page(page, server.url, goal="attempts", backend="inprocess")
        page.wait_for_selector("#run[data-finished]")
    assert page.inner_text("#run-status") == "ok"

    def timeline() -> list[tuple[str, str, str]]:
        return [tuple(r) for r in page.locator("#timeline .timeline-row").evaluate_all(
            "els => els.map(e => [e.dataset.stepId, e.dataset.attempt, e.dataset.status])")]

    every = [("draft", "1", "done"), ("polish", "1", "failed"), ("polish", "2", "done")]
    assert timeline() == every
    attempts = page.locator('.step-output[data-step-id="polish"] .attempt').evaluate_all(
        "els => els.map(e => [e.dataset.attempt, e.dataset.status, e.dataset.provider])")
    assert attempts == [["1", "failed", "fake_writer"], ["2", "done", "fake_researcher"]]
    assert any(line.startswith("fallback: retrying on fake_researcher from step 2/2 polish")
               for line in page.locator("#progress li").all_inner_texts())
    # The run page drawn later from the session alone (no events) shows every attempt too.
    page.goto(f"{server.url}runs/{run_id}")
    page.wait_for_selector('#timeline .timeline-row[data-attempt="2"]')
    assert timeline() == every
    [polish] = [s for s in session_of(run_id).steps if s["step_id"] == "polish"]
    assert [(a["attempt"], a["status"], a["agent_provider_id"]) for a in polish["attempt_log"]
            ] == [(1, "failed", "fake_writer"), (2, "ok", "fake_researcher")]


# -- two runs at once ----------------------------------------------------------------------

def test_two_runs_at_once_each_finish_with_their_own_steps_and_events(
        server: BackgroundServer, web_env: Path, scripted_llm: ScriptedLLMServer) -> None:
    """Two runs started together (one in-process, one on worker processes) each get their
    own events and session: every answer names its own goal, never the other's."""
    from agentic_orchestration.testing.fake_llm import last_user_text

    def echo(verb: str):
        def reply(request: dict) -> str:
            topic = re.search(rf"{verb} (?:the )?notes on (\w+)", last_user_text(request))
            return f"Final Answer: {verb} {topic.group(1) if topic else '?'}."
        return reply

    scripted_llm.add_rule("Draft notes", echo("Draft"))
    scripted_llm.add_rule("Polish the notes", echo("Polish"))
    goals = {"inprocess": "honeybees", "subprocess": "bumblebees"}
    runs = {goal: httpx.post(server.url + "api/runs", json={
        "goal": goal, "workflow": "draft_polish", "backend": backend}).json()["run"]["run_id"]
        for backend, goal in goals.items()}
    streams: dict[str, list[dict]] = {}

    def follow(run_id: str) -> None:
        with httpx.stream("GET", f"{server.url}api/runs/{run_id}/events",
                          timeout=WAIT_MS / 1000) as response:
            streams[run_id] = [json.loads(line[len("data: "):])
                               for line in response.iter_lines() if line.startswith("data: ")]

    followers = [threading.Thread(target=follow, args=(r,)) for r in runs.values()]
    for thread in followers:
        thread.start()
    for thread in followers:
        thread.join(WAIT_MS / 1000)
    assert len(streams) == 2
    for goal, run_id in runs.items():
        events = streams[run_id]
        assert events[-1]["kind"] == "exit" and events[-1]["status"] == "ok"
        assert {e["run_id"] for e in events[:-1]} == {run_id}
        done = [(e["step_id"], e["output"]) for e in events if e["kind"] == "step_finished"]
        assert done == [("draft", f"Draft {goal}."), ("polish", f"Polish {goal}.")]
        other = next(g for g in runs if g != goal)
        assert other not in json.dumps(events)
        record = session_of(run_id)
        assert record.status == "ok" and record.result_text == f"Polish {goal}."
        assert [s["step_id"] for s in record.steps] == ["draft", "polish"]
