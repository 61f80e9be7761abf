"""``tune_model``: MetaSchedule's evolutionary search, fast on a small machine and resumable.

The search, cost model and database are TVM's own, run by the tuning engine (``engine.py``: strategy
``evolutionary``); what we add lives beside it: a builder that does not pay TVM's 20 s tensor-intrinsic import
per worker (``builder.py``), a search wrapper that makes a second run with the same records folder resume instead
of starting over (``search.py``), a gradient scheduler that commits each batch as soon as the next starts
(``scheduler.py``), each kernel's default schedule measured first (``seeds.py``) and progress output
(``progress.py``).
"""

import logging
import os
import time

import attrs

from ..build.lowering import Lowering
from ..build.tasks import costliest_first, extract_tasks, select_tasks
from ..defaults.schedules import DefaultOptions
from ..errors import TVMCException
from ..kernels.kernel import Kernel
from ..records.database import copy_records, open_database, records_of
from ..records.folder import RecordsFolder, best_seconds
from ..records.lock import claim, writes_records
from ..session import Plan, Session
from ..target import tuning_target
from .engine import deadline, make_search, measuring, run_search
from .measure import MeasureOptions
from .option_defaults import POPULATION, SEED, TRIALS, TRIALS_PER_ITER, population_for
from .seeds import seed_with_defaults

log = logging.getLogger("tvmc")


@attrs.frozen
class TuneOptions:
    """What to tune and how much. ``trials`` is the total budget over all tasks, trials already in the
    records included; ``trials_per_task`` caps each task (default: no cap beyond the total)."""

    trials: int = TRIALS
    trials_per_task: int | None = None
    trials_per_iter: int | None = None  # None: as many as lets every task have a batch, at most 64
    tasks: str | None = None  # "0,2-5"
    seed: int | None = SEED
    population: int | None = POPULATION  # evolutionary search's population (None: population_for the batch)
    measure: MeasureOptions = attrs.field(factory=MeasureOptions)
    lowering: Lowering = attrs.field(factory=Lowering)  # records match only the lowering they were tuned under
    time_budget: float | None = None  # wall-clock seconds of the whole run; no batch starts after it
    patience: int | None = None  # stop a task whose best has not moved in this many of its batches
    default_start: bool = True  # measure each kernel's default schedule first and search from it (tune/seeds.py)
    defaults: DefaultOptions = attrs.field(factory=DefaultOptions)  # how those defaults are chosen (the library)

    def __attrs_post_init__(self):
        if self.trials < 0 or (self.trials_per_task is not None and self.trials_per_task < 1):
            raise TVMCException("--trials must be >= 0 and --trials-per-task >= 1")
        if (self.trials_per_iter is not None and self.trials_per_iter < 1) or (self.population is not None and self.population < 2):
            raise TVMCException("--trials-per-iter must be >= 1 and --population >= 2")
        if (self.time_budget is not None and self.time_budget <= 0) or (self.patience is not None and self.patience < 1):
            raise TVMCException("--time-limit must be a positive number of seconds and --patience at least 1")


@attrs.frozen
class TaskResult(Kernel):
    """What tuning holds for one kernel: its records and the best time among them."""

    trials: int  # records in the database for this task, old and new, failed ones included
    best_seconds: float | None

    @property
    def weighted_seconds(self) -> float | None:
        return None if self.best_seconds is None else self.best_seconds * self.weight

    def to_json(self) -> dict:
        return {"index": self.index, "task": self.name, "weight": self.weight, "flops": self.flops, "trials": self.trials, "best_seconds": self.best_seconds}


@attrs.frozen
class TuneReport:
    """What ``tune_model`` did: per task its records and best time (``TaskResult``), the new trials, the wall
    time and the reports of the plan's phases; ``summary()`` is what ``tvmc tune`` prints."""

    records: str
    tasks: tuple  # of TaskResult
    new_trials: int
    wall_seconds: float
    phases: tuple = ()  # reports of extra phases (droplet search, ...), in order
    time: object = None  # TuneTime: where the wall time went (clock.py)
    stopped: tuple = ()  # indices of the tasks --patience stopped
    out_of_time: bool = False  # --time-budget ended the search before the trials ran out
    seeds: object = None  # tuning.seeds.Seeds: the kernels that started from their measured default schedule

    def summary(self) -> str:
        """Per task its trials, best time and GFLOP/s, then the totals and where the time went."""
        rows = [f"{'#':>3}  {'task':<36} {'weight':>6} {'trials':>6} {'best (us)':>11} {'GFLOP/s':>8}"]
        for t in self.tasks:
            best = f"{t.best_seconds * 1e6:11.2f}" if t.best_seconds is not None else f"{'-':>11}"
            gflops = f"{t.flops / t.best_seconds / 1e9:8.2f}" if t.best_seconds and t.flops else f"{'-':>8}"
            rows.append(f"{t.index:>3}  {t.name[:36]:<36} {t.weight:>6} {t.trials:>6} {best} {gflops}")
        total = sum(t.weighted_seconds for t in self.tasks if t.weighted_seconds is not None)
        rows.append(f"sum of weighted best times: {total * 1e3:.3f} ms; {self.new_trials} new trials in {self.wall_seconds:.1f} s")
        rows += stop_lines(self)
        if self.seeds is not None and (self.seeds.seeded or self.seeds.failed):
            rows.append(self.seeds.line())
        if self.time is not None:
            rows.append(self.time.line())
        return "\n".join(rows)

    def to_json(self) -> dict:
        """The summary as plain data: per task its trials and best time, and what the run did."""
        data = {
            "records": self.records,
            "tasks": [t.to_json() for t in self.tasks],
            "new_trials": self.new_trials,
            "wall_seconds": self.wall_seconds,
            "measured_defaults": self.seeds.seeded if self.seeds is not None else 0,
            "stopped": list(self.stopped),
            "out_of_time": self.out_of_time,
        }
        if self.time is not None:
            data["time"] = self.time.to_json()
        if self.phases:
            data["phases"] = [phase.to_json() for phase in self.phases]
        return data


def task_results(tasks, database) -> tuple:
    """Per task: how many measured records the database holds and the best mean time among them."""
    results = []
    for task in tasks:
        records = records_of(database, task.mod)
        results.append(TaskResult.of(task, len(records), best_seconds(records)))
    return tuple(results)


@writes_records
def tune_model(model, target, records: str, options: TuneOptions = TuneOptions(), prior_records=(), plan: Plan | None = None, progress=True) -> TuneReport:
    """Tune ``model`` for ``target``, writing MetaSchedule tuning records into the folder ``records``.

    Running it again with the same ``records`` resumes: trials already recorded count against the budget,
    and no recorded schedule is measured again. ``options.time_budget`` stops it on the wall clock (resume to
    go on), ``options.patience`` stops tasks that no longer improve; ``report.time`` says where the time went.
    The phases of ``plan`` run afterwards on the same folder.

    >>> from tvmc_transfer import load_model, parse_target, tune_model, TuneOptions   # doctest: +SKIP
    >>> report = tune_model(load_model("net.onnx"), parse_target("llvm"), "records", TuneOptions(trials=64))
    """
    start = time.time()
    claim(records)  # another process writing this folder: an error now, before any work
    target = tuning_target(target)
    all_tasks = extract_tasks(model, target, options.lowering)
    if not all_tasks:
        raise TVMCException(f"{model.path} has no kernels to tune")
    tasks = select_tasks(all_tasks, options.tasks)
    priors = [(path, open_database(path)) for path in prior_records]  # fail before creating anything
    folder = RecordsFolder(records, create=True)
    for prior, source in priors:
        copied, other = copy_records(source, folder.database, target)
        log.info("copied %d records from %s", copied, prior)
        if other:
            log.warning("%s: %d records are for another target and were ignored", prior, other)
    return tune_tasks(Session(model, target, tasks, folder, options), plan, progress, start)


def tune_tasks(session: Session, plan: Plan | None = None, progress=True, start: float | None = None) -> TuneReport:
    """Evolutionary search on ``session.tasks`` into the session's open records folder, with the session's
    ``TuneOptions``, then the phases of ``plan``; what ``tune_model`` and ``transfer --tune-rest`` run."""

    from .clock import Clock  # pylint: disable=import-outside-toplevel (MetaSchedule classes: see engine.py)
    from .scheduler import CommittingGradientScheduler

    start = time.time() if start is None else start
    target, tasks, options, database, records = session.target, session.tasks, session.options, session.database, session.records
    until = deadline(options.time_budget, start)  # --time-limit counts from the start of the command, task extraction included
    clock = Clock()
    already = sum(t.trials for t in task_results(tasks, database))
    budget = options.trials - already
    seeds, tuned = None, []
    scheduler = CommittingGradientScheduler(seed=options.seed or 0, patience=options.patience, deadline=until, measure_alone=not options.measure.rpc_tracker)
    if budget > 0:
        with measuring(target, options.measure, clock) as (builder, runner):
            if options.default_start:
                seeds = seed_with_defaults(tasks, target, session.folder, builder, runner, limit=budget, options=options.defaults)
                log.info("%s", seeds.line())
            tuned = _search(session, builder, runner, scheduler, clock, progress, budget)
            clock.stop_cpu()  # before the builder's workers go
    new_trials = sum(t.trials for t in task_results(tasks, database)) - already  # the measured defaults included
    phases = attrs.evolve(session, deadline=until).run(plan)  # --time-limit covers the phases too
    stopped = tuple(sorted(tuned[i].index for i in scheduler.stalled())) if tuned else ()
    wall = time.time() - start
    return TuneReport(os.path.abspath(records), task_results(tasks, database), new_trials, wall, phases, clock.time(wall), stopped, scheduler.out_of_time, seeds)


def _search(session: Session, builder, runner, scheduler, clock, progress, run_trials: int) -> list:
    """MetaSchedule's evolutionary search over the trials left of this run's ``run_trials`` (progress counts
    those measured before it, the defaults); the scheduler's tasks (ids index them)."""
    tasks, options, database = session.tasks, session.options, session.database
    results = task_results(tasks, database)  # read once: the budget left and the first round's order
    budget = options.trials - sum(t.trials for t in results)  # the measured defaults count
    if budget <= 0:
        return []
    if options.trials_per_iter and options.trials_per_iter * len(tasks) > budget:
        starved = len(tasks) - budget // options.trials_per_iter
        log.warning(
            "--trials-per-iter %d with %d tasks and %d trials to go: the %d lightest task(s) may get no trial "
            "(leave --trials-per-iter out to size batches so every task gets one)", options.trials_per_iter, len(tasks), budget, starved
        )
    # The scheduler's first round visits tasks in order: the costliest first by their measured defaults (or
    # records), the others by FLOPs, so a small budget goes where the time is, not to reshapes.
    by_cost = costliest_first(tasks, {r.index: r.best_seconds for r in results})
    callback = _progress_callback(progress, run_trials, [f"#{t.index} {t.name}" for t in by_cost], done=run_trials - budget,
                                  deadline=scheduler.deadline)
    batch = options.trials_per_iter or batch_size(budget, len(tasks))
    search = make_search(
        "evolutionary", trials=budget, per_task=options.trials_per_task or options.trials, batch=batch,
        population=options.population or population_for(batch), parallel=options.measure.parallel, clock=clock, callbacks=callback,
    )
    try:
        tuned = run_search(by_cost, session.folder, search, scheduler, builder, runner, options.measure.parallel, options.seed, clock.profile)
    finally:
        for cb in callback:
            cb.close()
    return tuned


def stop_lines(report) -> list:
    """What ended the search early, if anything: the time budget, tasks stopped by --patience."""
    lines = []
    if report.out_of_time:
        lines.append("stopped at --time-limit: run the same command again to go on from these records")
    if report.stopped:
        lines.append("--patience stopped task(s) " + ", ".join(f"#{i}" for i in report.stopped) + ": their best did not move; their trials went to the others")
    return lines


def batch_size(budget: int, tasks: int) -> int:
    """MetaSchedule's 64 candidates per batch, smaller when the budget would not give every task one."""
    return max(4, min(TRIALS_PER_ITER, budget // max(tasks, 1)))


def _progress_callback(progress, total: int, names: list, done: int = 0, deadline: float | None = None) -> list:
    from .progress import ProgressCallback  # pylint: disable=import-outside-toplevel

    if not progress:
        return []

    return [ProgressCallback(total, names, done=done, deadline=deadline)]
