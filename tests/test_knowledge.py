"""The knowledge base: indexing finished runs, BM25 search, the planner's bounded context,
``--kb-search``, and a whole CLI run whose plan is fed by an earlier run (real SQLite FTS5,
real planner and CrewAI; only the LLM is the scripted server)."""

from __future__ import annotations

import json
import sqlite3
import stat
import threading
from pathlib import Path
from typing import Any

import pytest

from agentic_orchestration.catalogs import load_catalog
from agentic_orchestration.cli.main import main
from agentic_orchestration.errors import EXIT_BAD_INPUT, ConfigError
from agentic_orchestration.knowledge import (
    KnowledgeBase,
    format_context,
    index_finished_run,
    kb_path,
    planner_context,
)
from agentic_orchestration.knowledge._documents import FINAL_STEP_ID, documents_from_record
from agentic_orchestration.knowledge._query import fts_query, query_terms
from agentic_orchestration.planning import DynamicPlanner
from agentic_orchestration.redaction import clear_registry, register_values
from agentic_orchestration.sessions import list_sessions
from agentic_orchestration.testing.fake_llm import last_user_text

PLAN = {"name": "two-steps", "steps": [
    {"agent_provider": "fake_researcher", "mcp_providers": [],
     "description": "Collect facts about the goal", "expected_output": "facts"},
    {"agent_provider": "fake_writer", "mcp_providers": [],
     "description": "Write the answer", "expected_output": "text"},
]}


def record(run_id: str, goal: str, steps: list[str], *, final: str | None = None,
           status: str = "ok", failed: tuple[int, ...] = ()) -> dict[str, Any]:
    """A session record as its JSON: ``steps`` are the step outputs in order."""
    summaries = [{"step_id": f"step_{i}", "agent_provider_id": f"agent_{i}",
                  "result_text": text, "exit_code": 1 if i in failed else 0,
                  "status": "failed" if i in failed else "ok"}
                 for i, text in enumerate(steps, start=1)]
    return {"schema_version": "0.1", "session_id": run_id, "run_id": run_id,
            "created_at": f"2026-01-0{len(steps)}T00:00:00+00:00", "goal": goal,
            "status": status, "steps": summaries,
            "result_text": final if final is not None else (steps[-1] if steps else None)}


CORPUS = [
    record("run-bees", "Explain how honeybees communicate",
           ["Honeybees use the waggle dance to tell direction and distance to nectar.",
            "Bees communicate with the waggle dance and with pheromones."]),
    record("run-tea", "Tell me about green tea",
           ["Green tea is unoxidised; sencha and matcha are Japanese kinds.",
            "Green tea comes from Camellia sinensis leaves steamed or pan-fired."]),
    record("run-rust", "Compare Rust and Go for command line tools",
           ["Rust has no garbage collector; Go compiles fast and has goroutines.",
            "For a CLI: Go for quick delivery, Rust for small fast binaries."]),
]


@pytest.fixture
def kb(tmp_path: Path) -> KnowledgeBase:
    base = KnowledgeBase(tmp_path / "kb" / "knowledge.sqlite3")
    for item in CORPUS:
        base.index_run(item)
    return base


# --- documents and the query ----------------------------------------------------------------


def test_final_answer_equal_to_last_step_is_stored_once() -> None:
    docs = documents_from_record(CORPUS[0])
    assert [(d.step_id, d.kind) for d in docs] == [("step_1", "step"), ("step_2", "final")]
    distinct = record("r", "g", ["a text", "b text"], final="another final answer")
    assert [(d.step_id, d.kind) for d in documents_from_record(distinct)] == [
        ("step_1", "step"), ("step_2", "step"), (FINAL_STEP_ID, "final")]


def test_failed_steps_and_running_runs_are_not_indexed() -> None:
    failed = record("r", "goal", ["kept output", "error output"], failed=(2,), final="")
    assert [d.step_id for d in documents_from_record(failed)] == ["step_1"]
    assert documents_from_record(record("r", "goal", ["x"], status="running")) == []


def test_query_drops_common_words_and_neutralises_fts_syntax() -> None:
    terms = query_terms('Write the C++ vs. "Rust": NEAR(x) * AND tool_kit')
    assert terms == ["vs", "rust", "near", "tool_kit"]  # "and" is a stopword here
    assert fts_query(["a1", "b2"]) == '"a1" OR "b2"'
    assert query_terms("write the a") == []


# --- index and search -----------------------------------------------------------------------


def test_index_run_is_idempotent_and_replaces_a_changed_run(kb: KnowledgeBase) -> None:
    assert kb.count() == (3, 6)
    assert kb.index_run(CORPUS[0]) == 0  # same record: nothing written
    assert kb.count() == (3, 6)
    changed = record("run-bees", "Explain how honeybees communicate",
                     ["Bees also use trophallaxis."])
    assert kb.index_run(changed) == 1
    assert kb.count() == (3, 5)
    assert kb.search("waggle dance") == []  # the old outputs are gone from the index
    assert kb.search("trophallaxis")[0].run_id == "run-bees"


def test_search_ranks_the_relevant_run_first_one_hit_per_run(kb: KnowledgeBase) -> None:
    hits = kb.search("How do bees tell each other where nectar is?", k=3)
    assert hits[0].run_id == "run-bees"
    assert len({h.run_id for h in hits}) == len(hits)
    assert "[nectar]" in hits[0].snippet or "[bees]" in hits[0].snippet.lower()
    assert kb.search("matcha sencha")[0].run_id == "run-tea"
    assert [h.run_id for h in kb.search("goroutines garbage collector", k=1)] == ["run-rust"]
    assert kb.search("volcano eruption") == []


def test_kb_file_is_private_and_search_never_creates_it(tmp_path: Path,
                                                        kb: KnowledgeBase) -> None:
    assert stat.S_IMODE(kb.path.stat().st_mode) == 0o600
    assert stat.S_IMODE(kb.path.parent.stat().st_mode) == 0o700
    absent = KnowledgeBase(tmp_path / "nowhere" / "kb.sqlite3")
    assert absent.search("bees") == [] and absent.count() == (0, 0)
    assert not (tmp_path / "nowhere").exists()


def test_default_path_is_in_the_sessions_folder(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    assert kb_path() == tmp_path / "sessions" / "knowledge.sqlite3"
    monkeypatch.setenv("AGENTIC_KB_PATH", str(tmp_path / "elsewhere.db"))
    assert kb_path() == tmp_path / "elsewhere.db"


def test_secrets_are_masked_before_indexing(tmp_path: Path) -> None:
    secret = "sk-test-very-secret-4242"
    register_values([secret])
    try:
        base = KnowledgeBase(tmp_path / "kb.sqlite3")
        base.index_run(record("run-leak", f"use key {secret}", [f"The key is {secret}."]))
    finally:
        clear_registry()
    raw = b"".join(p.read_bytes() for p in tmp_path.glob("kb.sqlite3*"))
    assert secret.encode() not in raw
    hit = base.search("key")[0]
    assert "***" in hit.text and "***" in hit.goal


def test_concurrent_indexing_loses_nothing(tmp_path: Path) -> None:
    base = KnowledgeBase(tmp_path / "kb.sqlite3")
    errors: list[BaseException] = []

    def index(n: int) -> None:
        try:
            base.index_run(record(f"run-{n}", f"goal number {n}", [f"output {n} zebra"]))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=index, args=(n,)) for n in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert base.count() == (12, 12)
    assert len(base.search("zebra", k=20)) == 12


def test_a_file_that_is_not_a_knowledge_base_is_one_clear_error(tmp_path: Path) -> None:
    bogus = tmp_path / "kb.sqlite3"
    bogus.write_text("not a database at all " * 100)
    with pytest.raises(ConfigError, match=r"knowledge base .*kb\.sqlite3"):
        KnowledgeBase(bogus).search("bees")
    assert index_finished_run(CORPUS[0], kb=KnowledgeBase(bogus)) == 0  # logged, not raised


# --- planner context ------------------------------------------------------------------------


def test_planner_context_is_bounded_and_names_its_runs(kb: KnowledgeBase) -> None:
    long_answer = "Honeybees dance. " + "The waggle dance encodes distance. " * 200
    kb.index_run(record("run-long", "How honeybees dance", [long_answer]))
    context = planner_context("How do honeybees use the waggle dance?", kb=kb, budget=500)
    assert 0 < len(context.text) <= 500
    assert context.run_ids and set(context.run_ids) <= {"run-bees", "run-long"}
    assert "waggle" in context.text
    assert planner_context("honeybees waggle", kb=kb, budget=0).text == ""


def test_planner_context_leaves_out_runs_sharing_one_word(kb: KnowledgeBase) -> None:
    # "tools" is in the Rust run's goal, but one shared word is no sign of relevance.
    assert planner_context("Gardening tools for a balcony", kb=kb).run_ids == []


def test_format_context_shows_fewer_runs_rather_than_useless_excerpts(
        kb: KnowledgeBase) -> None:
    hits = kb.search("bees tea rust go green", k=3)
    assert len(hits) == 3
    tight = format_context(hits, budget=300)
    assert len(tight.run_ids) == 1 and len(tight.text) <= 300
    assert format_context(hits, budget=50).text == ""


def test_kb_off_gives_nothing_and_indexes_nothing(kb: KnowledgeBase,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENTIC_KB", "0")
    assert planner_context("honeybees waggle dance", kb=kb).text == ""
    assert index_finished_run(record("run-new", "new goal", ["new output"]), kb=kb) == 0
    assert kb.count() == (3, 6)


def test_planner_prompt_gets_past_results_and_plan_records_them(
        fake_config: Path, scripted_llm: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    KnowledgeBase().index_run(CORPUS[0])
    scripted_llm.enqueue(json.dumps(PLAN), json.dumps(PLAN))
    planner = DynamicPlanner(load_catalog())
    config = planner.plan("How do honeybees communicate with a dance?")
    prompt = last_user_text(scripted_llm.requests[-1])
    assert "Past goal \"Explain how honeybees communicate\"" in prompt
    assert prompt.index("waggle dance") < prompt.index("Rules:")
    assert config.kb_context == ["run-bees"]

    monkeypatch.setenv("AGENTIC_KB", "0")
    config = planner.plan("How do honeybees communicate with a dance?")
    assert "waggle" not in last_user_text(scripted_llm.requests[-1])
    assert config.kb_context is None


def test_broken_kb_never_stops_planning(fake_config: Path, scripted_llm: Any,
                                        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bogus = tmp_path / "broken.sqlite3"
    bogus.write_bytes(b"\0garbage" * 64)
    monkeypatch.setenv("AGENTIC_KB_PATH", str(bogus))
    scripted_llm.enqueue(json.dumps(PLAN))
    config = DynamicPlanner(load_catalog()).plan("honeybees")
    assert len(config.steps) == 2 and config.kb_context is None


# --- the CLI --------------------------------------------------------------------------------


@pytest.mark.backend_inprocess
@pytest.mark.filterwarnings("ignore::ImportWarning")
def test_a_run_is_indexed_searchable_and_feeds_the_next_plan(
        fake_config: Path, scripted_llm: Any, tmp_path: Path, capsys: Any) -> None:
    scripted_llm.enqueue(json.dumps(PLAN))
    scripted_llm.add_rule(r"Collect facts", "Oolong tea is partly oxidised, between green "
                                            "and black.")
    scripted_llm.add_rule(r"Write the answer", "Oolong: a partly oxidised tea from Fujian.")
    assert main(["--dynamic", "Tell me about oolong tea", "--no-router"]) == 0
    (first_record,) = list_sessions()
    first = first_record.to_dict()
    assert KnowledgeBase().count() == (1, 2)
    capsys.readouterr()

    assert main(["--kb-search", "oxidised oolong"]) == 0
    out = capsys.readouterr().out
    assert f"run {first['run_id']}" in out and "goal: Tell me about oolong tea" in out

    scripted_llm.enqueue(json.dumps(PLAN))
    assert main(["--dynamic", "How is oolong tea made?", "--no-router", "--quiet"]) == 0
    planner_request = next(r for r in reversed(scripted_llm.requests)
                           if "Plan the work" in last_user_text(r))
    assert "partly oxidised tea from Fujian" in last_user_text(planner_request)
    second = next(r.to_dict() for r in list_sessions() if r.run_id != first["run_id"])
    assert second["plan"]["kb_context"] == [first["run_id"]]
    assert KnowledgeBase().count()[0] == 2


def test_kb_search_bad_input_and_empty_kb(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                          capsys: Any) -> None:
    assert main(["--kb-search", "the a"]) == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert err.startswith("error: --kb-search") and err.count("\n") == 1
    assert main(["--kb-search", "bees"]) == 0
    assert "knowledge base is empty" in capsys.readouterr().out
    bogus = tmp_path / "bogus.sqlite3"
    bogus.write_text("plain text, not SQLite " * 50)
    monkeypatch.setenv("AGENTIC_KB_PATH", str(bogus))
    assert main(["--kb-search", "bees"]) == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert err.startswith("error: knowledge base") and "Traceback" not in err


def test_sqlite_has_fts5() -> None:
    """The default backend needs no package: this Python's SQLite must carry FTS5."""
    conn = sqlite3.connect(":memory:")
    conn.execute("CREATE VIRTUAL TABLE t USING fts5(x)")
    conn.close()
