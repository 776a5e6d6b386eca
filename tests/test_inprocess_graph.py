"""In-process graphs (``backends._crewai_graph``): a failed branch stops only what depends
on it; independent branches finish, as on the distributed backends.

Real CrewAI in this process; the only fake is the LLM's reply (``ScriptedLLMServer``).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from agentic_orchestration.cli.main import main
from agentic_orchestration.sessions.orchestrator_session import list_sessions
from agentic_orchestration.testing import HTTPErrorReply

#: a -> b -> d and a -> c -> e; b fails (401: not recoverable, so no fallback retry).
FLOW = """\
steps:
  - id: a
    agent_provider: fake_researcher
    description: "ALPHA facts about {topic}"
  - id: b
    agent_provider: fake_writer
    depends_on: [a]
    description: "BRAVO angle on {topic}"
  - id: d
    agent_provider: fake_writer
    depends_on: [b]
    description: "DELTA uses the B angle on {topic}"
  - id: c
    agent_provider: fake_writer
    depends_on: [a]
    description: "CHARLIE angle on {topic}"
  - id: e
    agent_provider: fake_writer
    depends_on: [c]
    description: "ECHO uses the C angle on {topic}"
"""


def test_failed_branch_in_process_stops_its_dependents_and_lets_the_rest_finish(
        tmp_path: Path, fake_config: Path, scripted_llm, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("AGENTIC_KB", "0")
    scripted_llm.add_rule(r"ECHO", "Final Answer: text from angle C")
    scripted_llm.add_rule(r"DELTA", "Final Answer: text from angle B")
    scripted_llm.add_rule(r"CHARLIE", "Final Answer: angle C")
    scripted_llm.add_rule(r"BRAVO", HTTPErrorReply(401, "bad key"))
    scripted_llm.add_rule(r"ALPHA", "Final Answer: facts A")
    flow = tmp_path / "branches.yaml"
    flow.write_text(FLOW)

    code = main(["--workflow", str(flow), "the sea"])

    out = capsys.readouterr().out
    assert code == 1, out
    lines = [x for x in out.splitlines() if x.startswith("(progress)")]
    # The graph and the failure as the distributed coordinator shows them.
    assert "(progress) step 5/5 e waits on c" in lines
    assert "(progress) step 3/5 d not run: needs failed step b" in lines
    assert any(x.startswith("(progress) step 2/5 b failed") for x in lines)
    assert any(x.startswith("(progress) step 4/5 c finished") for x in lines), lines
    assert any(x.startswith("(progress) step 5/5 e finished") for x in lines), lines
    texts = scripted_llm.user_texts()
    assert not any("DELTA" in t for t in texts)  # d never ran
    echo = [t for t in texts if "ECHO" in t]
    assert echo and "angle C" in echo[0] and "angle B" not in echo[0]
    assert "=== Final answer ===" not in out
    [record] = list_sessions()
    assert record.status == "failed"
    steps = {s["step_id"]: s for s in record.steps}
    assert set(steps) == {"a", "b", "c", "e"}
    assert steps["b"]["exit_code"] != 0
    assert steps["e"]["exit_code"] == 0 and "text from angle C" in steps["e"]["result_text"]
