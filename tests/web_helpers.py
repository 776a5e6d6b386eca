"""What the web UI's tests share besides fixtures (``web_fixtures``): the scripted
workflow, the held LLM reply, and small readers of pages, processes and sessions.

Steps are held, not slept: the scripted LLM's reply to the second step waits on an event
the test sets, so "the page shows the step running" is checked while it really runs.
"""

from __future__ import annotations

import threading
from pathlib import Path

import httpx

from agentic_orchestration.web.runs import RunManager
from agentic_orchestration.web.serving import BackgroundServer

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


def server_run(server: BackgroundServer, run_id: str):
    manager: RunManager = server.app.state.runs
    run = manager.get(run_id)
    assert run is not None
    return run


def finished_run(server: BackgroundServer, held: Held) -> str:
    """A draft_polish run started through the API and followed to its end."""
    held.release()
    response = httpx.post(server.url + "api/runs", json={"goal": "bees",
                                                         "workflow": "draft_polish"})
    run_id = response.json()["run"]["run_id"]
    with httpx.stream("GET", f"{server.url}api/runs/{run_id}/events", timeout=None) as events:
        assert "event: exit" in "".join(events.iter_text())
    return run_id


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
CATALOG_WORKFLOWS = {
    "with_tools": """\
        description: Look it up, then write.
        steps:
          - id: look
            agent_provider: fake_researcher
            mcp_providers: [local_http]
            description: "Look up {topic}."
          - id: write
            agent_provider: fake_writer
            description: "Write about {topic}."
        """,
    "broken": """\
        description: Names an agent nobody has.
        steps:
          - id: only
            agent_provider: nobody_here
            description: "Do {topic}."
        """,
}
