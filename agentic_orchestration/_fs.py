"""Atomic file writes: a reader sees the old file or the new one, never half of either.

Session records and the run store are read while they are being written (the web UI polls
sessions; the coordinator reads ``result.json`` a worker just wrote, possibly over NFS or a
PVC), and a crash mid-write must not leave a truncated file that a later ``--resume`` would
trust. So every write goes to a temp file in the *same* folder (``os.replace`` is atomic
only within one filesystem), is flushed and fsynced, then renamed over the target; the
folder is fsynced afterwards so the rename itself survives a power cut.

``durable=False`` keeps the atomic rename (a reader, a killed writer, a SIGKILLed coordinator
still see old or new, never half: the data is in the page cache) but skips both fsyncs, for
files a power cut may lose because they are rewritten or redone anyway (the run store's
specs and attempt records); ``fsync_file`` makes such a file durable later, off the hot path.

Temp files start with ``.`` so folder listings that skip dotfiles never pick one up.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)


def atomic_write_text(
    path: Path | str, text: str, *, mode: int = 0o644, encoding: str = "utf-8",
    durable: bool = True,
) -> Path:
    """Replace ``path`` with ``text`` atomically.

    Args:
        path: Target file; its folder must exist.
        text: The whole new content.
        mode: Permission bits of the new file (set before any byte is written, so a
            private file is never briefly readable by others).
        encoding: Text encoding.
        durable: fsync the file and its folder (off: atomic, but a power cut may lose it).

    Returns:
        ``path`` as a ``Path``.

    Raises:
        OSError: The folder is missing or not writable, the disk is full... On any error
            the temp file is removed and the previous file (if any) is left untouched.
    """
    path = Path(path)
    data = text.encode(encoding)  # encode first: an encoding error must create nothing
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            if durable:
                os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    if durable:
        _fsync_dir(path.parent)
    return path


def atomic_write_json(
    path: Path | str, data: Any, *, mode: int = 0o644, indent: int | None = 2,
    durable: bool = True,
) -> Path:
    """Replace ``path`` with ``data`` as JSON (UTF-8, trailing newline), atomically.

    ``data`` is serialized before any file is created, so a value JSON cannot encode
    raises ``TypeError``/``ValueError`` and leaves the folder exactly as it was.
    """
    return atomic_write_text(path, json_text(data, indent=indent), mode=mode, durable=durable)


def json_text(data: Any, *, indent: int | None = 2) -> str:
    """``data`` exactly as ``atomic_write_json`` writes it (to compare with a file)."""
    return json.dumps(data, indent=indent, ensure_ascii=False) + "\n"


def fsync_file(path: Path | str) -> bool:
    """fsync an existing file and its folder (a ``durable=False`` write made durable).

    Returns False when the file is gone (replaced or removed in between: nothing to do).
    """
    path = Path(path)
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    _fsync_dir(path.parent)
    return True


def _fsync_dir(folder: Path) -> None:
    """Make the rename durable; not every filesystem (or OS) allows it, hence best effort."""
    try:
        dir_fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(dir_fd)
    except OSError:
        logger.debug("fsync of folder %s not supported; rename may not be durable", folder)
    finally:
        os.close(dir_fd)


def read_json_object(path: Path, *, what: str) -> dict[str, Any] | None:
    """The JSON object in ``path``; None when the file is missing.

    Raises:
        ConfigError: The file cannot be read, is not JSON, or is not an object; the message
            names the path and ``what`` the file was expected to hold.
    """
    from agentic_orchestration.errors import ConfigError

    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path}: cannot read {what} ({exc})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: not a {what} (expected a JSON object)")
    return data
