"""Static workflows: ``config/workflows/*.yaml``, one workflow per file.

A workflow's ``name`` defaults to its file name (without suffix). ``--workflow`` takes such a
name or a path to any workflow YAML file.
"""

from __future__ import annotations

from pathlib import Path

from agentic_orchestration import settings
from agentic_orchestration.catalogs._yaml import YAML_SUFFIXES, read_yaml, validate_entry
from agentic_orchestration.catalogs.models import WorkflowConfig
from agentic_orchestration.errors import CatalogError

__all__ = ["load_workflow", "load_workflows"]


def _workflows_dir(config_dir: Path | None = None) -> Path:
    return (config_dir or settings.config_dir()) / "workflows"


def _load_workflow_file(path: Path) -> WorkflowConfig:
    data = read_yaml(path)
    if not isinstance(data, dict):
        raise CatalogError("a workflow file must hold one mapping", file=str(path))
    data = {"name": path.stem, **data}
    workflow = validate_entry(WorkflowConfig, data, path)
    workflow._source_file = str(path)
    return workflow


def load_workflows(config_dir: Path | None = None) -> dict[str, WorkflowConfig]:
    """Every static workflow by name; two files with one name is an error."""
    folder = _workflows_dir(config_dir)
    workflows: dict[str, WorkflowConfig] = {}
    if not folder.is_dir():
        return workflows
    for path in sorted(p for p in folder.iterdir() if p.suffix in YAML_SUFFIXES):
        workflow = _load_workflow_file(path)
        if workflow.name in workflows:
            raise CatalogError("duplicate workflow name", file=str(path),
                               entry_id=workflow.name, field="name")
        workflows[workflow.name] = workflow
    return workflows


def load_workflow(name_or_path: str, config_dir: Path | None = None) -> WorkflowConfig:
    """A workflow by catalog name, or from a YAML file path."""
    candidate = Path(name_or_path)
    if candidate.suffix in YAML_SUFFIXES or candidate.is_file():
        if not candidate.is_file():
            raise CatalogError("workflow file not found", file=name_or_path)
        return _load_workflow_file(candidate)
    workflows = load_workflows(config_dir)
    if name_or_path not in workflows:
        known = ", ".join(sorted(workflows)) or "none"
        raise CatalogError(f"unknown workflow {name_or_path!r} (known: {known})")
    return workflows[name_or_path]
