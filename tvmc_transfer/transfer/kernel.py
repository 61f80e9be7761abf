"""One kernel's transfer: replay its candidates, rank them, check and measure the most promising; commit the
correct ones.

Building, checking and measuring are what a candidate costs, replaying and ranking next to nothing. So every
candidate is replayed and post-processed, the distinct schedules are ranked by the shipped cost model
(``default_picks.predicted_order``; nearest shapes first without it), and they are built, checked and measured in
that order, ``measure_top`` at a time, each next batch only while the last beat everything measured before it
with a candidate from its lower-ranked half (while the cost model's order still misplaces the best). A
candidate is checked by running the library its build made (no second compile), and only a correct one is
measured.
The unscheduled kernel is committed instead when it is faster than every schedule measured. It is measured
with the same protocol only when it could be: when its one run in the check took under ``ROUGH_DEFAULT``
seconds or under ``DEFAULT_MARGIN`` times the best schedule's time. Otherwise that one run is its reported
time: an unscheduled convolution takes far longer than a scheduled one, and measuring it with the full protocol
was a large share of a transfer's search time (BENCHMARKS, session 18)."""

import logging
import time
from concurrent.futures import ThreadPoolExecutor

import attrs

from ..defaults.cost_model import predicted_order
from ..errors import one_line
from ..kernels.check import KernelCheck, weight_packing
from ..kernels.replay import replay_candidates
from ..records.database import mean_seconds, replayed
from ..records.listing import workload_hash
from ..tune.measure import measure_modules
from .observer import TransferObserver
from .report import KernelTransfer

log = logging.getLogger("tvmc")

ROUGH_DEFAULT = 0.01  # seconds: an unscheduled kernel's one run that long is its time within a few percent
DEFAULT_MARGIN = 2.0  # an unscheduled kernel this many times slower than the best schedule cannot win


def transfer_kernel(task, klass, candidates, target, folder, builder, runner, options, model=None, deadline=None, observer=None) -> KernelTransfer:
    """Replay, post-process and rank the candidates of one kernel, check and measure the best ranked; commit the
    correct ones to the ``RecordsFolder`` ``folder``. ``options``: the ``TransferOptions``; ``model``: the cost
    model that ranks them (``default_picks.load_cost_model``; None: nearest shapes first); ``deadline``: a
    ``time.monotonic()`` after which no further batch is measured (the first always is); ``observer``: a
    ``TransferObserver`` told of each step (None: nobody)."""
    observer = TransferObserver() if observer is None else observer
    row = KernelTransfer.of(task, str(klass), "failed")
    started = time.perf_counter()
    try:
        check = KernelCheck(task.mod, target, options.rtol, options.seed)
    except Exception as err:  # pylint: disable=broad-except
        # without a reference nothing can be checked, so nothing is used
        log.warning("%s: the unscheduled kernel does not build or run here (%s); no candidate can be checked", task.name, one_line(err, 200))
        return row
    observer.reference_ran(task, time.perf_counter() - started)
    key = workload_hash(task.mod)
    identical = [c for c in candidates if workload_hash(c.workload.mod) == key]
    if identical:
        row, reused, mod = _reuse(task, identical, check, row, observer)
        if reused:
            done = _measure_reused(task, row, target, folder, builder, runner, reused, mod)
            if done is not None:
                return done
            row = attrs.evolve(row, invalid=row.invalid + 1)
        candidates = [c for c in candidates if workload_hash(c.workload.mod) != key]

    started = time.perf_counter()
    replayed, context, row = _replayed(task, klass, candidates, target, row)
    observer.replayed(task, replayed, context, time.perf_counter() - started)
    top = options.measure_top or len(replayed)
    started = time.perf_counter()
    order = _ranking(task, context, model, replayed, top)
    observer.ranked(task, order, time.perf_counter() - started)
    queue = [replayed[i] for i in order]
    batch, queue = queue[:top], queue[top:]
    measured = _measure_observed(task, batch, check, builder, runner, target, observer)
    best, ran, sent, wrong = None, 0, 0, 0
    while True:
        before = best and best[0]
        batch_best = None  # (mean, position in the batch)
        for position, ((sch, candidate), (secs, args_info)) in enumerate(zip(batch, measured)):
            if secs == WRONG:
                wrong += 1
                _dropped_wrong(task, candidate)
                continue
            sent += 1
            if secs is None:
                continue  # built or ran badly: counted as invalid below
            ran += 1
            folder.commit(task.mod, sch.trace, secs, target, args_info)
            mean = _mean(secs)
            if best is None or mean < best[0]:
                best = (mean, candidate)
            if batch_best is None or mean < batch_best[0]:
                batch_best = (mean, position)
        if not queue or not next_batch_pays(batch_best, before, len(batch)) or (deadline is not None and time.monotonic() > deadline):
            break
        batch, queue = queue[:top], queue[top:]
        measured = _measure_observed(task, batch, check, builder, runner, target, observer)
    default_secs, default_args = _default_time(task, check, best and best[0], builder, runner, target)
    row = attrs.evolve(
        row,
        wrong=row.wrong + wrong,
        ranked=len(replayed),
        measured=sent,
        valid=ran,
        invalid=row.invalid + sent - ran,
        status="transferred" if best else "failed",
        best_source=best[1].describe() if best else None,
        seconds=best[0] if best else None,
        default_seconds=_mean(default_secs),
    )
    return _keep_default_if_faster(row, task.mod, default_secs, default_args, target, folder)


def next_batch_pays(batch_best, before, size: int) -> bool:
    """Transfer's stopping rule: measure the next ranked batch only when the last one (``size`` candidates; its
    best ``(seconds, position)``, None when none ran) beat ``before`` (the best before it, None: nothing) with
    a candidate from its lower-ranked half. Then the ranking still found better ones low in the batch, and the
    next ranked ones may be better yet."""
    return batch_best is not None and (before is None or batch_best[0] < before) and batch_best[1] >= size // 2


WRONG = "wrong"  # in place of run_secs: the candidate computed wrong numbers (and was not run)


def _dropped_wrong(task, candidate) -> None:
    log.info("%s: %s computes wrong results; dropped", task.name, candidate.describe())


def _default_time(task, check, best, builder, runner, target) -> tuple:
    """``(run_secs, args_info)`` of the unscheduled kernel: measured as the candidates were when it could beat
    ``best`` (seconds; None: nothing ran), else its one run in the check (``args_info`` None: never committed)."""
    rough = check.seconds
    if best is not None and rough >= ROUGH_DEFAULT and rough > DEFAULT_MARGIN * best:
        return [rough], None
    ((secs, args),) = measure_modules(builder, runner, target, [task.mod])
    return secs, args


def _measure_observed(task, batch, check, builder, runner, target, observer) -> list:
    """``_measure``, with the ``observer`` told of each check and of the batch."""
    started = time.perf_counter()
    measured = _measure(batch, check, builder, runner, target, checked=lambda i, *seen: observer.checked(task, batch[i][1], *seen))
    observer.measured(task, batch, [None if secs == WRONG else _mean(secs) for secs, _ in measured], time.perf_counter() - started)
    return measured


def _timed(fn, *args) -> tuple:
    """``(fn(*args), seconds it took)``."""
    started = time.perf_counter()
    return fn(*args), time.perf_counter() - started


def _measure(batch, check, builder, runner, target, checked=None) -> list:
    """Build ``batch``, check each candidate's numbers and run the correct ones: per module ``(run_secs,
    args_info)`` as ``measure_modules``, ``run_secs`` ``WRONG`` for a wrong candidate. A candidate is checked by
    running the library the builder made of it, its random weights packed as its schedule says
    (``check.weight_packing``), once the batch is built and before any candidate runs, so no measurement shares
    the CPU with a check. One whose packing is not a plain relayout, or a library built for another machine, is
    compiled here instead, in a thread, while the builder's workers build the batch. ``checked(index, correct,
    seconds, on_library)``, when given, is told of each check."""
    mods = [sch.mod for sch, _ in batch]
    here = getattr(builder, "cross", None) is None  # the builder's libraries run on this machine
    packings = [weight_packing(mod) if here else None for mod in mods]
    wrong = set()
    with ThreadPoolExecutor(max_workers=1) as pool:
        verdicts = [pool.submit(_timed, check.is_correct, mod) if packing is None else None for mod, packing in zip(mods, packings)]

        def accept(i, path):
            on_library = verdicts[i] is None
            correct, seconds = _timed(check.library_is_correct, path, packings[i]) if on_library else verdicts[i].result()
            if checked is not None:
                checked(i, correct, seconds, on_library)
            if correct:
                return True
            wrong.add(i)
            return False

        results = measure_modules(builder, runner, target, mods, accept=accept)
    return [(WRONG, args) if i in wrong else (secs, args) for i, (secs, args) in enumerate(results)]


def _mean(secs):
    return sum(secs) / len(secs) if secs else None


def _ranking(task, context, model, replayed, top) -> list:
    """The order to check and measure ``replayed`` in: the cost model's, when not all of them are measured at once."""

    if len(replayed) <= top:
        return list(range(len(replayed)))
    try:
        return predicted_order(task.mod, context, model, [sch for sch, _ in replayed])
    except Exception as err:  # pylint: disable=broad-except
        log.warning("%s: the cost model cannot rank its candidates (%s); nearest shapes first", task.name, one_line(err, 200))
        return list(range(len(replayed)))


def _next_correct(task, queue, count, check, row):
    """The first ``count`` schedules of ``queue`` that compute the right numbers, the rest of the queue after
    them, and ``row`` with the wrong ones counted."""
    batch = []
    while queue and len(batch) < count:
        (sch, candidate), queue = queue[0], queue[1:]
        if check.is_correct(sch.mod):
            batch.append((sch, candidate))
        else:
            row = attrs.evolve(row, wrong=row.wrong + 1)
            _dropped_wrong(task, candidate)
    return batch, queue, row


def _reuse(task, identical, check, row, observer):
    """An identical workload in a source: its record applies as it is; still check it. ``(row, candidate,
    scheduled module)`` of the first that replays and checks out, ``(row, None, None)`` when none does."""
    for candidate in identical:
        row = attrs.evolve(row, candidates=row.candidates + 1)
        mod = replayed(task.mod, candidate.record.trace)
        if mod is None:
            row = attrs.evolve(row, invalid=row.invalid + 1)
            continue
        correct, seconds = _timed(check.is_correct, mod)
        observer.checked(task, candidate, correct, seconds, False)
        if not correct:
            row = attrs.evolve(row, wrong=row.wrong + 1)
            continue
        return row, candidate, mod
    return row, None, None


def _measure_reused(task, row, target, folder, builder, runner, reused, mod):
    """The reused schedule measured here beside the unscheduled kernel, and committed with that time: its
    source's time was measured on another machine, thread count or day, and would compete unfairly with this
    machine's records. The row, or None when the schedule does not build or run here."""
    (default_secs, default_args), (secs, args_info) = measure_modules(builder, runner, target, [task.mod, mod])
    if secs is None:
        log.warning("%s: %s does not build or run here; its other candidates are tried instead", task.name, reused.describe())
        return None
    folder.commit(task.mod, reused.record.trace, secs, target, args_info)
    log.debug("%s: reused %s, %.1f us at its source, %.1f us here", task.name, reused.describe(), mean_seconds(reused.record) * 1e6, _mean(secs) * 1e6)
    row = attrs.evolve(row, valid=row.valid + 1, status="reused", best_source=reused.describe(), seconds=_mean(secs),
                       default_seconds=_mean(default_secs))
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
    replayed, _, row = _replayed(task, klass, candidates, target, row)
    valid, _, row = _next_correct(task, replayed, len(replayed), check, row)
    return valid, row


def _replayed(task, klass, candidates, target, row) -> tuple:
    """``replay_candidates``, its counts added to ``row``."""
    replayed, context, counts = replay_candidates(task, klass, candidates, target)
    row = attrs.evolve(row, candidates=row.candidates + counts.tried, invalid=row.invalid + counts.invalid, remapped=row.remapped + counts.remapped)
    return replayed, context, row
