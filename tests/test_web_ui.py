"""The web UI: real runs (``main.py`` children, real CrewAI, the scripted LLM server) watched
and cancelled in a real browser (Debian's Chromium driven by Playwright), its JSON API's
errors, the token check, and the SIGUSR1 cancel path of the CLI.

Steps are held, not slept: the scripted LLM's reply to the second step waits on an event
the test sets, so "the page shows the step running" is checked while it really runs.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from conftest import write_catalog

from agentic_orchestration.testing import ScriptedLLMServer
from agentic_orchestration.web.progress_events import parse_progress_line
from agentic_orchestration.web.runs import RunManager, _spawn
from agentic_orchestration.web.server import create_app
from agentic_orchestration.web.serving import BackgroundServer

pytestmark = pytest.mark.web

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu",
                  "--disable-background-networking", "--disable-component-update",
                  "--no-first-run"]
SECRET = "sk-web-ui-secret-0123456789"
WORKFLOW = """\
    description: Draft, then polish.
    steps:
      - id: draft
        agent_provider: fake_researcher
        description: "Draft notes on {topic}."
        expected_output: Notes.
      - id: polish
        agent_provider: fake_writer
        description: "Polish the notes on {topic}."
        expected_output: The final text.
    """
ANSWER = "Final Answer: Bees dance to share where flowers are.\n```python\n# file: bees.py\n" \
         "print('waggle')\n```"
#: How long a wait for the page may last before the test fails (a stuck run, not a timing).
WAIT_MS = 120_000


class Held:
    """The scripted LLM's reply to the polish step: blocks until ``release()``."""

    def __init__(self, reply: str) -> None:
        self.reply = reply
        self.asked = threading.Event()
        self._go = threading.Event()

    def __call__(self, request: dict) -> str:
        self.asked.set()
        self._go.wait(WAIT_MS / 1000)
        return self.reply

    def release(self) -> None:
        self._go.set()


@pytest.fixture
def held(scripted_llm: ScriptedLLMServer) -> Iterator[Held]:
    hold = Held(ANSWER)
    scripted_llm.add_rule("Polish the notes", hold)
    scripted_llm.add_rule("Draft notes", f"Final Answer: Draft. The key is {SECRET}.")
    yield hold
    hold.release()  # never leave a server thread waiting


@pytest.fixture
def web_env(tmp_path: Path, scripted_llm: ScriptedLLMServer,
            monkeypatch: pytest.MonkeyPatch) -> Path:
    root = write_catalog(tmp_path / "config", base_url=scripted_llm.base_url,
                         workflows={"draft_polish": textwrap.dedent(WORKFLOW)})
    monkeypatch.setenv("AGENTIC_CONFIG_DIR", str(root))
    monkeypatch.setenv("AGENTIC_RUN_STORE_PATH", str(tmp_path / "store"))
    monkeypatch.setenv("WEB_TEST_API_KEY", SECRET)  # a secret the runs inherit
    return root


@pytest.fixture
def server(web_env: Path) -> Iterator[BackgroundServer]:
    with BackgroundServer(create_app(runs=RunManager())) as srv:
        yield srv


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.is_file():
        pytest.fail(f"Chromium not found at {CHROMIUM}: run scripts/install_browser.sh "
                    f"(scripts/test.sh does)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_FLAGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser, tmp_path: Path):
    context = browser.new_context(accept_downloads=True)
    page = context.new_page()
    page.set_default_timeout(WAIT_MS)
    yield page
    context.close()


def start_from_page(page, url: str, *, goal: str, backend: str) -> str:
    page.goto(url)
    page.fill("#goal", goal)
    page.select_option("#workflow", "draft_polish")
    page.select_option("#backend", backend)
    page.click("#start")
    page.wait_for_url("**/runs/*")
    return page.url.rsplit("/", 1)[-1]


def step_status(page, step_id: str) -> str:
    return page.get_attribute(f'#steps tr[data-step-id="{step_id}"]', "data-status") or ""


def descendants(pid: int) -> set[int]:
    """Every live process below ``pid`` (from /proc)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    found, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def session_of(run_id: str):
    from agentic_orchestration.sessions.store import SessionStore

    return SessionStore().get(run_id)


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


def server_run(server: BackgroundServer, run_id: str):
    manager: RunManager = server.app.state.runs
    run = manager.get(run_id)
    assert run is not None
    return run


def test_the_page_says_what_is_wrong_with_bad_input(server: BackgroundServer, page) -> None:
    page.goto(server.url)
    page.wait_for_selector("#backend option", state="attached")  # the form is wired up
    page.click("#start")
    page.wait_for_selector("#form-error:not([hidden])")  # shown when the 400 comes back
    assert page.inner_text("#form-error") == "goal: give a goal (or pick a workflow)"
    page.goto(server.url + "runs/20990101T000000Z-nothere")
    page.wait_for_selector("#run-error:not([hidden])")
    assert page.inner_text("#run-error") == "no run '20990101T000000Z-nothere'"


def test_the_providers_page_shows_the_learning_statistics(server: BackgroundServer, page,
                                                          held: Held) -> None:
    held.release()
    response = httpx.post(server.url + "api/runs", json={"goal": "bees",
                                                         "workflow": "draft_polish"})
    run_id = response.json()["run"]["run_id"]
    with httpx.stream("GET", f"{server.url}api/runs/{run_id}/events", timeout=None) as events:
        assert "event: exit" in "".join(events.iter_text())
    page.goto(server.url + "stats")
    page.wait_for_selector('#stats-table tr[data-provider="fake_writer"][data-kind=""]')
    row = page.locator('#stats-table tr[data-provider="fake_writer"][data-kind=""]')
    assert row.locator(".rate").inner_text() == "100%"
    assert page.locator('#stats-table tr[data-provider="fake_researcher"]').count() >= 1


def finished_run(server: BackgroundServer, held: Held) -> str:
    """A draft_polish run started through the API and followed to its end."""
    held.release()
    response = httpx.post(server.url + "api/runs", json={"goal": "bees",
                                                         "workflow": "draft_polish"})
    run_id = response.json()["run"]["run_id"]
    with httpx.stream("GET", f"{server.url}api/runs/{run_id}/events", timeout=None) as events:
        assert "event: exit" in "".join(events.iter_text())
    return run_id


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


def test_the_form_previews_the_plan_without_starting_a_run(server: BackgroundServer,
                                                          page) -> None:
    page.goto(server.url)
    page.wait_for_selector("#backend option", state="attached")
    page.fill("#goal", "honey")
    page.select_option("#workflow", "draft_polish")
    page.click("#preview")
    page.wait_for_selector("#plan-preview[data-ready]")
    items = page.locator("#plan-steps li")
    assert items.evaluate_all("els => els.map(e => [e.dataset.stepId, e.dataset.agent])") == [
        ["draft", "fake_researcher"], ["polish", "fake_writer"]]
    assert "Polish the notes on" in items.nth(1).inner_text()
    assert "2 steps" in page.inner_text("#plan-preview-note")
    assert page.url == server.url  # still on the form: nothing started
    assert httpx.get(server.url + "api/runs").json()["total"] == 0
    page.fill("#goal", "")
    page.select_option("#workflow", "")
    page.click("#preview")
    page.wait_for_selector("#form-error:not([hidden])")
    assert page.inner_text("#form-error") == "goal: give a goal (or pick a workflow)"
    assert page.is_hidden("#plan-preview")


CATALOG_AGENT = """\
    - id: needs_key
      type: openai
      model: fake-model
      openai_base_url: http://127.0.0.1:9/v1
      role: Keyed
      goal: Needs a key.
      backstory: None.
      required_env: [WEB_TEST_UNSET_KEY]
      priority: 5
    """
CATALOG_MCPS = """\
    - id: local_http
      description: A local HTTP tool server.
      streamable_http:
        url: http://127.0.0.1:9/mcp
    - id: missing_cmd
      description: Not installed.
      stdio:
        command: no-such-mcp-command-for-the-web-test
    """


@pytest.fixture
def catalog_env(web_env: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.delenv("WEB_TEST_UNSET_KEY", raising=False)
    agents = web_env / "agent_providers" / "agents.yaml"
    agents.write_text(agents.read_text() + textwrap.dedent(CATALOG_AGENT))
    (web_env / "mcp_providers" / "mcps.yaml").write_text(textwrap.dedent(CATALOG_MCPS))
    return web_env


def test_the_catalog_page_shows_what_is_available_and_why_not(
        catalog_env: Path, server: BackgroundServer, page) -> None:
    page.goto(server.url)
    page.click("#nav-catalog")
    page.wait_for_selector('#catalog[data-backend="inprocess"]')

    def rows(table: str) -> list[list[str]]:
        return page.locator(f"#{table} tbody tr").evaluate_all(
            "els => els.map(e => [e.dataset.id, e.dataset.available, "
            "e.querySelector('.detail').textContent])")

    assert rows("catalog-agents") == [  # best first, as the planner sees them
        ["needs_key", "false", "required env not set: WEB_TEST_UNSET_KEY"],
        ["fake_researcher", "true", "Researcher"], ["fake_writer", "true", "Writer"]]
    assert rows("catalog-mcps") == [
        ["local_http", "true", "A local HTTP tool server."],
        ["missing_cmd", "false", "command not installed: no-such-mcp-command-for-the-web-test"]]
    # On kubernetes a pod cannot use an unclassified MCP: it is out, and says why.
    page.select_option("#catalog-backend", "kubernetes")
    page.wait_for_selector('#catalog[data-backend="kubernetes"]')
    local = rows("catalog-mcps")[0]
    assert local[:2] == ["local_http", "false"] and local[2].startswith("kubernetes mode: ")


# -- the JSON API ----------------------------------------------------------------------------

@pytest.fixture
def api(web_env: Path) -> Iterator[httpx.Client]:
    with BackgroundServer(create_app(runs=RunManager())) as srv, \
            httpx.Client(base_url=srv.url, timeout=30) as client:
        yield client


@pytest.mark.parametrize(("body", "error"), [
    ({"goal": "  "}, "goal: give a goal (or pick a workflow)"),
    ({"goal": 3}, "goal: must be a string"),
    ({"goal": "x", "backend": "cloud"},
     "backend: unknown backend 'cloud' (known: inprocess, subprocess, kubernetes)"),
    ({"goal": "x", "workflow": "nope"}, "workflow: unknown workflow 'nope' (known: draft_polish)"),
    ({"goal": "x", "colour": "red"}, "colour: unknown field (known: goal, workflow, backend)"),
    (["goal"], "body: expected a JSON object with a 'goal'"),
])
def test_starting_a_run_with_bad_input_is_a_400_naming_the_field(api, body, error) -> None:
    response = api.post("/api/runs", json=body)
    assert (response.status_code, response.json()) == (400, {"error": error})


def test_unknown_runs_and_paths_are_404s_naming_them(api) -> None:
    for path in ("/api/runs/20990101T000000Z-nothere", "/api/runs/20990101T000000Z-nothere/events"):
        response = api.get(path)
        assert (response.status_code, response.json()) == (
            404, {"error": "no run '20990101T000000Z-nothere'"})
    response = api.post("/api/runs/20990101T000000Z-nothere/cancel")
    assert response.status_code == 404 and "20990101T000000Z-nothere" in response.json()["error"]
    assert api.get("/api/nothing").json() == {"error": "no API endpoint GET /api/nothing"}
    assert api.post("/api/runs", content=b"{not json").json() == {"error": "body: not valid JSON"}
    assert api.get("/api/runs?limit=0").status_code == 400


def test_cancelling_a_finished_run_is_a_409(api, held: Held) -> None:
    held.release()
    run_id = api.post("/api/runs", json={"goal": "bees", "workflow": "draft_polish"}
                      ).json()["run"]["run_id"]
    with api.stream("GET", f"/api/runs/{run_id}/events", timeout=None) as events:
        text = "".join(events.iter_text())
    assert text.index("event: step_finished") < text.index("event: exit")
    response = api.post(f"/api/runs/{run_id}/cancel")
    assert response.status_code == 409 and "has already ended (ok)" in response.json()["error"]
    # A browser that reconnects after event 3 gets the rest, not the start again.
    with api.stream("GET", f"/api/runs/{run_id}/events",
                    headers={"Last-Event-ID": "3"}) as events:
        ids = [int(line[4:]) for line in events.iter_lines() if line.startswith("id: ")]
    assert ids[0] == 4 and ids[-1] >= 5


def test_the_catalog_api_matches_the_cli_listing_and_refuses_unknown_backends(
        catalog_env: Path, api, capsys) -> None:
    from agentic_orchestration.cli.main import main

    data = api.get("/api/catalog").json()
    assert main(["--list-agents", "--list-mcps"]) == 0
    listing = capsys.readouterr().out
    for entry in data["agents"] + data["mcps"]:
        line = next(x for x in listing.splitlines() if x.split()[:1] == [entry["id"]])
        assert ("filtered out" in line) is not entry["available"]
        assert entry["available"] or line.endswith(entry["reason"])
    assert {e["id"] for e in data["agents"] + data["mcps"]} == {
        "needs_key", "fake_researcher", "fake_writer", "local_http", "missing_cmd"}
    response = api.get("/api/catalog?backend=cloud")
    assert (response.status_code, response.json()) == (400, {
        "error": "backend: unknown backend 'cloud' (known: inprocess, subprocess, kubernetes)"})


def test_the_plan_api_returns_the_plan_or_says_why_not(web_env: Path, api) -> None:
    response = api.post("/api/plan", json={"goal": "honey", "workflow": "draft_polish"})
    assert response.status_code == 200
    plan = response.json()["plan"]
    assert (plan["name"], plan["topic"]) == ("draft_polish", "honey")
    assert [s["id"] for s in plan["steps"]] == ["draft", "polish"]
    assert api.get("/api/runs").json()["total"] == 0  # a preview is not a run
    for body, error in [({"goal": ""}, "goal: give a goal (or pick a workflow)"),
                        ({"goal": "x", "workflow": "nope"},
                         "workflow: unknown workflow 'nope' (known: draft_polish)"),
                        ({"goal": "x", "steps": 3},
                         "steps: unknown field (known: goal, workflow, backend)")]:
        response = api.post("/api/plan", json=body)
        assert (response.status_code, response.json()) == (400, {"error": error})
    assert api.post("/api/plan", content=b"[").json() == {"error": "body: not valid JSON"}
    # A workflow naming an agent the catalog lacks: the CLI's error, as a 422.
    (web_env / "workflows" / "broken.yaml").write_text(
        textwrap.dedent(WORKFLOW).replace("fake_writer", "nobody_here"))
    response = api.post("/api/plan", json={"goal": "x", "workflow": "broken"})
    assert response.status_code == 422
    assert response.json()["error"].startswith("no plan: ")
    assert "nobody_here" in response.json()["error"]


# -- the token -------------------------------------------------------------------------------

def test_a_token_is_required_on_every_request_when_set(web_env: Path) -> None:
    token = "tok-" + "x" * 20
    with BackgroundServer(create_app(runs=RunManager(), token=token)) as srv, \
            httpx.Client(base_url=srv.url) as client:
        assert client.get("/api/runs").status_code == 401
        assert client.get("/", headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert client.get("/api/runs", headers={"Authorization": f"Bearer {token}"}
                          ).status_code == 200
        response = client.get("/runs/x?token=" + token + "&a=1")
        assert response.status_code == 303 and response.headers["location"] == "/runs/x?a=1"
        assert "httponly" in response.headers["set-cookie"].lower()
        assert client.get("/api/runs").status_code == 200  # the cookie now
        assert token not in response.text


def test_web_refuses_a_public_address_without_a_token(capsys) -> None:
    from agentic_orchestration.cli.main import main

    assert main(["--web", "--host", "0.0.0.0"]) == 2
    assert "needs AGENTIC_WEB_TOKEN" in capsys.readouterr().err


# -- the pieces ------------------------------------------------------------------------------

def test_every_documented_progress_line_is_understood() -> None:
    events = [parse_progress_line("(progress) " + line) for line in (
        "run R1 started: 2 steps [subprocess]",
        "step 1/2 s1 started [agent fake_writer]",
        "step 1/2 s1 finished in 1.25s",
        "step 2/2 s2 failed: cancelled: cancelled from the web UI",
        "step 1/2 s1 skipped: already done (resume)",
        "fallback: retrying on other from step 2/2 s2",
        "run R1 finished: cancelled",
        "something new",
    )]
    assert [e["kind"] for e in events] == [
        "run_started", "step_started", "step_finished", "step_failed", "step_skipped",
        "fallback", "run_finished", "progress"]
    assert events[0]["backend"] == "subprocess" and events[0]["total"] == 2
    assert events[2]["seconds"] == 1.25 and events[2]["index"] == 1
    assert events[3]["error"] == "cancelled: cancelled from the web UI"
    assert events[6]["status"] == "cancelled"
    assert parse_progress_line("=== Final answer ===") is None


def test_a_cancel_sent_before_the_cli_listens_is_kept_not_fatal(tmp_path: Path) -> None:
    """SIGUSR1 is blocked in a web child until ``sigusr1_cancels`` is entered: a cancel
    clicked while the CLI still imports waits, then cancels; it never kills the process."""
    go = tmp_path / "go"
    child = textwrap.dedent(f"""\
        import os, sys, threading
        sys.path.insert(0, {str(Path(__file__).resolve().parents[1])!r})
        from agentic_orchestration._signals import sigusr1_cancels
        print("ready", flush=True)
        while not os.path.exists({str(go)!r}):
            threading.Event().wait(0.01)
        done = threading.Event()
        def cancel(reason):
            print("cancelled:", reason, flush=True)
            done.set()
        with sigusr1_cancels(cancel, "from the test"):
            done.wait(60)
        """)
    proc = _spawn([sys.executable, "-c", child], dict(os.environ))
    try:
        assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
        os.kill(proc.pid, signal.SIGUSR1)  # before the handler exists
        go.touch()
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert (proc.returncode, out) == (0, "cancelled: from the test\n"), err


def test_a_run_id_that_cannot_name_a_file_is_refused(capsys) -> None:
    from agentic_orchestration.cli.main import main

    assert main(["--run-id", "../escape", "a goal"]) == 2
    assert "not a valid session id" in capsys.readouterr().err


def test_the_child_command_line_keeps_a_goal_that_looks_like_a_flag() -> None:
    manager = RunManager(command=["python", "main.py"])
    assert manager.argv("R", goal="--help me", workflow="w", backend="subprocess") == [
        "python", "main.py", "--run-id", "R", "--execution-backend", "subprocess",
        "--workflow", "w", "--", "--help me"]
    assert subprocess.list2cmdline(manager.argv("R", goal="", workflow="w", backend=None)) \
        == "python main.py --run-id R --workflow w"


def test_stopping_the_server_cancels_the_runs_it_started(tmp_path: Path,
                                                         web_env: Path) -> None:
    """A stand-in for ``main.py`` that runs until cancelled, through the CLI's handler."""
    fake = tmp_path / "fake_main.py"
    fake.write_text(textwrap.dedent(f"""\
        import sys, threading
        sys.path.insert(0, {str(Path(__file__).resolve().parents[1])!r})
        from agentic_orchestration._signals import sigusr1_cancels
        run_id = sys.argv[sys.argv.index("--run-id") + 1]
        done = threading.Event()
        with sigusr1_cancels(lambda reason: done.set(), "stop"):
            print(f"(progress) run {{run_id}} started: 1 steps [inprocess]", flush=True)
            done.wait(600)
        print(f"(progress) run {{run_id}} finished: cancelled", flush=True)
        sys.exit(130)
        """))
    manager = RunManager(command=[sys.executable, str(fake)])
    with BackgroundServer(create_app(runs=manager)) as srv:
        run_id = httpx.post(srv.url + "api/runs", json={"goal": "forever"}).json()["run"]["run_id"]
        run = manager.get(run_id)
        assert run is not None
        deadline = time.monotonic() + 60
        while run.status != "running" and time.monotonic() < deadline:
            time.sleep(0.05)
        assert run.status == "running"
    assert not alive(run.pid)
    assert (run.status, run.exit_code) == ("cancelled", 130)
    assert [e["kind"] for e in run.events] == ["run_started", "cancel_requested",
                                               "run_finished", "exit"]
