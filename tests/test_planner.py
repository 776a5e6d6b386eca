"""Dynamic planner against the scripted OpenAI-compatible server (real HTTP, real client)."""

from __future__ import annotations

import json
import re
import socket
import textwrap
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from agentic_orchestration.catalogs import load_catalog
from agentic_orchestration.errors import ConfigError, PlanError
from agentic_orchestration.planning import (
    DynamicPlanner,
    build_plan_schema,
    plan_from_data,
    validate_plan,
)
from agentic_orchestration.planning.dynamic_planner import normalise_plan, parse_answer
from agentic_orchestration.testing import HTTPErrorReply, ScriptedLLMServer
from tests.conftest import write_catalog

MCPS = """\
- id: web_search
  streamable_http:
    url: http://127.0.0.1:9/mcp
  planner_hint: searches the web
- id: paid_search
  streamable_http:
    url: http://127.0.0.1:9/mcp
  required_env: [PAID_SEARCH_KEY_FOR_TESTS]
"""


def agents_yaml(base_url: str, *, key_env: str = "") -> str:
    key_line = f"\n          api_key_env: {key_env}" if key_env else ""
    return textwrap.dedent(f"""\
        - id: fake_researcher
          type: openai
          model: researcher-model
          openai_base_url: {base_url}
          role: Researcher
          goal: Find facts.
          backstory: Careful.
          planner_hint: research
          priority: 10{key_line}
        - id: fake_writer
          type: openai
          model: writer-model
          openai_base_url: {base_url}
          role: Writer
          goal: Write text.
          backstory: Clear.
          planner_hint: writing
          priority: 11{key_line}
        - id: cloud_only
          type: openai
          model: gpt-4o-mini
          role: Cloud
          goal: Think.
          backstory: Remote.
          required_env: [CLOUD_KEY_FOR_TESTS]
          priority: 1
        """)


@pytest.fixture
def config(tmp_path: Path, scripted_llm: ScriptedLLMServer,
           monkeypatch: pytest.MonkeyPatch) -> Path:
    """Two available fake agents, one unavailable agent, one available and one unavailable
    MCP provider."""
    root = write_catalog(tmp_path / "cfg", base_url=scripted_llm.base_url,
                         agents=agents_yaml(scripted_llm.base_url), mcps=MCPS)
    monkeypatch.setenv("AGENTIC_CONFIG_DIR", str(root))
    return root


@pytest.fixture
def offline_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The same catalog for tests that send no request (no server to start and stop)."""
    url = "http://127.0.0.1:9/v1"
    root = write_catalog(tmp_path / "cfg", base_url=url, agents=agents_yaml(url), mcps=MCPS)
    monkeypatch.setenv("AGENTIC_CONFIG_DIR", str(root))
    return root


def step(agent: str = "fake_researcher", description: str = "Find the facts about bees.",
         mcps: list[str] | None = None, expected: str = "Facts.") -> dict[str, Any]:
    return {"agent_provider": agent, "mcp_providers": mcps or [], "description": description,
            "expected_output": expected}


def answer(*steps: dict[str, Any], name: str | None = "bee-report") -> str:
    data: dict[str, Any] = {"steps": list(steps)}
    if name is not None:
        data["name"] = name
    return json.dumps(data)


GOOD = answer(step(), step("fake_writer", "Write a short report about bees.", expected="Text."))


def string_leaves(schema: Any) -> list[dict[str, Any]]:
    found = []
    if isinstance(schema, dict):
        if schema.get("type") == "string":
            found.append(schema)
        for value in schema.values():
            found += string_leaves(value)
    elif isinstance(schema, list):
        for value in schema:
            found += string_leaves(value)
    return found


# --- schema ---------------------------------------------------------------------------


def test_schema_enumerates_exactly_the_available_ids(offline_config: Path) -> None:
    catalog = load_catalog()
    schema = build_plan_schema(catalog, max_steps=4)
    step_schema = schema["properties"]["steps"]["items"]
    assert step_schema["properties"]["agent_provider"]["enum"] == ["fake_researcher",
                                                                   "fake_writer"]
    assert step_schema["properties"]["mcp_providers"]["items"]["enum"] == ["web_search"]
    assert schema["properties"]["steps"]["minItems"] == 1
    assert schema["properties"]["steps"]["maxItems"] == 4
    assert schema["additionalProperties"] is False
    assert step_schema["additionalProperties"] is False
    assert set(step_schema["required"]) == {"agent_provider", "mcp_providers", "description",
                                            "expected_output"}
    jsonschema.Draft202012Validator.check_schema(schema)


def test_schema_bounds_every_free_string(offline_config: Path) -> None:
    schema = build_plan_schema(load_catalog(), max_steps=3)
    free = [s for s in string_leaves(schema) if "enum" not in s]
    assert len(free) == 3  # description, expected_output, name
    assert all(0 < s["maxLength"] <= 300 for s in free)
    too_long = json.loads(answer(step(description="x" * 301)))
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(too_long, schema)


def test_schema_without_mcps_only_allows_an_empty_list(tmp_path: Path) -> None:
    root = write_catalog(tmp_path / "cfg", base_url="http://127.0.0.1:9/v1")
    schema = build_plan_schema(load_catalog(root), max_steps=3)
    mcps = schema["properties"]["steps"]["items"]["properties"]["mcp_providers"]
    assert mcps["maxItems"] == 0
    assert "enum" not in mcps["items"]  # an empty enum breaks some grammar compilers
    jsonschema.validate(json.loads(answer(step())), schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(json.loads(answer(step(mcps=["web_search"]))), schema)


# --- planning through the scripted server ----------------------------------------------


def test_valid_answer_becomes_a_workflow(config: Path, scripted_llm: ScriptedLLMServer) -> None:
    scripted_llm.enqueue(answer(
        step(mcps=["web_search", "web_search"]),
        step("fake_writer", "Write the report on {topic} using {the facts}.")))
    planner = DynamicPlanner(load_catalog())
    plan = planner.plan("Write about bees")

    assert plan.name == "bee-report"
    assert plan.topic == "Write about bees"
    assert [s.id for s in plan.steps] == ["step_1", "step_2"]
    assert [s.agent_provider for s in plan.steps] == ["fake_researcher", "fake_writer"]
    assert plan.steps[0].mcp_providers == ["web_search"]  # duplicates dropped
    assert plan.steps[1].description == "Write the report on {topic} using (the facts)."
    assert (planner.last_attempts, planner.first_try_valid) == (1, True)

    request = scripted_llm.requests[0]
    assert request["model"] == "researcher-model"
    assert request["response_format"]["type"] == "json_schema"
    sent = request["response_format"]["json_schema"]
    assert sent["name"] == "plan"
    assert sent["schema"] == build_plan_schema(load_catalog(), max_steps=6)
    prompt = scripted_llm.user_texts()[0]
    assert "Goal: Write about bees" in prompt
    assert "fake_writer: Writer - writing" in prompt
    assert "web_search - searches the web" in prompt
    assert "cloud_only" not in prompt and "paid_search" not in prompt
    # The worked example uses this catalog's ids, and shows the search tool in use.
    assert '"agent_provider": "fake_researcher", "mcp_providers": ["web_search"]' in prompt
    assert prompt.rstrip().endswith("Goal: Write about bees\nPlan:")


def test_plan_without_a_name_gets_a_timestamped_one(fake_config: Path,
                                                    scripted_llm: ScriptedLLMServer) -> None:
    scripted_llm.enqueue(answer(step(), name=None))
    plan = DynamicPlanner(load_catalog()).plan("bees")
    assert re.fullmatch(r"dynamic-plan-\d{8}-\d{6}", plan.name)


def test_unknown_agent_is_repaired_once(config: Path, scripted_llm: ScriptedLLMServer) -> None:
    bad = answer(step("ghost_agent"))
    scripted_llm.enqueue(bad, GOOD)
    planner = DynamicPlanner(load_catalog())
    plan = planner.plan("Write about bees")

    assert [s.agent_provider for s in plan.steps] == ["fake_researcher", "fake_writer"]
    assert len(scripted_llm.requests) == 2
    repair = scripted_llm.user_texts()[1]
    assert "step 1: unknown agent_provider 'ghost_agent'" in repair
    assert "fake_researcher, fake_writer" in repair
    # The model sees its own answer before the problems.
    assert scripted_llm.requests[1]["messages"][-2] == {"role": "assistant", "content": bad}
    assert (planner.last_attempts, planner.first_try_valid) == (2, False)
    assert planner.last_stats.problems[0][0].startswith("step 1: unknown agent_provider")


def test_two_invalid_answers_raise_plan_error(config: Path,
                                              scripted_llm: ScriptedLLMServer) -> None:
    scripted_llm.enqueue(answer(step(mcps=["no_such_tool"])), answer(step(mcps=["nope"])))
    with pytest.raises(PlanError) as caught:
        DynamicPlanner(load_catalog()).plan("bees")
    assert caught.value.exit_code == 3
    message = str(caught.value)
    assert "unknown MCP provider 'nope'" in message
    assert "fake_researcher" in message and "2 attempts" in message
    assert "\n" not in message
    assert len(scripted_llm.requests) == 2


def test_too_many_steps(config: Path, scripted_llm: ScriptedLLMServer,
                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENTIC_MAX_PLAN_STEPS", "2")
    three = answer(step(description="One."), step(description="Two."),
                   step(description="Three."))
    scripted_llm.enqueue(three, three)
    with pytest.raises(PlanError, match="the plan has 3 steps, at most 2 are allowed"):
        DynamicPlanner(load_catalog()).plan("bees")
    sent = scripted_llm.requests[0]["response_format"]["json_schema"]["schema"]
    assert sent["properties"]["steps"]["maxItems"] == 2


def test_no_steps(config: Path, scripted_llm: ScriptedLLMServer) -> None:
    scripted_llm.enqueue(answer(), answer())
    with pytest.raises(PlanError, match="the plan has no steps"):
        DynamicPlanner(load_catalog()).plan("bees")


def test_invalid_json(config: Path, scripted_llm: ScriptedLLMServer) -> None:
    scripted_llm.enqueue("I think you should research bees.", '{"steps": [')
    with pytest.raises(PlanError, match="not valid JSON") as caught:
        DynamicPlanner(load_catalog()).plan("bees")
    assert "not valid JSON" in scripted_llm.user_texts()[1]
    assert caught.value.exit_code == 3


def test_http_500_becomes_plan_error_without_the_key(
        tmp_path: Path, scripted_llm: ScriptedLLMServer,
        monkeypatch: pytest.MonkeyPatch) -> None:
    secret = "sk-test-secret-4242"
    monkeypatch.setenv("PLANNER_TEST_KEY", secret)
    root = write_catalog(tmp_path / "cfg", base_url=scripted_llm.base_url,
                         agents=agents_yaml(scripted_llm.base_url, key_env="PLANNER_TEST_KEY"))
    monkeypatch.setenv("AGENTIC_CONFIG_DIR", str(root))
    scripted_llm.enqueue(HTTPErrorReply(500, f"model crashed (key {secret})"))
    with pytest.raises(PlanError) as caught:
        DynamicPlanner(load_catalog()).plan("bees")
    message = str(caught.value)
    assert "fake_researcher" in message
    assert scripted_llm.base_url in message
    assert "500" in message and "model crashed" in message
    assert secret not in message
    assert len(scripted_llm.requests) == 1  # no retry on a server error


def test_unreachable_server_becomes_plan_error(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}/v1"
    root = write_catalog(tmp_path / "cfg", base_url=url)
    monkeypatch.setenv("AGENTIC_CONFIG_DIR", str(root))
    with pytest.raises(PlanError, match=re.escape(url)) as caught:
        DynamicPlanner(load_catalog()).plan("bees")
    assert "APIConnectionError" in str(caught.value)


def test_empty_goal_is_a_plan_error(fake_config: Path,
                                    scripted_llm: ScriptedLLMServer) -> None:
    with pytest.raises(PlanError, match="empty goal"):
        DynamicPlanner(load_catalog()).plan("   ")
    assert scripted_llm.requests == []


def test_looping_answer_is_cut_at_the_first_repeat(fake_config: Path,
                                                   scripted_llm: ScriptedLLMServer) -> None:
    loop = [step(description="Find facts."), step("fake_writer", "Write it.")] * 3
    scripted_llm.enqueue(answer(*loop))
    planner = DynamicPlanner(load_catalog())
    plan = planner.plan("bees")
    assert [s.description for s in plan.steps] == ["Find facts.", "Write it."]
    assert planner.last_stats.trimmed_steps == 4
    assert len(scripted_llm.requests) == 1


# --- provider selection ----------------------------------------------------------------


def test_default_planner_is_the_best_available_agent(offline_config: Path) -> None:
    # cloud_only has the best priority but is unavailable (its env var is unset).
    assert DynamicPlanner(load_catalog()).provider_id == "fake_researcher"


def test_planner_provider_env_picks_that_provider(config: Path, scripted_llm: ScriptedLLMServer,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENTIC_PLANNER_PROVIDER", "fake_writer")
    scripted_llm.enqueue(GOOD)
    planner = DynamicPlanner(load_catalog())
    planner.plan("bees")
    assert planner.provider_id == "fake_writer"
    assert scripted_llm.requests[0]["model"] == "writer-model"


def test_unknown_planner_provider_is_a_config_error(offline_config: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENTIC_PLANNER_PROVIDER", "nobody")
    with pytest.raises(ConfigError, match="AGENTIC_PLANNER_PROVIDER='nobody'") as caught:
        DynamicPlanner(load_catalog())
    assert "fake_researcher, fake_writer" in str(caught.value)
    assert caught.value.exit_code == 2


def test_unavailable_planner_provider_is_a_config_error(
        offline_config: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENTIC_PLANNER_PROVIDER", "cloud_only")
    with pytest.raises(ConfigError, match="'cloud_only' is not available here") as caught:
        DynamicPlanner(load_catalog())
    assert "CLOUD_KEY_FOR_TESTS" in str(caught.value)


def test_explicit_provider_argument_wins_over_env(offline_config: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENTIC_PLANNER_PROVIDER", "fake_researcher")
    assert DynamicPlanner(load_catalog(), provider="fake_writer").provider_id == "fake_writer"


# --- pure helpers ----------------------------------------------------------------------


def test_validate_plan_reports_each_problem_once(offline_config: Path) -> None:
    catalog = load_catalog()
    data = {"steps": [step(description="..."), step(agent="ghost", mcps=["paid_search"]),
                      {**step(description="Write."), "extra": 1}],
            "colour": "blue"}
    problems = validate_plan(data, catalog, max_steps=6)
    assert "step 1: description is empty, say what the agent must do" in problems
    assert any(p.startswith("step 2: unknown agent_provider 'ghost'") for p in problems)
    # paid_search exists but is unavailable here: the planner may not use it.
    assert "step 2: unknown MCP provider 'paid_search' (web_search)" in problems
    assert any("steps/2" in p and "'extra'" in p for p in problems)
    assert any(p.startswith("answer:") and "'colour'" in p for p in problems)
    assert len(problems) == 5  # the enum violations are not reported a second time


def test_validate_plan_accepts_a_good_plan_and_rejects_non_objects(offline_config: Path) -> None:
    catalog = load_catalog()
    assert validate_plan(json.loads(GOOD), catalog, max_steps=6) == []
    assert validate_plan([], catalog, max_steps=6) == [
        "the answer must be a JSON object, got list"]
    assert validate_plan({"plan": []}, catalog, max_steps=6)[0] == (
        "the answer has no 'steps' list")


def test_validate_plan_flags_a_repeated_description(offline_config: Path) -> None:
    data = {"steps": [step(description="Find facts."), step("fake_writer", "find  FACTS.")]}
    assert validate_plan(data, load_catalog(), max_steps=6) == [
        "step 2 repeats the description of step 1; each step must do something different"]


def test_plan_from_data_raises_with_all_problems(offline_config: Path) -> None:
    with pytest.raises(PlanError, match=r"invalid plan: .*'ghost'.*empty"):
        plan_from_data({"steps": [step("ghost"), step(description=" ")]}, load_catalog(),
                       goal="bees")


def test_normalise_plan_dedupes_tools_and_cuts_loops() -> None:
    data = {"steps": [step(description="A."), step(description="B.")]}
    assert normalise_plan(data) == (data, 0)
    looped = {"steps": [step(description="A.", mcps=["t", "u", "t"]), step(description="B."),
                        step(description=" a. "), step(description="C.")]}
    cleaned, cut = normalise_plan(looped)
    assert cut == 2
    assert [s["description"] for s in cleaned["steps"]] == ["A.", "B."]
    assert cleaned["steps"][0]["mcp_providers"] == ["t", "u"]
    assert normalise_plan([1, 2]) == ([1, 2], 0)


@pytest.mark.parametrize("text", [
    '```json\n{"steps": []}\n```',
    'Here is the plan: {"steps": []} Hope it helps.',
    '{"steps": [], "name": "two\nlines"}',
])
def test_parse_answer_tolerates_fences_prose_and_raw_newlines(text: str) -> None:
    data, problems = parse_answer(text)
    assert problems == []
    assert data["steps"] == []


def test_parse_answer_reports_empty_and_broken_json() -> None:
    assert parse_answer("") == (None, ["the answer was empty"])
    data, problems = parse_answer('{"steps": [')
    assert data is None and problems[0].startswith("the answer is not valid JSON")
