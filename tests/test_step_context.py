"""prepare_step_description (prior-output hand-off) and MCP resolution: pure functions."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from agentic_orchestration.catalogs.models import MCPProviderEntry
from agentic_orchestration.errors import ConfigError
from agentic_orchestration.mcp.resolution import (
    expand_env,
    referenced_env_vars,
    resolve_workflow_mcp_refs,
    to_crewai_mcp,
)
from agentic_orchestration.orchestration.step_context import (
    PRIOR_OUTPUT_END,
    PRIOR_OUTPUT_START,
    prepare_step_description,
)

# -- prepare_step_description ------------------------------------------------------------


def test_first_step_gets_description_only() -> None:
    assert prepare_step_description("Research {topic}.", None, topic="bees") == "Research bees."
    assert prepare_step_description("Research {topic}.", "   \n", topic="bees") == "Research bees."


def test_prior_output_appended_between_markers() -> None:
    text = prepare_step_description("Write about {topic}.", "Bees make honey.", topic="bees",
                                    max_chars=100)
    assert text == (f"Write about bees.\n\n{PRIOR_OUTPUT_START}\nBees make honey.\n"
                    f"{PRIOR_OUTPUT_END}")


def test_truncation_keeps_head_and_says_so() -> None:
    prior = "HEAD " + "x" * 500 + " TAIL"
    text = prepare_step_description("Go.", prior, max_chars=50)
    body = text.split(PRIOR_OUTPUT_START + "\n", 1)[1].split("\n" + PRIOR_OUTPUT_END)[0]
    assert body.startswith("HEAD ")
    assert "TAIL" not in body
    assert f"{len(prior) - 50} of {len(prior)} characters omitted" in body
    kept = body.split("\n[... truncated")[0]
    assert len(kept) <= 50


def test_bound_comes_from_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENTIC_STEP_CONTEXT_CHARS", "10")
    text = prepare_step_description("Go.", "0123456789ABCDEFGHIJ")
    assert "0123456789" in text
    assert "ABCDEF" not in text
    monkeypatch.setenv("AGENTIC_STEP_CONTEXT_CHARS", "0")
    assert prepare_step_description("Go.", "anything") == "Go."


def test_output_exactly_at_bound_is_not_marked() -> None:
    text = prepare_step_description("Go.", "abcde", max_chars=5)
    assert "truncated" not in text
    assert "abcde" in text


def test_other_braces_survive_topic_fill() -> None:
    description = 'Return JSON like {"a": 1} for {topic}; keep {other} and {0} as written.'
    text = prepare_step_description(description, 'prior with {braces} and {topic}', topic="x{y}")
    assert text.startswith('Return JSON like {"a": 1} for x{y}; keep {other} and {0} as written.')
    # The prior output is data: its {topic} is not filled.
    assert "prior with {braces} and {topic}" in text


def test_topic_none_leaves_placeholder() -> None:
    assert prepare_step_description("About {topic}", None) == "About {topic}"


def test_reapplying_to_the_base_never_duplicates() -> None:
    base = "Step two."
    once = prepare_step_description(base, "first output", max_chars=100)
    again = prepare_step_description(base, "second output", max_chars=100)
    assert once.count(PRIOR_OUTPUT_START) == 1
    assert "first output" not in again


def test_step_context_does_not_import_crewai() -> None:
    code = ("import sys, agentic_orchestration.orchestration.step_context as m; "
            "m.prepare_step_description('a', 'b', max_chars=5); "
            "assert 'crewai' not in sys.modules and 'openai' not in sys.modules")
    import subprocess

    # cwd = repo root: `-c` puts it on sys.path, installed or not.
    subprocess.run([sys.executable, "-c", code], check=True,
                   cwd=Path(__file__).resolve().parent.parent)


# -- MCP resolution ------------------------------------------------------------------------

STDIO = MCPProviderEntry.model_validate({
    "id": "fetcher",
    "stdio": {"command": "mcp-fetch", "args": ["--token", "${FETCH_TOKEN}"],
              "env": {"API_KEY": "${FETCH_KEY}", "MODE": "plain"}},
    "required_env": ["FETCH_KEY"],
})
HTTP = {
    "id": "search",
    "streamable_http": {"url": "${SEARCH_URL}/mcp",
                        "headers": {"Authorization": "Bearer ${SEARCH_KEY}"}},
}


def test_refs_keep_variable_references_not_values(monkeypatch: pytest.MonkeyPatch) -> None:
    secrets = {"FETCH_TOKEN": "tok-SECRET-1", "FETCH_KEY": "key-SECRET-2",
               "SEARCH_URL": "https://search.example", "SEARCH_KEY": "key-SECRET-3"}
    for name, value in secrets.items():
        monkeypatch.setenv(name, value)
    refs = resolve_workflow_mcp_refs([STDIO, HTTP])
    assert refs == [
        {"id": "fetcher", "resolved": {"stdio": {
            "command": "mcp-fetch", "args": ["--token", "${FETCH_TOKEN}"],
            "env": {"API_KEY": "${FETCH_KEY}", "MODE": "plain"}}}},
        {"id": "search", "resolved": {"streamable_http": {
            "url": "${SEARCH_URL}/mcp", "headers": {"Authorization": "Bearer ${SEARCH_KEY}"}}}},
    ]
    dumped = json.dumps(refs)
    assert "SECRET" not in dumped
    assert referenced_env_vars(refs[0]["resolved"]) == ["FETCH_TOKEN", "FETCH_KEY"]


def test_expand_env_fills_values_and_leaves_input_untouched() -> None:
    ref = resolve_workflow_mcp_refs([STDIO])[0]
    env = {"FETCH_TOKEN": "t1", "FETCH_KEY": "k1"}
    expanded = expand_env(ref, env)
    assert expanded == {"stdio": {"command": "mcp-fetch", "args": ["--token", "t1"],
                                  "env": {"API_KEY": "k1", "MODE": "plain"}}}
    assert ref["resolved"]["stdio"]["env"]["API_KEY"] == "${FETCH_KEY}"


def test_expand_env_missing_var_names_mcp_and_var() -> None:
    ref = resolve_workflow_mcp_refs([HTTP])[0]
    with pytest.raises(ConfigError) as info:
        expand_env(ref, {"SEARCH_URL": "https://s.example", "SEARCH_KEY": "  "})
    assert "'search'" in str(info.value)
    assert "SEARCH_KEY" in str(info.value)
    with pytest.raises(ConfigError, match=r"'other'.*SEARCH_URL"):
        expand_env(ref["resolved"], {}, mcp_id="other")


# crewai.rag's __setattr__ guard makes importlib emit an ImportWarning on `import crewai`;
# harmless, but an error under `filterwarnings = error`.
@pytest.mark.filterwarnings("ignore::ImportWarning")
def test_to_crewai_mcp_builds_crewai_objects() -> None:
    from crewai.mcp import MCPServerHTTP, MCPServerStdio

    stdio = to_crewai_mcp(expand_env(resolve_workflow_mcp_refs([STDIO])[0],
                                     {"FETCH_TOKEN": "t", "FETCH_KEY": "k"}))
    assert isinstance(stdio, MCPServerStdio)
    assert (stdio.command, stdio.args, stdio.env) == (
        "mcp-fetch", ["--token", "t"], {"API_KEY": "k", "MODE": "plain"})
    http = to_crewai_mcp(expand_env(resolve_workflow_mcp_refs([HTTP])[0],
                                    {"SEARCH_URL": "http://h", "SEARCH_KEY": "s"}))
    assert isinstance(http, MCPServerHTTP)
    assert (http.url, http.headers, http.streamable) == (
        "http://h/mcp", {"Authorization": "Bearer s"}, True)


def test_to_crewai_mcp_refuses_unexpanded_or_ambiguous() -> None:
    with pytest.raises(ConfigError, match="expand_env"):
        to_crewai_mcp(resolve_workflow_mcp_refs([STDIO])[0]["resolved"])
    with pytest.raises(ConfigError, match="exactly one"):
        to_crewai_mcp({"stdio": {"command": "a"}, "streamable_http": {"url": "http://x"}})
