"""Router: static workflows chosen by keyword/pattern rules, else the dynamic planner."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agentic_orchestration.catalogs import load_catalog
from agentic_orchestration.catalogs.models import RouterRule
from agentic_orchestration.planning import DynamicPlanner, plan_or_route, route, rule_matches
from agentic_orchestration.testing import ScriptedLLMServer
from tests.conftest import REPO, write_catalog

STEPS = """
steps:
  - agent_provider: fake_writer
    description: "Do it: {topic}"
"""

WORKFLOWS = {
    "b_review": "router:\n  keywords: [code, review]\n" + STEPS,
    "a_report": "router:\n  patterns: ['\\breport (on|about)\\b']\n" + STEPS,
    "c_also_review": "router:\n  keywords: [review]\n" + STEPS,
    "d_unrouted": STEPS,
    "e_empty_rule": "router: {}\n" + STEPS,
}


@pytest.fixture
def catalog_dir(tmp_path: Path, scripted_llm: ScriptedLLMServer,
                monkeypatch: pytest.MonkeyPatch) -> Path:
    root = write_catalog(tmp_path / "cfg", base_url=scripted_llm.base_url, workflows=WORKFLOWS)
    monkeypatch.setenv("AGENTIC_CONFIG_DIR", str(root))
    return root


@pytest.mark.parametrize(("goal", "expected"), [
    ("Please review my code", True),
    ("REVIEW this CODE, thanks", True),
    ("code: review.", True),
    ("review my essay", False),          # one keyword missing
    ("reviewer of codes", False),        # whole words only
])
def test_keywords_must_all_be_present_as_words(goal: str, expected: bool) -> None:
    assert rule_matches(RouterRule(keywords=["code", "review"]), goal) is expected


def test_multi_word_keyword_matches_as_a_phrase() -> None:
    rule = RouterRule(keywords=["unit test"])
    assert rule_matches(rule, "add a Unit  Test for parse()")
    assert not rule_matches(rule, "test the unit")


def test_any_pattern_matches_case_insensitively() -> None:
    rule = RouterRule(patterns=[r"^translate\b", r"\breport (on|about)\b"])
    assert rule_matches(rule, "Write a REPORT ABOUT bees")
    assert rule_matches(rule, "translate this")
    assert not rule_matches(rule, "please translate this")
    assert not rule_matches(rule, "a reporter on bees")


def test_empty_rule_matches_nothing() -> None:
    assert not rule_matches(RouterRule(), "anything at all")


def test_route_returns_first_match_in_name_order_with_the_goal_as_topic(
        catalog_dir: Path) -> None:
    catalog = load_catalog()
    goal = "review the code in main.py"  # matches b_review and c_also_review
    workflow = route(goal, catalog)
    assert workflow is not None
    assert workflow.name == "b_review"
    assert workflow.topic == goal
    assert catalog.workflows["b_review"].topic == ""  # the catalog copy is untouched


def test_route_by_pattern(catalog_dir: Path) -> None:
    workflow = route("Write a report on bees", load_catalog())
    assert workflow is not None and workflow.name == "a_report"


def test_route_without_a_match_returns_none(catalog_dir: Path) -> None:
    assert route("plan my holiday in Norway", load_catalog()) is None


def test_plan_or_route_uses_the_router_without_an_llm_call(
        catalog_dir: Path, scripted_llm: ScriptedLLMServer) -> None:
    workflow, source = plan_or_route("Report about owls", load_catalog())
    assert source == "router:a_report"
    assert workflow.topic == "Report about owls"
    assert scripted_llm.requests == []


def test_plan_or_route_falls_back_to_the_planner(
        catalog_dir: Path, scripted_llm: ScriptedLLMServer) -> None:
    scripted_llm.enqueue(json.dumps({"steps": [{
        "agent_provider": "fake_writer", "mcp_providers": [],
        "description": "Plan a week in Norway.", "expected_output": "An itinerary."}]}))
    workflow, source = plan_or_route("plan my holiday in Norway", load_catalog())
    assert source == "planner:fake_researcher"
    assert workflow.topic == "plan my holiday in Norway"
    assert [s.agent_provider for s in workflow.steps] == ["fake_writer"]
    assert len(scripted_llm.requests) == 1


def test_plan_or_route_uses_the_given_planner(
        catalog_dir: Path, scripted_llm: ScriptedLLMServer) -> None:
    catalog = load_catalog()
    scripted_llm.enqueue(json.dumps({"steps": [{
        "agent_provider": "fake_researcher", "mcp_providers": [],
        "description": "Find trains.", "expected_output": "Times."}]}))
    planner = DynamicPlanner(catalog, provider="fake_writer")
    _, source = plan_or_route("trains to Bergen", catalog, planner=planner)
    assert source == "planner:fake_writer"


def test_shipped_workflows_route_their_own_goals() -> None:
    catalog = load_catalog(REPO / "config")
    code = route("Write a Python script that renames photos", catalog)
    report = route("Write a report on the history of tea", catalog)
    assert code is not None and code.name == "code_and_review"
    assert report is not None and report.name == "research_report"
    assert route("Draft a polite email to my landlord", catalog) is None
