"""Droplet search (Canesche, Pereira et al.) as a MetaSchedule search strategy: ``DropletSearch``.

A convergent coordinate search. Every sampling decision of a task's trace is an axis (``droplet/space.py``);
the walk and its t-test are in ``droplet/walk.py``.
From the task's best schedule, droplet measures the neighbours one step away along each axis, widening the
step (1, 2, 4, ... up to the longest axis) to fill a batch, in the order a cost model trained on the task's
records predicts (``droplet/order.py``), and moves to the fastest neighbour that a one-sided Welch t-test on
the repeated measurements, Holm-corrected over the batch, says is faster (``pvalue`` is the chance of a false
move per batch). With ``diagonal`` K, a batch without a move is followed by combinations of its K fastest
directions. It stops when a whole neighbourhood, widest step included, brings no significant improvement, or
when the budget is spent. A move's gain is reported from the new incumbent's next control (one more
measurement when the walk ends right after a move), not from the batch that chose it. A walk that moved ends
with a closing batch: its start and its final schedule measured side by side, which is where the walk's start
and final times are reported from (else they would be measured minutes apart, under other loads).

Every batch also re-measures the incumbent (its *control*; not counted as a trial), and a neighbour must be
significantly faster than both the incumbent's earlier measurement and that control, measured in the same
batch under the same load. Testing against the earlier samples alone made false moves on a shared machine
(see BENCHMARKS.md).

``DropletSearch`` is a ``PySearchStrategy``, so the task scheduler, builders, runners and database are
MetaSchedule's and its records are ordinary tuning records. A point whose scheduled module is already in the
database is not measured again: its recorded times are used, and it still counts as a trial of the walk. The
start of each task's walk is kept in ``droplet_starts.json`` in the records folder and the controls of its
batches (and its closing batch) in ``droplet_controls.json`` (and its neighbour orders in
``droplet_orders.json``), so running the same command again replays the same walk from the database and
measures nothing. ``phase.py`` runs it on a model's tasks (``tvmc tune --droplet``).
"""

import math
import statistics

import attrs
from tvm.ir.utils import derived_object
from tvm.s_tir.meta_schedule.search_strategy import PySearchStrategy

from ..errors import TVMCException
from ..records.database import run_samples
from ..records.folder import CONTROLS, ORDERS, STARTS
from ..tune.engine import Search, register_strategy
from ..tune.option_defaults import DROPLET_PVALUE, DROPLET_TRIALS
from .order import ModelOrder
from .space import DecisionSpace, recorded_points
from .walk import Walk, significantly_faster


@attrs.frozen
class DropletOptions:
    """``trials``: points each task's walk may try (recorded ones included); ``pvalue``: the family-wise rate
    of false moves per batch (Holm); ``batch``: candidates per batch (default: max(16, build workers), as
    DropletTuner); ``max_step``: the widest step (default: the longest axis); ``diagonal``: combine the K
    fastest directions after a batch without a move (0: off); ``model_order``: measure neighbours in the
    order a cost model trained on the task's records predicts (False: axis by axis)."""

    trials: int = DROPLET_TRIALS
    pvalue: float = DROPLET_PVALUE
    batch: int | None = None
    max_step: int | None = None
    diagonal: int = 0
    model_order: bool = True

    def __attrs_post_init__(self):
        if self.trials < 1 or not 0 < self.pvalue < 1:
            raise TVMCException("--droplet-trials must be >= 1 and --droplet-pvalue between 0 and 1")
        if (self.batch is not None and self.batch < 1) or (self.max_step is not None and self.max_step < 1):
            raise TVMCException("droplet batch and max_step must be >= 1")
        if self.diagonal < 0 or self.diagonal == 1:
            raise TVMCException("--droplet-diagonal must be 0 (off) or 2 or more (directions to combine)")


CLOSING = ":closing"  # the journal key of a walk's closing batch, after the walk's own key
CLOSE_START, CLOSE_FINAL = "closing start", "closing final"  # the closing batch's two entries (points are tuples)


class Shared:
    """What every task's strategy (MetaSchedule clones one per task) shares: the pinned starts, the controls
    of each walk's batches (by task and start), the neighbour orders of each walk, the results."""

    def __init__(self, options, folder=None, names=None, stream=None):
        self.options, self.folder, self.names, self.stream = options, folder, names or {}, stream  # folder: a RecordsFolder
        self.results = {}
        self.starts = self._read(STARTS)  # none yet, or damaged: walks start from the best records
        self.controls = self._read(CONTROLS)  # none: batches replayed from the records get a new control
        self.orders = self._read(ORDERS)  # none: orders are predicted again

    def _read(self, name) -> dict:
        return self.folder.read_json(name) if self.folder else {}

    def _write(self, name, data) -> None:
        if self.folder:
            self.folder.write_json(name, data)

    def pin(self, key: str, start_hash: int) -> None:
        self.starts[key] = str(start_hash)
        self._write(STARTS, self.starts)

    def add_control(self, walk: str, batch: int, samples) -> None:
        """Keep the control of batch ``batch`` of ``walk`` (``task:start``; ``None``: it failed)."""
        known = self.controls.setdefault(walk, [])
        if batch == len(known):
            known.append(list(samples) if samples else None)
            self._write(CONTROLS, self.controls)

    def add_closing(self, walk: str, start, final) -> None:
        """Keep the closing batch of ``walk``: its start and final schedule measured side by side."""
        self.controls[walk + CLOSING] = [list(s) if s else None for s in (start, final)]
        self._write(CONTROLS, self.controls)

    def closing(self, walk: str):
        """The journaled closing batch of ``walk`` (start, final), or None."""
        return self.controls.get(walk + CLOSING)

    def order_journal(self, walk: str) -> list:
        """The neighbour orders of ``walk``, a list ``ModelOrder`` extends; ``save_orders`` writes them."""
        return self.orders.setdefault(walk, [])

    def save_orders(self) -> None:
        self._write(ORDERS, self.orders)

    def control_samples(self) -> frozenset:
        """Every journaled control's samples, as ``run_samples`` reads them from the records."""
        return frozenset(tuple(float(v) for v in s) for walk in self.controls.values() for s in walk if s)

    def say(self, key: str, text: str) -> None:
        if self.stream is not None:
            self.stream.write(f"droplet {self.names.get(key, key)}: {text}\n")
            self.stream.flush()


def mean_of(samples) -> float | None:
    """The mean of a measurement's samples; None when it failed."""
    return statistics.fmean(samples) if samples else None


def _us(seconds) -> str:
    return f"{seconds * 1e6:.2f} us" if seconds else "no valid time"


@derived_object
class DropletSearch(PySearchStrategy):
    """Droplet search as a MetaSchedule search strategy (one clone per task).

    >>> contexts, weights = ms.relax_integration.extracted_tasks_to_tune_contexts(           # doctest: +SKIP
    ...     extracted, "records", strategy=DropletSearch(DropletOptions(trials=32)))
    """

    def __init__(self, options: DropletOptions = DropletOptions(), shared: Shared | None = None):
        super().__init__()
        self.options = options
        self.shared = shared or Shared(options)
        self.mod = self.postprocs = self.walk = self.context = self.order = None
        self.realized = {}  # point -> (schedule, realized point), realized while ordering its neighbourhood

    def _initialize_with_tune_context(self, context) -> None:
        self.mod, self.context = context.mod, context
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
        self.realized, self.order = {}, None
        if self.options.model_order:
            journal = self.shared.order_journal(self.walk_key)
            self.order = ModelOrder(self.context, self.recorded, journal, self.shared.save_orders, self._realize)
        options = self.options
        self.walk = Walk(space, point, samples, self.budget, options.pvalue, options.max_step, self.order, options.diagonal)
        self.shared.pin(self.key, start_hash)
        self.shared.say(self.key, f"start {_us(mean_of(samples))}, {len(space.positions)} axes")

    def _fill_batch(self) -> list:
        """Points of the next batch: recorded ones are observed at once, the others returned to measure."""
        want, fresh = min(self.batch_size, self.walk.left), []
        while len(fresh) + len(self.walk.batch) < want:
            point = self.walk.propose()
            if point is None:
                break
            sch, realized = self.realized.pop(point, None) or self.space.realize(point)
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

    def _realize(self, point):
        if point not in self.realized:
            self.realized[point] = self.space.realize(point)
        return self.realized[point]

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
            if self.walk.moves and not self.walk.closed:  # the start and where it ended, side by side
                self.pending = self._closing()
                if self.pending:
                    return self._candidates()
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

    def _closing(self) -> list:
        """The closing batch: the walk's start and its final incumbent; nothing when an earlier run measured it."""
        known = self.shared.closing(self.walk_key)
        if known is not None:
            self._close(*known)
            return []
        batch = []
        for point, label in ((self.walk.start, CLOSE_START), (self.walk.incumbent, CLOSE_FINAL)):
            sch, _ = self.space.realize(point)
            batch.append((label, sch, DecisionSpace.module_hash(sch), self.space))
        return batch

    def _close(self, start, final) -> None:
        confirming = self.walk.unconfirmed
        self.walk.close(start, final)
        if confirming and final:
            self.shared.say(self.key, f"move {len(self.walk.moves)} re-measured: {_us(self.walk.moves[-1].after)}")
        if self.walk.closing:
            self.shared.say(self.key, f"start and final side by side: {_us(mean_of(start))} -> {_us(mean_of(final))}")

    def _candidates(self) -> list:
        from tvm.s_tir import meta_schedule as ms  # pylint: disable=import-outside-toplevel

        arg_info = ms.arg_info.ArgInfo.from_entry_func
        return [ms.MeasureCandidate(sch, arg_info(sch.mod, remove_preproc=True)) for _, sch, _, _ in self.pending]

    def notify_runner_results(self, measure_candidates, results) -> None:
        pending, self.pending = self.pending, []
        closing = {}
        for (point, sch, key, _), result in zip(pending, results):
            samples = None if result.error_msg else run_samples(result.run_secs)
            self.measured += 1
            if point in (CLOSE_START, CLOSE_FINAL):
                closing[point] = samples
                continue
            if point is None:  # the incumbent's control
                confirming = self.walk.unconfirmed
                self.walk.control(samples)
                if confirming and samples:
                    self.shared.say(self.key, f"move {len(self.walk.moves)} re-measured: {_us(self.walk.moves[-1].after)}")
                self.shared.add_control(self.walk_key, self.walk.batches, samples)
                continue
            self.recorded[key] = (samples, sch.trace)
            if self.walk is not None:
                self.walk.observe(point, samples)
            if self.order is not None:
                self.order.add(sch, samples)
        if closing:
            self.shared.add_closing(self.walk_key, closing.get(CLOSE_START), closing.get(CLOSE_FINAL))
            self._close(closing.get(CLOSE_START), closing.get(CLOSE_FINAL))
            return
        if self.walk is not None:
            if any(point is not None for point, *_ in pending):  # not a lone confirmation of the last move
                self._conclude()
            return
        seeds = [(statistics.fmean(self.recorded[key][0]), space, point, key) for point, _, key, space in pending if self.recorded[key][0]]
        if seeds:  # the fastest design space's start
            _, space, point, key = min(seeds, key=lambda s: s[0])
            self._begin(space, point, key)

    def _conclude(self) -> None:
        move = self.walk.conclude()
        if move is not None:
            self.realized = {}  # the old neighbourhood's schedules
            p = "" if math.isnan(move.p_value) else f" (p={move.p_value:.1e})"
            self.shared.say(self.key, f"move {len(self.walk.moves)}: {_us(move.before)} -> {_us(move.selected)}{p}, to be confirmed")

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
        self.shared.say(self.key, f"{how} after {w.trials} trials ({self.measured} measured): {_us(mean_of(w.final_samples))}")

    def post_tuning(self) -> None:
        self._finish()

    def clone(self):
        return DropletSearch(self.options, self.shared)


@register_strategy("droplet")
def droplet(options: DropletOptions, shared: Shared, tasks: int, batch: int) -> Search:
    """Droplet search on ``tasks`` kernels, ``batch`` candidates per batch, sharing ``shared`` (the open folder and
    what every walk found). It needs no cost model (MetaSchedule's free random one fills the slot) and keeps
    each task's budget itself: the scheduler's caps only stay above it (a task with no record also measures
    the starts of its design spaces)."""
    from tvm.s_tir import meta_schedule as ms  # pylint: disable=import-outside-toplevel

    callbacks = (ms.measure_callback.AddToDatabase(), ms.measure_callback.RemoveBuildArtifact())
    return Search("droplet", DropletSearch(options, shared), ms.cost_model.RandomModel(), (options.trials + 64) * tasks, options.trials + 64, batch, callbacks)
