"""The web UI's JSON API and its pieces without a browser: errors named, cancel and replay,
the catalog as the CLI lists it, the plan preview, the token, the run events the server
follows, and the SIGUSR1 cancel path of the CLI. Shared fixtures: ``web_fixtures``;
helpers: ``web_helpers``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import httpx
import pytest
from web_helpers import (
    WORKFLOW,
    Held,
    alive,
)

from agentic_orchestration.web.runs import RunManager, _spawn
from agentic_orchestration.web.server import create_app
from agentic_orchestration.web.serving import BackgroundServer

pytestmark = pytest.mark.web
#: The shared fixtures (server, browser, page, held LLM reply...).
pytest_plugins = ["web_fixtures"]


# -- the JSON API ----------------------------------------------------------------------------

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
    # Static workflows: their steps and, per backend, runnable or why not; as the CLI says.
    flows = {w["name"]: w for w in data["workflows"]}
    assert sorted(flows) == ["broken", "draft_polish", "with_tools"]
    assert [(s["id"], s["agent_provider"], s["mcp_providers"])
            for s in flows["with_tools"]["steps"]] == [
        ("look", "fake_researcher", ["local_http"]), ("write", "fake_writer", [])]
    verdicts = flows["with_tools"]["backends"]
    assert sorted(verdicts) == ["inprocess", "kubernetes", "subprocess"]
    assert verdicts["inprocess"] == {"runnable": True, "reason": None, "notes": []}
    assert verdicts["kubernetes"]["notes"] == ["local_http dropped"]  # pods cannot reach it
    assert not any(v["runnable"] for v in flows["broken"]["backends"].values())
    assert "nobody_here" in flows["broken"]["backends"]["inprocess"]["reason"]
    assert main(["--list-workflows"]) == 0
    listing = capsys.readouterr().out
    for name, flow in flows.items():
        line = next(x for x in listing.splitlines() if x.split()[:1] == [name])
        verdict = flow["backends"]["inprocess"]
        assert ("filtered out" in line) is not verdict["runnable"]
        assert f"{len(flow['steps'])} steps" in line
        assert verdict["runnable"] or line.endswith(verdict["reason"])
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


def test_a_sessions_folder_that_cannot_be_made_is_named_not_a_traceback(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    refused = subprocess.run(  # a child: were it not refused, it would serve until killed
        [sys.executable, "main.py", "--web", "--port", "0"], cwd=Path(__file__).parent.parent,
        env={**os.environ, "AGENTIC_SESSIONS_PATH": str(blocker / "sessions")},
        capture_output=True, text=True, timeout=60)
    assert refused.returncode == 2 and "AGENTIC_SESSIONS_PATH" in refused.stderr
    assert "Traceback" not in refused.stderr
    # Made unusable after the server started: each request says why, no traceback logged.
    with BackgroundServer(create_app(runs=RunManager())) as srv, \
            httpx.Client(base_url=srv.url, timeout=30) as client:
        monkeypatch.setenv("AGENTIC_SESSIONS_PATH", str(blocker / "sessions"))
        response = client.get("/api/runs")
    assert response.status_code == 500
    assert "cannot create the sessions database" in response.json()["error"]
    failed = [r for r in caplog.records if "GET /api/runs failed" in r.getMessage()]
    assert failed and all(r.exc_info is None for r in failed)


# -- the pieces ------------------------------------------------------------------------------

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
        from agentic_orchestration.orchestration.backends.base import RunOptions
        from agentic_orchestration.orchestration.progress import ProgressReporter
        run_id = sys.argv[sys.argv.index("--run-id") + 1]
        reporter = ProgressReporter(RunOptions(run_id=run_id))
        done = threading.Event()
        with sigusr1_cancels(lambda reason: done.set(), "stop"):
            reporter.run_started(run_id, 1, "inprocess")
            done.wait(600)
        reporter.run_finished(run_id, False, status="cancelled")
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


FED_BY_EVENTS = """\
    import sys
    sys.path.insert(0, {repo!r})
    from agentic_orchestration.orchestration.backends.base import (
        RunOptions, StepResult, StepTiming, TokenUsage)
    from agentic_orchestration.orchestration.progress import ProgressReporter
    run_id = sys.argv[sys.argv.index("--run-id") + 1]
    reporter = ProgressReporter(RunOptions(run_id=run_id))
    print("(progress) step 9/9 scraped finished in 1.00s", flush=True)  # not an event
    reporter.run_started(run_id, 1, "inprocess")
    reporter.step_started(0, "only", "fake_writer")
    secret = {secret!r}
    reporter.step_finished(0, "only", 0.5, result=StepResult(
        run_id=run_id, step_id="only", result_text="The answer is " + secret,
        agent_provider_id="fake_writer", usage=TokenUsage(total_tokens=7),
        timing=StepTiming(started_at="2026-01-01T00:00:00.000+00:00",
                          finished_at="2026-01-01T00:00:00.500+00:00",
                          duration_seconds=0.5)))
    reporter.run_finished(run_id, True)
    """


def test_the_live_run_is_fed_by_its_events_file_not_by_stdout(tmp_path: Path,
                                                               web_env: Path) -> None:
    from web_helpers import SECRET

    fake = tmp_path / "fake_main.py"
    fake.write_text(textwrap.dedent(FED_BY_EVENTS).format(
        repo=str(Path(__file__).resolve().parents[1]), secret=SECRET))
    manager = RunManager(command=[sys.executable, str(fake)], state_dir=tmp_path / "web")
    with BackgroundServer(create_app(runs=manager)) as srv:
        run_id = httpx.post(srv.url + "api/runs", json={"goal": "one"}).json()["run"]["run_id"]
        with httpx.stream("GET", f"{srv.url}api/runs/{run_id}/events", timeout=60) as stream:
            text = "".join(stream.iter_text())
    run = manager.get(run_id)
    assert run is not None and "scraped" not in text
    assert [e["kind"] for e in run.events] == [
        "run_started", "step_started", "step_finished", "run_finished", "exit"]
    started, finished = run.events[1], run.events[2]
    assert (started["provider"], started["attempt"], started["index"]) == ("fake_writer", 1, 1)
    assert started["line"] == "step 1/1 only started [agent fake_writer]"
    assert finished["status"] == "ok" and finished["tokens"]["total"] == 7
    assert (finished["started_at"], finished["ended_at"], finished["seconds"]) == (
        "2026-01-01T00:00:00.000+00:00", "2026-01-01T00:00:00.500+00:00", 0.5)
    assert finished["output"] == "The answer is ***" and SECRET not in text
    assert all(e["run_id"] == run_id for e in run.events[:-1])
    folder = tmp_path / "web" / run_id
    assert SECRET not in (folder / "events.jsonl").read_text()
    # stdout still goes to the run's log (and its tail), only not to the events.
    log = (folder / "output.log").read_text()
    assert "(progress) step 9/9 scraped finished in 1.00s" in log
    assert "(progress) step 1/1 only finished in 0.50s" in log


def test_old_run_folders_are_pruned_and_live_ones_kept(tmp_path: Path) -> None:
    """``web-runs`` keeps the newest folders and every live run's, whatever its age."""
    from agentic_orchestration.web.runs import LiveRun

    state = tmp_path / "web-runs"
    manager = RunManager(state_dir=state)
    for n in range(6):
        folder = state / f"run-{n}"
        folder.mkdir(parents=True)
        (folder / "events.jsonl").write_text("{}\n")
        os.utime(folder, (1_000_000 + n, 1_000_000 + n))  # run-5 newest
    live = LiveRun(run_id="run-0", goal="g", workflow=None, backend=None, created_at="now")
    manager._runs["run-0"] = live  # oldest folder, but its run is still going
    removed = manager.prune_folders(keep=3)
    assert sorted(removed) == ["run-1", "run-2"]
    assert sorted(p.name for p in state.iterdir()) == ["run-0", "run-3", "run-4", "run-5"]
