"""A search strategy wrapper that makes tuning resumable.

MetaSchedule's evolutionary search only remembers what it measured in the current session. Wrapped in
``ResumableSearch``, a task's trials already in the database count against its budget, and a candidate whose
scheduled module is already in the database is never measured again. A ``Budget`` shared by all tasks' wrappers
keeps the total exact: MetaSchedule's task scheduler would let the last batch overshoot it.
"""

from tvm.ir.utils import derived_object
from tvm.s_tir.meta_schedule.search_strategy import PySearchStrategy
from tvm_ffi import structural_hash

from ..records import records_of
from ..records.database import replayed


def measured_hashes(database, workload_mod) -> set:
    """Structural hashes of the scheduled modules the database already holds for ``workload_mod``."""
    scheduled = (replayed(workload_mod, record.trace) for record in records_of(database, workload_mod))
    return {stored_hash(mod) for mod in scheduled if mod is not None}  # one that no longer replays cannot be proposed either


PREPROC = "meta_schedule.layout_rewrite_preproc"


def stored_hash(mod) -> int:
    """Structural hash of a scheduled kernel as the JSON database gives it back.

    A record's text form turns the layout rewrite's bool annotation (``meta_schedule.layout_rewrite_preproc``,
    weight prepacking) into an integer, so a schedule replayed from the database hashes differently from the
    same schedule fresh from the search; this hash writes the annotation the database's way first."""
    from tvm import s_tir  # pylint: disable=import-outside-toplevel

    attrs = mod["main"].attrs
    if attrs is None or not len(attrs.get("layout_free_buffers", ())):
        return structural_hash(mod)
    sch = s_tir.Schedule(mod)
    # the rewrite blocks are children of the root block
    for block in sch.get_child_blocks(sch.get_sblock("root")):
        value = sch.get(block).annotations.get(PREPROC)
        if isinstance(value, bool) or str(getattr(value, "dtype", "")) == "bool":
            sch.unannotate(block, PREPROC)
            sch.annotate(block, PREPROC, 1)
    return structural_hash(sch.mod)


def count_records(database, workload_mod) -> int:
    """Trials already spent on a workload, failed ones included."""
    return len(records_of(database, workload_mod))


class Budget:
    """Trials left for the whole tuning session, shared by every task's search."""

    def __init__(self, trials: int):
        self.left = trials

    def take(self, candidates: list) -> list:
        taken = candidates[: max(self.left, 0)]
        self.left -= len(taken)
        return taken


@derived_object
class ResumableSearch(PySearchStrategy):
    """Delegates to ``inner`` (any search strategy); skips what the database already measured."""

    def __init__(self, inner, budget: Budget | None = None):
        super().__init__()
        self.inner = inner
        self.budget = budget or Budget(1 << 62)
        self.seen = set()
        self.mod = None

    def _initialize_with_tune_context(self, context) -> None:
        self.mod = context.mod
        self.inner._initialize_with_tune_context(context)  # pylint: disable=protected-access

    def pre_tuning(self, max_trials, num_trials_per_iter, design_spaces, database=None, cost_model=None):
        done = count_records(database, self.mod) if database is not None else 0
        self.seen = measured_hashes(database, self.mod) if database is not None else set()
        self.inner.pre_tuning(max(max_trials - done, 0), num_trials_per_iter, design_spaces, database, cost_model)

    def post_tuning(self):
        self.inner.post_tuning()

    def generate_measure_candidates(self):
        if self.budget.left <= 0:
            return None
        candidates = self.inner.generate_measure_candidates()
        if candidates is None:
            return None
        fresh = []
        for candidate in candidates:
            key = stored_hash(candidate.sch.mod)
            if key not in self.seen:
                self.seen.add(key)
                fresh.append(candidate)
        return self.budget.take(fresh)

    def notify_runner_results(self, measure_candidates, results):
        self.inner.notify_runner_results(measure_candidates, results)

    def clone(self):
        return ResumableSearch(self.inner.clone(), self.budget)
