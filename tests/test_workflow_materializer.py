"""Materializer: schema-valid specs, no secrets, stable fingerprint, parity with build_workflow."""

from __future__ import annotations

import json
import sys
from importlib import resources
from pathlib import Path

import jsonschema
import pytest
from conftest import REPO, write_catalog

from agentic_orchestration.catalogs import load_catalog, load_workflow
from agentic_orchestration.errors import CatalogError, StepSpecError
from agentic_orchestration.orchestration.backends.base import StepSpec
from agentic_orchestration.orchestration.run_store import FileSystemRunStore
from agentic_orchestration.orchestration.step_context import prepare_step_description
from agentic_orchestration.orchestration.workflow_materializer import (
    build_step_specs,
    step_specs_resolution_fingerprint,
)
from agentic_orchestration.testing import ScriptedLLMServer

SECRET = "sk-secret-4f9a"

AGENTS = """\
- id: fake_researcher
  type: openai
  model: fake-model
  openai_base_url: {url}
  role: Researcher
  goal: Find facts about {{topic}}.
  backstory: Careful.
  priority: 10
- id: fake_writer
  type: openai
  model: fake-model
  openai_base_url: {url}
  role: Writer
  goal: Write text.
  backstory: Clear.
  priority: 11
- id: cloud_gpt
  type: openai
  model: gpt-4o-mini
  role: Cloud Analyst
  goal: Analyse.
  backstory: Lives in the cloud.
  priority: 1
"""

MCPS = f"""\
- id: search_brave
  streamable_http:
    url: https://api.search.brave.com/mcp
    headers:
      Authorization: Bearer ${{BRAVE_API_KEY}}
  required_env: [BRAVE_API_KEY]
- id: tool_stdio
  stdio:
    command: {sys.executable}
    args: ["-c", "pass"]
    env: {{TOKEN: "${{BRAVE_API_KEY}}"}}
- id: search_tavily
  streamable_http:
    url: https://mcp.tavily.com/mcp/?tavilyApiKey=${{TAVILY_API_KEY}}
  required_env: [TAVILY_API_KEY]
"""

WORKFLOW = """\
topic: honeybees
steps:
  - id: research
    agent_provider: {first_agent}
    mcp_providers: [search_brave, tool_stdio, search_tavily]
    description: 'Research {{topic}}; answer like {{"k": 1}} or {{other}}.'
    expected_output: Facts about {{topic}}.
  - agent_provider: fake_writer
    mcp_providers: [{second_mcps}]
    description: Write about {{topic}}.
  - id: review
    agent_provider: cloud_gpt
    description: Review it.
"""


def workflow_yaml(first_agent: str = "fake_researcher", second_mcps: str = "") -> str:
    return WORKFLOW.format(first_agent=first_agent, second_mcps=second_mcps)


@pytest.fixture
def catalog_root(fake_config: Path, scripted_llm: ScriptedLLMServer,
                 monkeypatch: pytest.MonkeyPatch) -> Path:
    """The conftest catalog plus a cloud agent (no key: substituted), MCPs and a workflow."""
    monkeypatch.setenv("BRAVE_API_KEY", SECRET)
    return write_catalog(fake_config, base_url=scripted_llm.base_url,
                         agents=AGENTS.format(url=scripted_llm.base_url), mcps=MCPS,
                         workflows={"bees": workflow_yaml()})


def materialize(root: Path, run_id: str = "run-1", **paths: str) -> list[StepSpec]:
    """A fresh load of catalog and workflow YAML, then the specs."""
    config = load_workflow("bees", root)
    return build_step_specs(config, load_catalog(root), run_id=run_id, **paths)


def step_spec_schema() -> dict:
    text = resources.files("agentic_orchestration.schemas").joinpath("step_spec.v0.1.json")
    return json.loads(text.read_text())


def test_specs_validate_against_the_schema(catalog_root: Path) -> None:
    specs = materialize(catalog_root, run_store_path="/run/store",
                        artifacts_dir="/run/store/run-1/artifacts")
    validator = jsonschema.Draft202012Validator(step_spec_schema())
    for spec in specs:
        validator.validate(spec.to_dict())
    assert [s.step_id for s in specs] == ["research", "step_2", "review"]
    assert [s.step_index for s in specs] == [0, 1, 2]
    first = specs[0]
    assert first.run_id == "run-1" and first.workflow_name == "bees"
    assert first.topic == "honeybees" and first.inputs == {"topic": "honeybees"}
    # {topic} filled, other braces untouched, no prior output injected yet
    assert first.task.description == 'Research honeybees; answer like {"k": 1} or {other}.'
    assert first.task.expected_output == "Facts about honeybees."
    assert first.prior_output == ""
    assert first.paths.run_store == "/run/store"
    assert first.paths.artifacts_dir == "/run/store/run-1/artifacts"
    # the agent entry as resolved by the catalog (persona text is not topic-filled)
    assert first.agent_provider["id"] == "fake_researcher"
    assert first.agent_provider["goal"] == "Find facts about {topic}."
    # search_tavily has no key here: dropped by the catalog, as in-process would
    assert [m.id for m in first.mcp_providers] == ["search_brave", "tool_stdio"]


def test_unavailable_agent_is_substituted_like_the_catalog_does(catalog_root: Path) -> None:
    review = materialize(catalog_root)[2].agent_provider
    # cloud_gpt needs OPENAI_API_KEY (unset): its persona on the best available LLM
    assert review["role"] == "Cloud Analyst"
    assert review["id"] == "fake_researcher"
    assert review["openai_base_url"].startswith("http://127.0.0.1")


def test_secret_values_never_land_in_a_spec(catalog_root: Path, tmp_path: Path) -> None:
    specs = materialize(catalog_root)
    store = FileSystemRunStore(tmp_path / "store")
    texts = [store.write_spec(spec).read_text() for spec in specs]
    joined = "\n".join(texts)
    assert SECRET not in joined
    assert "Bearer ${BRAVE_API_KEY}" in joined
    assert '"TOKEN": "${BRAVE_API_KEY}"' in joined
    brave = specs[0].mcp_providers[0].resolved
    assert brave == {"streamable_http": {"url": "https://api.search.brave.com/mcp",
                                         "headers": {"Authorization": "Bearer ${BRAVE_API_KEY}"}}}
    assert store.read_spec("run-1", "research") == specs[0]


def test_fingerprint_is_stable_across_loads_and_runs(catalog_root: Path) -> None:
    first = materialize(catalog_root, run_id="run-a", run_store_path="/a")
    second = materialize(catalog_root, run_id="run-b", run_store_path="/b",
                         artifacts_dir="/b/art")
    assert first != second  # run-specific fields do differ...
    fingerprint = step_specs_resolution_fingerprint(first)
    assert fingerprint == step_specs_resolution_fingerprint(second)  # ...resolution does not
    assert len(fingerprint) == 64 and int(fingerprint, 16) >= 0
    with_prior = [s.model_copy(update={"prior_output": "x"}) for s in first]
    assert step_specs_resolution_fingerprint(with_prior) == fingerprint


@pytest.mark.parametrize(("change", "yaml"), [
    ("a step's agent", workflow_yaml(first_agent="fake_writer")),
    ("a step's MCP servers", workflow_yaml(second_mcps="search_brave")),
    ("a description", workflow_yaml().replace("Review it.", "Review it twice.")),
])
def test_fingerprint_changes_with_resolution(catalog_root: Path, change: str,
                                             yaml: str) -> None:
    before = step_specs_resolution_fingerprint(materialize(catalog_root))
    (catalog_root / "workflows" / "bees.yaml").write_text(yaml)
    assert step_specs_resolution_fingerprint(materialize(catalog_root)) != before, change


def test_fingerprint_changes_when_a_key_appears(catalog_root: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """Same YAML, different environment: cloud_gpt is no longer substituted."""
    before = step_specs_resolution_fingerprint(materialize(catalog_root))
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    after = materialize(catalog_root)
    assert after[2].agent_provider["id"] == "cloud_gpt"
    assert step_specs_resolution_fingerprint(after) != before
    assert "sk-test" not in json.dumps([s.to_dict() for s in after])


def test_unknown_agent_and_bad_run_id_are_errors(catalog_root: Path) -> None:
    (catalog_root / "workflows" / "bees.yaml").write_text(workflow_yaml(first_agent="nobody"))
    with pytest.raises(CatalogError, match="nobody"):
        materialize(catalog_root)
    with pytest.raises(StepSpecError, match="run_id"):
        build_step_specs(load_workflow("bees", catalog_root), load_catalog(catalog_root),
                         run_id="../escape")


def test_shipped_workflows_materialize(monkeypatch: pytest.MonkeyPatch) -> None:
    """The default workflow YAML (spec task 1.7): valid specs with no cloud key set."""
    root = REPO / "config"
    monkeypatch.setenv("AGENTIC_VRAM_GB", "0")
    catalog = load_catalog(root)
    validator = jsonschema.Draft202012Validator(step_spec_schema())
    names = sorted(catalog.workflows)
    assert names, "no shipped workflows found"
    for name in names:
        config = catalog.workflows[name].with_topic("solar power")
        specs = build_step_specs(config, catalog, run_id="run-1")
        assert len(specs) == len(config.steps)
        for spec in specs:
            validator.validate(spec.to_dict())
            assert "{topic}" not in spec.task.description


@pytest.mark.backend_inprocess
@pytest.mark.backend_subprocess
@pytest.mark.filterwarnings("ignore::ImportWarning")
def test_parity_with_build_workflow(catalog_root: Path) -> None:
    """G4: the in-process path and the step specs resolve every step identically."""
    from agentic_orchestration.orchestration.runner import build_workflow

    config = load_workflow("bees", catalog_root)
    catalog = load_catalog(catalog_root)
    built = build_workflow(config, catalog)
    specs = build_step_specs(config, catalog, run_id="run-1")

    assert [s.step_id for s in specs] == [step.id for step in built.steps]
    assert [s.agent_provider for s in specs] == [
        entry.model_dump(mode="json") for entry in built.entries]
    assert [[m.to_dict() for m in s.mcp_providers] for s in specs] == built.mcp_refs
    assert [s.task.description for s in specs] == built.base_descriptions
    assert [s.task.expected_output for s in specs] == [t.expected_output for t in built.tasks]
    # the parity is not vacuous: substitution and MCP dropping both happened
    assert specs[2].agent_provider["role"] == "Cloud Analyst"
    assert [len(refs) for refs in built.mcp_refs] == [2, 0, 0]
    assert [a.role for a in built.agents] == [s.agent_provider["role"] for s in specs]
    # the coordinator's injection on a spec equals the crew's injection on its base text
    assert prepare_step_description(specs[1].task.description, "prior") == \
        prepare_step_description(built.base_descriptions[1], "prior")
