"""``refine_with_droplet`` and ``droplet_phase``: droplet search on a model's tasks, and what it gained.

The search itself is a MetaSchedule search strategy, registered with the tuning engine as ``droplet`` (``search.py``); here it runs on the tasks
of a model or of a session (``tvmc tune --droplet``, ``tvmc transfer --droplet``) in an open records folder,
and ``DropletReport`` (``report.py``) says where each task's walk started and ended.

>>> from tvmc_transfer.droplet.phase import refine_with_droplet, DropletOptions              # doctest: +SKIP
>>> report = refine_with_droplet(model, target, "records", DropletOptions(trials=32))    # doctest: +SKIP
>>> print(report.summary())                                                              # doctest: +SKIP
"""

import sys
import time

from ..build.lowering import Lowering
from ..build.tasks import costliest_first, extract_tasks, select_tasks
from ..errors import TVMCException
from ..records.folder import RecordsFolder
from ..records.lock import writes_records
from ..target import tuning_target
from ..tune.measure import MeasureOptions
from ..tune.engine import make_search, measuring, run_search
from ..tune.scheduler import CommittingGradientScheduler
from .report import DropletReport, DropletTaskResult
from .search import DropletOptions, Shared, mean_of


def refine_tasks(tasks, target, folder, options: DropletOptions, measure: MeasureOptions, progress=True, deadline: float | None = None) -> DropletReport:
    """Refine each task's best schedule in the open ``RecordsFolder`` ``folder`` with droplet search. The
    walks take their first batches costliest kernel first (best record times uses), so that a ``deadline``
    (``time.monotonic()``; no batch starts after it) cuts the light kernels' walks, not the heavy ones'."""
    from tvm_ffi import structural_hash  # pylint: disable=import-outside-toplevel

    if measure.repeat < 2:
        raise TVMCException("droplet search compares repeated measurements with a t-test: use --repeat 2 or more")
    start = time.time()
    if not tasks:
        return DropletReport((), options.pvalue, time.time() - start, options.trials)
    tasks = costliest_first(tasks, {t.index: folder.best_seconds(t.mod) for t in tasks})
    keys = {str(structural_hash(t.mod)): t for t in tasks}
    names = {k: f"#{t.index} {t.name}" for k, t in keys.items()}
    shared = Shared(options, folder, names, sys.stderr if progress else None)
    search = make_search("droplet", options=options, shared=shared, tasks=len(tasks), batch=options.batch or max(16, measure.parallel))
    # Commits each batch at once, as tune does; a local runner measures alone, so the t-tests compare samples
    # no search slowed.
    scheduler = CommittingGradientScheduler(seed=0, deadline=deadline, measure_alone=not measure.rpc_tracker)
    with measuring(target, measure) as (builder, runner):
        run_search(tasks, folder, search, scheduler, builder, runner, measure.parallel, seed=0)
    results = []
    for key, task in keys.items():
        first, last, moves, trials, measured, converged = shared.results.get(key, (None, None, (), 0, 0, False))
        results.append(DropletTaskResult.of(task, mean_of(first), mean_of(last), moves, trials, measured, converged))
    return DropletReport(tuple(sorted(results, key=lambda r: r.index)), options.pvalue, time.time() - start, options.trials, scheduler.out_of_time)


@writes_records
def refine_with_droplet(model, target, records: str, options: DropletOptions = DropletOptions(), measure: MeasureOptions = MeasureOptions(), tasks: str | None = None, progress=True, lowering=None) -> DropletReport:
    """Refine the best schedules in the records folder ``records`` with droplet search; new records land there.
    ``lowering`` (default ``Lowering()``) must be the one the records were tuned under.

    >>> report = refine_with_droplet(load_model("net.onnx"), parse_target("llvm"), "records",   # doctest: +SKIP
    ...                              DropletOptions(trials=32), measure=MeasureOptions(repeat=5))
    """

    target = tuning_target(target)
    folder = RecordsFolder(records)
    chosen = select_tasks(extract_tasks(model, target, lowering or Lowering()), tasks)
    return refine_tasks(chosen, target, folder, options, measure, progress)


def droplet_phase(options: DropletOptions):
    """A ``tune_model`` or ``transfer_tune`` phase: refine each task of the session with droplet search (from
    its best record, or from the fastest of its design spaces when it has none)."""

    def phase(session) -> DropletReport:
        return refine_tasks(session.tasks, session.target, session.folder, options, session.options.measure, deadline=session.deadline)

    return phase
