"""Tuning records: MetaSchedule's own JSON database, opened safely.

A records folder holds ``database_workload.json`` and ``database_tuning_record.json``, exactly what
``ms.database.JSONDatabase(work_dir=FOLDER)`` reads, so plain TVM can use our records and we can use its.
"""

import hashlib
import json
import os

from ..errors import TVMCException

WORKLOADS = "database_workload.json"
TUNING_RECORDS = "database_tuning_record.json"


def database_paths(folder: str) -> tuple:
    return os.path.join(folder, WORKLOADS), os.path.join(folder, TUNING_RECORDS)


def _drop_partial_last_line(path: str) -> bool:
    """A run killed mid-write can leave half a line at the end; drop it so the rest stays usable."""
    if not os.path.exists(path) or os.path.getsize(path) == 0:
        return False
    with open(path, "rb") as f:
        data = f.read()
    lines = data.split(b"\n")
    last = lines[-1]
    if not last.strip():
        return False
    try:
        json.loads(last)
        return False
    except ValueError:
        with open(path, "wb") as f:
            f.write(b"\n".join(lines[:-1]) + (b"\n" if len(lines) > 1 else b""))
        return True


def open_database(folder: str, create: bool = False):
    """Open the records in ``folder``; with ``create``, make an empty database there if none exists."""
    from tvm.s_tir import meta_schedule as ms  # pylint: disable=import-outside-toplevel

    workloads, records = database_paths(folder)
    if os.path.isfile(folder):
        raise TVMCException(f"tuning records must be a folder (MetaSchedule's JSON database), but '{folder}' is a file")
    if not create and not (os.path.isfile(workloads) and os.path.isfile(records)):
        raise TVMCException(f"'{folder}' holds no tuning records ({WORKLOADS} and {TUNING_RECORDS}); run 'tvmc tune' first")
    if create:
        os.makedirs(folder, exist_ok=True)
        for path in (workloads, records):
            _drop_partial_last_line(path)
    try:
        return ms.database.JSONDatabase(path_workload=workloads, path_tuning_record=records, allow_missing=create)
    except Exception as err:  # TVM raises on a line it cannot parse
        detail = str(err).strip().splitlines()[-1] if str(err).strip() else type(err).__name__
        raise TVMCException(f"tuning records in '{folder}' are corrupt ({detail[:200]}); restore them or tune again") from None


def same_target(a, b) -> bool:
    """Records are for the same target when the kind and the processor (mcpu or arch) agree."""
    from ..target import target_json  # pylint: disable=import-outside-toplevel

    ea, eb = target_json(a), target_json(b)
    return ea["kind"] == eb["kind"] and all(ea.get(k) == eb.get(k) for k in ("mcpu", "arch"))


def target_label(target) -> str:
    """What ``same_target`` compares, as a target string: ``llvm -mcpu=znver3``, ``cuda -arch=sm_90``."""
    from ..target import target_json  # pylint: disable=import-outside-toplevel

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


def is_measured(record) -> bool:
    """A record whose run succeeded (MetaSchedule stores 1e10 s for a failed build or run)."""
    return bool(record.run_secs) and all(float(s) < 1e9 for s in record.run_secs)


def mean_seconds(record) -> float:
    return sum(float(s) for s in record.run_secs) / len(record.run_secs) if record.run_secs else float("inf")


def copy_records(source, destination, target=None, measured_only: bool = False) -> tuple:
    """Copy tuning records from one database into another; return ``(copied, other_target)``.

    With ``target``, records for another target are left out and counted; with ``measured_only``, so are
    records of failed builds or runs. A record whose trace is already stored for the workload is not copied twice.
    """
    from tvm.s_tir import meta_schedule as ms  # pylint: disable=import-outside-toplevel

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
            existing[mod] = (
                {str(r.trace) for r in destination.get_top_k(destination.commit_workload(mod), 1 << 30)}
                if destination.has_workload(mod)
                else set()
            )
        key = str(record.trace)
        if key in existing[mod]:
            continue
        existing[mod].add(key)
        workload = destination.commit_workload(mod)
        destination.commit_tuning_record(
            ms.database.TuningRecord(record.trace, workload, record.run_secs, record.target, record.args_info)
        )
        copied += 1
    return copied, other
