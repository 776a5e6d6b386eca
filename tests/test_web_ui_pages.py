"""The web UI's other pages in a real browser: bad input, the providers' statistics, the
plan preview, and the catalog (agents, MCP servers and static workflows, available or not
and why). Shared fixtures: ``web_fixtures``; helpers: ``web_helpers``.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from web_helpers import Held, finished_run

from agentic_orchestration.web.serving import BackgroundServer

pytestmark = pytest.mark.web
#: The shared fixtures (server, browser, page, held LLM reply...).
pytest_plugins = ["web_fixtures"]


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
    finished_run(server, held)
    page.goto(server.url + "stats")
    page.wait_for_selector('#stats-table tr[data-provider="fake_writer"][data-kind=""]')
    row = page.locator('#stats-table tr[data-provider="fake_writer"][data-kind=""]')
    assert row.locator(".rate").inner_text() == "100%"
    assert page.locator('#stats-table tr[data-provider="fake_researcher"]').count() >= 1


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
    flows = page.locator("#catalog-workflows tbody tr").evaluate_all(
        "els => els.map(e => [e.dataset.name, [...e.querySelectorAll('.steps li')].map("
        "l => l.dataset.stepId), Object.fromEntries([...e.querySelectorAll('td.backend')].map("
        "c => [c.dataset.backend, c.dataset.runnable]))])")
    runs_everywhere = {"inprocess": "true", "subprocess": "true", "kubernetes": "true"}
    assert sorted(flows) == [
        ["broken", ["only"], dict.fromkeys(runs_everywhere, "false")],
        ["draft_polish", ["draft", "polish"], runs_everywhere],
        ["with_tools", ["look", "write"], runs_everywhere]]
    broken = page.locator('#catalog-workflows tr[data-name="broken"] td.backend .detail')
    assert "nobody_here" in broken.first.inner_text()
    assert "local_http dropped" in page.inner_text(
        '#catalog-workflows tr[data-name="with_tools"] td[data-backend="kubernetes"]')
    # On kubernetes a pod cannot use an unclassified MCP: it is out, and says why.
    page.select_option("#catalog-backend", "kubernetes")
    page.wait_for_selector('#catalog[data-backend="kubernetes"]')
    local = rows("catalog-mcps")[0]
    assert local[:2] == ["local_http", "false"] and local[2].startswith("kubernetes mode: ")
