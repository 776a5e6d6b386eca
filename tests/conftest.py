"""Shared fixtures: an isolated HOME/env per test, the scripted LLM server, temp catalogs."""

from __future__ import annotations

import logging
import os
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from k8s_support import k8s_cluster  # noqa: F401  (session fixture: the local test cluster)
from step_helpers import web_page  # noqa: F401  (fixture: a page on loopback for fetch_url)

from agentic_orchestration.providers.local_model import local_model_path, stop_local_server
from agentic_orchestration.testing import ScriptedLLMServer

REPO = Path(__file__).resolve().parent.parent

#: Secrets and switches a developer's shell may carry that would change what tests see.
_LEAKY = ("OPENAI_API_KEY", "HF_TOKEN", "OLLAMA_HOST", "BRAVE_API_KEY", "TAVILY_API_KEY",
          "EXA_API_KEY", "HOME_ASSISTANT_URL", "HOME_ASSISTANT_TOKEN")


@pytest.fixture(autouse=True)
def isolated_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Each test gets its own HOME (CrewAI writes there), no AGENTIC_* and no API keys."""
    home = tmp_path / "home"
    home.mkdir()
    for name in list(os.environ):
        if name.startswith("AGENTIC_") or name in _LEAKY:
            monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_DATA_HOME", str(home / ".local" / "share"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(home / ".cache"))
    monkeypatch.setenv("AGENTIC_SESSIONS_PATH", str(tmp_path / "sessions"))
    monkeypatch.setenv("AGENTIC_ARTIFACTS_PATH", str(tmp_path / "artifacts"))
    monkeypatch.setenv("CREWAI_DISABLE_TELEMETRY", "true")
    monkeypatch.setenv("OTEL_SDK_DISABLED", "true")
    monkeypatch.setenv("CREWAI_DISABLE_VERSION_CHECK", "true")
    return home


@pytest.fixture(autouse=True)
def restored_logging() -> Iterator[None]:
    """Put the root logger back as it was: ``main()`` installs a handler on the stream of
    the test that called it, which a later test's background thread must not write to."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.fixture
def scripted_llm() -> Iterator[ScriptedLLMServer]:
    with ScriptedLLMServer() as server:
        yield server


def write_catalog(root: Path, *, base_url: str, agents: str | None = None,
                  mcps: str = "", workflows: dict[str, str] | None = None) -> Path:
    """A config dir whose agents are `openai` type pointing at ``base_url`` (the fake)."""
    (root / "agent_providers").mkdir(parents=True, exist_ok=True)
    (root / "mcp_providers").mkdir(parents=True, exist_ok=True)
    (root / "workflows").mkdir(parents=True, exist_ok=True)
    if agents is None:
        agents = textwrap.dedent(f"""\
            - id: fake_researcher
              type: openai
              model: fake-model
              openai_base_url: {base_url}
              role: Researcher
              goal: Find facts.
              backstory: Careful.
              planner_hint: research
              priority: 10
            - id: fake_writer
              type: openai
              model: fake-model
              openai_base_url: {base_url}
              role: Writer
              goal: Write text.
              backstory: Clear.
              planner_hint: writing
              priority: 11
            """)
    (root / "agent_providers" / "agents.yaml").write_text(agents)
    (root / "mcp_providers" / "mcps.yaml").write_text(mcps)
    for name, text in (workflows or {}).items():
        (root / "workflows" / f"{name}.yaml").write_text(textwrap.dedent(text))
    return root


@pytest.fixture
def fake_config(tmp_path: Path, scripted_llm: ScriptedLLMServer,
                monkeypatch: pytest.MonkeyPatch) -> Path:
    """AGENTIC_CONFIG_DIR pointing at a temp catalog whose agents talk to ``scripted_llm``."""
    root = write_catalog(tmp_path / "config", base_url=scripted_llm.base_url)
    monkeypatch.setenv("AGENTIC_CONFIG_DIR", str(root))
    return root


@pytest.fixture(scope="session")
def bundled_model_path() -> Path:
    """The GGUF, assembled once under the real HOME.

    Session fixtures are set up before the function-scoped ``isolated_env`` patches HOME,
    so this does not assemble 253 MB into every test's temp home.
    """
    return local_model_path()


@pytest.fixture
def local_model(isolated_env: Path, bundled_model_path: Path,
                monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Point the provider at the session's GGUF; stop the process-wide server afterwards.

    One thread: on a shared 2-core box llama.cpp's spinning worker threads collapse from
    ~45 to ~5 tokens/s as soon as anything else uses a core, and tests run beside other work.
    """
    monkeypatch.setenv("AGENTIC_LOCAL_MODEL_PATH", str(bundled_model_path))
    monkeypatch.setenv("AGENTIC_LOCAL_THREADS", "1")
    yield bundled_model_path
    stop_local_server()
