"""Reading catalog YAML into pydantic models with errors that name file, id and field."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from agentic_orchestration.errors import CatalogError, from_validation_error

M = TypeVar("M", bound=BaseModel)

YAML_SUFFIXES = (".yaml", ".yml")


def yaml_files(path: Path) -> list[Path]:
    """A file as itself, a folder as its *.yaml/*.yml files in name order."""
    if path.is_dir():
        return sorted(p for p in path.iterdir() if p.suffix in YAML_SUFFIXES and p.is_file())
    if path.is_file():
        return [path]
    raise CatalogError("no such file or folder", file=str(path))


def read_yaml(path: Path) -> Any:
    import yaml

    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise CatalogError(f"cannot read: {exc.strerror}", file=str(path)) from None
    except UnicodeDecodeError as exc:
        raise CatalogError(f"not UTF-8 text (byte {exc.start})", file=str(path)) from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        # PyYAML's own text spans lines ("in <unicode string>, position 0"): one is enough.
        problem = getattr(exc, "problem", None) or (str(exc).strip().splitlines() or [""])[0]
        problem = " ".join(str(problem).split()) or type(exc).__name__
        raise CatalogError(f"malformed YAML{where}: {problem}", file=str(path)) from None
    except RecursionError:
        raise CatalogError("malformed YAML: nested too deeply", file=str(path)) from None


def entries_of(data: Any, path: Path) -> list[dict[str, Any]]:
    """A file holds one entry (a mapping) or a list of entries."""
    if data is None:
        return []
    items = data if isinstance(data, list) else [data]
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            raise CatalogError(
                f"entry #{index + 1} is a {type(item).__name__}, expected a mapping",
                file=str(path),
            )
    return items


def validate_entry(model: type[M], raw: dict[str, Any], path: Path) -> M:
    entry_id = raw.get("id") if isinstance(raw.get("id"), str) else None
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        field, _, message = from_validation_error(exc).partition(": ")
        raise CatalogError(message, file=str(path), entry_id=entry_id, field=field) from None


def load_entries(paths: Iterable[Path], model: type[M]) -> dict[str, M]:
    """Load every entry of every file; a duplicate id is an error naming both files."""
    entries: dict[str, M] = {}
    origin: dict[str, Path] = {}
    for base in paths:
        for path in yaml_files(base):
            for raw in entries_of(read_yaml(path), path):
                entry = validate_entry(model, raw, path)
                entry_id = entry.id  # type: ignore[attr-defined]
                if entry_id in entries:
                    raise CatalogError(
                        f"duplicate id (first defined in {origin[entry_id]})",
                        file=str(path), entry_id=entry_id, field="id",
                    )
                entries[entry_id] = entry
                origin[entry_id] = path
    return entries
