"""Droplet search (Canesche, Pereira et al.) as a MetaSchedule search strategy: ``tvmc tune --droplet``.

A convergent coordinate search. Every sampling decision of a task's trace is an axis (``droplet_space.py``);
the walk and its t-test are in ``droplet_walk.py``.
From the task's best schedule, droplet measures the neighbours one step away along each axis, widening the
step (1, 2, 4, ... up to the longest axis) to fill a batch, and moves to the fastest neighbour only when a
one-sided Welch t-test on the repeated measurements says it is faster (p < ``pvalue``). It stops when a whole
neighbourhood, widest step included, brings no significant improvement, or when the budget is spent.

Every batch also re-measures the incumbent (its *control*; not counted as a trial), and a neighbour must be
significantly faster than both the incumbent's earlier measurement and that control, measured in the same
batch under the same load. Testing against the earlier samples alone made false moves on a shared machine
(see BENCHMARKS.md).

``DropletSearch`` is a ``PySearchStrategy``, so the task scheduler, builders, runners and database are
MetaSchedule's and its records are ordinary tuning records. A point whose scheduled module is already in the
database is not measured again: its recorded times are used, and it still counts as a trial of the walk. The
start of each task's walk is kept in ``droplet_starts.json`` in the records folder and the controls of its
batches in ``droplet_controls.json``, so running the same command again replays the same walk from the
database and measures nothing.

>>> from tvmc_transfer.droplet import refine_with_droplet, DropletOptions              # doctest: +SKIP
>>> report = refine_with_droplet(model, target, "records", DropletOptions(trials=32))    # doctest: +SKIP
>>> print(report.summary())                                                              # doctest: +SKIP
"""

import json
import math
import os
import statistics
import sys
import time

import attrs
from tvm.ir.utils import derived_object
from tvm.s_tir.meta_schedule.search_strategy import PySearchStrategy

from .tuning.droplet_space import DecisionSpace, recorded_points, run_samples
from .tuning.droplet_walk import Move, Walk, significantly_faster
from .errors import TVMCException
from .measure import MeasureOptions
from .target import tuning_target

STARTS = "droplet_starts.json"
CONTROLS = "droplet_controls.json"


@attrs.frozen
class DropletOptions:
    """``trials``: points each task's walk may try (recorded ones included); ``pvalue``: the t-test's level;
    ``batch``: candidates per batch (default: max(16, build workers), as DropletTuner); ``max_step``: the
    widest step (default: the longest axis)."""

    trials: int = 64
    pvalue: float = 0.05
    batch: int | None = None
    max_step: int | None = None

    def __attrs_post_init__(self):
        if self.trials < 1 or not 0 < self.pvalue < 1:
            raise TVMCException("--droplet-trials must be >= 1 and --droplet-pvalue between 0 and 1")
        if (self.batch is not None and self.batch < 1) or (self.max_step is not None and self.max_step < 1):
            raise TVMCException("droplet batch and max_step must be >= 1")


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


class _Shared:
    """What every task's strategy (MetaSchedule clones one per task) shares: the pinned starts, the controls
    of each walk's batches (by task and start), the results."""

    def __init__(self, options, folder=None, names=None, stream=None):
        self.options, self.folder, self.names, self.stream = options, folder, names or {}, stream
        self.results = {}
        self.starts = self._read(STARTS)  # none yet, or damaged: walks start from the best records
        self.controls = self._read(CONTROLS)  # none: batches replayed from the records get a new control

    def _read(self, name) -> dict:
        try:
            with open(os.path.join(self.folder, name), encoding="utf-8") as f:
                return dict(json.load(f))
        except (TypeError, OSError, ValueError):
            return {}

    def _write(self, name, data) -> None:
        if self.folder:
            path = os.path.join(self.folder, name)
            with open(path + ".partial", "w", encoding="utf-8") as f:
                json.dump(data, f, indent=1)
            os.replace(path + ".partial", path)

    def pin(self, key: str, start_hash: int) -> None:
        self.starts[key] = str(start_hash)
        self._write(STARTS, self.starts)

    def add_control(self, walk: str, batch: int, samples) -> None:
        """Keep the control of batch ``batch`` of ``walk`` (``task:start``; ``None``: it failed)."""
        known = self.controls.setdefault(walk, [])
        if batch == len(known):
            known.append(list(samples) if samples else None)
            self._write(CONTROLS, self.controls)

    def control_samples(self) -> frozenset:
        """Every journaled control's samples, as ``run_samples`` reads them from the records."""
        return frozenset(tuple(float(v) for v in s) for walk in self.controls.values() for s in walk if s)

    def say(self, key: str, text: str) -> None:
        if self.stream is not None:
            self.stream.write(f"droplet {self.names.get(key, key)}: {text}\n")
            self.stream.flush()


def _mean(samples) -> float | None:
    return statistics.fmean(samples) if samples else None


def _us(seconds) -> str:
    return f"{seconds * 1e6:.2f} us" if seconds else "no valid time"


@derived_object
class DropletSearch(PySearchStrategy):
    """Droplet search as a MetaSchedule search strategy (one clone per task).

    >>> contexts, weights = ms.relax_integration.extracted_tasks_to_tune_contexts(           # doctest: +SKIP
    ...     extracted, "records", strategy=DropletSearch(DropletOptions(trials=32)))
    """

    def __init__(self, options: DropletOptions = DropletOptions(), shared: _Shared | None = None):
        super().__init__()
        self.options = options
        self.shared = shared or _Shared(options)
        self.mod = self.postprocs = self.walk = None

    def _initialize_with_tune_context(self, context) -> None:
        self.mod = context.mod
        self.postprocs = list(context.space_generator.postprocs)

    def pre_tuning(self, max_trials, num_trials_per_iter, design_spaces, database=None, cost_model=None):
        from tvm_ffi import structural_hash  # pylint: disable=import-outside-toplevel

        self.key = str(structural_hash(self.mod))
        self.batch_size = self.options.batch or num_trials_per_iter
        self.budget = min(max_trials, self.options.trials)
        self.recorded = recorded_points(database, self.mod, self.shared.control_samples())
        self.measured, self.pending, self.restarted, self.finished = 0, [], False, False
        self.walk, self.seeds = None, []
        start = self._recorded_start()
        if start is not None:
            self._begin(*start)
        else:  # nothing measured yet: measure each design space's start once, and walk from the fastest
            self.seeds = self._design_starts(design_spaces)

    def _recorded_start(self):
        """The start an earlier run pinned, if it is recorded; else the best record."""
        measured = sorted(((statistics.fmean(s), h, t) for h, (s, t) in self.recorded.items() if s), key=lambda m: m[0])
        pinned = [m for m in measured if str(m[1]) == self.shared.starts.get(self.key)]
        for _, _, trace in pinned + measured:
            space = DecisionSpace(self.mod, trace, self.postprocs)
            sch, point = space.realize(space.start)
            key = DecisionSpace.module_hash(sch) if sch is not None else None
            if key in self.recorded and self.recorded[key][0]:
                return space, point, key
        return None

    def _design_starts(self, design_spaces) -> list:
        seeds = {}
        for design in design_spaces:
            space = DecisionSpace(self.mod, design.trace, self.postprocs)
            sch, point = space.realize(space.start)
            if sch is not None:
                key = DecisionSpace.module_hash(sch)
                if key not in self.recorded:  # recorded without a time: it failed before
                    seeds.setdefault(key, (point, sch, key, space))
        return list(seeds.values())

    def _begin(self, space, point, start_hash) -> None:
        samples = self.recorded[start_hash][0]
        self.space, self.seen_modules, self.walk_key = space, {start_hash}, f"{self.key}:{start_hash}"
        self.walk = Walk(space, point, samples, self.budget, self.options.pvalue, self.options.max_step)
        self.shared.pin(self.key, start_hash)
        self.shared.say(self.key, f"start {_us(_mean(samples))}, {len(space.positions)} axes")

    def _fill_batch(self) -> list:
        """Points of the next batch: recorded ones are observed at once, the others returned to measure."""
        want, fresh = min(self.batch_size, self.walk.left), []
        while len(fresh) + len(self.walk.batch) < want:
            point = self.walk.propose()
            if point is None:
                break
            sch, realized = self.space.realize(point)
            if sch is None or (realized != point and realized in self.walk.seen):
                continue  # invalid, or snapped onto a point already tried
            key = DecisionSpace.module_hash(sch)
            if key in self.seen_modules:
                continue
            self.seen_modules.add(key)
            if key in self.recorded:
                self.walk.observe(realized, self.recorded[key][0])
            else:
                fresh.append((realized, sch, key, self.space))
        return fresh

    def _stale_start(self):
        """A record the walk has not seen that is significantly faster than its incumbent (found by a later
        evolutionary run, say): then the pinned start is stale and a new walk begins there, once."""
        outside = [(statistics.fmean(v[0]), h, v[0], v[1]) for h, v in self.recorded.items() if v[0] and h not in self.seen_modules]
        if self.restarted or not outside:
            return None
        _, key, samples, trace = min(outside, key=lambda v: v[0])
        if not significantly_faster(samples, self.walk.samples, self.options.pvalue)[0]:
            return None
        space = DecisionSpace(self.mod, trace, self.postprocs)
        sch, point = space.realize(space.start)
        return (space, point, key) if sch is not None and DecisionSpace.module_hash(sch) == key else None

    def generate_measure_candidates(self):
        if self.walk is None and self.seeds:
            self.pending, self.seeds = self.seeds, []
            return self._candidates()
        while self.walk is not None and not self.finished:
            fresh = [] if self.walk.done else self._fill_batch()
            stale = self._stale_start() if (fresh or not self.walk.batch) and self.measured == 0 else None
            if stale is not None:
                self.restarted = True
                self._begin(*stale)
                continue
            if fresh or self.walk.batch:
                fresh += self._control()
            if fresh:
                self.pending = fresh
                return self._candidates()
            if self.walk.batch:
                self._conclude()
                continue
            if self.walk.exhausted:
                self.walk.converged = True
            self._finish()
        self._finish()
        return None

    def _control(self) -> list:
        """The incumbent, to measure beside this batch; nothing when an earlier run measured it (replay)."""
        known = self.shared.controls.get(self.walk_key, [])
        if self.walk.batches < len(known):
            self.walk.control(known[self.walk.batches])
            return []
        sch, _ = self.space.realize(self.walk.incumbent)
        return [(None, sch, DecisionSpace.module_hash(sch), self.space)]

    def _candidates(self) -> list:
        from tvm.s_tir import meta_schedule as ms  # pylint: disable=import-outside-toplevel

        arg_info = ms.arg_info.ArgInfo.from_entry_func
        return [ms.MeasureCandidate(sch, arg_info(sch.mod, remove_preproc=True)) for _, sch, _, _ in self.pending]

    def notify_runner_results(self, measure_candidates, results) -> None:
        pending, self.pending = self.pending, []
        for (point, sch, key, _), result in zip(pending, results):
            samples = None if result.error_msg else run_samples(result.run_secs)
            self.measured += 1
            if point is None:  # the incumbent's control
                self.walk.control(samples)
                self.shared.add_control(self.walk_key, self.walk.batches, samples)
                continue
            self.recorded[key] = (samples, sch.trace)
            if self.walk is not None:
                self.walk.observe(point, samples)
        if self.walk is not None:
            self._conclude()
            return
        seeds = [(statistics.fmean(self.recorded[key][0]), space, point, key) for point, _, key, space in pending if self.recorded[key][0]]
        if seeds:  # the fastest design space's start
            _, space, point, key = min(seeds, key=lambda s: s[0])
            self._begin(space, point, key)

    def _conclude(self) -> None:
        move = self.walk.conclude()
        if move is not None:
            p = "" if math.isnan(move.p_value) else f" (p={move.p_value:.1e})"
            self.shared.say(self.key, f"move {len(self.walk.moves)}: {_us(move.before)} -> {_us(move.after)}{p}")

    def _finish(self) -> None:
        if self.finished:
            return
        self.finished = True
        w = self.walk
        if w is None:  # no schedule of this task ran
            self.shared.results[self.key] = (None, None, (), 0, self.measured, False)
            self.shared.say(self.key, "no valid schedule to start from")
            return
        self.shared.results[self.key] = (w.start_samples, w.final_samples, tuple(w.moves), w.trials, self.measured, w.converged)
        how = "converged" if w.converged else "budget spent"
        self.shared.say(self.key, f"{how} after {w.trials} trials ({self.measured} measured): {_us(_mean(w.final_samples))}")

    def post_tuning(self) -> None:
        self._finish()

    def clone(self):
        return DropletSearch(self.options, self.shared)


def refine_tasks(tasks, target, database, records: str, options: DropletOptions, measure: MeasureOptions, progress=True) -> DropletReport:
    """Refine each task's best schedule in ``database`` (the folder ``records``) with droplet search."""
    from tvm.s_tir import meta_schedule as ms  # pylint: disable=import-outside-toplevel
    from tvm_ffi import structural_hash

    from .intrinsics import load_tensor_intrinsics
    from .task_logs import tune_contexts
    from .tuning.scheduler import CommittingGradientScheduler

    if measure.repeat < 2:
        raise TVMCException("droplet search compares repeated measurements with a t-test: use --repeat 2 or more")
    start = time.time()
    load_tensor_intrinsics(target)
    keys = {str(structural_hash(t.mod)): t for t in tasks}
    names = {k: f"#{t.index} {t.name}" for k, t in keys.items()}
    shared = _Shared(options, records, names, sys.stderr if progress else None)
    batch = options.batch or max(16, measure.parallel)
    with tune_contexts([t.extracted for t in tasks], records, DropletSearch(options, shared), measure.parallel, seed=0) as (contexts, weights):
        if not contexts:
            return DropletReport((), options.pvalue, time.time() - start)
        builder = measure.make_builder(target)
        try:
            ms.tune_tasks(
                tasks=contexts,
                task_weights=weights,
                work_dir=records,
                # The strategy keeps each task's budget itself; the scheduler's caps only need to stay above it
                # (the starts of the design spaces are measured on top when a task has no record).
                max_trials_global=(options.trials + 64) * len(contexts),
                max_trials_per_task=options.trials + 64,
                num_trials_per_iter=batch,
                builder=builder,
                runner=measure.make_runner(),
                database=database,
                cost_model=ms.cost_model.RandomModel(),  # droplet needs none; this one is free to create
                measure_callbacks=[ms.measure_callback.AddToDatabase(), ms.measure_callback.RemoveBuildArtifact()],
                task_scheduler=CommittingGradientScheduler(seed=0),  # commits each batch at once, as tune does
            )
        finally:
            builder.shutdown()
    results = []
    for key, task in keys.items():
        first, last, moves, trials, measured, converged = shared.results.get(key, (None, None, (), 0, 0, False))
        results.append(DropletTaskResult(task.index, task.name, task.weight, _mean(first), _mean(last), moves, trials, measured, converged))
    return DropletReport(tuple(sorted(results, key=lambda r: r.index)), options.pvalue, time.time() - start)


def refine_with_droplet(model, target, records: str, options: DropletOptions = DropletOptions(), measure: MeasureOptions = MeasureOptions(), tasks: str | None = None, progress=True) -> DropletReport:
    """Refine the best schedules in the records folder ``records`` with droplet search; new records land there.

    >>> report = refine_with_droplet(load_model("net.onnx"), parse_target("llvm"), "records",   # doctest: +SKIP
    ...                              DropletOptions(trials=32), measure=MeasureOptions(repeat=5))
    """
    from .records import open_database  # pylint: disable=import-outside-toplevel
    from .tasks import extract_tasks, select_tasks

    target = tuning_target(target)
    database = open_database(records)
    chosen = select_tasks(extract_tasks(model, target), tasks)
    return refine_tasks(chosen, target, database, records, options, measure, progress)


def droplet_phase(options: DropletOptions):
    """A ``tune_model`` or ``transfer_tune`` phase: refine each task of the session with droplet search (from
    its best record, or from the fastest of its design spaces when it has none)."""

    def phase(session) -> DropletReport:
        return refine_tasks(session.tasks, session.target, session.database, session.records, options, session.options.measure)

    return phase
