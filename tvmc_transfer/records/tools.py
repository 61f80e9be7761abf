"""Looking into, merging and filtering records folders (``tvmc records``), and reading transfer sources.

Every output folder is written next to its destination and renamed into place only when complete, so a
reader never sees half a database and an interrupted command leaves nothing behind.
"""

import logging
import os
import shutil
import tempfile

import attrs

from ..errors import TVMCException
from .database import TUNING_RECORDS, WORKLOADS, copy_records, database_paths, is_measured, mean_seconds, open_database, same_target, target_label

log = logging.getLogger("tvmc")


@attrs.frozen
class SourceWorkload:
    """One workload of a records folder with its measured records for the target, fastest first."""

    index: int  # position in the folder's workload file (stable, for reports)
    mod: object  # the workload IRModule
    kernel_class: object  # classes.KernelClass
    records: tuple  # TuningRecord, fastest first

    @property
    def best_seconds(self) -> float:
        return mean_seconds(self.records[0])

    def describe(self) -> str:
        """``#3 1x64x56x56,64x64x3x3->1x64x56x56``: the workload's place in its folder and its buffer shapes."""
        return f"#{self.index} {shapes_text(self.mod)}"


@attrs.frozen
class Source:
    """A records folder read for transfer: its workloads grouped, with their classes."""

    path: str
    workloads: tuple  # SourceWorkload
    other_target: int  # records for another target, ignored
    unmeasured: int  # records of failed builds or runs, ignored
    other_targets: tuple = ()  # target_label of each other target met

    @property
    def name(self) -> str:
        return os.path.basename(os.path.normpath(self.path))

    def classes(self) -> set:
        """The distinct kernel classes of its workloads."""
        return {w.kernel_class for w in self.workloads}


def shapes_text(mod) -> str:
    from ..transfer.classes import _main_func  # pylint: disable=import-outside-toplevel

    params = [p for p in _main_func(mod).params if hasattr(p, "shape")]
    text = ["x".join(str(int(d)) if hasattr(d, "value") or isinstance(d, int) else str(d) for d in p.shape) for p in params]
    return ",".join(text[:-1]) + "->" + (text[-1] if text else "")


def workload_hash(mod) -> str:
    from tvm_ffi import structural_hash  # pylint: disable=import-outside-toplevel

    return f"{structural_hash(mod) & ((1 << 64) - 1):016x}"


def _records_by_workload(database, target=None) -> tuple:
    """``{hash: (first index, mod, [records])}``, the counts of other-target and unmeasured records, and the
    labels of the other targets."""
    groups, order = {}, {}
    other = unmeasured = 0
    labels = set()
    for record in database.get_all_tuning_records():
        if target is not None and record.target is not None and not same_target(record.target, target):
            other += 1
            labels.add(target_label(record.target))
            continue
        if not is_measured(record):
            unmeasured += 1
            continue
        key = workload_hash(record.workload.mod)
        if key not in groups:
            order[key] = len(order)
            groups[key] = (record.workload.mod, [])
        groups[key][1].append(record)
    return groups, order, other, unmeasured, tuple(sorted(labels))


def read_source(path: str, target) -> Source:
    """Read a records folder as a transfer source: measured records for ``target``, grouped by workload."""
    from ..transfer.classes import kernel_class  # pylint: disable=import-outside-toplevel

    database = open_database(path)
    groups, order, other, unmeasured, labels = _records_by_workload(database, target)
    workloads = []
    for key, (mod, records) in groups.items():
        records.sort(key=mean_seconds)
        workloads.append(SourceWorkload(order[key], mod, kernel_class(mod), tuple(records)))
    return Source(os.path.abspath(path), tuple(workloads), other, unmeasured, labels)


# -- tvmc records list / best ----------------------------------------------------------------------------------


@attrs.frozen
class WorkloadRow:
    index: int
    kernel_class: str
    shapes: str
    records: int
    measured: int
    best_seconds: float | None
    targets: tuple  # the distinct target kinds/processors of its records


def list_workloads(folder: str) -> list:
    """Per workload of a records folder: its class, shapes, record counts and best measured time."""
    from ..transfer.classes import kernel_class  # pylint: disable=import-outside-toplevel

    database = open_database(folder)
    records = database.get_all_tuning_records()
    if not records:
        raise TVMCException(f"'{folder}' holds no tuning records; give a folder written by 'tvmc tune' or 'tvmc transfer'")
    groups = {}
    for record in records:
        key = workload_hash(record.workload.mod)
        groups.setdefault(key, (record.workload.mod, []))[1].append(record)
    rows = []
    for index, (mod, group) in enumerate(groups.values()):
        measured = [r for r in group if is_measured(r)]
        targets = set()
        for r in group:
            if r.target is not None:
                targets.add(target_label(r.target))
        rows.append(
            WorkloadRow(
                index,
                str(kernel_class(mod)),
                shapes_text(mod),
                len(group),
                len(measured),
                min((mean_seconds(r) for r in measured), default=None),
                tuple(sorted(targets)),
            )
        )
    return rows


def format_workloads(rows: list, best_only: bool = False) -> str:
    if best_only:
        lines = [f"{'#':>3}  {'best (us)':>11}  {'records':>7}  {'class':<44} shapes"]
        for r in rows:
            best = f"{r.best_seconds * 1e6:11.2f}" if r.best_seconds is not None else f"{'-':>11}"
            lines.append(f"{r.index:>3}  {best}  {r.records:>7}  {r.kernel_class[:44]:<44} {r.shapes}")
        return "\n".join(lines)
    lines = [f"{'#':>3}  {'class':<44} {'records':>7} {'measured':>8} {'best (us)':>11}  {'target':<24} shapes"]
    for r in rows:
        best = f"{r.best_seconds * 1e6:11.2f}" if r.best_seconds is not None else f"{'-':>11}"
        lines.append(
            f"{r.index:>3}  {r.kernel_class[:44]:<44} {r.records:>7} {r.measured:>8} {best}  {', '.join(r.targets)[:24]:<24} {r.shapes}"
        )
    classes = {}
    for r in rows:
        classes[r.kernel_class] = classes.get(r.kernel_class, 0) + r.records
    lines.append(f"{len(rows)} workloads in {len(classes)} classes, {sum(r.records for r in rows)} records")
    return "\n".join(lines)


# -- tvmc records merge / filter ------------------------------------------------------------------------------


def _holds_records(folder: str) -> bool:
    return any(os.path.isfile(p) and os.path.getsize(p) > 0 for p in database_paths(folder))


def write_folder_atomically(output: str, fill, replaces_input: bool = False) -> None:
    """Create the records folder ``output`` by calling ``fill(database)`` on a fresh database next to it, then
    rename it into place. ``output`` must not hold records unless ``replaces_input`` (it is one of the inputs)."""
    output = os.path.abspath(output)
    parent = os.path.dirname(output)
    if not os.path.isdir(parent):
        raise TVMCException(f"cannot write records '{output}': folder '{parent}' does not exist")
    if os.path.isfile(output):
        raise TVMCException(f"'{output}' is a file; the records output must be a folder")
    if os.path.isdir(output) and _holds_records(output) and not replaces_input:
        raise TVMCException(f"'{output}' already holds tuning records; give a new folder (or list it as an input to merge into it)")
    partial = tempfile.mkdtemp(dir=parent, prefix=f".{os.path.basename(output)}.partial-")
    try:
        fill(open_database(partial, create=True))
        if os.path.isdir(output):
            for name in os.listdir(output):  # logs and journals of an input replaced in place stay with it
                if name not in (WORKLOADS, TUNING_RECORDS):
                    copy = shutil.copytree if os.path.isdir(os.path.join(output, name)) else shutil.copy2
                    copy(os.path.join(output, name), os.path.join(partial, name))
            old = tempfile.mkdtemp(dir=parent, prefix=f".{os.path.basename(output)}.old-")
            os.rmdir(old)
            os.rename(output, old)
            os.rename(partial, output)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.rename(partial, output)
    finally:
        if os.path.isdir(partial):
            shutil.rmtree(partial, ignore_errors=True)


def _open_nonempty(folder: str):
    database = open_database(folder)
    if not database.get_all_tuning_records():
        raise TVMCException(f"'{folder}' holds no tuning records; nothing to read from it")
    return database


@attrs.frozen
class CopyReport:
    output: str
    copied: int
    skipped: int  # duplicates (and, with measured_only, failed runs)
    other_target: int


def merge_records(inputs: list, output: str, measured_only: bool = False) -> CopyReport:
    """Merge records folders into ``output``; a schedule recorded twice for a workload is kept once."""
    if not inputs:
        raise TVMCException("give at least one records folder to merge")
    sources = [_open_nonempty(path) for path in inputs]  # every input checked before anything is written
    counts = {"copied": 0, "total": 0}

    def fill(database):
        for source in sources:
            total = len([r for r in source.get_all_tuning_records() if not measured_only or is_measured(r)])
            copied, _ = copy_records(source, database, None, measured_only=measured_only)
            counts["copied"] += copied
            counts["total"] += total

    same = {os.path.abspath(p) for p in inputs}
    write_folder_atomically(output, fill, replaces_input=os.path.abspath(output) in same)
    return CopyReport(os.path.abspath(output), counts["copied"], counts["total"] - counts["copied"], 0)


def filter_records(source_folder: str, target, output: str, measured_only: bool = False) -> CopyReport:
    """Copy the records of ``source_folder`` that are for ``target`` (kind and processor) into ``output``."""
    source = _open_nonempty(source_folder)
    counts = {}

    def fill(database):
        counts["copied"], counts["other"] = copy_records(source, database, target, measured_only=measured_only)

    write_folder_atomically(output, fill, replaces_input=os.path.abspath(output) == os.path.abspath(source_folder))
    total = len(source.get_all_tuning_records())
    return CopyReport(os.path.abspath(output), counts["copied"], total - counts["copied"] - counts["other"], counts["other"])
