"""Default schedules: every kernel of a compile without tuning records gets a checked schedule worth running.

Without this, a kernel that no tuning record matches keeps the loops ``LegalizeOps`` emits: one thread, no
vectors, far slower than ONNX Runtime (BENCHMARKS, the "unscheduled" columns). ``add_default_schedules`` gives
each such kernel, in order:

1. **library**: the schedule library shipped for the target's CPU family, or outside every family, for its
   architecture (``defaults/library.py``), applied by
   transfer (``kernels/replay.py``): the records of the library workloads of the kernel's class (or, failing that,
   of its anchor with another epilogue), nearest shapes first, are replayed on the kernel with their decisions
   remapped, post-processed and checked numerically against the unscheduled kernel. A record of this very
   kernel (the library's own model, same shapes) is used as it is; at other shapes the correct ones are ranked
   with the design-space samples below by the cost model, and the best predicted is used.
2. **model**: samples of the kernel's MetaSchedule design space for the target, ranked by the shipped cost
   model (``defaults/cost_model.py``) with the library's schedules at other shapes: the best predicted that is correct.
3. **none**: the unscheduled kernel, as before (when nothing replays or checks out).

**Timed** (``_Chooser._timed``), where the target's code runs on this machine: the cost model's first pick can be
far off (SqueezeNet's classifier convolution took a GoogLeNet schedule many times slower than a design-space
sample), so every family's pick is timed as the package builds it, and the families that make up
``TIMED_SHARE`` of that time get up to ``timed`` correct candidates timed: the rest of their ranking, then fresh
samples, best predicted first. The fastest is used. What that did to the onnx-wheel networks' untuned packages,
and what it costs a compile the first time (nothing the next): BENCHMARKS, session 22.

What that costs is paid once per *shape family*, not per kernel (``shape_family``): the kernels of one class
whose reduction blocks have the same loops but for the reduction's extents, which lie in the same power of
two, or, for a kernel without a reduction (elementwise, layout, concatenation), its whole class; DenseNet-121's
190 kernels are 11 classes and 26 families. The heaviest kernel of a family is chosen for as above; every other
one takes the same schedule, its trace replayed at the kernel's shapes as transfer replays it
(``kernels/replay.py``) and checked, where that leaves the innermost tiles as they were (``_innermost_tiles``),
and is chosen for on its own otherwise (a record of the kernel itself in the library still comes first).
The first candidates of a round (the first kernels of all families, then the others) are built ``BATCH`` at a
time, with their unscheduled kernels, into one library without LLVM's optimizations, and checked in a thread per
CPU while the next ones are drawn (``defaults/checks.py``). The choices are remembered on disk per target and CPU
(``defaults/cache.py``), so the next compile of the model, or of one that shares its kernels, builds and checks
nothing for them (what both save on DenseNet-121: BENCHMARKS, "Figures moved out of the code").

Records given by the user always win: a kernel with a record gets no default. The defaults are added to the
in-memory database that ``compile_relax`` applies and are never written to the user's records.

>>> report = add_default_schedules(tasks, target, database)                     # doctest: +SKIP
>>> print(report.summary())                                                     # doctest: +SKIP
default schedules: 25 library (x86-64 AVX2+FMA, tuned on llvm -mcpu=znver3), 2 model-picked, 1 none; ...
"""

import logging
import time

import attrs

from .. import __version__
from ..errors import one_line
from ..kernels.classes import iter_extents, kernel_class, main_func, sblocks
from ..kernels.kernel import Kernel
from ..kernels.replay import replay_candidates
from ..records.listing import workload_hash
from ..records.sources import Candidate, CandidateLimits, Source, SourceWorkload, candidates_for
from ..target import target_features, target_json, tuning_target
from ..threads import usable_cpus
from .cache import DefaultsCache, file_digest
from .checks import BuiltCheck, build_together, check_target, runs_here, time_together
from .cost_model import MODEL, load_cost_model, predicted_order, sample_schedules
from .library import find_library, read_library

log = logging.getLogger("tvmc")

KINDS = ("tuned", "library", "model", "none")
SCHEDULED_BY = {"tuned": "records", "library": "library", "model": "model", "none": "none", "dlight": "dlight"}
"""How a kernel was scheduled, in the reports' words: the user's tuning record, the shipped schedule library, a
cost-model pick, nothing (the unscheduled loops), or on a GPU without a record DLight's default schedule."""
WRONG_SAMPLES = 3  # samples checked before the rest of the ranking's library schedules are tried instead
# Kernels built together for their checks: one compile and one link each (a link took 0.05-0.1 s), checked in a
# thread while the next ones' candidates are drawn.
BATCH = 16
REDUCE = 2  # tvm.tirx.IterVar.CommReduce: a reduction iterator
# Families timed beyond their first pick: the costliest, until they make up this share of the first picks' time.
TIMED_SHARE = 0.95
FRESH = 3  # design-space samples drawn for each one timed beyond a kernel's ranking


@attrs.frozen
class DefaultOptions:
    """How defaults are chosen: ``candidates`` library records tried per kernel (nearest shapes first),
    ``samples`` design-space samples ranked by the cost model, ``rtol`` the numeric check's tolerance
    (relative to the largest reference value), ``library`` a library file instead of the one found for the
    target (``schedule_library.find_library``); ``use_library=False`` leaves every kernel to the cost model (what
    a processor outside every library's family gets). ``share=False`` chooses for every kernel on its own
    instead of once per shape family; ``cache=False`` neither reads nor writes the cache (``defaults/cache.py``).
    ``timed``: correct candidates timed for each of the costliest kernels, where the target runs on this machine
    (1: none, the best predicted is used)."""

    candidates: int = 3
    samples: int = 16
    timed: int = 12
    rtol: float = 1e-3
    seed: int = 0
    library: str | None = None
    use_library: bool = True
    share: bool = True
    cache: bool = True


@attrs.frozen
class KernelDefault(Kernel):
    """What one kernel got: ``kind`` is tuned (the user's record), library, model or none (``compile_model``
    adds dlight); ``how`` (None for tuned) says whether it was picked for this kernel, shared from its family's
    (``source`` names which) or read from the cache."""

    kernel_class: str
    kind: str
    source: str | None = None  # the library workload its schedule came from, or how many samples were ranked
    tried: int = 0  # candidates checked numerically
    how: str | None = None  # picked, shared or cached
    builds: int = 0  # kernels built for its checks: the unscheduled one and each candidate checked
    timed: int = 0  # correct candidates timed, the fastest taken

    def to_json(self) -> dict:
        """The row as ``tvmc compile --report`` holds it."""
        return {
            "index": self.index,
            "task": self.name,
            "class": self.kernel_class,
            "weight": self.weight,
            "flops": self.flops,
            "scheduled": SCHEDULED_BY[self.kind],
            "source": self.source,
            "how": self.how,  # picked for it, shared from its family's, or cached
            "timed": self.timed,  # its candidates timed here, the fastest taken (0: ranked by the cost model alone)
        }


@attrs.frozen
class DefaultsReport:
    """The defaults of one compile: the library used (if any) and each kernel's default (``KernelDefault``), in
    task order; ``cache``: the cache folder read and written (None: off)."""

    library: str | None  # e.g. "x86-64 AVX2+FMA (schedules-x86-avx2.json.xz 2026.12-1, tuned on llvm -mcpu=znver3)"; None: none fits
    kernels: tuple
    seconds: float
    cache: str | None = None

    def count(self, kind: str) -> int:
        return sum(1 for k in self.kernels if k.kind == kind)

    def count_how(self, how: str) -> int:
        return sum(1 for k in self.kernels if k.how == how)

    def metadata(self) -> dict:
        """What a package's metadata keeps of it: the library and how many kernels got which default."""
        return {"library": self.library, "counts": {kind: self.count(kind) for kind in ("library", "model", "none")}}

    def summary(self) -> str:
        """One line: how many kernels got which default, and how many were chosen, shared or cached."""
        library = f" ({self.library})" if self.library else " (no library for this target)"
        return (
            f"default schedules: {self.count('library')} library{library}, {self.count('model')} model-picked, "
            f"{self.count('none')} none; {self.count('tuned')} kernels had records; {self.count_how('picked')} chosen "
            f"({sum(1 for k in self.kernels if k.timed > 1)} of them timed), "
            f"{self.count_how('shared')} shared in their shape family, {self.count_how('cached')} from the cache; {self.seconds:.1f} s"
        )

    def table(self) -> str:
        rows = [f"{'#':>3}  {'task':<34} {'class':<36} {'default':<8} {'how':<7} from"]
        rows += [f"{k.index:>3}  {k.name[:34]:<34} {k.kernel_class[:36]:<36} {k.kind:<8} {k.how or '':<7} {k.source or ''}" for k in self.kernels]
        return "\n".join(rows)

    def to_json(self) -> dict:
        """The report as plain data: the library, the counts, each kernel's default, the time and the cache."""
        return {**self.metadata(), "kernels": [k.to_json() for k in self.kernels], "seconds": self.seconds, "cache": self.cache}


def add_default_schedules(tasks: list, target, database, options: DefaultOptions = DefaultOptions()) -> DefaultsReport:
    """Commit a checked default schedule to ``database`` for every task it holds no record for."""

    start = time.time()
    target = tuning_target(target)  # MetaSchedule sizes parallel loops by num-cores: plain "llvm" gets this machine's
    todo = [t for t in tasks if not database.has_workload(t.mod)]
    path, in_family = (options.library, True) if options.library else find_library(target) if todo else (None, False)
    library = read_library(path) if path and options.use_library else None
    chooser = _Chooser(target, database, library, options) if todo else None
    rows = chooser.choose(shape_families(todo, options.share)) if todo else {}
    kernels = tuple(rows.get(t.index) or KernelDefault.of(t, str(kernel_class(t.mod)), "tuned") for t in tasks)
    label = f"{library.family} ({library.name} {library.version}, tuned on {library.tuned_on})" if library else None
    if library and not in_family:
        label += f"; outside its family: the target lacks {', '.join(sorted(set(library.requires) - target_features(target)))}"
    label = label if options.use_library else "library left out"
    label = label if todo else "none needed"
    return DefaultsReport(label, kernels, time.time() - start, chooser.cache.folder if chooser and chooser.cache else None)


def shape_family(klass, mod) -> tuple:
    """The key of a kernel's shape family: its class and the extents of its (last) reduction block's loops, the
    reduction's own to the power of two they lie in (``bit_length``: 480 with 256-511). A schedule chosen for
    one kernel replays on the others of its family with only the reduction's tiles remapped to near sizes
    (``kernels/replay.py``): DenseNet's pointwise convolutions of one block, whose input channels grow by 32
    from layer to layer. Their other loops must be alike: Inception-v2's 3x3 convolution with 160 output
    channels, given the tiles of one with 192 (remapped, its vector lanes no longer filled), ran many times
    slower than when chosen for on its own (BENCHMARKS, "Figures moved out of the code"). A kernel without a reduction (elementwise, layout, concatenation) has no
    tiles to fit: its family is its class, whatever the shapes (its design space is one or two schedules,
    parallelized and vectorized at its own shapes by the postprocessors)."""

    reductions = [block for block in sblocks(main_func(mod).body) if any(int(iv.iter_type) == REDUCE for iv in block.iter_vars)]
    if not reductions:
        return (klass.key,)
    return klass.key, tuple(f"r{_extent(iv).bit_length()}" if int(iv.iter_type) == REDUCE else _extent(iv) for iv in reductions[-1].iter_vars)


def _extent(iter_var) -> int:
    extent = iter_var.dom.extent
    return int(extent.value) if hasattr(extent, "value") else -1  # a symbolic extent: alike only to another


def shape_families(tasks: list, share: bool = True) -> list:
    """``tasks`` grouped by ``shape_family`` as ``[(task, class)]`` lists, the heaviest kernel (FLOPs times
    uses) of each first, the families in the order of their first task; with ``share=False``, one per task."""

    families = {}
    for task in tasks:
        klass = kernel_class(task.mod)
        key = shape_family(klass, task.mod) if share else task.index
        families.setdefault(key, []).append((task, klass))
    return [sorted(members, key=lambda m: (-m[0].flops * m[0].weight, m[0].index)) for members in families.values()]


@attrs.frozen
class _Candidate:
    """A schedule a kernel may take, with what its row says when it checks out."""

    schedule: object  # tvm.s_tir.Schedule of the kernel, post-processed
    kind: str
    source: str
    run_secs: object  # the record's times: its source's (a library record's) or a placeholder
    how: str = "picked"
    measured: bool = False  # a library record of this very kernel: timed already, where the library was tuned


@attrs.frozen
class _Choice:
    """A kernel's default as its shape family takes it: ``candidate`` (a transfer ``Candidate`` holding the
    kernel's record) replays on the others as a library record does."""

    index: int
    row: KernelDefault
    candidate: object

    @classmethod
    def of(cls, task, klass, row, record) -> "_Choice":
        workload = SourceWorkload(task.index, task.mod, klass, (record,))
        return cls(task.index, row, Candidate(Source("this model", (workload,), 0, 0), workload, record, 0.0))

    def describe(self) -> str:
        return f"shared with #{self.index}: {self.row.source}"


@attrs.frozen
class _Picked:
    """A kernel's default before it is committed: ``candidate`` (None: the unscheduled loops), the ``_Pending``
    it was drawn from (None when it came from the cache: ``record`` holds it, committed already)."""

    task: object
    klass: object
    row: KernelDefault
    candidate: _Candidate | None = None
    item: object = None
    record: object = None
    check: object = None  # its BuiltCheck, kept for a family's first kernel


@attrs.frozen
class _Pending:
    """A kernel being chosen for: its candidates (a generator) and the first of them, drawn already."""

    task: object
    klass: object
    row: KernelDefault
    candidates: object
    first: _Candidate | None


class _Chooser:
    """Chooses the defaults of one compile: its target, database, library, cost model and cache."""

    def __init__(self, target, database, library, options):
        self.target, self.database, self.library, self.options = target, database, library, options
        self.check_target = check_target(target)
        self.model = load_cost_model()
        self.exact = {workload_hash(w.mod): w for w in library.source.workloads} if library else {}
        self.cache = DefaultsCache.open(_cache_context(target, library, self.model, options)) if options.cache else None
        self.workers = len(usable_cpus())
        self.timing = runs_here(target)

    def choose(self, families: list) -> dict:
        """``{task index: KernelDefault}`` of ``shape_families``: the first kernel of every family chosen for,
        then the others offered their family's choice."""
        rows, shared = {}, []
        heads = self._choose([(task, klass, None) for (task, klass), *_ in families], keep_checks=True)
        if self.options.timed > 1 and self.timing:
            heads = self._timed(heads, families)
        for task, klass, row, record in map(self._settle, heads):
            rows[task.index] = row
            shared.append(_Choice.of(task, klass, row, record) if record is not None else None)
        others = [(task, klass, choice) for family, choice in zip(families, shared) for task, klass in family[1:]]
        for task, _, row, _ in map(self._settle, self._choose(others)):
            rows[task.index] = row
        return rows

    def _choose(self, members: list, keep_checks: bool = False) -> list:
        """The ``_Picked`` of each of ``members`` (``(task, class, family's choice or None)``): from the cache,
        else its first candidate is checked, and then its next ones until one checks out. The
        first candidates are built together with the unscheduled kernels (``build_together``), ``BATCH`` kernels
        at a time, and checked in a thread per CPU while the next ones are drawn."""
        from concurrent.futures import ThreadPoolExecutor  # pylint: disable=import-outside-toplevel

        done, pending, batches = {}, [], []
        with ThreadPoolExecutor(max_workers=self.workers) as pool:
            for task, klass, shared in members:
                row = KernelDefault.of(task, str(klass), "none")
                item = self._cached(task, klass, row) or self._pending(task, klass, row, shared)
                if isinstance(item, _Picked):
                    done[task.index] = item
                    continue
                pending.append(item)
                if len(pending) % BATCH == 0:
                    batches.append(pool.submit(self._check_firsts, pending[-BATCH:], keep_checks))
            batches.append(pool.submit(self._check_firsts, pending[len(pending) - len(pending) % BATCH :], keep_checks))
            firsts = dict(outcome for batch in batches for outcome in batch.result())
        for item in pending:
            done[item.task.index] = self._check_in_turn(item, firsts[item.task.index], keep_checks)
        return [done[task.index] for task, *_ in members]

    def _settle(self, picked: _Picked) -> tuple:
        """``(task, class, row, record)`` of a pick: its candidate committed and remembered in the cache."""
        if picked.row.how == "cached":
            return picked.task, picked.klass, picked.row, picked.record
        record = None
        if picked.candidate is not None:
            record = _commit(self.database, picked.task.mod, picked.candidate.schedule.trace, self.target, picked.candidate.run_secs)
        if self.cache is not None and picked.row.how is not None:  # a kernel that failed is tried again next time
            self.cache.put(picked.task.mod, picked.row.kind, picked.row.source, record)
        return picked.task, picked.klass, picked.row, record

    def _cached(self, task, klass, row) -> _Picked | None:
        """The ``_Picked`` the cache holds, its record committed; None when it holds none."""
        hit = self.cache.get(task.mod) if self.cache else None
        if hit is None:
            return None
        if hit.record is not None:
            _commit(self.database, task.mod, hit.record.trace, self.target, hit.record.run_secs)
        return _Picked(task, klass, attrs.evolve(row, kind=hit.kind, source=hit.source, how="cached"), record=hit.record)

    def _pending(self, task, klass, row, shared):
        """The kernel's ``_Pending``, its first candidate drawn; a ``_Picked`` of nothing when drawing fails."""
        candidates = self._candidates(task, klass, shared)
        try:
            return _Pending(task, klass, row, candidates, next(candidates, None))
        except Exception as err:  # pylint: disable=broad-except
            # a default is never worth a failed compile: this kernel keeps the unscheduled loops
            log.warning("%s: no default schedule (%s)", task.name, one_line(err, 200))
            return _Picked(task, klass, row)

    def _check_firsts(self, pending: list, keep_checks: bool = False) -> list:
        """``(task index, outcome)`` of ``pending``, built together (the unscheduled kernels and the first
        candidates): ``(correct, check)``, whether the first candidate is correct and the kernel's check for its
        next candidates (a check holds every parameter twice: kept only where still needed, a wrong first
        candidate, or ``keep_checks``), or the error that kept it from being made."""

        mods = [p.task.mod for p in pending] + [p.first.schedule.mod for p in pending if p.first is not None]
        built = iter(build_together(mods, self.check_target))
        references = [next(built) for _ in pending]
        verdicts = []
        for item, reference in zip(pending, references):
            lib = next(built) if item.first is not None else None
            try:
                if reference is None:
                    raise RuntimeError("it does not build")
                check = BuiltCheck(item.task.mod, reference, self.options.rtol, self.options.seed)
            except Exception as err:  # pylint: disable=broad-except
                verdicts.append((item.task.index, err))
                continue
            correct = lib is not None and check.built_error(lib) <= self.options.rtol
            verdicts.append((item.task.index, (correct, check if keep_checks or not correct else None)))
        return verdicts

    def _check_in_turn(self, item: _Pending, outcome, keep_check: bool = False) -> _Picked:
        """The first of ``item``'s candidates that computes what its unscheduled kernel does (``outcome``: of the
        first, ``_check_firsts``); none when none does."""

        task, row = item.task, item.row
        if isinstance(outcome, Exception):
            log.warning("%s: the unscheduled kernel does not build or run here (%s); it keeps no default", task.name, one_line(outcome, 200))
            return _Picked(task, item.klass, row)
        correct, check = outcome
        tried, builds, candidate = int(item.first is not None), 1 + (item.first is not None), item.first
        try:
            while candidate is not None and not correct:
                candidate = next(item.candidates, None)
                if candidate is not None:
                    (lib,) = build_together([candidate.schedule.mod], self.check_target)
                    tried, builds = tried + 1, builds + 1
                    correct = lib is not None and check.built_error(lib) <= self.options.rtol
        except Exception as err:  # pylint: disable=broad-except
            # a default is never worth a failed compile: this kernel keeps the unscheduled loops
            log.warning("%s: no default schedule (%s)", task.name, one_line(err, 200))
            return _Picked(task, item.klass, attrs.evolve(row, tried=tried, builds=builds))
        row = attrs.evolve(row, tried=tried, builds=builds, how="picked")
        if candidate is not None:
            row = attrs.evolve(row, kind=candidate.kind, source=candidate.source, how=candidate.how)
        # a family's first kernel keeps its check for the candidates it may get timed: its unscheduled kernel is
        # not run again (VGG-19's first convolution, unscheduled at -O0, runs for seconds)
        return _Picked(task, item.klass, row, candidate, item, check=check if keep_check else None)

    def _timed(self, heads: list, families: list) -> list:
        """``heads`` (the ``_Picked`` of each family's first kernel), the costliest ones given the fastest of
        their first ``timed`` correct candidates. The cost model ranks a kernel's candidates, but its first pick
        can be far off: SqueezeNet's classifier convolution took a library schedule of GoogLeNet's many times
        slower than a design-space sample (BENCHMARKS, session 22). Every first pick is timed (built as the package builds it, in one
        library), and the families costing ``TIMED_SHARE`` of that time get their other candidates timed."""
        from concurrent.futures import ThreadPoolExecutor  # pylint: disable=import-outside-toplevel


        spots = [i for i, p in enumerate(heads) if p.item is not None and p.candidate is not None and not p.candidate.measured]
        firsts = dict(zip(spots, time_together([heads[i].candidate.schedule.mod for i in spots], self.target, self.workers)))
        costliest = _costliest({i: seconds * _uses(families[i]) for i, seconds in firsts.items()}, TIMED_SHARE)
        drawn = [self._more_candidates(heads[i], self.options.timed - 1) for i in costliest]  # here: the cost model is not shared across threads
        with ThreadPoolExecutor(max_workers=self.workers) as pool:
            found = pool.map(lambda i, candidates: self._correct(heads[i], candidates), costliest, drawn)
            more = [(i, candidate) for i, candidates in zip(costliest, found) for candidate in candidates]
        seconds = time_together([candidate.schedule.mod for _, candidate in more], self.target, self.workers)
        timed = {i: [(firsts[i], heads[i].candidate)] for i in costliest}
        for (i, candidate), took in zip(more, seconds):
            timed[i].append((took, candidate))
        heads = list(heads)
        for i, timings in timed.items():
            _, best = min(timings, key=lambda timing: timing[0])
            log.debug("%s: timed %s ms", heads[i].task.name, ", ".join(f"{took * 1e3:.3g}" for took, _ in timings))
            row = attrs.evolve(heads[i].row, kind=best.kind, source=best.source, timed=len(timings))
            heads[i] = attrs.evolve(heads[i], candidate=best, row=row)
        return heads

    def _more_candidates(self, picked: _Picked, wanted: int) -> list:
        """Up to ``wanted`` more candidates for ``picked``: the rest of its ranking (the library's first), then
        fresh design-space samples, best predicted first (drawn ``FRESH`` times as many as needed: the cost
        model's ranking of one kernel's samples is rough, and their times spread 30x)."""
        from itertools import islice  # pylint: disable=import-outside-toplevel


        task = picked.task
        try:
            drawn = list(islice(picked.item.candidates, wanted))
            more = FRESH * (wanted - len(drawn)) if self.options.samples else 0  # samples=0: the library's alone
            fresh, context = sample_schedules(task.mod, self.target, more, self.options.seed + 1) if more else ([], None)
            order = predicted_order(task.mod, context, self.model, fresh) if fresh else []
            return drawn + [_Candidate(fresh[i], "model", f"fastest timed of {wanted + 1}: a sample ({len(fresh)} drawn, 0 from the library)", [1.0]) for i in order[: wanted - len(drawn)]]
        except Exception as err:  # pylint: disable=broad-except
            log.debug("%s: no more candidates to time (%s)", task.name, one_line(err, 200))
            return []

    def _correct(self, picked: _Picked, candidates: list) -> list:
        """Those of ``candidates`` that compute what ``task``'s unscheduled kernel does, all built together."""

        task = picked.task
        if not candidates:
            return []
        try:
            if picked.check is not None:
                check, built = picked.check, build_together([c.schedule.mod for c in candidates], self.check_target)
            else:
                reference, *built = build_together([task.mod] + [c.schedule.mod for c in candidates], self.check_target)
                check = BuiltCheck(task.mod, reference, self.options.rtol, self.options.seed)
        except Exception as err:  # pylint: disable=broad-except
            log.debug("%s: its candidates cannot be checked (%s)", task.name, one_line(err, 200))
            return []
        return [c for c, lib in zip(candidates, built) if lib is not None and check.built_error(lib) <= self.options.rtol]

    def _candidates(self, task, klass, shared):
        """What ``task`` may take, in the order its candidates are checked: the library's records of this very
        kernel (measured: used as they are), ``shared`` (its family's choice) replayed on it, then the library's
        schedules at other shapes and design-space samples, best predicted first. A generator: the ranking
        is only drawn when the candidates before it fail."""

        key = workload_hash(task.mod)
        for schedule, source in self._replayed(task, klass, self._exact_candidates(key))[0]:
            yield _Candidate(schedule, "library", source.describe(), source.record.run_secs, measured=True)
        if shared is not None:
            for schedule, _ in self._replayed(task, klass, [shared.candidate])[0]:
                if _innermost_tiles(schedule.trace) == _innermost_tiles(shared.candidate.record.trace):
                    yield _Candidate(schedule, shared.row.kind, shared.describe(), shared.candidate.record.run_secs, "shared")
        # At other shapes a library schedule is a guess like a design-space sample: the cost model ranks them together
        # (a MobileNetV2 ran slower with ResNet-50's pointwise schedules than with the model's own picks: BENCHMARKS,
        # 2026-12-03, "Untuned, on a model outside the zoo").
        nearby = [c for c in self._nearby_candidates(task, klass) if workload_hash(c.workload.mod) != key]
        library, context = self._replayed(task, klass, nearby)
        samples, sampled = self._samples(task)
        pool = library + [(schedule, None) for schedule in samples]
        context = sampled or context
        order = predicted_order(task.mod, context, self.model, [schedule for schedule, _ in pool]) if context is not None else range(len(pool))
        wrong = 0
        for i in order:
            schedule, source = pool[i]
            if source is not None:
                yield _Candidate(schedule, "library", source.describe(), source.record.run_secs)
            elif wrong < WRONG_SAMPLES:  # each sample yielded before this one failed its check
                wrong += 1
                yield _Candidate(schedule, "model", f"best predicted of {len(pool)} ({len(library)} from the library)", [1.0])

    def _exact_candidates(self, key: str) -> list:
        """The library's records of the workload ``key`` (this very kernel), fastest first."""

        workload = self.exact.get(key)
        if workload is None:
            return []
        return [Candidate(self.library.source, workload, workload.records[r], 0.0) for r in range(min(self.options.candidates, len(workload.records)))]

    def _nearby_candidates(self, task, klass) -> list:
        """The library's records of the kernel's class (or anchor) at the nearest shapes (``candidates_for``)."""

        if self.library is None:
            return []
        limits = CandidateLimits(max_candidates=self.options.candidates, max_per_kernel=self.options.candidates)
        return candidates_for(klass, iter_extents(task.mod), [self.library.source], limits)

    def _replayed(self, task, klass, candidates) -> tuple:
        """``([(schedule, candidate)], TuneContext or None)``: ``candidates`` replayed on ``task`` and
        post-processed (``kernels.replay.replay_candidates``), those that do not replay left out."""

        if not candidates:
            return [], None
        replayed, context, _ = replay_candidates(task, klass, candidates, self.target)
        return replayed, context

    def _samples(self, task) -> tuple:
        try:
            return sample_schedules(task.mod, self.target, self.options.samples, self.options.seed)
        except Exception as err:  # pylint: disable=broad-except
            log.debug("%s: no design space to sample (%s)", task.name, err)
            return [], None


def _uses(family: list) -> float:
    """How many times its first kernel's work a shape family (``[(task, class)]``) does per inference."""
    head = family[0][0]
    if head.flops <= 0:
        return float(sum(task.weight for task, _ in family))
    return sum(task.flops * task.weight for task, _ in family) / head.flops


def _costliest(costs: dict, share: float) -> list:
    """The keys of ``costs`` (seconds), costliest first, until they make up ``share`` of the finite total; a key
    that could not be timed (inf) is among them."""
    order = sorted(costs, key=lambda k: -costs[k])
    total = sum(c for c in costs.values() if c != float("inf"))
    chosen, spent = [], 0.0
    for key in order:
        if costs[key] != float("inf") and spent >= share * total:
            break
        chosen.append(key)
        spent += costs[key] if costs[key] != float("inf") else 0.0
    return chosen


def _innermost_tiles(trace) -> list:
    """The innermost factor of each tiling the trace samples. A family's choice is shared only where replaying
    it left them as they were: Inception-v2's 320-channel pointwise convolution, its reduction tiled 16x20 where
    its 256-channel sibling's was 16x16, ran slower than when chosen for on its own (BENCHMARKS, "Figures moved out of the code")."""
    tiles = []
    for inst in trace.insts:
        decision = trace.get_decision(inst) if inst.kind.name == "SamplePerfectTile" else None
        if decision is not None:
            tiles.append(int(decision[-1]))
    return tiles


def _cache_context(target, library, model, options) -> dict:
    """What a kernel's default depends on besides the kernel (``defaults/cache.py``)."""
    import tvm  # pylint: disable=import-outside-toplevel
    from tvm.target import codegen


    return {
        "target": target_json(target),
        "host": str(codegen.llvm_get_system_cpu()),  # the numeric check runs here
        "library": f"{library.name} {library.version} {file_digest(library.path)}" if library else None,
        "cost_model": file_digest(MODEL) if model is not None else None,
        "tvmc_transfer": __version__,
        "tvm": tvm.__version__,
        "options": attrs.asdict(options, filter=lambda a, _: a.name != "cache"),
    }


def _commit(database, mod, trace, target, run_secs):
    """An in-memory record, returned: its time is the source's (a library record) or a placeholder; nothing
    compares it."""
    from tvm.s_tir import meta_schedule as ms  # pylint: disable=import-outside-toplevel

    workload = database.commit_workload(mod)
    args = ms.arg_info.ArgInfo.from_entry_func(mod, remove_preproc=True)
    record = ms.database.TuningRecord(trace, workload, [float(s) for s in run_secs], target, args)
    database.commit_tuning_record(record)
    return record
