"""``refine_with_droplet`` and ``droplet_phase``: droplet search on a model's tasks, and what it gained.

The search itself is a MetaSchedule search strategy (``tuning/droplet_search.py``); here it runs on the tasks
of a model or of a session (``tvmc tune --droplet``, ``tvmc transfer --droplet``) in an open records folder,
and ``DropletReport`` says where each task's walk started and ended.

>>> from tvmc_transfer.droplet import refine_with_droplet, DropletOptions              # doctest: +SKIP
>>> report = refine_with_droplet(model, target, "records", DropletOptions(trials=32))    # doctest: +SKIP
>>> print(report.summary())                                                              # doctest: +SKIP
"""

import sys
import time

import attrs

from .errors import TVMCException
from .measure import MeasureOptions
from .records.folder import RecordsFolder
from .target import tuning_target
from .tuning.droplet_search import DropletOptions, DropletSearch, Shared, mean_of


@attrs.frozen
class DropletTaskResult:
    index: int
    name: str
    weight: int
    start_seconds: float | None  # mean time of the schedule the walk started from, as measured beside its first batch
    final_seconds: float | None  # mean time of where it ended
    moves: tuple  # of Move
    trials: int  # points the walk tried, recorded ones included
    measured: int  # schedules measured in this run (the design spaces' starts included)
    converged: bool

    @property
    def p_value(self) -> float | None:
        return self.moves[-1].p_value if self.moves else None

    @property
    def speedup(self) -> float | None:
        ok = self.start_seconds and self.final_seconds
        return self.start_seconds / self.final_seconds if ok else None


@attrs.frozen
class DropletReport:
    tasks: tuple  # of DropletTaskResult
    pvalue: float
    wall_seconds: float

    @property
    def measured(self) -> int:
        return sum(t.measured for t in self.tasks)

    def weighted(self, attr: str) -> float:
        return sum(getattr(t, attr) * t.weight for t in self.tasks if t.start_seconds and t.final_seconds)

    def summary(self) -> str:
        rows = [f"droplet search (p < {self.pvalue:g}):", f"{'#':>3}  {'task':<32} {'start (us)':>11} {'final (us)':>11} {'moves':>5} {'p':>8} {'trials':>6}  stop"]
        for t in self.tasks:
            start = f"{t.start_seconds * 1e6:11.2f}" if t.start_seconds else f"{'-':>11}"
            final = f"{t.final_seconds * 1e6:11.2f}" if t.final_seconds else f"{'-':>11}"
            p = f"{t.p_value:8.1e}" if t.p_value is not None else f"{'-':>8}"
            stop = "converged" if t.converged else "budget"
            rows.append(f"{t.index:>3}  {t.name[:32]:<32} {start} {final} {len(t.moves):>5} {p} {t.trials:>6}  {stop}")
        before, after = self.weighted("start_seconds"), self.weighted("final_seconds")
        gain = f"{before * 1e3:.3f} ms -> {after * 1e3:.3f} ms ({before / after:.2f}x)" if after else "nothing to compare"
        rows.append(f"droplet: sum of weighted times {gain}; {self.measured} new trials in {self.wall_seconds:.1f} s")
        return "\n".join(rows)

    def to_json(self) -> dict:
        """The summary as plain data: per task where the walk started and ended, and the weighted totals."""
        tasks = [
            {
                "index": t.index,
                "task": t.name,
                "weight": t.weight,
                "start_seconds": t.start_seconds,
                "final_seconds": t.final_seconds,
                "speedup": t.speedup,
                "moves": len(t.moves),
                "p_value": t.p_value,
                "trials": t.trials,
                "measured": t.measured,
                "converged": t.converged,
            }
            for t in self.tasks
        ]
        before, after = self.weighted("start_seconds"), self.weighted("final_seconds")
        return {
            "phase": "droplet",
            "pvalue": self.pvalue,
            "tasks": tasks,
            "weighted_start_seconds": before,
            "weighted_final_seconds": after,
            "speedup": before / after if after else None,
            "measured": self.measured,
            "wall_seconds": self.wall_seconds,
        }


def refine_tasks(tasks, target, folder, options: DropletOptions, measure: MeasureOptions, progress=True) -> DropletReport:
    """Refine each task's best schedule in the open ``RecordsFolder`` ``folder`` with droplet search."""
    from tvm.s_tir import meta_schedule as ms  # pylint: disable=import-outside-toplevel
    from tvm_ffi import structural_hash

    from .intrinsics import load_tensor_intrinsics
    from .tuning.task_logs import tune_contexts
    from .tuning.scheduler import CommittingGradientScheduler

    if measure.repeat < 2:
        raise TVMCException("droplet search compares repeated measurements with a t-test: use --repeat 2 or more")
    start = time.time()
    load_tensor_intrinsics(target)
    keys = {str(structural_hash(t.mod)): t for t in tasks}
    names = {k: f"#{t.index} {t.name}" for k, t in keys.items()}
    shared = Shared(options, folder, names, sys.stderr if progress else None)
    batch = options.batch or max(16, measure.parallel)
    with tune_contexts([t.extracted for t in tasks], folder.path, DropletSearch(options, shared), measure.parallel, seed=0) as (contexts, weights):
        if not contexts:
            return DropletReport((), options.pvalue, time.time() - start)
        builder = measure.make_builder(target)
        try:
            ms.tune_tasks(
                tasks=contexts,
                task_weights=weights,
                work_dir=folder.path,
                # The strategy keeps each task's budget itself; the scheduler's caps only need to stay above it
                # (the starts of the design spaces are measured on top when a task has no record).
                max_trials_global=(options.trials + 64) * len(contexts),
                max_trials_per_task=options.trials + 64,
                num_trials_per_iter=batch,
                builder=builder,
                runner=measure.make_runner(),
                database=folder.database,
                cost_model=ms.cost_model.RandomModel(),  # droplet needs none; this one is free to create
                measure_callbacks=[ms.measure_callback.AddToDatabase(), ms.measure_callback.RemoveBuildArtifact()],
                task_scheduler=CommittingGradientScheduler(seed=0),  # commits each batch at once, as tune does
            )
        finally:
            builder.shutdown()
    results = []
    for key, task in keys.items():
        first, last, moves, trials, measured, converged = shared.results.get(key, (None, None, (), 0, 0, False))
        results.append(DropletTaskResult(task.index, task.name, task.weight, mean_of(first), mean_of(last), moves, trials, measured, converged))
    return DropletReport(tuple(sorted(results, key=lambda r: r.index)), options.pvalue, time.time() - start)


def refine_with_droplet(model, target, records: str, options: DropletOptions = DropletOptions(), measure: MeasureOptions = MeasureOptions(), tasks: str | None = None, progress=True, lowering=None) -> DropletReport:
    """Refine the best schedules in the records folder ``records`` with droplet search; new records land there.
    ``lowering`` (default ``Lowering()``) must be the one the records were tuned under.

    >>> report = refine_with_droplet(load_model("net.onnx"), parse_target("llvm"), "records",   # doctest: +SKIP
    ...                              DropletOptions(trials=32), measure=MeasureOptions(repeat=5))
    """
    from .lowering import Lowering  # pylint: disable=import-outside-toplevel
    from .tasks import extract_tasks, select_tasks

    target = tuning_target(target)
    folder = RecordsFolder(records)
    chosen = select_tasks(extract_tasks(model, target, lowering or Lowering()), tasks)
    return refine_tasks(chosen, target, folder, options, measure, progress)


def droplet_phase(options: DropletOptions):
    """A ``tune_model`` or ``transfer_tune`` phase: refine each task of the session with droplet search (from
    its best record, or from the fastest of its design spaces when it has none)."""

    def phase(session) -> DropletReport:
        return refine_tasks(session.tasks, session.target, session.folder, options, session.options.measure)

    return phase
