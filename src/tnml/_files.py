"""Atomic file writes: every file tnml writes goes through :func:`atomic_write`.

A file is first written next to its destination under a temporary name, flushed to disk and
then renamed over the destination, so a crash mid-save never replaces a good file with half a
file.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path

from tnml.exceptions import InvalidInputError

__all__ = ["atomic_write"]


def atomic_write(path: str | os.PathLike[str], write: Callable[[str], None]) -> Path:
    """Call ``write(tmp_path)`` and rename the result to ``path`` once it is complete.

    The temporary file lives in the destination folder (a rename across file systems would
    not be atomic) and is removed if ``write`` raises. A ``path`` that is a folder is refused
    (:class:`~tnml.exceptions.InvalidInputError`) before anything is written.
    """
    path = Path(path)
    if path.is_dir():
        raise InvalidInputError(f"{path} is a folder; give a file name, e.g. {path / 'out'}")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        # mkstemp makes the file private (0600); give it the mode open() would have.
        os.chmod(tmp, 0o666 & ~_current_umask())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
