"""``tvmc records merge`` and ``filter``: new records folders from old ones, written atomically.

Every output folder is written next to its destination and renamed into place only when complete, so a
reader never sees half a database and an interrupted command leaves nothing behind. A folder replaced in place
(an input that is also the output) is written by this command alone: it holds the folder's lock (``lock.py``)
from before reading it until it is replaced, and the lines it sets aside (``FILE.bad``) stay with it.
"""

import os
import shutil
import tempfile

import attrs

from ..errors import TVMCException
from .database import TUNING_RECORDS, WORKLOADS, copy_records, database_paths, is_measured, open_database
from .lock import LOCK_FILE, locked


def _holds_records(folder: str) -> bool:
    return any(os.path.isfile(p) and os.path.getsize(p) > 0 for p in database_paths(folder))


def check_output(output: str, replaces_input: bool = False) -> str:
    """``output`` as an absolute path, once it is known to be writable as a new records folder (before any
    work that would be lost if it were not); it must not hold records unless ``replaces_input``."""
    output = os.path.abspath(output)
    parent = os.path.dirname(output)
    if not os.path.isdir(parent):
        raise TVMCException(f"cannot write records '{output}': folder '{parent}' does not exist")
    if os.path.isfile(output):
        raise TVMCException(f"'{output}' is a file; the records output must be a folder")
    if os.path.isdir(output) and _holds_records(output) and not replaces_input:
        raise TVMCException(f"'{output}' already holds tuning records; give a new folder (or list it as an input to merge into it)")
    return output


def write_folder_atomically(output: str, fill, replaces_input: bool = False) -> None:
    """Create the records folder ``output`` by calling ``fill(database)`` on a fresh database next to it, then
    rename it into place. ``output`` must not hold records unless ``replaces_input`` (it is one of the inputs)."""
    output = check_output(output, replaces_input)
    parent = os.path.dirname(output)
    partial = tempfile.mkdtemp(dir=parent, prefix=f".{os.path.basename(output)}.partial-")
    try:
        fill(open_database(partial, create=True))
        if os.path.isdir(output):
            for name in os.listdir(output):  # logs, journals and lines set aside of an input replaced in place stay
                if name not in (WORKLOADS, TUNING_RECORDS, LOCK_FILE):
                    copy = shutil.copytree if os.path.isdir(os.path.join(output, name)) else shutil.copy2
                    copy(os.path.join(output, name), os.path.join(partial, name))
            old = tempfile.mkdtemp(dir=parent, prefix=f".{os.path.basename(output)}.old-")
            os.rmdir(old)
            os.rename(output, old)
            os.rename(partial, output)
            shutil.rmtree(old, ignore_errors=True)
        else:
            try:
                os.rename(partial, output)
            except OSError:  # another command wrote the new folder meanwhile
                raise TVMCException(f"'{output}' was written by another command meanwhile; give a new folder") from None
    finally:
        if os.path.isdir(partial):
            shutil.rmtree(partial, ignore_errors=True)


def open_nonempty(folder: str, repair: bool = False):
    """The records of ``folder``, which must hold some (``repair``: this command holds its lock, ``open_database``)."""
    database = open_database(folder, repair=repair)
    if not database.get_all_tuning_records():
        raise TVMCException(f"'{folder}' holds no tuning records; nothing to read from it")
    return database


@attrs.frozen
class CopyReport:
    """What ``merge_records`` (or, ``filtered``, ``filter_records``) wrote into ``output``."""

    output: str
    copied: int
    skipped: int  # duplicates (and, with measured_only, failed runs)
    other_target: int
    filtered: bool = False  # filter_records: the records for one target kept

    def summary(self) -> str:
        """One line: what ``tvmc records merge`` (or ``filter``) prints."""
        if self.filtered:
            return f"kept {self.copied} records in {self.output}; {self.other_target} for another target left out"
        return f"merged {self.copied} records into {self.output} ({self.skipped} duplicates left out)"

    def to_json(self) -> dict:
        return attrs.asdict(self)


def merge_records(inputs: list, output: str, measured_only: bool = False) -> CopyReport:
    """Merge records folders into ``output``; a schedule recorded twice for a workload is kept once."""
    if not inputs:
        raise TVMCException("give at least one records folder to merge")
    out = os.path.abspath(output)
    counts = {"copied": 0, "total": 0}
    with locked(out, missing_ok=True):  # an input replaced in place: no other command writes it meanwhile
        sources = [open_nonempty(path, repair=os.path.abspath(path) == out) for path in inputs]  # all checked before writing

        def fill(database):
            for source in sources:
                total = len([r for r in source.get_all_tuning_records() if not measured_only or is_measured(r)])
                copied, _ = copy_records(source, database, None, measured_only=measured_only)
                counts["copied"] += copied
                counts["total"] += total

        write_folder_atomically(output, fill, replaces_input=out in {os.path.abspath(p) for p in inputs})
    return CopyReport(os.path.abspath(output), counts["copied"], counts["total"] - counts["copied"], 0)


def filter_records(source_folder: str, target, output: str, measured_only: bool = False) -> CopyReport:
    """Copy the records of ``source_folder`` that are for ``target`` (kind and processor) into ``output``."""
    in_place = os.path.abspath(output) == os.path.abspath(source_folder)
    counts = {}
    with locked(os.path.abspath(output), missing_ok=True):  # replaced in place: no other command writes it meanwhile
        source = open_nonempty(source_folder, repair=in_place)

        def fill(database):
            counts["copied"], counts["other"] = copy_records(source, database, target, measured_only=measured_only)

        write_folder_atomically(output, fill, replaces_input=in_place)
    total = len(source.get_all_tuning_records())
    return CopyReport(os.path.abspath(output), counts["copied"], total - counts["copied"] - counts["other"], counts["other"], filtered=True)
