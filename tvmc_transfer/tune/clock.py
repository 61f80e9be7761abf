"""Where tuning's wall time goes: search and cost model, database, build, waiting for measurements, other.

MetaSchedule's task scheduler calls the search strategy, the builder, the runner's futures and the measure
callbacks one after another in one thread, so wrapping each of them with a stopwatch splits the wall time into
parts that do not overlap; what none of them took (task extraction, tune contexts, progress output, later
phases) is "other", so the parts always sum to the total.
"""

import time
from contextlib import contextmanager

import attrs
from tvm.ir.utils import derived_object
from tvm.s_tir.meta_schedule.builder import PyBuilder
from tvm.s_tir.meta_schedule.measure_callback import PyMeasureCallback
from tvm.s_tir.meta_schedule.runner import PyRunner, PyRunnerFuture
from tvm.s_tir.meta_schedule.search_strategy import PySearchStrategy

SEARCH, DATABASE, BUILD, MEASURE = "search", "database", "build", "measure"


@attrs.frozen
class TuneTime:
    """Seconds of a tuning run by part; ``other`` is the rest of ``total``."""

    search: float  # evolutionary search and cost model (prediction and training)
    database: float  # reading records to resume, committing new ones
    build: float  # compiling candidates (and removing their artifacts)
    measure: float  # waiting for measurements (the runner)
    other: float
    total: float

    def parts(self) -> dict:
        return {
            "search and cost model": self.search,
            "database": self.database,
            "build": self.build,
            "waiting for measurements": self.measure,
            "other": self.other,
        }

    def line(self) -> str:
        """One line: ``wall time 52.1 s: search and cost model 20.3 s (39%), database ...``."""
        share = lambda s: f" ({100 * s / self.total:.0f}%)" if self.total > 0 else ""  # noqa: E731
        return f"wall time {self.total:.1f} s: " + ", ".join(f"{name} {s:.1f} s{share(s)}" for name, s in self.parts().items())


class Clock:
    """Stopwatches by part, shared by the wrappers below; ``time(total)`` is the breakdown of ``total``."""

    def __init__(self):
        self.seconds = {SEARCH: 0.0, DATABASE: 0.0, BUILD: 0.0, MEASURE: 0.0}

    @contextmanager
    def part(self, name: str):
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] += time.perf_counter() - start

    def time(self, total: float) -> TuneTime:
        s = self.seconds
        return TuneTime(s[SEARCH], s[DATABASE], s[BUILD], s[MEASURE], total - sum(s.values()), total)


@derived_object
class TimedSearch(PySearchStrategy):
    """``inner`` with its time on the clock: resuming (reading the records) is database time, the rest search."""

    def __init__(self, inner, clock: Clock):
        super().__init__()
        self.inner, self.clock = inner, clock

    def _initialize_with_tune_context(self, context) -> None:
        self.inner._initialize_with_tune_context(context)  # pylint: disable=protected-access

    def pre_tuning(self, max_trials, num_trials_per_iter, design_spaces, database=None, cost_model=None):
        with self.clock.part(DATABASE):
            self.inner.pre_tuning(max_trials, num_trials_per_iter, design_spaces, database, cost_model)

    def post_tuning(self):
        self.inner.post_tuning()

    def generate_measure_candidates(self):
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
