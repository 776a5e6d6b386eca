"""A one-agent catalog pointing at a scripted LLM server, for benchmarks and ad-hoc runs.

The benchmarks all need the same thing: ``AGENTIC_CONFIG_DIR`` with one ``openai`` agent
(``fake_writer``) whose ``openai_base_url`` is a ``ScriptedLLMServer``.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

__all__ = ["write_writer_catalog"]


def write_writer_catalog(config_dir: Path, base_url: str) -> Path:
    """Create ``config_dir`` (agents, MCPs, workflows folders) with agent ``fake_writer``
    talking to ``base_url``; returns ``config_dir``."""
    for sub in ("agent_providers", "mcp_providers", "workflows"):
        (config_dir / sub).mkdir(parents=True)
    (config_dir / "agent_providers" / "a.yaml").write_text(textwrap.dedent(f"""\
        - id: fake_writer
          type: openai
          model: fake-model
          openai_base_url: {base_url}
          role: Writer
          goal: Write.
          backstory: Clear.
        """))
    return config_dir
