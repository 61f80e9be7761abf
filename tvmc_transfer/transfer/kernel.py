"""One kernel's transfer: replay, check and measure its candidates; commit the correct ones.

The unscheduled kernel is measured beside them and committed instead when it is faster than all of them."""

import logging

import attrs

from ..errors import one_line
from ..measure import measure_modules
from ..records.database import mean_seconds
from ..records.listing import workload_hash
from .check import KernelCheck
from .replay import ReplayError, replay
from .report import KernelTransfer

log = logging.getLogger("tvmc")


def transfer_kernel(task, klass, candidates, target, folder, builder, runner, options) -> KernelTransfer:
    """Replay, post-process, check and measure the candidates of one kernel; commit the correct ones to the
    ``RecordsFolder`` ``folder``. ``options``: the ``TransferOptions``."""
    row = KernelTransfer(task.index, task.name, str(klass), task.weight, task.flops, "failed")
    try:
        check = KernelCheck(task.mod, target, options.rtol, options.seed)
    except Exception as err:  # pylint: disable=broad-except
        # without a reference nothing can be checked, so nothing is used
        log.warning("%s: the unscheduled kernel does not build or run here (%s); no candidate can be checked", task.name, one_line(err, 200))
        return row
    key = workload_hash(task.mod)
    identical = [c for c in candidates if workload_hash(c.workload.mod) == key]
    if identical:
        row, reused = _reuse(task, identical, check, target, folder, row)
        if reused:
            return _against_default(task, row, target, folder, builder, runner, reused)
        candidates = [c for c in candidates if workload_hash(c.workload.mod) != key]

    valid, row = replay_all(task, klass, candidates, target, check, row)
    measured = measure_modules(builder, runner, target, [task.mod] + [sch.mod for sch, _ in valid])
    default_secs, default_args = measured[0]
    best = None
    ran = 0
    for (sch, candidate), (secs, args_info) in zip(valid, measured[1:]):
        if secs is None:
            continue  # built or ran badly: counted as invalid below
        ran += 1
        folder.commit(task.mod, sch.trace, secs, target, args_info)
        mean = sum(secs) / len(secs)
        if best is None or mean < best[0]:
            best = (mean, candidate)
    row = attrs.evolve(
        row,
        valid=ran,
        invalid=row.invalid + len(valid) - ran,
        status="transferred" if best else "failed",
        best_source=best[1].describe() if best else None,
        seconds=best[0] if best else None,
        default_seconds=sum(default_secs) / len(default_secs) if default_secs else None,
    )
    return _keep_default_if_faster(row, task.mod, default_secs, default_args, target, folder)


def _reuse(task, identical, check, target, folder, row):
    """An identical workload in a source: its record applies as it is; still check it before copying it."""
    from tvm import s_tir  # pylint: disable=import-outside-toplevel

    for candidate in identical:
        row = attrs.evolve(row, candidates=row.candidates + 1)
        sch = s_tir.Schedule(task.mod)
        try:
            candidate.record.trace.apply_to_schedule(sch, remove_postproc=False)
        except Exception:  # pylint: disable=broad-except
            row = attrs.evolve(row, invalid=row.invalid + 1)
            continue
        if not check.is_correct(sch.mod):
            row = attrs.evolve(row, wrong=row.wrong + 1)
            continue
        record = candidate.record
        folder.commit(task.mod, record.trace, [float(x) for x in record.run_secs], target, record.args_info)
        row = attrs.evolve(row, valid=row.valid + 1, status="reused", best_source=candidate.describe(), seconds=mean_seconds(record))
        return row, candidate
    return row, None


def _against_default(task, row, target, folder, builder, runner, reused):
    (default_secs, default_args), = measure_modules(builder, runner, target, [task.mod])
    row = attrs.evolve(row, default_seconds=sum(default_secs) / len(default_secs) if default_secs else None)
    return _keep_default_if_faster(row, task.mod, default_secs, default_args, target, folder)


def _keep_default_if_faster(row, mod, default_secs, default_args, target, folder):
    """When the unscheduled kernel beats every transferred schedule, record it too (an empty trace), so that
    compiling with these records never makes a kernel slower than not tuning it."""
    from tvm.s_tir.schedule import Trace  # pylint: disable=import-outside-toplevel

    if row.seconds is None or row.default_seconds is None or row.default_seconds >= row.seconds:
        return row
    folder.commit(mod, Trace([], {}), default_secs, target, default_args)
    return attrs.evolve(row, status="default")


def replay_all(task, klass, candidates, target, check, row):
    """Replay and post-process every candidate, drop duplicates, check the numbers: the correct schedules."""
    from tvm.s_tir import meta_schedule as ms  # pylint: disable=import-outside-toplevel
    from tvm_ffi import structural_hash


    context = ms.TuneContext(mod=task.mod, target=target, space_generator="post-order-apply", task_name=task.name)
    postprocs = list(context.space_generator.postprocs)
    seen = set()
    valid = []
    tried, invalid, wrong, remapped = row.candidates, row.invalid, row.wrong, row.remapped
    for candidate in candidates:
        source = candidate.workload.kernel_class
        inline, drop = klass.epilogue_plan(source)  # nothing to fit within a class
        names = dict(zip([b for b in source.blocks if b not in drop], [b for b in klass.blocks if b not in inline]))
        try:
            replayed = replay(candidate.record.trace, task.mod, names, inline, drop, klass.consumers_differ(source))
        except ReplayError as err:
            tried, invalid = tried + 1, invalid + 1
            log.debug("%s: %s does not replay: %s", task.name, candidate.describe(), err)
            continue
        sch = replayed.schedule
        sch.enter_postproc()
        if not all(_apply(p, sch) for p in postprocs):
            tried, invalid = tried + 1, invalid + 1
            log.debug("%s: %s fails a postprocessor", task.name, candidate.describe())
            continue
        key = structural_hash(sch.mod)
        if key in seen:
            continue  # another source record led to the same schedule here: measured once
        seen.add(key)
        tried += 1
        remapped += replayed.remapped
        if not check.is_correct(sch.mod):
            wrong += 1
            log.info("%s: %s computes wrong results; dropped", task.name, candidate.describe())
            continue
        valid.append((sch, candidate))
    return valid, attrs.evolve(row, candidates=tried, invalid=invalid, wrong=wrong, remapped=remapped)


def _apply(postproc, sch) -> bool:
    try:
        return bool(postproc.apply(sch))
    except Exception:  # pylint: disable=broad-except
        return False
