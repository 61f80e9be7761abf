"""``tvmc records list`` and ``best``: each workload of a records folder with its class, shapes and best time."""

import attrs

from ..errors import TVMCException
from ..kernels.classes import kernel_class, main_func
from .database import is_measured, open_database, target_label
from .folder import best_seconds


def workload_hash(mod) -> str:
    """A workload's structural hash as 16 hex digits: its name in journals and reports across folders and runs."""
    from tvm_ffi import structural_hash  # pylint: disable=import-outside-toplevel

    return f"{structural_hash(mod) & ((1 << 64) - 1):016x}"


def shapes_text(mod) -> str:
    """``1x64x56x56,64x64x3x3->1x64x56x56``: the shapes of a workload's buffers, inputs first."""

    params = [p for p in main_func(mod).params if hasattr(p, "shape")]
    text = ["x".join(str(int(d)) if hasattr(d, "value") or isinstance(d, int) else str(d) for d in p.shape) for p in params]
    return ",".join(text[:-1]) + "->" + (text[-1] if text else "")


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
                best_seconds(group),
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
