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
import os
import re
import stat
import tempfile
from abc import ABC, abstractmethod
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from agentic_orchestration import settings
from agentic_orchestration._fs import atomic_write_json, read_json_object
from agentic_orchestration.catalogs.models import WorkflowConfig
from agentic_orchestration.errors import ConfigError, StepSpecError, from_validation_error
from agentic_orchestration.orchestration.backends.base import (
    SCHEMA_VERSION,
    StepResult,
    StepSpec,
    new_run_id,
    utc_now,
)
from agentic_orchestration.redaction import redact_obj

logger = logging.getLogger(__name__)

MAX_ID_LENGTH = 128
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
RUN_META = "run.json"
RESULT = "result.json"
SPEC_SUFFIX = "-spec.json"
ATTEMPTS = "attempts"
#: Default root when AGENTIC_RUN_STORE_PATH is unset: ``{tempdir}/agentic-run-store-{uid}``.
DEFAULT_STORE_NAME = "agentic-run-store"
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


def build_run_meta(
    run_id: str, *, plan: dict[str, Any], backend: str, step_ids: list[str], **extra: Any
) -> dict[str, Any]:
    """The ``run.json`` document: what is needed to find, show and resume a run later."""
    return {
        "schema_version": SCHEMA_VERSION, "run_id": run_id, "created_at": utc_now(),
        "backend": backend, "plan": plan, "step_ids": list(step_ids), **extra,
    }


class RunMeta(BaseModel):
    """``run.json`` as ``--resume`` reads it: the fields it relies on, checked.

    Other keys (``created_at``, ``fingerprint``, what a newer coordinator adds) are kept
    as they are, so an older reader can still resume a newer run.
    """

    model_config = ConfigDict(extra="allow", frozen=True)

    schema_version: Literal["0.1"] = Field(description="Run store layout version.")
    run_id: str = Field(min_length=1, description="The run; equals its folder's name.")
    backend: str = Field(min_length=1, description="Backend that ran it (resume default).")
    plan: WorkflowConfig = Field(description="The WorkflowConfig that runs.")
    step_ids: list[str] = Field(default_factory=list, description="The plan's step ids.")
    fingerprint: str | None = Field(default=None, description="Catalog resolution digest.")


def load_run_meta(store: RunStore, run_id: str) -> RunMeta:
    """``run.json`` of ``run_id``, validated: what ``--resume`` starts from.

    Raises:
        ConfigError: The run is unknown, or its ``run.json`` is unreadable, not JSON, or
            lacks or mistypes a field (one line naming the file and the field, exit 2).
    """
    where = f"run metadata {store.run_dir(run_id) / RUN_META}"
    try:
        data = store.read_run_meta(run_id)
    except RecursionError:  # json's decoder recurses per nesting level
        raise ConfigError(f"{where}: not run metadata: nested too deeply") from None
    try:
        meta = RunMeta.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(f"{where}: field {_first_line(exc)}") from None
    if meta.run_id != run_id:
        raise ConfigError(f"{where}: field run_id: {meta.run_id!r} is not the run {run_id!r}")
    return meta


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
        if not self.base.is_dir():
            self.base.parent.mkdir(parents=True, exist_ok=True)
            with contextlib.suppress(FileExistsError):
                self.base.mkdir(mode=self.dir_mode)
        current = self.base
        for part in folder.relative_to(self.base).parts:
            current = current / part
            with contextlib.suppress(FileExistsError):
                current.mkdir(mode=self.dir_mode)
        return folder

    def _write(self, path: Path, data: Any, *, masked: bool = True) -> Path:
        """Write one JSON file of the store: folders created private, secrets masked."""
        self.make_dirs(path.parent)
        return atomic_write_json(path, redact_obj(data) if masked else data,
                                 mode=self.file_mode)

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
        self._write(path, data, masked=False)
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

    def write_result(self, result: StepResult) -> Path:
        path = self.result_path(result.run_id, result.step_id)
        self._write(path, result.to_dict())
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
        path = self.attempt_path(result.run_id, result.step_id, attempt)
        self._write(path, result.to_dict())
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


def _first_line(exc: BaseException) -> str:
    """The first problem, short enough for one CLI line (pydantic's text spans many)."""
    return from_validation_error(exc)


def default_store_root() -> Path:
    """``{tempdir}/agentic-run-store-{uid}``: one private root per user of the machine."""
    return Path(tempfile.gettempdir()) / f"{DEFAULT_STORE_NAME}-{os.getuid()}"


def check_default_root(root: Path) -> Path:
    """Create the default root 0700, or check that an existing one is ours and private.

    The temp dir is shared: another user could create our root first (or a symlink named
    like it) and read or plant run data. Such a root is refused; one of ours that others
    can read is made private again.

    Raises:
        ConfigError: One line naming the folder, its owner and ``AGENTIC_RUN_STORE_PATH``.
    """
    with contextlib.suppress(FileExistsError):
        root.mkdir(mode=DIR_MODE)
    uid = os.getuid()
    info = os.lstat(root)
    if stat.S_ISLNK(info.st_mode) and info.st_uid == uid:
        info = os.stat(root)  # a link the user made: judge where it points
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != uid:
        what = "a folder" if stat.S_ISDIR(info.st_mode) else "not a folder"
        raise ConfigError(
            f"default run store {root} is {what} owned by uid {info.st_uid}, not by you "
            f"(uid {uid}); remove it or set AGENTIC_RUN_STORE_PATH to a folder of yours")
    if stat.S_IMODE(info.st_mode) & 0o077:
        os.chmod(root, DIR_MODE)
    return root


def run_store_from_env() -> FileSystemRunStore:
    """The store at ``AGENTIC_RUN_STORE_PATH``, else ``{tempdir}/agentic-run-store-{uid}``.

    The default is a *stable* folder under the system temp dir, not a fresh ``mkdtemp``,
    so ``--resume <run_id>`` in a later process finds the run (until the OS cleans /tmp);
    it is created 0700 and refused when another user owns it (:func:`check_default_root`).
    Coordinator and workers must see the same path (bind mount, PVC or NFS).

    Raises:
        ConfigError: The default root belongs to another user.
    """
    path = settings.get_path("AGENTIC_RUN_STORE_PATH")
    if path is None:
        path = check_default_root(default_store_root())
    return FileSystemRunStore(path)


@contextlib.contextmanager
def run_store_session(
    run_id: str | None = None, *, store: FileSystemRunStore | None = None
) -> Iterator[tuple[FileSystemRunStore, str]]:
    """Yield ``(store, run_id)`` with the run's folder created.

    Args:
        run_id: The run to use (an existing one when resuming); generated when ``None``.
        store: Defaults to :func:`run_store_from_env`.

    The folder is kept on exit, on success or failure: it is what ``--resume`` and the
    session record point at.
    """
    store = store or run_store_from_env()
    run_id = validate_id(run_id if run_id is not None else new_run_id(), "run_id")
    store.make_dirs(store.run_dir(run_id))
    logger.debug("run %s: run store folder %s", run_id, store.run_dir(run_id))
    yield store, run_id
