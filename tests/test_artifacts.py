"""Named code blocks become files under the run's folder, and nothing escapes that folder."""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath

import pytest

from agentic_orchestration.orchestration.backends.base import (
    StepResult,
    WorkflowExecutionResult,
)
from agentic_orchestration.output import (
    artifacts_dir_for,
    extract_files,
    extractable_text_from_execution,
    offer_save_extracted_files_from_execution,
    safe_relative_path,
    save_extracted_files,
)


def _files_under(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


# --- extraction -----------------------------------------------------------------------------

NAMED_FORMS = [
    ("```python main.py\nprint(1)\n```", "main.py", "python"),
    ("```main.py\nprint(1)\n```", "main.py", ""),
    ('```python title="main.py"\nprint(1)\n```', "main.py", "python"),
    ("```python filename=main.py\nprint(1)\n```", "main.py", "python"),
    ("```python:main.py\nprint(1)\n```", "main.py", "python"),
    ("```python\n# file: main.py\nprint(1)\n```", "main.py", "python"),
    ("```python\n# main.py\nprint(1)\n```", "main.py", "python"),
    ("```js\n// filename: main.py\nprint(1)\n```", "main.py", "js"),
    ("```html\n<!-- file: main.py -->\nprint(1)\n```", "main.py", "html"),
    ("```css\n/* file: main.py */\nprint(1)\n```", "main.py", "css"),
    ("**main.py**\n```python\nprint(1)\n```", "main.py", "python"),
    ("File: main.py\n```python\nprint(1)\n```", "main.py", "python"),
    ("**File:** `main.py`\n\n```python\nprint(1)\n```", "main.py", "python"),
    ("`main.py`:\n```python\nprint(1)\n```", "main.py", "python"),
    ("### main.py\n```python\nprint(1)\n```", "main.py", "python"),
    ("~~~python main.py\nprint(1)\n~~~", "main.py", "python"),
]


@pytest.mark.parametrize(("text", "name", "language"), NAMED_FORMS)
def test_every_naming_form_is_extracted(text: str, name: str, language: str) -> None:
    files = extract_files("Here you go.\n\n" + text + "\n\nDone.")
    assert [(f.name, f.content, f.language) for f in files] == [(name, "print(1)\n", language)]


def test_nested_path_in_info_string() -> None:
    [found] = extract_files('```python title="src/pkg/app.py"\nx = 1\n```')
    assert found.name == "src/pkg/app.py"


def test_unnamed_and_unclosed_blocks_are_ignored() -> None:
    text = (
        "```python\nprint('no name')\n```\n"
        "```python 3.11\nversion, not a name\n```\n"
        "```python\n# compute the total\nx = 1\n```\n"
        "Here is main.py:\n```python\nprose around a name is not a name\n```\n"
        "```python cut.py\nreply cut off at the token lim"
    )
    assert extract_files(text) == []


def test_fence_inside_longer_fence_stays_content() -> None:
    text = "````markdown README.md\n# Title\n```python\nx = 1\n```\n````\n"
    [found] = extract_files(text)
    assert found.name == "README.md"
    assert found.content == "# Title\n```python\nx = 1\n```\n"


def test_indented_block_in_list_is_dedented_and_shebang_kept() -> None:
    text = "1. `run.sh`\n   ```sh\n   #!/bin/sh\n   echo hi\n   ```\n"
    [found] = extract_files(text)
    assert (found.name, found.content) == ("run.sh", "#!/bin/sh\necho hi\n")


def test_comment_after_shebang_names_the_file_and_is_dropped() -> None:
    [found] = extract_files("```sh\n#!/bin/sh\n# file: run.sh\necho hi\n```")
    assert (found.name, found.content) == ("run.sh", "#!/bin/sh\necho hi\n")


def test_closing_fence_of_previous_block_is_not_a_name() -> None:
    text = "```python a.py\nx\n```\n```python\nunnamed\n```"
    assert [f.name for f in extract_files(text)] == ["a.py"]


# --- safe names -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "expected"),
    [("main.py", "main.py"), ("./src//app.py", "src/app.py"), ("a/b/c.txt", "a/b/c.txt"),
     (" spaced.py ", "spaced.py"), (".gitignore", ".gitignore")],
)
def test_safe_names_are_normalised(name: str, expected: str) -> None:
    assert safe_relative_path(name) == PurePosixPath(expected)


@pytest.mark.parametrize(
    "name",
    ["../x", "/etc/passwd", "a/../../b", "a/..", "C:\\x", "C:x.py", "..\\x", "a\\b.py",
     "a\x00b.py", "a\nb.py", "", "   ", ".", "./", "~/x.py", "x" * 600, "d/" + "y" * 300,
     "a/ b /c.py"],
)
def test_unsafe_names_are_refused(name: str) -> None:
    assert safe_relative_path(name) is None


def test_artifacts_dir_for_uses_setting_and_rejects_unsafe_run_ids(tmp_path: Path) -> None:
    assert artifacts_dir_for("run-1") == tmp_path / "artifacts" / "run-1"
    for bad in ("../run", "a/b", "", "/abs"):
        with pytest.raises(ValueError, match="run id"):
            artifacts_dir_for(bad)


# --- saving ---------------------------------------------------------------------------------


def test_save_writes_files_with_mime_types(tmp_path: Path) -> None:
    out = tmp_path / "artifacts" / "r1"
    text = ("```python src/main.py\nprint(1)\n```\n```ts\n// file: web/app.ts\nlet a = 1\n```\n"
            "```text notes.unknownext\nhi\n```")
    refs = save_extracted_files(text, out)
    assert [(r.relative_path, r.mime) for r in refs] == [
        ("src/main.py", "text/x-python"),
        ("web/app.ts", "text/x-typescript"),
        ("notes.unknownext", "text/plain"),
    ]
    assert (out / "src" / "main.py").read_text() == "print(1)\n"
    assert (out / "web" / "app.ts").read_text() == "let a = 1\n"
    assert refs.refused == [] and refs.replaced == []
    assert not [p for p in out.rglob(".*.tmp")]


def test_unsafe_names_are_refused_and_nothing_lands_outside(tmp_path: Path) -> None:
    out = tmp_path / "artifacts" / "r1"
    outside_before = _files_under(tmp_path)
    absolute = tmp_path / "abs.py"
    text = "\n".join([
        "```python\n# file: ../escape.py\nx\n```",
        f'```python filename="{absolute}"\nx\n```',
        "```python\n# file: a/../../escape2.py\nx\n```",
        "```python\n# file: C:\\evil.py\nx\n```",
        "```python\n# file: ..\\evil.py\nx\n```",
        "```python\n# file: nul\x00.py\nx\n```",
        "```python ok.py\nfine\n```",
    ])
    refs = save_extracted_files(text, out)
    assert [r.relative_path for r in refs] == ["ok.py"]
    assert len(refs.refused) == 6
    assert all(r.reason for r in refs.refused)
    assert not absolute.exists()
    assert _files_under(tmp_path) - outside_before == {
        "artifacts", "artifacts/r1", "artifacts/r1/ok.py"
    }


def test_symlinked_folder_escaping_the_run_folder_is_refused(tmp_path: Path) -> None:
    out = tmp_path / "artifacts" / "r1"
    outside = tmp_path / "outside"
    outside.mkdir()
    out.mkdir(parents=True)
    (out / "link").symlink_to(outside, target_is_directory=True)
    refs = save_extracted_files("```python link/evil.py\nx\n```\n"
                                "```python link/deeper/evil.py\nx\n```", out)
    assert list(refs) == []
    assert [r.name for r in refs.refused] == ["link/evil.py", "link/deeper/evil.py"]
    assert list(outside.iterdir()) == []


def test_symlinked_file_escaping_the_run_folder_is_refused(tmp_path: Path) -> None:
    out = tmp_path / "artifacts" / "r1"
    out.mkdir(parents=True)
    victim = tmp_path / "victim.txt"
    victim.write_text("original")
    (out / "main.py").symlink_to(victim)
    refs = save_extracted_files("```python main.py\noverwritten\n```", out)
    assert list(refs) == [] and len(refs.refused) == 1
    assert victim.read_text() == "original"


def test_run_folder_itself_a_symlink_is_followed_once(tmp_path: Path) -> None:
    """The run folder may be a link (e.g. onto a bigger disk); only names inside are checked."""
    real = tmp_path / "bigdisk"
    real.mkdir()
    (tmp_path / "artifacts").mkdir()
    (tmp_path / "artifacts" / "r1").symlink_to(real, target_is_directory=True)
    refs = save_extracted_files("```python a.py\nx\n```", tmp_path / "artifacts" / "r1")
    assert [r.relative_path for r in refs] == ["a.py"]
    assert (real / "a.py").read_text() == "x\n"


def test_saving_twice_overwrites(tmp_path: Path) -> None:
    out = tmp_path / "artifacts" / "r1"
    save_extracted_files("```python main.py\nv1\n```", out)
    refs = save_extracted_files("```python main.py\nv2\n```", out)
    assert [r.relative_path for r in refs] == ["main.py"]
    assert (out / "main.py").read_text() == "v2\n"
    assert sorted(os.listdir(out)) == ["main.py"]


def test_later_step_version_wins_and_is_reported(tmp_path: Path) -> None:
    out = tmp_path / "artifacts" / "r1"
    refs = save_extracted_files(
        ["```python main.py\nstep1\n```\n```python util.py\nu\n```",
         "```python main.py\nstep2\n```"],
        out,
    )
    assert [r.relative_path for r in refs] == ["main.py", "util.py"]
    assert refs.replaced == ["main.py"]
    assert (out / "main.py").read_text() == "step2\n"


def test_failed_write_is_reported_not_raised(tmp_path: Path) -> None:
    out = tmp_path / "artifacts" / "r1"
    # "a" has no extension, so only the explicit title= form names it.
    text = '```python title="a"\nfile\n```\n```python a/b.py\nunder a file\n```'
    refs = save_extracted_files(text, out)
    assert [r.relative_path for r in refs] == ["a"]
    assert [r.name for r in refs.refused] == ["a/b.py"]


def test_nothing_to_save_creates_no_folder(tmp_path: Path) -> None:
    out = tmp_path / "artifacts" / "r1"
    assert save_extracted_files("no code here", out) == []
    assert not out.exists()


def _execution(run_id: str = "run-42") -> WorkflowExecutionResult:
    steps = [
        StepResult(run_id=run_id, step_id="step_1", result_text="```python a.py\nfirst\n```"),
        StepResult(run_id=run_id, step_id="step_2", result_text=None, exit_code=1),
        StepResult(run_id=run_id, step_id="step_3", result_text="```python a.py\nlast\n```"),
    ]
    return WorkflowExecutionResult(exit_code=0, result_text="final", error=None,
                                   step_results=steps, run_id=run_id, backend="inprocess")


def test_text_from_execution_is_each_step_in_order() -> None:
    assert extractable_text_from_execution(_execution()) == [
        "```python a.py\nfirst\n```", "```python a.py\nlast\n```"
    ]
    bare = WorkflowExecutionResult(exit_code=0, result_text="only", error=None)
    assert extractable_text_from_execution(bare) == ["only"]


def test_offer_save_from_execution_uses_the_run_folder(tmp_path: Path) -> None:
    refs = offer_save_extracted_files_from_execution(_execution())
    assert [r.relative_path for r in refs] == ["a.py"]
    assert (tmp_path / "artifacts" / "run-42" / "a.py").read_text() == "last\n"
