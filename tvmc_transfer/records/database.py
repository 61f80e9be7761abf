"""Tuning records: MetaSchedule's own JSON database, opened safely (``screen.py``), each record committed once.

A records folder holds ``database_workload.json`` and ``database_tuning_record.json``, exactly what
``ms.database.JSONDatabase(work_dir=FOLDER)`` reads, so plain TVM can use our records and we can use its.
"""

import hashlib
import os

from ..errors import TVMCException, one_line
from ..target import target_json

WORKLOADS = "database_workload.json"
TUNING_RECORDS = "database_tuning_record.json"
FAILED_SECONDS = 1e9  # a time this long is MetaSchedule's mark of a failed build or run, not a measurement


def replayed(mod, trace):
    """The module a record's ``trace`` (postprocessors included) schedules ``mod`` into, or None when it no
    longer replays on it (a record of another TVM, or not of this workload)."""
    from tvm import s_tir  # pylint: disable=import-outside-toplevel

    sch = s_tir.Schedule(mod)
    try:
        trace.apply_to_schedule(sch, remove_postproc=False)
    except Exception:  # pylint: disable=broad-except
        return None
    return sch.mod


def database_paths(folder: str) -> tuple:
    return os.path.join(folder, WORKLOADS), os.path.join(folder, TUNING_RECORDS)


def check_folder(folder: str, create: bool = False) -> None:
    """A one-line error unless ``folder`` holds records (with ``create``: unless it can be made to hold some)."""
    workloads, records = database_paths(folder)
    if os.path.isfile(folder):
        raise TVMCException(f"tuning records must be a folder (MetaSchedule's JSON database), but '{folder}' is a file")
    if not create and not (os.path.isfile(workloads) and os.path.isfile(records)):
        raise TVMCException(f"'{folder}' holds no tuning records ({WORKLOADS} and {TUNING_RECORDS}); run 'tvmc tune' first")


def open_database(folder: str, create: bool = False, repair: bool = False):
    """Open the records in ``folder``; with ``create``, make an empty database there if none exists.

    A damaged or hostile line never stops the rest from loading: it is named in a warning and left out
    (``screen.py``). A reader's files stay as they are; with ``repair`` (only for the writer that holds the
    folder's lock, ``lock.py``) the lines are set aside into ``FILE.bad`` and the files rewritten without them.
    """
    from .screen import load_database  # pylint: disable=import-outside-toplevel

    check_folder(folder, create)
    if create:
        os.makedirs(folder, exist_ok=True)
    return load_database(folder, allow_missing=create, repair=repair)


def corrupt_records(folder: str, err: Exception) -> TVMCException:
    """The one-line error for a records folder none of whose records can be read."""
    return TVMCException(f"tuning records in '{folder}' are corrupt ({one_line(err, 200)}); restore them or tune again")


def same_target(a, b) -> bool:
    """Records are for the same target when the kind and the processor (mcpu or arch) agree."""

    ea, eb = target_json(a), target_json(b)
    return ea["kind"] == eb["kind"] and all(ea.get(k) == eb.get(k) for k in ("mcpu", "arch"))


def target_label(target) -> str:
    """What ``same_target`` compares, as a target string: ``llvm -mcpu=znver3``, ``cuda -arch=sm_90``."""

    t = target_json(target)
    return " ".join([str(t["kind"])] + [f"-{k}={t[k]}" for k in ("mcpu", "arch") if t.get(k)])


def records_digest(folder: str) -> str:
    """sha256 over both database files: ties a compiled package to the records it used."""
    digest = hashlib.sha256()
    for path in database_paths(folder):
        with open(path, "rb") as f:
            digest.update(f.read())
    return digest.hexdigest()


def records_of(database, workload_mod) -> list:
    """Every record of a workload, failed ones included (``get_top_k`` leaves those out), for resume counting."""
    if not database.has_workload(workload_mod):
        return []
    workload = database.commit_workload(workload_mod)
    return [r for r in database.get_all_tuning_records() if r.workload.same_as(workload)]


def run_samples(run_secs) -> tuple | None:
    """Seconds per repeat of a measurement; None when it failed (MetaSchedule records 1e10 s for a failed
    build or run: anything from ``FAILED_SECONDS`` up is that sentinel)."""
    values = tuple(float(s) for s in run_secs or ())
    return values if values and all(v < FAILED_SECONDS for v in values) else None


def is_measured(record) -> bool:
    """A record whose run succeeded."""
    return run_samples(record.run_secs) is not None


def mean_seconds(record) -> float:
    """The mean of a record's (or a runner result's) times; infinite when it has none."""
    return mean_of_secs(record.run_secs)


def mean_of_secs(secs) -> float:
    """The mean of measured times, as TVM objects or as JSON numbers; infinite for none."""
    return sum(float(s) for s in secs) / len(secs) if secs else float("inf")


def copy_records(source, destination, target=None, measured_only: bool = False) -> tuple:
    """Copy tuning records from one database into another; return ``(copied, other_target)``.

    With ``target``, records for another target are left out and counted; with ``measured_only``, so are
    records of failed builds or runs. A record whose trace is already stored for the workload is not copied twice.
    """
    copied = other = 0
    existing = {}
    for record in source.get_all_tuning_records():
        if measured_only and not is_measured(record):
            continue
        if target is not None and record.target is not None and not same_target(record.target, target):
            other += 1
            continue
        mod = record.workload.mod
        if mod not in existing:
            existing[mod] = stored_traces(destination, mod) if destination.has_workload(mod) else set()
        if commit_record(destination, mod, record.trace, record.run_secs, record.target, record.args_info, existing[mod]):
            copied += 1
    return copied, other


def stored_traces(database, mod) -> set:
    """The traces the database holds for a workload, as text (what ``commit_record`` compares). Every record,
    not ``get_top_k``'s: that found none of a transpose kernel's records, and a resumed run stored them again."""
    return {str(r.trace) for r in records_of(database, mod)}


def commit_record(database, mod, trace, run_secs, target, args_info, stored: set | None = None) -> bool:
    """Add a tuning record unless the database already holds this trace for this workload (a resumed run, a
    second copy). ``stored``: the workload's ``stored_traces``, kept up to date, when the caller commits many."""
    from tvm.s_tir import meta_schedule as ms  # pylint: disable=import-outside-toplevel

    workload = database.commit_workload(mod)
    stored = stored_traces(database, mod) if stored is None else stored
    if str(trace) in stored:
        return False
    stored.add(str(trace))
    database.commit_tuning_record(ms.database.TuningRecord(trace, workload, run_secs, target, args_info))
    return True
