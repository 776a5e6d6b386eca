"""The web UI tests' fixtures: the scripted workflow's config, the held LLM reply, the
server, the browser and its page, the API client. Registered by each ``test_web_ui*.py``
with ``pytest_plugins = ["web_fixtures"]``; helpers and constants are in ``web_helpers``.
"""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from conftest import write_catalog
from web_helpers import (
    ANSWER,
    CATALOG_AGENT,
    CATALOG_MCPS,
    CATALOG_WORKFLOWS,
    CHROMIUM,
    CHROMIUM_FLAGS,
    SECRET,
    WAIT_MS,
    WORKFLOW,
    Held,
)

from agentic_orchestration.testing import ScriptedLLMServer
from agentic_orchestration.web.runs import RunManager
from agentic_orchestration.web.server import create_app
from agentic_orchestration.web.serving import BackgroundServer


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


@pytest.fixture
def catalog_env(web_env: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.delenv("WEB_TEST_UNSET_KEY", raising=False)
    agents = web_env / "agent_providers" / "agents.yaml"
    agents.write_text(agents.read_text() + textwrap.dedent(CATALOG_AGENT))
    (web_env / "mcp_providers" / "mcps.yaml").write_text(textwrap.dedent(CATALOG_MCPS))
    for name, text in CATALOG_WORKFLOWS.items():
        (web_env / "workflows" / f"{name}.yaml").write_text(textwrap.dedent(text))
    return web_env


@pytest.fixture
def api(web_env: Path) -> Iterator[httpx.Client]:
    with BackgroundServer(create_app(runs=RunManager())) as srv, \
            httpx.Client(base_url=srv.url, timeout=30) as client:
        yield client
