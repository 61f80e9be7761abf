"""Atomic file writes: a reader sees the old file or the whole new one, never half of it."""

import contextlib
import json
import os
import tempfile

from .errors import TVMCException


@contextlib.contextmanager
def atomic_write(path: str, mode: str = "w"):
    """Open a temporary file beside ``path`` for writing; when the block ends without an error, rename it onto
    ``path``; otherwise remove it and leave ``path`` as it was.

    >>> with atomic_write("report.json") as f:                                    # doctest: +SKIP
    ...     f.write("{}")
    """
    folder = os.path.dirname(os.path.abspath(path))
    fd, partial = tempfile.mkstemp(dir=folder, prefix=".tvmc-partial-", suffix=os.path.splitext(path)[1])
    try:
        with os.fdopen(fd, mode, **({} if "b" in mode else {"encoding": "utf-8"})) as f:
            yield f
        os.replace(partial, path)
    finally:
        if os.path.exists(partial):
            os.remove(partial)


def write_json(path: str, data) -> None:
    """Write ``data`` to the file ``path`` as JSON (one space per indent, a final newline), atomically: a reader
    (a CI job) sees the whole report or none. How every report is written (``TransferReport.write_json``, ...)."""
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise TVMCException(f"cannot write report '{path}': folder '{folder}' does not exist")
    with atomic_write(path) as f:
        json.dump(data, f, indent=1)
        f.write("\n")
