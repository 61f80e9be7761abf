"""The search starts where an untuned compile stands: each kernel's default schedule, measured, as its first record.

Without it a short ``tvmc tune`` could end slower than no tuning at all: the search starts from random samples
of the design space, while ``tvmc compile`` without records already gives each kernel a checked default
schedule (``defaults/schedules.py``: the shipped library's, or the cost model's pick). ``seed_with_defaults``
measures those defaults with the tuning session's own builder and runner and commits them as ordinary records
(they count as trials). MetaSchedule's evolutionary search then draws part of its first population from the
best records of each workload, so the search mutates the default instead of starting over, and the best
record of a kernel is never worse than its default.
"""

import logging

import attrs

from ..build.tasks import heaviest_first
from ..defaults.schedules import DefaultOptions, add_default_schedules
from ..records.database import is_measured, mean_seconds, records_of, replayed, stored_traces
from .measure import measure_modules

log = logging.getLogger("tvmc")


@attrs.frozen
class Seeds:
    """How many kernels got a measured default as their first record, by the default's kind, and the time."""

    kinds: dict  # "library" / "model" -> kernels seeded
    failed: int  # defaults that did not build or run
    seconds: float

    @property
    def seeded(self) -> int:
        return sum(self.kinds.values())

    def line(self) -> str:
        kinds = ", ".join(f"{n} {kind}" for kind, n in sorted(self.kinds.items())) or "none"
        failed = f"; {self.failed} failed to build or run" if self.failed else ""
        return f"started from default schedules: {self.seeded} kernels measured ({kinds}){failed}; {self.seconds:.1f} s"


def seed_with_defaults(tasks: list, target, folder, builder, runner, limit: int | None = None, options=None, every: bool = False) -> Seeds:
    """Measure the default schedule of every task that has no record in ``folder`` yet and record it there;
    with ``limit``, of at most that many tasks, the heaviest (FLOPs times uses) first; ``options``: how the
    defaults are chosen (``DefaultOptions``; by default as ``tvmc compile`` chooses them). With ``every``, of the
    tasks with records too (``tvmc transfer``: a transferred schedule is kept only where it beats the default
    a compile would give the kernel), leaving out a default the folder holds already (a resumed run)."""
    import time  # pylint: disable=import-outside-toplevel

    from tvm.s_tir import meta_schedule as ms


    start = time.time()
    todo = heaviest_first(t for t in tasks if every or not folder.records_of(t.mod))[:limit]
    if not todo:
        return Seeds({}, 0, 0.0)
    memory = ms.database.MemoryDatabase()
    report = add_default_schedules(todo, target, memory, options or DefaultOptions())
    kind_of = {k.index: k.kind for k in report.kernels}
    seeds = []  # (task, trace, scheduled module)
    for task in todo:
        if kind_of.get(task.index) not in ("library", "model"):
            continue
        # (get_top_k finds no record of some data-movement kernels, e.g. a transpose, in a MemoryDatabase)
        record = min((r for r in records_of(memory, task.mod) if is_measured(r)), key=mean_seconds, default=None)
        if record is None:
            continue
        if every and str(record.trace) in stored_traces(folder.database, task.mod):
            continue
        seeds.append((task, record.trace, replayed(task.mod, record.trace)))  # a default replays: it was checked
    results = measure_modules(builder, runner, target, [mod for _, _, mod in seeds])
    kinds, failed = {}, 0
    for (task, trace, _), (run_secs, args_info) in zip(seeds, results):
        if run_secs is None:
            failed += 1
            log.info("default schedule of #%d %s failed to build or run; the search starts without it", task.index, task.name)
            continue
        folder.commit(task.mod, trace, run_secs, target, args_info)
        kinds[kind_of[task.index]] = kinds.get(kind_of[task.index], 0) + 1
    return Seeds(kinds, failed, time.time() - start)
