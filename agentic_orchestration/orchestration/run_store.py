"""The run store: where the coordinator and step workers meet (spec F2.4, K1.8).

Layout under the store root (``AGENTIC_RUN_STORE_PATH``); the first two paths are a contract
with workers and Kubernetes Jobs (the spec's "Run store layout"), the rest is ours::

    {base}/{run_id}/run.json                       run metadata (plan, backend, step ids...)
    {base}/{run_id}/{step_id}-spec.json            StepSpec the worker reads
    {base}/{run_id}/{step_id}/result.json          StepResult of the latest attempt
    {base}/{run_id}/{step_id}/attempts/{n}.json    StepResult of attempt n (n from 1)

Why it is shaped this way:

- Every write is atomic (``_fs``): the coordinator reads ``result.json`` while a worker may
  still be replacing it, possibly over NFS/a PVC, and ``--resume`` trusts what it finds.
- Durable (fsynced) only where ``--resume`` depends on it, once: ``run.json`` and the step's
  final ``result.json``. A killed coordinator or worker loses nothing either way (the data
  is in the page cache); only a power cut can lose a write that was not fsynced, and what
  is not fsynced is rewritten or redone: the spec (written again before every attempt), the
  attempt records (history), the worker's own write of ``result.json`` (``durable=False``:
  the coordinator records it). The coordinator's ``write_result`` of a result the worker
  already wrote exactly so does not write it again: it only fsyncs it, on a background
  thread (``_durable``), so the next step does not wait for the disk. A result lost to a
  power cut is a step that ``--resume`` runs again, with its dependents (their results
  are cleared when a dependency is not trusted).
- ``result.json`` is removed before each attempt (``clear_result``), so a result left by an
  earlier attempt can never be mistaken for the new one; the attempt files keep history.
- Run and step ids become path components, so every path method validates them
  (``validate_id``): nothing can be written outside the store, whatever a plan says.
- Private by default: folders 0700, files 0600 (goals, prior outputs and answers are as
  private as a session). Workers run as the coordinator's user; a store shared with another
  uid (a Kubernetes Job) passes wider ``dir_mode``/``file_mode``. The default root is per
  user, ``{tempdir}/agentic-run-store-{uid}``, and refused when another user owns it.
- Secrets masked: results, attempts and ``run.json`` go through
  ``agentic_orchestration.redaction`` before they are written; in a spec only the free
  text (task, prior output, topic, inputs) is, since its agent and MCP blocks hold env var
  *names*, never secret values, and the worker must read them back unchanged.
"""

from __future__ import annotations

import contextlib
import logging
import re
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from agentic_orchestration._fs import atomic_write_json, json_text, read_json_object
from agentic_orchestration.errors import ConfigError, StepSpecError, from_validation_error
from agentic_orchestration.orchestration._durable import sync_later
from agentic_orchestration.orchestration.backends.base import (
    SCHEMA_VERSION,
    StepResult,
    StepSpec,
)
from agentic_orchestration.orchestration.run_store_setup import (
    DEFAULT_STORE_NAME,
    RunMeta,
    build_run_meta,
    check_default_root,
    default_store_root,
    load_run_meta,
    run_store_from_env,
    run_store_session,
)
from agentic_orchestration.redaction import redact_obj

logger = logging.getLogger(__name__)

__all__ = [
    "ATTEMPTS", "DEFAULT_STORE_NAME", "DIR_MODE", "FILE_MODE", "RESULT", "RUN_META",
    "SPEC_SUFFIX", "FileSystemRunStore", "RunMeta", "RunStore", "build_run_meta",
    "check_default_root", "default_store_root", "load_run_meta", "run_store_from_env",
    "run_store_session", "validate_id",
]

MAX_ID_LENGTH = 128
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
RUN_META = "run.json"
RESULT = "result.json"
SPEC_SUFFIX = "-spec.json"
ATTEMPTS = "attempts"
#: Spec fields holding free text, masked like results (the rest must stay verbatim).
_SPEC_TEXT_FIELDS = ("topic", "task", "prior_output", "inputs")
#: Modes of the store's folders and files: private to the user running the tool.
DIR_MODE = 0o700
FILE_MODE = 0o600


def validate_id(value: str, kind: str) -> str:
    """``value`` if it is safe as one path component of the store, else ``StepSpecError``.

    Rules: non-empty, at most 128 characters, ``^[A-Za-z0-9][A-Za-z0-9._-]*$`` (so no
    separator and no leading dot) and no ``..``. A step id also may not be ``run.json`` or
    end in ``-spec.json``: its folder would collide with the run's own files.
    """
    if not isinstance(value, str) or not value:
        raise StepSpecError(f"invalid {kind} {value!r}: must be a non-empty string")
    if len(value) > MAX_ID_LENGTH:
        raise StepSpecError(
            f"invalid {kind} {value[:40]!r}...: {len(value)} characters (at most {MAX_ID_LENGTH})"
        )
    if not _ID.match(value) or ".." in value:
        raise StepSpecError(
            f"invalid {kind} {value!r}: use letters, digits, '.', '_' and '-', starting with a "
            "letter or digit, without '..'"
        )
    if kind == "step_id" and (value == RUN_META or value.endswith(SPEC_SUFFIX)):
        raise StepSpecError(f"invalid step_id {value!r}: collides with a run store file name")
    return value


class RunStore(ABC):
    """Where step specs, results and run metadata live between coordinator and workers.

    Paths are part of the seam on purpose: a worker is started with the path of its spec
    (``--execute-step {spec_path}``), and the filesystem store is the only one v1 ships.
    """

    @abstractmethod
    def run_dir(self, run_id: str) -> Path: ...

    @abstractmethod
    def spec_path(self, run_id: str, step_id: str) -> Path: ...

    @abstractmethod
    def result_path(self, run_id: str, step_id: str) -> Path: ...

    @abstractmethod
    def write_spec(self, spec: StepSpec) -> Path: ...

    @abstractmethod
    def read_spec(self, run_id: str, step_id: str) -> StepSpec: ...

    @abstractmethod
    def write_result(self, result: StepResult) -> Path: ...

    @abstractmethod
    def read_result(self, run_id: str, step_id: str) -> StepResult | None: ...

    @abstractmethod
    def clear_result(self, run_id: str, step_id: str) -> None: ...

    @abstractmethod
    def write_attempt(self, result: StepResult, attempt: int) -> Path: ...

    @abstractmethod
    def list_attempts(self, run_id: str, step_id: str) -> list[StepResult]: ...

    @abstractmethod
    def write_run_meta(self, run_id: str, meta: dict[str, Any]) -> Path: ...

    @abstractmethod
    def read_run_meta(self, run_id: str) -> dict[str, Any]: ...

    @abstractmethod
    def list_runs(self) -> list[str]: ...


class FileSystemRunStore(RunStore):
    """The run store on a local folder, bind mount, NFS share or Kubernetes PVC."""

    def __init__(self, base: Path | str, *, dir_mode: int = DIR_MODE,
                 file_mode: int = FILE_MODE) -> None:
        self.base = Path(base)
        self.dir_mode = dir_mode
        self.file_mode = file_mode

    def make_dirs(self, folder: Path) -> Path:
        """Create ``folder`` (the store root or a folder inside it) and its missing parents
        inside the store, each with ``dir_mode``; folders above the root get the default."""
        if folder.is_dir():
            return folder
        if folder != self.base and not folder.is_relative_to(self.base):
            raise ValueError(f"{folder} is not inside the run store {self.base}")
        try:
            if not self.base.is_dir():
                self.base.parent.mkdir(parents=True, exist_ok=True)
                with contextlib.suppress(FileExistsError):
                    self.base.mkdir(mode=self.dir_mode)
            current = self.base
            for part in folder.relative_to(self.base).parts:
                current = current / part
                with contextlib.suppress(FileExistsError):
                    current.mkdir(mode=self.dir_mode)
        except OSError as exc:  # read-only, not ours, no such parent: one line, exit 2
            raise ConfigError(f"run store {self.base}: cannot create {folder} "
                              f"({exc.strerror or exc}); set AGENTIC_RUN_STORE_PATH to a "
                              "folder you can write") from None
        return folder

    def _write(self, path: Path, data: Any, *, masked: bool = True,
               durable: bool = True) -> Path:
        """Write one JSON file of the store: folders created private, secrets masked;
        ``durable``: fsynced (only what ``--resume`` depends on; module docstring)."""
        self.make_dirs(path.parent)
        return atomic_write_json(path, redact_obj(data) if masked else data,
                                 mode=self.file_mode, durable=durable)

    def __repr__(self) -> str:
        return f"FileSystemRunStore({str(self.base)!r})"

    # -- paths (every one validates its ids) -------------------------------------------

    def run_dir(self, run_id: str) -> Path:
        return self.base / validate_id(run_id, "run_id")

    def spec_path(self, run_id: str, step_id: str) -> Path:
        return self.run_dir(run_id) / f"{validate_id(step_id, 'step_id')}{SPEC_SUFFIX}"

    def step_dir(self, run_id: str, step_id: str) -> Path:
        return self.run_dir(run_id) / validate_id(step_id, "step_id")

    def result_path(self, run_id: str, step_id: str) -> Path:
        return self.step_dir(run_id, step_id) / RESULT

    def attempt_path(self, run_id: str, step_id: str, attempt: int) -> Path:
        if isinstance(attempt, bool) or not isinstance(attempt, int) or attempt < 1:
            raise ValueError(f"attempt must be an integer >= 1, not {attempt!r}")
        return self.step_dir(run_id, step_id) / ATTEMPTS / f"{attempt}.json"

    def meta_path(self, run_id: str) -> Path:
        return self.run_dir(run_id) / RUN_META

    # -- specs --------------------------------------------------------------------------

    def write_spec(self, spec: StepSpec) -> Path:
        path = self.spec_path(spec.run_id, spec.step_id)
        data = spec.to_dict()
        # Only the free text is masked (prior output may quote a key); the agent entry and
        # MCP blocks hold env var names, and the worker must read them back verbatim.
        data.update(redact_obj({key: data[key] for key in _SPEC_TEXT_FIELDS}))
        self._write(path, data, masked=False, durable=False)  # rewritten every attempt
        logger.debug("run %s: spec of step %s written to %s", spec.run_id, spec.step_id, path)
        return path

    def read_spec(self, run_id: str, step_id: str) -> StepSpec:
        """The spec of a step; ``StepSpecError`` naming the file if missing or invalid."""
        path = self.spec_path(run_id, step_id)
        spec = _read_model(StepSpec, path, run_id=run_id, step_id=step_id)
        if spec is None:
            raise StepSpecError(f"{path}: no step spec for step {step_id!r} of run {run_id!r}")
        return spec

    # -- results ------------------------------------------------------------------------

    def write_result(self, result: StepResult, *, durable: bool = True) -> Path:
        """Write ``result.json``; when it already holds exactly this result (the worker
        wrote it), it is not written again, only made durable in the background.

        ``durable=False``: the worker's own write (the coordinator records it durably).
        """
        path = self.result_path(result.run_id, result.step_id)
        data = redact_obj(result.to_dict())
        if durable and _holds(path, json_text(data)):
            sync_later(path)
            logger.debug("run %s: result of step %s already written (exit %s)",
                         result.run_id, result.step_id, result.exit_code)
            return path
        self._write(path, data, masked=False, durable=durable)
        logger.debug("run %s: result of step %s written (exit %s)",
                     result.run_id, result.step_id, result.exit_code)
        return path

    def read_result(self, run_id: str, step_id: str) -> StepResult | None:
        """The latest result, or ``None`` when the step has none yet.

        Raises:
            StepSpecError: The file exists but is not a valid v0.1 result for this step
                (the message names the file).
        """
        return _read_model(StepResult, self.result_path(run_id, step_id),
                           run_id=run_id, step_id=step_id)

    def clear_result(self, run_id: str, step_id: str) -> None:
        """Remove ``result.json`` before a new attempt, so a stale one is never read as new."""
        path = self.result_path(run_id, step_id)
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
            logger.debug("run %s: cleared previous result of step %s", run_id, step_id)

    def write_attempt(self, result: StepResult, attempt: int) -> Path:
        """Record attempt ``attempt`` (history: not fsynced, ``result.json`` is)."""
        path = self.attempt_path(result.run_id, result.step_id, attempt)
        self._write(path, result.to_dict(), durable=False)
        return path

    def list_attempts(self, run_id: str, step_id: str) -> list[StepResult]:
        """Every recorded attempt of a step, attempt 1 first (numeric order, not by name)."""
        folder = self.step_dir(run_id, step_id) / ATTEMPTS
        if not folder.is_dir():
            return []
        numbered = sorted(
            (int(path.stem), path) for path in folder.glob("*.json") if path.stem.isdigit()
        )
        attempts = (_read_model(StepResult, path, run_id=run_id, step_id=step_id)
                    for _, path in numbered)
        return [result for result in attempts if result is not None]

    # -- run metadata ---------------------------------------------------------------------

    def write_run_meta(self, run_id: str, meta: dict[str, Any]) -> Path:
        """Write ``run.json``; ``schema_version`` and ``run_id`` are filled in when absent."""
        data = {"schema_version": SCHEMA_VERSION, "run_id": run_id, **meta}
        if data["run_id"] != run_id:
            raise StepSpecError(f"run meta names run {data['run_id']!r}, not {run_id!r}")
        path = self.meta_path(run_id)
        self._write(path, data)
        return path

    def read_run_meta(self, run_id: str) -> dict[str, Any]:
        """``run.json`` of a run. ``ConfigError`` when the run is unknown or the file broken."""
        data = read_json_object(self.meta_path(run_id), what="run metadata")
        if data is None:
            raise ConfigError(f"no run {run_id} in run store {self.base}")
        return data

    def list_runs(self) -> list[str]:
        """Run ids in the store, oldest first (generated ids start with a UTC timestamp)."""
        if not self.base.is_dir():
            return []
        runs = []
        for path in self.base.iterdir():
            if not path.is_dir():
                continue
            try:
                runs.append(validate_id(path.name, "run_id"))
            except StepSpecError:
                continue  # not ours (lost+found on a PVC, a dot folder...)
        return sorted(runs)


def _read_model(model: type[StepSpec] | type[StepResult], path: Path, *,
                run_id: str, step_id: str) -> Any:
    """Parse and validate one contract file; it must belong to the asked run and step.

    ``None`` when the file does not exist (reading, not checking first, so a file removed
    in between is "missing", not an error).
    """
    try:
        obj = model.model_validate_json(path.read_bytes())
    except FileNotFoundError:
        return None
    except (OSError, ValidationError) as exc:
        raise StepSpecError(
            f"{path}: not a valid {model.__name__} v{SCHEMA_VERSION} ({_first_line(exc)})"
        ) from None
    if (obj.run_id, obj.step_id) != (run_id, step_id):
        raise StepSpecError(
            f"{path}: holds run {obj.run_id!r} step {obj.step_id!r}, "
            f"expected run {run_id!r} step {step_id!r}"
        )
    return obj


def _holds(path: Path, text: str) -> bool:
    """Whether ``path`` holds exactly ``text`` (a missing or unreadable file does not)."""
    try:
        return path.read_bytes() == text.encode("utf-8")
    except OSError:
        return False


def _first_line(exc: BaseException) -> str:
    """The first problem, short enough for one CLI line (pydantic's text spans many)."""
    return from_validation_error(exc)


