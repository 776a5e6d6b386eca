"""Files an agent wrote inside its answer, saved under the run's artifacts folder.

Agents return Markdown; when a fenced code block carries a file name, the user almost always
wants that file on disk. Names come from the LLM, so they are untrusted: each one goes
through ``safe_relative_path`` and the resolved target must stay inside
``{AGENTIC_ARTIFACTS_PATH}/{run_id}/`` (symlinks included) before anything is written.
A refused name is logged and reported, never fatal: the run's answer matters more.

When several steps write the same file, the later step's version wins (it usually revises
the earlier one); each replacement is logged and listed in ``SavedArtifacts.replaced``.

Secret values (``agentic_orchestration.redaction``) are masked in names and contents. Files
keep the user's ordinary mode (0644 before the umask): they are the user's work, unlike the
private run store.
"""

from __future__ import annotations

import logging
import mimetypes
import os
import re
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

from agentic_orchestration import settings
from agentic_orchestration.redaction import redact_text

if TYPE_CHECKING:
    from agentic_orchestration.orchestration.backends.base import (
        ArtifactRef,
        WorkflowExecutionResult,
    )

logger = logging.getLogger(__name__)

#: Longest accepted name (characters) and path component (bytes, Linux NAME_MAX).
MAX_NAME_CHARS = 512
MAX_PART_BYTES = 255
#: ``mimetypes`` guesses by the system table, which calls ``.ts`` an MPEG stream.
_MIME_OVERRIDES = {".ts": "text/x-typescript", ".tsx": "text/x-typescript", ".md": "text/markdown"}

__all__ = [
    "ExtractedFile",
    "RefusedFile",
    "SavedArtifacts",
    "artifacts_dir_for",
    "extract_files",
    "extractable_text_from_execution",
    "offer_save_extracted_files_from_execution",
    "refusal_reason",
    "safe_relative_path",
    "save_extracted_files",
]


# --- finding named code blocks ----------------------------------------------------------


@dataclass(frozen=True)
class ExtractedFile:
    """A fenced code block that names its file. ``language`` is '' when not given."""

    name: str
    content: str
    language: str = ""


_FENCE_OPEN = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})(?P<info>.*)$")
#: A bare word counts as a file name only with an extension starting with a letter, so
#: ``python 3.11`` or ``v1.2`` are not taken for names.
_FILE_LIKE = re.compile(r"^[\w@+\-./]*\.[A-Za-z][\w+\-]{0,15}$")
_INFO_KEY = re.compile(
    r"""\b(?:title|filename|file|name|path)\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s}]+))""", re.I
)
_COMMENT = re.compile(
    r"^\s*(?:\#|//|--|;|%|/\*|<!--|\{\#)\s*(?P<key>(?:file(?:name)?|path)\s*:\s*)?"
    r"(?P<name>.+?)\s*(?:\*/|-->|\#\})?\s*$",
    re.I,
)
_PRECEDING_KEY = re.compile(r"^(?:file(?:name)?|path)\s*:\s*(?P<name>.+)$", re.I)
_LIST_OR_HEADING = re.compile(r"^(?:#{1,6}\s+|[-*+]\s+|\d+[.)]\s+)")


def extract_files(text: str) -> list[ExtractedFile]:
    """Every fenced code block in ``text`` that names a file, in order.

    The name is looked for, in this order, in the info string (```` ```python main.py ````,
    ```` ```main.py ````, ```` ```python:main.py ````, ``title=``/``filename=``), in a first-line
    comment (``# file: main.py``, ``// filename: a.js``, ``<!-- file: x.html -->``; the line is
    dropped from the content), and in the line just before the fence (``**main.py**``,
    ``File: main.py``, ``` `main.py`: ```). Blocks without a name are ignored, and so is an
    unclosed block: it is usually a reply cut off at the token limit, not a whole file.
    Names are returned as written; ``safe_relative_path`` decides whether they are usable.
    """
    lines = text.replace("\r\n", "\n").split("\n")
    files: list[ExtractedFile] = []
    index, prose_start = 0, 0
    while index < len(lines):
        opening = _FENCE_OPEN.match(lines[index])
        if not opening or (opening["fence"][0] == "`" and "`" in opening["info"]):
            index += 1
            continue
        fence, indent = opening["fence"], len(opening["indent"])
        close = _closing_fence(lines, index + 1, fence)
        if close is None:
            logger.info("ignoring an unclosed code block at line %d", index + 1)
            break
        body = [_dedent(line, indent) for line in lines[index + 1 : close]]
        name, language = _name_from_info(opening["info"])
        if name is None:
            name, body = _name_from_comment(body)
        if name is None:
            name = _name_from_preceding(lines[prose_start:index])
        if name:
            content = "\n".join(body) + ("\n" if body else "")
            files.append(ExtractedFile(name=name, content=content, language=language))
        index = prose_start = close + 1
    return files


def _closing_fence(lines: list[str], start: int, fence: str) -> int | None:
    for index in range(start, len(lines)):
        stripped = lines[index].strip()
        if len(stripped) >= len(fence) and set(stripped) == {fence[0]}:
            return index
    return None


def _dedent(line: str, indent: int) -> str:
    """Remove up to the opening fence's indentation (fences inside list items)."""
    removable = len(line) - len(line.lstrip(" \t"))
    return line[min(indent, removable) :]


def _name_from_info(info: str) -> tuple[str | None, str]:
    """(file name or None, language) from a fence's info string."""
    tokens = info.strip().split()
    if not tokens:
        return None, ""
    first = tokens[0]
    keyed = _INFO_KEY.search(info)
    if keyed:
        name = next(group for group in keyed.groups() if group is not None)
        return name.strip() or None, "" if "=" in first else first.strip("{.}")
    language, _, after_colon = first.partition(":")
    if after_colon and language.isalnum() and _FILE_LIKE.match(after_colon):
        return after_colon, language
    if _FILE_LIKE.match(first):
        return first, ""
    if len(tokens) > 1 and _FILE_LIKE.match(tokens[1]):
        return tokens[1], first
    return None, first.strip("{.}")


def _name_from_comment(body: list[str]) -> tuple[str | None, list[str]]:
    """A name from the first line's comment (the second after a shebang), and the body
    without that line."""
    at = 1 if body and body[0].startswith("#!") else 0
    if len(body) <= at:
        return None, body
    match = _COMMENT.match(body[at])
    if not match:
        return None, body
    name = match["name"].strip()
    if not match["key"] and not _FILE_LIKE.match(name):
        return None, body  # an ordinary comment, not a file name
    return name, body[:at] + body[at + 1 :]


def _name_from_preceding(prose: list[str]) -> str | None:
    """A name from the last non-blank line before the fence (one blank line allowed)."""
    candidates = [line for line in prose[-2:] if line.strip()]
    if not candidates:
        return None
    text = _undecorate(_LIST_OR_HEADING.sub("", candidates[-1].strip()))
    keyed = _PRECEDING_KEY.match(text)
    if keyed:  # "File: x" is explicit, so any name is taken (and checked later)
        return _undecorate(keyed["name"]) or None
    return text if _FILE_LIKE.match(text) else None


def _undecorate(text: str) -> str:
    """``**`main.py`**:`` -> ``main.py``: Markdown emphasis, code marks, a trailing colon."""
    text = text.replace("**", "").replace("`", "").strip().rstrip(":").strip()
    if len(text) > 4 and text.startswith("__") and text.endswith("__"):
        text = text[2:-2]
    elif len(text) > 2 and text[0] == text[-1] and text[0] in "*_":
        text = text[1:-1]
    return text.strip()


# --- saving -------------------------------------------------------------------------------


@dataclass(frozen=True)
class RefusedFile:
    """A file that was not written, and why (shown to the user, logged as a warning)."""

    name: str
    reason: str


class SavedArtifacts(list["ArtifactRef"]):
    """The refs written (a plain list for callers that only want those), plus what was not.

    Attributes:
        refused: names refused as unsafe or that failed to write.
        replaced: relative paths written more than once; the last version is on disk.
    """

    def __init__(self) -> None:
        super().__init__()
        self.refused: list[RefusedFile] = []
        self.replaced: list[str] = []


def refusal_reason(name: str) -> str | None:
    """Why ``name`` cannot be a path inside the artifacts folder, or None when it can."""
    if not isinstance(name, str) or not name.strip():
        return "empty name"
    if len(name) > MAX_NAME_CHARS:
        return f"name longer than {MAX_NAME_CHARS} characters"
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in name):
        return "control character (NUL, newline, ...) in name"
    if "\\" in name:
        return "backslash in name (Windows path or escape trick)"
    if ":" in name:
        return "':' in name (drive letter or alternate stream)"
    stripped = name.strip()
    if stripped.startswith(("/", "~")):
        return "absolute path"
    parts = [p for p in stripped.split("/") if p not in ("", ".")]
    if not parts:
        return "empty name"
    for part in parts:
        if part == "..":
            return "'..' component"
        if part != part.strip():
            return "path component with leading or trailing spaces"
        if len(part.encode("utf-8")) > MAX_PART_BYTES:
            return f"path component longer than {MAX_PART_BYTES} bytes"
    return None


def safe_relative_path(name: str) -> PurePosixPath | None:
    """``name`` as a normalised relative path, or None when it could leave the folder.

    Refuses absolute paths, ``..`` components, empty names, drive letters and backslashes,
    control characters (NUL) and over-long names. ``./a//b`` becomes ``a/b``.
    """
    if refusal_reason(name) is not None:
        return None
    return PurePosixPath(*[p for p in name.strip().split("/") if p not in ("", ".")])


def artifacts_dir_for(run_id: str) -> Path:
    """``{AGENTIC_ARTIFACTS_PATH}/{run_id}``; the run id must be one safe path component."""
    rel = safe_relative_path(run_id)
    if rel is None or len(rel.parts) != 1:
        raise ValueError(f"run id {run_id!r} cannot name an artifacts folder")
    root = settings.get_path("AGENTIC_ARTIFACTS_PATH")
    assert root is not None  # the variable has a non-empty default
    return root / rel


def extractable_text_from_execution(result: WorkflowExecutionResult) -> list[str]:
    """Each step's ``result_text`` in step order (the final text if no step reported)."""
    texts = [s.result_text for s in result.step_results if s.result_text]
    if not texts and result.result_text:
        texts = [result.result_text]
    return texts


def save_extracted_files(
    texts_or_execution_result: str | Iterable[str] | WorkflowExecutionResult,
    artifacts_dir: Path | str | None = None,
) -> SavedArtifacts:
    """Write every named code block found in the texts under ``artifacts_dir``.

    Args:
        texts_or_execution_result: one text, texts in step order, or a run's result.
        artifacts_dir: the run's folder; default ``artifacts_dir_for(result.run_id)``
            (required when plain texts are given).

    Returns:
        One ``ArtifactRef`` per file on disk (relative to ``artifacts_dir``), in first-seen
        order, with ``.refused`` and ``.replaced`` filled in. Nothing is raised for a bad
        name or a failed write; the folder is only created when there is a file to save.
    """
    source = texts_or_execution_result
    if isinstance(source, str):
        texts: list[str] = [source]
    elif hasattr(source, "step_results"):
        texts = extractable_text_from_execution(source)
        if artifacts_dir is None:
            artifacts_dir = artifacts_dir_for(source.run_id)
    else:
        texts = list(source)
    if artifacts_dir is None:
        raise ValueError("artifacts_dir is required when saving plain texts")

    # Later versions replace earlier ones; keep the first-seen order for the report.
    latest: dict[PurePosixPath, ExtractedFile] = {}
    saved = SavedArtifacts()
    for text in texts:
        for extracted in extract_files(text):
            # An LLM may echo a key into a file: names and contents are masked like any
            # other output (agentic_orchestration.redaction).
            extracted = ExtractedFile(name=redact_text(extracted.name),
                                      content=redact_text(extracted.content),
                                      language=extracted.language)
            rel = safe_relative_path(extracted.name)
            if rel is None:
                _refuse(saved, extracted.name, refusal_reason(extracted.name) or "unsafe name")
                continue
            if rel in latest:
                logger.info("%s appears again; the later version replaces the earlier one", rel)
                saved.replaced.append(rel.as_posix())
            latest[rel] = extracted
    if not latest:
        return saved

    base = Path(artifacts_dir)
    base.mkdir(parents=True, exist_ok=True)
    base_real = base.resolve(strict=True)
    for rel, extracted in latest.items():
        try:
            ref = _write_inside(base_real, rel, extracted.content)
        except OSError as exc:
            _refuse(saved, extracted.name, f"could not write: {exc.strerror or exc}")
            continue
        if ref is None:
            _refuse(saved, extracted.name, "resolves outside the artifacts folder (symlink)")
        else:
            saved.append(ref)
    if saved:
        logger.info("saved %d file(s) under %s", len(saved), base)
    return saved


def offer_save_extracted_files_from_execution(
    result: WorkflowExecutionResult, *, artifacts_dir: Path | str | None = None
) -> SavedArtifacts:
    """The spec's name for saving a run's files: ``save_extracted_files`` on its steps."""
    return save_extracted_files(result, artifacts_dir)


def _refuse(saved: SavedArtifacts, name: str, reason: str) -> None:
    logger.warning("not saving %r: %s", name, reason)
    saved.refused.append(RefusedFile(name=name, reason=reason))


def _inside(path: Path, base_real: Path) -> bool:
    return path == base_real or path.is_relative_to(base_real)


def _write_inside(base_real: Path, rel: PurePosixPath, content: str) -> ArtifactRef | None:
    """Write atomically at ``base_real/rel`` unless a symlink leads it outside (-> None).

    The parent is checked before and after ``mkdir`` (a symlinked folder may already exist),
    and the file is written through a temp file + ``os.replace``, which replaces a final
    symlink instead of following it.
    """
    target = base_real / rel
    if not _inside(target.parent.resolve(), base_real):
        return None
    target.parent.mkdir(parents=True, exist_ok=True)
    parent_real = target.parent.resolve(strict=True)
    if not _inside(parent_real, base_real) or not _inside(target.resolve(), base_real):
        return None
    fd, tmp = tempfile.mkstemp(dir=parent_real, prefix=f".{rel.name[:50]}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            handle.write(content)
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; these are the user's ordinary files
        os.replace(tmp, parent_real / rel.name)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    from agentic_orchestration.orchestration.backends.base import ArtifactRef

    return ArtifactRef(relative_path=rel.as_posix(), mime=_guess_mime(rel))


def _guess_mime(rel: PurePosixPath) -> str:
    override = _MIME_OVERRIDES.get(rel.suffix.lower())
    if override:
        return override
    # Everything here came out of a code block, so text is the honest default.
    return mimetypes.guess_type(rel.name)[0] or "text/plain"
