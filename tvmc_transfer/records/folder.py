"""``RecordsFolder``: one open records folder, owning its database and every file kept beside it.

A records folder is MetaSchedule's JSON database (``database.py``) plus the side files our commands keep there:
transfer's journal of finished kernels, droplet's pinned starts, the controls of its batches and the orders of
its neighbourhoods (MetaSchedule writes its per-task ``logs/`` there too). Every command opens its output folder
once, through this object, and hands it on.

Opening a folder makes this process its one writer (``lock.py``: another process writing it is an error naming
that process) until ``close``, the end of the ``@writes_records`` command that opened it, or the object's end,
whichever comes first; damaged or hostile lines found on opening are set aside into ``FILE.bad`` (``screen.py``).
"""

import json
import os
import weakref

from ..atomic import atomic_write
from .database import check_folder, commit_record, is_measured, mean_seconds, open_database, records_of
from .lock import lock_folder

JOURNAL = "transfer_journal.jsonl"  # transfer: one line per finished kernel and per session
STARTS = "droplet_starts.json"  # droplet: the start each task's walk was pinned to
CONTROLS = "droplet_controls.json"  # droplet: the incumbent's control measurement of each batch
ORDERS = "droplet_orders.json"  # droplet: the order a cost model gave each neighbourhood of each walk


def best_seconds(records) -> float | None:
    """The best mean time among the measured ``records`` (what compiling with them applies); None if none ran."""
    return min((mean_seconds(r) for r in records if is_measured(r)), default=None)


class RecordsFolder:
    """A records folder opened once: ``database`` (MetaSchedule's ``JSONDatabase``) and its side files.

    >>> with RecordsFolder("records", create=True) as folder:                         # doctest: +SKIP
    ...     folder.best_seconds(task.mod)
    """

    def __init__(self, path: str, create: bool = False):
        self.path = path
        check_folder(path, create)
        if create:
            os.makedirs(path, exist_ok=True)
        # the lock before reading: a second writer is refused before any work; released by close or the object's end
        self._release = weakref.finalize(self, lock_folder(path).release)
        try:
            self.database = open_database(path, create=create, repair=True)
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        """Stop writing: another process may open the folder for writing now."""
        self._release()

    def __enter__(self) -> "RecordsFolder":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def file(self, name: str) -> str:
        return os.path.join(self.path, name)

    def records_of(self, mod) -> list:
        """Every record of a workload, failed ones included."""
        return records_of(self.database, mod)

    def best_seconds(self, mod) -> float | None:
        return best_seconds(self.records_of(mod))

    def has_records(self) -> bool:
        return bool(self.database.get_all_tuning_records())

    def commit(self, mod, trace, run_secs, target, args_info) -> bool:
        """Add a tuning record unless this trace is already stored for the workload (a resumed run)."""
        return commit_record(self.database, mod, trace, run_secs, target, args_info)

    def read_json(self, name: str) -> dict:
        """A side file's JSON object; empty when there is none yet or it is damaged."""
        try:
            with open(self.file(name), encoding="utf-8") as f:
                return dict(json.load(f))
        except (TypeError, OSError, ValueError):
            return {}

    def write_json(self, name: str, data: dict) -> None:
        with atomic_write(self.file(name)) as f:
            json.dump(data, f, indent=1)

    def read_lines(self, name: str) -> list:
        """A JSON-lines side file's entries, a line cut short by a kill left out; empty when there is none."""
        entries = []
        if os.path.exists(self.file(name)):
            with open(self.file(name), encoding="utf-8") as f:
                for line in f:
                    try:
                        entries.append(json.loads(line))
                    except ValueError:
                        continue
        return entries

    def append_line(self, name: str, entry: dict) -> None:
        """Append one JSON line and flush it to disk, so that a kill loses at most the line being written."""
        with open(self.file(name), "a", encoding="utf-8") as f:
            f.write(json.dumps(entry) + "\n")
            f.flush()
            os.fsync(f.fileno())
