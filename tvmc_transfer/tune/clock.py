"""Where tuning's wall time goes: search and cost model, database, build, waiting for measurements, other.

MetaSchedule's task scheduler calls the search strategy, the builder, the runner's futures and the measure
callbacks one after another in one thread, so wrapping each of them with a stopwatch splits the wall time into
parts that do not overlap; what none of them took (task extraction, tune contexts, progress output, later
phases) is "other", so the parts always sum to the total.

Search and cost model is split further with MetaSchedule's own profiler (``SEARCH_DETAIL``): sampling the
initial population, mutating it (each mutant applied and post-processed: its validity check), the cost model's
predictions and its training. The search is charged to the task it searched for; build and measurement to the
task whose batch came last (one batch is built and measured at a time). ``busy`` is the share of the cores' time
this process and its workers used: the rest the cores stood idle.
"""

import time
from contextlib import contextmanager

import attrs
from tvm.ir.utils import derived_object
from tvm.s_tir.meta_schedule.builder import PyBuilder
from tvm.s_tir.meta_schedule.measure_callback import PyMeasureCallback
from tvm.s_tir.meta_schedule.runner import PyRunner, PyRunnerFuture
from tvm.s_tir.meta_schedule.search_strategy import PySearchStrategy

from ..threads import usable_cpus

SEARCH, DATABASE, BUILD, MEASURE = "search", "database", "build", "measure"
# MetaSchedule profiler scopes (tvm.s_tir.meta_schedule.Profiler) -> how the breakdown names them
SEARCH_DETAIL = {
    "EvoSearch/SampleInitPopulation": "sampling",
    "EvoSearch/Evolve/Mutation": "mutation and validity checks",
    "EvoSearch/Evolve/PredictNormalizedScore": "cost model prediction",
    "MeasureCallback/UpdateCostModel": "cost model training",
}


@attrs.frozen
class TuneTime:
    """Seconds of a tuning run by part; ``other`` is the rest of ``total``."""

    search: float  # evolutionary search and cost model (prediction and training)
    database: float  # reading records to resume, committing new ones
    build: float  # compiling candidates (and removing their artifacts)
    measure: float  # waiting for measurements (the runner)
    other: float
    total: float
    detail: dict = attrs.field(factory=dict)  # search and cost model by SEARCH_DETAIL's names (the rest: "other search")
    tasks: dict = attrs.field(factory=dict)  # task name -> {part: seconds}
    busy: float | None = None  # share of the cores' time used while tuning (None: not known)

    def parts(self) -> dict:
        return {
            "search and cost model": self.search,
            "database": self.database,
            "build": self.build,
            "waiting for measurements": self.measure,
            "other": self.other,
        }

    def line(self) -> str:
        """``wall time 52.1 s: search and cost model 20.3 s (39%), database ...``, then what the search spent and
        how busy the cores were, when known."""
        share = lambda s: f" ({100 * s / self.total:.0f}%)" if self.total > 0 else ""  # noqa: E731
        line = f"wall time {self.total:.1f} s: " + ", ".join(f"{name} {s:.1f} s{share(s)}" for name, s in self.parts().items())
        if self.detail:
            line += "\nsearch and cost model: " + ", ".join(f"{name} {s:.1f} s" for name, s in self.detail.items())
        if self.busy is not None:
            line += f"; cores busy {100 * self.busy:.0f}% while tuning"
        return line

    def to_json(self) -> dict:
        return {"seconds": {**self.parts(), "total": self.total}, "search": self.detail, "cores_busy": self.busy, "tasks": self.tasks}


class Clock:
    """Stopwatches by part, shared by the wrappers below; ``time(total)`` is the breakdown of ``total``."""

    def __init__(self):
        self.seconds = {SEARCH: 0.0, DATABASE: 0.0, BUILD: 0.0, MEASURE: 0.0}
        self.profile = {}  # MetaSchedule profiler scope -> seconds (engine.run_search fills it)
        self.tasks = {}  # task name -> {part: seconds}
        self.task = None  # the task whose batch is being searched, built or measured
        self.started = time.perf_counter(), cpu_seconds()
        self.busy = None  # share of the cores' time used from the start to stop_cpu

    @contextmanager
    def part(self, name: str):
        start = time.perf_counter()
        try:
            yield
        finally:
            seconds = time.perf_counter() - start
            self.seconds[name] += seconds
            if self.task is not None:
                parts = self.tasks.setdefault(self.task, {})
                parts[name] = parts.get(name, 0.0) + seconds

    def stop_cpu(self) -> None:
        """How busy the cores were since the clock started (call before the builder's workers are shut down)."""
        wall, cpu = time.perf_counter() - self.started[0], cpu_seconds() - self.started[1]
        self.busy = cpu / (wall * len(usable_cpus())) if wall > 0 else None

    def time(self, total: float) -> TuneTime:
        s = self.seconds
        detail = {name: float(self.profile[scope]) for scope, name in SEARCH_DETAIL.items() if scope in self.profile}
        if detail:
            detail["other search"] = max(0.0, s[SEARCH] - sum(detail.values()))
        tasks = {name: {k: round(v, 3) for k, v in parts.items()} for name, parts in self.tasks.items()}
        return TuneTime(s[SEARCH], s[DATABASE], s[BUILD], s[MEASURE], total - sum(s.values()), total, detail, tasks, self.busy)


def cpu_seconds() -> float:
    """CPU seconds this process and its workers (live ones included: the builder's pool) have used."""
    import psutil  # pylint: disable=import-outside-toplevel

    me = psutil.Process()
    used = sum(me.cpu_times()[:4])  # user, system, and those of children already waited for
    for child in me.children(recursive=True):
        try:
            used += sum(child.cpu_times()[:2])
        except psutil.Error:  # gone in between
            pass
    return used


@derived_object
class TimedSearch(PySearchStrategy):
    """``inner`` with its time on the clock: resuming (reading the records) is database time, the rest search."""

    def __init__(self, inner, clock: Clock):
        super().__init__()
        self.inner, self.clock = inner, clock

    def pre_tuning(self, max_trials, num_trials_per_iter, design_spaces, database=None, cost_model=None):
        with self.clock.part(DATABASE):
            self.inner.pre_tuning(max_trials, num_trials_per_iter, design_spaces, database, cost_model)

    def post_tuning(self):
        self.inner.post_tuning()

    def _initialize_with_tune_context(self, context) -> None:
        self.task = str(context.task_name)
        self.inner._initialize_with_tune_context(context)  # pylint: disable=protected-access

    def generate_measure_candidates(self):
        self.clock.task = getattr(self, "task", None)  # what is built and measured next is this task's batch
        with self.clock.part(SEARCH):
            return self.inner.generate_measure_candidates()

    def notify_runner_results(self, measure_candidates, results):
        with self.clock.part(SEARCH):
            self.inner.notify_runner_results(measure_candidates, results)

    def clone(self):
        return TimedSearch(self.inner.clone(), self.clock)


@derived_object
class TimedBuilder(PyBuilder):
    """``inner`` builder with its time on the clock; ``shutdown`` is passed on."""

    def __init__(self, inner, clock: Clock):
        super().__init__()
        self.inner, self.clock = inner, clock

    def build(self, build_inputs):
        with self.clock.part(BUILD):
            return self.inner.build(build_inputs)

    def shutdown(self) -> None:
        if hasattr(self.inner, "shutdown"):
            self.inner.shutdown()


@derived_object
class _TimedFuture(PyRunnerFuture):
    def __init__(self, inner, clock: Clock):
        super().__init__()
        self.inner, self.clock = inner, clock

    def done(self) -> bool:
        with self.clock.part(MEASURE):
            return self.inner.done()

    def result(self):
        with self.clock.part(MEASURE):
            return self.inner.result()


@derived_object
class TimedRunner(PyRunner):
    """``inner`` runner whose submissions and futures count as waiting for measurements."""

    def __init__(self, inner, clock: Clock):
        super().__init__()
        self.inner, self.clock = inner, clock

    def run(self, runner_inputs):
        with self.clock.part(MEASURE):
            return [_TimedFuture(f, self.clock) for f in self.inner.run(runner_inputs)]


@derived_object
class TimedCallbacks(PyMeasureCallback):
    """Measure callbacks applied in order, each on the clock under its part (``(callback, part)`` pairs)."""

    def __init__(self, callbacks: list, clock: Clock):
        super().__init__()
        self.callbacks, self.clock = callbacks, clock

    def apply(self, task_scheduler, task_id, measure_candidates, builder_results, runner_results) -> None:
        for callback, part in self.callbacks:
            with self.clock.part(part):
                callback.apply(task_scheduler, task_id, measure_candidates, builder_results, runner_results)


def default_callbacks(clock: Clock):
    """MetaSchedule's default measure callbacks, timed: records to the database, the cost model's training
    to search, removing build artifacts to build."""
    from tvm.s_tir.meta_schedule import measure_callback as mc  # pylint: disable=import-outside-toplevel

    parts = {"AddToDatabase": DATABASE, "UpdateCostModel": SEARCH, "RemoveBuildArtifact": BUILD}
    return TimedCallbacks([(cb, parts[type(cb).__name__]) for cb in mc.MeasureCallback.create("default")], clock)
