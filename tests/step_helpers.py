"""What the worker tests share: a v0.1 step spec as the coordinator writes it, and a web page.

``tests/test_mcp_tools.py`` runs specs in-process, ``tests/test_worker_image.py`` in a pod of
the worker image; both build them here, so a change to the StepSpec contract is made once
(``tests/data/step_spec_v0.1_example.json`` and ``tests/test_contracts.py`` pin the
contract itself). The ``web_page`` fixture is the page ``fetch_url`` reads on the host's
loopback (a ``hostNetwork`` pod reaches it too).
"""

from __future__ import annotations

import functools
import http.server
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

#: The phrase ``web_page`` carries: a fetch that really happened puts it in the answer.
PAGE_PHRASE = "oolong-lighthouse-73"


def step_spec_dict(run_id: str, step_id: str, *, agent: dict[str, Any], run_store: Path | str,
                   description: str, expected_output: str = "text", topic: str = "tea",
                   workflow_name: str = "w", mcp_providers: list[dict[str, Any]] | None = None,
                   artifacts_dir: Path | str | None = None,
                   inputs: dict[str, Any] | None = None) -> dict[str, Any]:
    """A step spec (schema 0.1) as JSON data, for one step of ``run_id`` on ``agent`` (the
    resolved agent provider entry: id, type, model, role, goal, backstory...)."""
    return {
        "schema_version": "0.1", "run_id": run_id, "step_id": step_id, "step_index": 0,
        "workflow_name": workflow_name, "topic": topic,
        "task": {"description": description, "expected_output": expected_output},
        "agent_provider": agent, "mcp_providers": mcp_providers or [], "prior_output": "",
        "inputs": {"topic": topic} if inputs is None else inputs,
        "paths": {"run_store": str(run_store),
                  "artifacts_dir": str(artifacts_dir or Path(run_store) / run_id / "artifacts")},
    }


@pytest.fixture
def web_page(tmp_path: Path) -> Iterator[str]:
    """A local web server (the test's own) with one page on 127.0.0.1; yields its URL."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "page.html").write_text(
        "<html><head><title>Tea</title></head><body><h1>Brewing notes</h1>"
        f"<p>The kettle phrase is <b>{PAGE_PHRASE}</b>.</p></body></html>")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(site))
    handler.log_message = lambda *a, **k: None  # type: ignore[attr-defined]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/page.html"
    server.shutdown()
    server.server_close()
