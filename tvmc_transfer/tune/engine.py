"""The tuning engine: the one place that wires MetaSchedule, with search strategies chosen by name.

Every phase that measures (``tune``, ``transfer``, droplet search, ``records retime``) takes its builder and
runner from ``measuring``; every phase that searches runs ``run_search`` with a ``Search`` made by name
(``make_search("evolutionary", ...)``, ``make_search("droplet", ...)``). A strategy registers itself with
``register_strategy``: evolutionary search here, droplet search in ``droplet/search.py``, a plugin's the same
way. Deadlines are points on the monotonic clock (``deadline``). MetaSchedule's classes are imported in the
functions that use them: naming the Python API's tune and transfer functions loads no TVM.

>>> with measuring(target, MeasureOptions()) as (builder, runner):                      # doctest: +SKIP
...     search = make_search("evolutionary", trials=64, per_task=64, batch=16, population=128, parallel=2, clock=Clock())
...     run_search(tasks, folder, search, scheduler, builder, runner, parallel=2)
"""

import contextlib
import time
from typing import Callable

import attrs

from ..build.intrinsics import load_tensor_intrinsics
from ..errors import TVMCException
from .task_logs import tune_contexts


@attrs.frozen
class Search:
    """What a strategy brings to one run of MetaSchedule's task loop: the ``SearchStrategy`` object, the cost
    model it ranks with, the budgets the task scheduler enforces and the callbacks after each batch."""

    name: str
    strategy: object  # a tvm.s_tir.meta_schedule SearchStrategy
    cost_model: object
    max_trials_global: int
    max_trials_per_task: int
    num_trials_per_iter: int
    callbacks: tuple = ()


STRATEGIES: dict[str, Callable[..., Search]] = {}


def register_strategy(name: str) -> Callable:
    """Register ``make(**options) -> Search`` under ``name`` (a decorator)."""

    def register(make: Callable[..., Search]) -> Callable[..., Search]:
        STRATEGIES[name] = make
        return make

    return register


def make_search(name: str, **options) -> Search:
    """The ``Search`` of the strategy registered as ``name``, made with ``options``."""
    if name not in STRATEGIES:
        raise TVMCException(f"no search strategy named '{name}' (known: {', '.join(sorted(STRATEGIES))})")
    return STRATEGIES[name](**options)


def deadline(limit: float | None, start: float) -> float | None:
    """When a command that began at ``start`` (``time.time()``) and may take ``limit`` seconds must stop, on the
    monotonic clock (a clock set back or forward mid-run moves no deadline); None without a limit."""
    return None if limit is None else time.monotonic() + limit - (time.time() - start)


@contextlib.contextmanager
def measuring(target, measure, clock=None):
    """``(builder, runner)`` for ``target`` as ``measure`` (``MeasureOptions``) says, on ``clock`` when given
    (``clock.Clock``); the builder's worker pool is shut down on leaving the block.

    TVM's tensor intrinsics are loaded first (a ``TuneContext`` would otherwise import every backend's: 20 s),
    and the runner is made before the builder: a missing fleet is an ``Error:`` before the builder's pool starts.
    """
    from .clock import TimedBuilder, TimedRunner  # pylint: disable=import-outside-toplevel

    load_tensor_intrinsics(target)
    runner = measure.make_runner()
    builder = measure.make_builder(target)
    if clock is not None:
        runner, builder = TimedRunner(runner, clock), TimedBuilder(builder, clock)
    try:
        yield builder, runner
    finally:
        builder.shutdown()


def run_search(tasks: list, folder, search: Search, scheduler, builder, runner, parallel: int, seed: int = 0, profile: dict | None = None) -> list:
    """Run ``search`` on ``tasks`` (``build.tasks.Task``) into the open records folder ``folder`` with MetaSchedule's
    task loop, its ``scheduler`` (a ``TaskScheduler``) and ``builder``/``runner``; ``parallel`` threads search.
    Returns the tasks in the scheduler's order (its task ids index them); [] when none is left to tune.
    ``profile``, when given, gets the seconds of each MetaSchedule profiler scope (``clock.SEARCH_DETAIL``)."""
    from tvm.s_tir import meta_schedule as ms  # pylint: disable=import-outside-toplevel

    with tune_contexts([t.extracted for t in tasks], folder.path, search.strategy, parallel, seed) as (contexts, weights), ms.Profiler() as profiler:
        if not contexts:
            return []
        ordered = [next(t for t in tasks if t.name == c.task_name) for c in contexts]
        try:
            ms.tune_tasks(
                tasks=contexts,
                task_weights=weights,
                work_dir=folder.path,
                max_trials_global=search.max_trials_global,
                max_trials_per_task=search.max_trials_per_task,
                num_trials_per_iter=search.num_trials_per_iter,
                builder=builder,
                runner=runner,
                database=folder.database,
                cost_model=search.cost_model,
                task_scheduler=scheduler,
                measure_callbacks=list(search.callbacks),
            )
        finally:
            if profile is not None:
                profile.update({str(k): float(v) for k, v in profiler.get().items()})
    return ordered


@register_strategy("evolutionary")
def evolutionary(trials: int, per_task: int, batch: int, population: int, parallel: int, clock, callbacks=()) -> Search:
    """MetaSchedule's evolutionary search over ``trials`` (this run's), resumable (``search.py``) and on ``clock``,
    ranked by its XGBoost cost model trained on ``parallel`` cores."""
    from tvm.s_tir import meta_schedule as ms  # pylint: disable=import-outside-toplevel

    from .clock import TimedSearch, default_callbacks
    from .search import Budget, ResumableSearch

    search = ResumableSearch(ms.search_strategy.EvolutionarySearch(population_size=population), Budget(trials))
    return Search(
        "evolutionary", TimedSearch(search, clock), ms.cost_model.XGBModel(num_tuning_cores=parallel), trials, per_task, batch,
        (default_callbacks(clock), *callbacks),
    )
