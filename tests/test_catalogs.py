"""Catalog loading: every error names file, id and field; filters say why."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from agentic_orchestration.catalogs import (
    AgentProviderEntry,
    filter_entries_by_api_credentials,
    filter_entries_by_hardware,
    filter_mcp_entries_by_api_credentials,
    filter_mcp_entries_by_installed_command,
    load_catalog,
    load_workflow,
)
from agentic_orchestration.catalogs.models import MCPProviderEntry
from agentic_orchestration.errors import EXIT_BAD_INPUT, CatalogError

REPO = Path(__file__).resolve().parent.parent

AGENT = """\
- id: a1
  type: local
  role: R
  goal: G
  backstory: B
"""


def make_config(tmp_path: Path, agents: str = AGENT, mcps: str = "", workflows=None) -> Path:
    root = tmp_path / "cfg"
    for sub in ("agent_providers", "mcp_providers", "workflows"):
        (root / sub).mkdir(parents=True)
    (root / "agent_providers" / "a.yaml").write_text(textwrap.dedent(agents))
    (root / "mcp_providers" / "m.yaml").write_text(textwrap.dedent(mcps))
    for name, text in (workflows or {}).items():
        (root / "workflows" / f"{name}.yaml").write_text(textwrap.dedent(text))
    return root


def catalog_error(root: Path) -> CatalogError:
    with pytest.raises(CatalogError) as err:
        load_catalog(root)
    assert err.value.exit_code == EXIT_BAD_INPUT
    return err.value


def test_shipped_catalog_loads_and_has_the_spec_mcp_matrix():
    catalog = load_catalog(REPO / "config")
    types = {a.type for a in catalog.agents.values()}
    assert types == {"openai", "ollama", "huggingface", "local"}
    expected = {
        "search_brave": "streamable_http", "search_tavily": "streamable_http",
        "home_assistant": "streamable_http", "search_exa": "stdio", "fetch_url": "stdio",
        "filesystem_local": "stdio", "memory_knowledge_graph": "stdio",
    }
    assert {k: v.transport for k, v in catalog.mcps.items()} == expected
    assert len(catalog.workflows) >= 2
    for workflow in catalog.workflows.values():
        catalog.check_workflow(workflow)


def test_shipped_catalog_without_keys_offers_only_local(monkeypatch):
    catalog = load_catalog(REPO / "config")
    assert {a.type for a in catalog.available_agents} == {"local"}
    assert "OPENAI_API_KEY" in catalog.agent_exclusions["openai_researcher"]
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    catalog = load_catalog(REPO / "config")
    assert catalog.best_agent().type == "openai"


def test_malformed_yaml_names_file_and_line(tmp_path):
    err = catalog_error(make_config(tmp_path, agents="- id: a1\n  role: [unclosed\n"))
    assert err.file and err.file.endswith("a.yaml")
    assert "line" in str(err)


def test_missing_field_names_id_and_field(tmp_path):
    agents = "- id: a1\n  type: local\n  role: R\n  goal: G\n"
    err = catalog_error(make_config(tmp_path, agents=agents))
    assert (err.entry_id, err.field) == ("a1", "backstory")
    assert "missing" in str(err)


def test_unknown_field_is_an_error(tmp_path):
    err = catalog_error(make_config(tmp_path, agents=AGENT + "  temprature: 0.2\n"))
    assert (err.entry_id, err.field) == ("a1", "temprature")
    assert "unknown field" in str(err)


def test_bad_type_value(tmp_path):
    err = catalog_error(make_config(tmp_path, agents=AGENT.replace("local", "anthropic")))
    assert err.field == "type"


def test_duplicate_id_across_files(tmp_path):
    root = make_config(tmp_path)
    (root / "agent_providers" / "b.yaml").write_text(AGENT)
    err = catalog_error(root)
    assert err.entry_id == "a1" and err.field == "id"
    assert "a.yaml" in str(err) and "b.yaml" in str(err)


def test_mcp_needs_exactly_one_transport(tmp_path):
    both = """\
    - id: m1
      stdio: {command: echo}
      streamable_http: {url: "http://x"}
    """
    err = catalog_error(make_config(tmp_path, mcps=both))
    assert err.entry_id == "m1" and "exactly one" in str(err)
    neither = "- id: m2\n  planner_hint: x\n"
    err = catalog_error(make_config(tmp_path / "n", mcps=neither))
    assert err.entry_id == "m2"


def test_entry_that_is_not_a_mapping(tmp_path):
    err = catalog_error(make_config(tmp_path, agents="- just a string\n"))
    assert "expected a mapping" in str(err)


def test_extra_paths_file_and_folder(tmp_path, monkeypatch):
    root = make_config(tmp_path)
    extra_file = tmp_path / "extra_agent.yaml"
    extra_file.write_text(AGENT.replace("a1", "a2"))
    extra_dir = tmp_path / "extra_mcps"
    extra_dir.mkdir()
    (extra_dir / "x.yml").write_text("- id: m9\n  stdio: {command: sh}\n")
    monkeypatch.setenv("AGENTIC_EXTRA_AGENT_PROVIDERS_PATH", str(extra_file))
    monkeypatch.setenv("AGENTIC_EXTRA_MCP_PROVIDERS_PATH", str(extra_dir))
    catalog = load_catalog(root)
    assert set(catalog.agents) == {"a1", "a2"}
    assert "m9" in catalog.mcps
    monkeypatch.setenv("AGENTIC_EXTRA_AGENT_PROVIDERS_PATH", str(tmp_path / "nope.yaml"))
    err = catalog_error(root)
    assert "nope.yaml" in str(err)


def test_credential_filters_report_missing_names_only():
    entries = [
        AgentProviderEntry(id="o", type="openai", role="r", goal="g", backstory="b"),
        AgentProviderEntry(id="l", type="local", role="r", goal="g", backstory="b",
                           required_env=["MY_FLAG"]),
        AgentProviderEntry(id="c", type="openai", role="r", goal="g", backstory="b",
                           openai_base_url="http://127.0.0.1:1/v1"),
    ]
    kept, excluded = filter_entries_by_api_credentials(entries, env={"MY_FLAG": "1"})
    assert [e.id for e in kept] == ["l", "c"]
    assert excluded == {"o": "required env not set: OPENAI_API_KEY"}
    kept, excluded = filter_entries_by_api_credentials(entries, env={"OPENAI_API_KEY": "sk-x"})
    assert [e.id for e in kept] == ["o", "c"] and "MY_FLAG" in excluded["l"]
    assert "sk-x" not in str(excluded)


def test_mcp_filters():
    http = MCPProviderEntry(id="h", streamable_http={"url": "https://x"}, required_env=["K"])
    stdio_missing = MCPProviderEntry(id="s", stdio={"command": "no-such-command-xyz"})
    stdio_ok = MCPProviderEntry(id="t", stdio={"command": "sh"})
    kept, excluded = filter_mcp_entries_by_api_credentials([http, stdio_ok], env={})
    assert [e.id for e in kept] == ["t"] and excluded["h"] == "required env not set: K"
    kept, excluded = filter_mcp_entries_by_installed_command([stdio_missing, stdio_ok, http])
    assert [e.id for e in kept] == ["t", "h"]
    assert excluded["s"] == "command not installed: no-such-command-xyz"


def test_hardware_filter(monkeypatch):
    big = AgentProviderEntry(id="big", type="local", role="r", goal="g", backstory="b",
                             min_vram_gb=24)
    small = AgentProviderEntry(id="small", type="local", role="r", goal="g", backstory="b")
    kept, excluded = filter_entries_by_hardware([big, small], vram_gb=8)
    assert [e.id for e in kept] == ["small"]
    assert excluded["big"] == "needs 24 GB VRAM, found 8 GB"
    monkeypatch.setenv("AGENTIC_VRAM_GB", "48")
    kept, _ = filter_entries_by_hardware([big, small])
    assert [e.id for e in kept] == ["big", "small"]


def test_workflow_errors_name_step_and_field(tmp_path):
    root = make_config(tmp_path, workflows={"wf": """\
        steps:
          - agent_provider: ghost
            description: do it
        """})
    catalog = load_catalog(root)
    with pytest.raises(CatalogError) as err:
        catalog.check_workflow(catalog.workflows["wf"])
    assert err.value.field == "agent_provider" and "ghost" in str(err.value)
    # The file the step is in, not the workflow's name as if it were a file.
    assert err.value.file == str(root / "workflows" / "wf.yaml")
    assert str(err.value).startswith(f"file {root / 'workflows' / 'wf.yaml'}, id 'step_1'")
    assert "of workflow 'wf'" in str(err.value)
    # A plan read from no file: no file named, the workflow still is.
    plan = catalog.workflows["wf"].model_copy(update={"name": "plan"})
    assert plan.source_file == err.value.file  # copies keep where they came from
    with pytest.raises(CatalogError) as err:
        catalog.check_workflow(type(plan).model_validate(plan.model_dump()))
    assert err.value.file is None and "of workflow 'plan'" in str(err.value)
    bad = tmp_path / "bad.yaml"
    bad.write_text("steps:\n  - agent_provider: a1\n    descripton: typo\n")
    with pytest.raises(CatalogError) as err:
        load_workflow(str(bad))
    assert err.value.field in {"steps[0].descripton", "steps[0].description"}


def test_workflow_by_name_and_path(tmp_path):
    flow = "steps:\n  - agent_provider: a1\n    description: x\n"
    root = make_config(tmp_path, workflows={"wf": flow})
    assert load_workflow("wf", root).steps[0].id == "step_1"
    assert load_workflow(str(root / "workflows" / "wf.yaml")).name == "wf"
    with pytest.raises(CatalogError, match="known: wf"):
        load_workflow("nope", root)


def test_unavailable_provider_keeps_persona_on_best_llm(tmp_path):
    agents = AGENT + textwrap.dedent("""\
        - id: cloud
          type: openai
          role: Cloud Persona
          goal: G
          backstory: B
        """)
    root = make_config(tmp_path, agents=agents,
                       workflows={"wf": "steps:\n  - agent_provider: cloud\n    description: x\n"})
    catalog = load_catalog(root)
    entry = catalog.resolve_step_agent(catalog.workflows["wf"].steps[0])
    assert entry.role == "Cloud Persona" and entry.type == "local" and entry.id == "a1"


def test_a_dropped_mcp_is_said_once_per_step_however_often_it_is_resolved(tmp_path, caplog):
    root = make_config(tmp_path, mcps="""\
        - id: ghost
          stdio: {command: /nonexistent/ghost-mcp}
        """, workflows={"wf": """\
        steps:
          - {agent_provider: a1, description: one, mcp_providers: [ghost]}
          - {agent_provider: a1, description: two, mcp_providers: [ghost]}
        """})
    catalog = load_catalog(root)
    for _ in range(3):  # checked, materialized, built: as a run does
        for step in catalog.workflows["wf"].steps:
            assert catalog.resolve_step_mcps(step) == []
    said = [r.getMessage() for r in caplog.records if "dropped from step" in r.getMessage()]
    assert said == ["MCP provider ghost dropped from step step_1: command not installed: "
                    "/nonexistent/ghost-mcp",
                    "MCP provider ghost dropped from step step_2: command not installed: "
                    "/nonexistent/ghost-mcp"]
