"""A run in the store: finding the store, opening a run's folder, and its ``run.json``.

Split from ``run_store`` (the file layout and its reads and writes) because this is the
part the CLI and the backends use around a run: where the store is (``AGENTIC_RUN_STORE_PATH``
or a private per-user default under the temp dir, refused when another user owns it), the
run's folder for the length of a run, and the ``run.json`` document that ``--resume`` starts
from, checked field by field. ``run_store`` re-exports every name, so
``from agentic_orchestration.orchestration.run_store import run_store_from_env`` still works.
"""

from __future__ import annotations

import contextlib
import logging
import os
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from agentic_orchestration import settings
from agentic_orchestration.catalogs.models import WorkflowConfig
from agentic_orchestration.errors import ConfigError, from_validation_error
from agentic_orchestration.orchestration.backends.base import (
    SCHEMA_VERSION,
    new_run_id,
    utc_now,
)

if TYPE_CHECKING:
    from agentic_orchestration.orchestration.run_store import FileSystemRunStore, RunStore

logger = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_STORE_NAME", "RunMeta", "build_run_meta", "check_default_root",
    "default_store_root", "load_run_meta", "run_store_from_env", "run_store_session",
]

#: Default root when AGENTIC_RUN_STORE_PATH is unset: ``{tempdir}/agentic-run-store-{uid}``.
DEFAULT_STORE_NAME = "agentic-run-store"
_DIR_MODE = 0o700
_RUN_META = "run.json"


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
    where = f"run metadata {store.run_dir(run_id) / _RUN_META}"
    try:
        data = store.read_run_meta(run_id)
    except RecursionError:  # json's decoder recurses per nesting level
        raise ConfigError(f"{where}: not run metadata: nested too deeply") from None
    try:
        meta = RunMeta.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(f"{where}: field {from_validation_error(exc)}") from None
    if meta.run_id != run_id:
        raise ConfigError(f"{where}: field run_id: {meta.run_id!r} is not the run {run_id!r}")
    return meta


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
    try:
        with contextlib.suppress(FileExistsError):
            root.mkdir(mode=_DIR_MODE)
    except OSError as exc:
        raise ConfigError(f"default run store {root}: cannot create it ({exc.strerror or exc}); "
                          "set AGENTIC_RUN_STORE_PATH to a folder you can write") from None
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
        os.chmod(root, _DIR_MODE)
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
    from agentic_orchestration.orchestration.run_store import FileSystemRunStore

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
    from agentic_orchestration.orchestration.run_store import validate_id

    store = store or run_store_from_env()
    run_id = validate_id(run_id if run_id is not None else new_run_id(), "run_id")
    store.make_dirs(store.run_dir(run_id))
    logger.debug("run %s: run store folder %s", run_id, store.run_dir(run_id))
    yield store, run_id
