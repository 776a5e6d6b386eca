"""The README stays true: every AGENTIC_* variable documented, quick start commands exist."""

from __future__ import annotations

import re
from pathlib import Path

from agentic_orchestration.settings import ENV_VARS, markdown_table

REPO = Path(__file__).resolve().parent.parent
README = (REPO / "README.md").read_text()
PACKAGE = REPO / "agentic_orchestration"


def test_every_setting_is_in_the_readme_table_with_its_default():
    for var in ENV_VARS:
        row = next((line for line in README.splitlines() if line.startswith(f"| `{var.name}` |")),
                   None)
        assert row is not None, f"{var.name} missing from README"
        assert (f"`{var.default}`" if var.default else "(unset)") in row
        assert var.type_text in row, f"{var.name}: type/range missing from README"


def test_readme_tables_are_generated_from_the_settings():
    # Type, range, default and meaning, row for row: regenerate with
    # `python -m agentic_orchestration.settings` after changing ENV_VARS.
    assert markdown_table() in README
    assert markdown_table(planned=True) in README


def test_code_reads_only_registered_agentic_variables():
    registered = {v.name for v in ENV_VARS}
    used: set[str] = set()
    for path in PACKAGE.rglob("*.py"):
        # Quoted names are reads (settings.get("..."), os.environ["..."]); docstrings that
        # mention spec variables of later phases (``AGENTIC_K8S_...``) are not.
        used |= set(re.findall(r"[\"'](AGENTIC_[A-Z0-9_]+)[\"']", path.read_text()))
    # Names that are not settings: the install cache dir and catalog-referenced vars.
    allowed_extra = {"AGENTIC_FILESYSTEM_ROOT", "AGENTIC_MEMORY_FILE"}
    assert used - registered - allowed_extra == set()


def test_quick_start_commands_exist():
    quick = README.split("## Quick start", 1)[1].split("##", 1)[0]
    commands = [line for line in quick.splitlines() if line.startswith("./")]
    assert len(commands) == 2
    for command in commands:
        script = command.split()[0]
        assert (REPO / script).is_file()
    ci = (REPO / ".ci" / "run").read_text()
    assert "scripts/test.sh" in ci
