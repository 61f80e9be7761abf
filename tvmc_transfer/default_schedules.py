"""Default schedules: every kernel of a compile without tuning records gets a checked schedule worth running.

Without this, a kernel that no tuning record matches keeps the loops ``LegalizeOps`` emits: one thread, no
vectors, 50-180x slower than ONNX Runtime on the zoo. ``add_default_schedules`` gives each such kernel, in order:

1. **library**: the schedule library shipped for the target's CPU family, or outside every family, for its
   architecture (``schedule_library.py``), applied by
   transfer (``transfer.py``): the records of the library workloads of the kernel's class (or, failing that,
   of its anchor with another epilogue), nearest shapes first, are replayed on the kernel with their decisions
   remapped, post-processed and checked numerically against the unscheduled kernel. A record of this very
   kernel (the library's own model, same shapes) is used as it is; at other shapes the correct ones are ranked
   with the design-space samples below by the cost model, and the best predicted is used. Nothing is measured.
2. **model**: samples of the kernel's MetaSchedule design space for the target, ranked by the shipped cost
   model (``default_picks.py``) with the library's schedules at other shapes: the best predicted that is correct.
3. **none**: the unscheduled kernel, as before (when nothing replays or checks out).

What that costs is paid once per *shape family*, not per kernel (``shape_family``): the kernels of one class
whose reduction blocks have the same loops but for the reduction's extents, which lie in the same power of
two, or, for a kernel without a reduction (elementwise, layout, concatenation), its whole class; DenseNet-121's
190 kernels are 11 classes and 26 families. The heaviest kernel of a family is chosen for as above; every other
one takes the same schedule, its trace replayed at the kernel's shapes as transfer replays it
(``transfer/replay.py``) and checked, where that leaves the innermost tiles as they were (``_innermost_tiles``),
and is chosen for on its own otherwise (a record of the kernel itself in the library still comes first).
The first candidates of a round (the first kernels of all families, then the others) are built ``BATCH`` at a
time, with their unscheduled kernels, into one library without LLVM's optimizations, and checked in a thread per
CPU while the next ones are drawn (``default_checks.py``). The choices are remembered on disk per target and CPU
(``defaults_cache.py``), so the next compile of the model, or of one that shares its kernels, builds and checks
nothing for them. On DenseNet-121 (190 kernels), on a 2-core Zen 4 shared with other jobs, choosing its defaults
took 197 s before, and now 16-28 s the first time, 1.5-2.6 s the next; the schedules chosen are those of before
on 183 kernels, and as fast on the other 7.

Records given by the user always win: a kernel with a record gets no default. The defaults are added to the
in-memory database that ``compile_relax`` applies and are never written to the user's records.

>>> report = add_default_schedules(tasks, target, database)                     # doctest: +SKIP
>>> print(report.summary())                                                     # doctest: +SKIP
default schedules: 25 library (x86-64 AVX2+FMA, tuned on llvm -mcpu=znver3), 2 model-picked, 1 none; ...
"""

import logging
import time

import attrs

from .errors import one_line

log = logging.getLogger("tvmc")

KINDS = ("tuned", "library", "model", "none")
WRONG_SAMPLES = 3  # samples checked before the rest of the ranking's library schedules are tried instead
# Kernels built together for their checks: one compile and one link each (a link took 0.05-0.1 s), checked in a
# thread while the next ones' candidates are drawn.
BATCH = 16
REDUCE = 2  # tvm.tirx.IterVar.CommReduce: a reduction iterator


@attrs.frozen
class DefaultOptions:
    """How defaults are chosen: ``candidates`` library records tried per kernel (nearest shapes first),
    ``samples`` design-space samples ranked by the cost model, ``rtol`` the numeric check's tolerance
    (relative to the largest reference value), ``library`` a library file instead of the one found for the
    target (``schedule_library.find_library``); ``use_library=False`` leaves every kernel to the cost model (what
    a processor outside every library's family gets). ``share=False`` chooses for every kernel on its own
    instead of once per shape family; ``cache=False`` neither reads nor writes the cache (``defaults_cache.py``)."""

    candidates: int = 3
    samples: int = 16
    rtol: float = 1e-3
    seed: int = 0
    library: str | None = None
    use_library: bool = True
    share: bool = True
    cache: bool = True


@attrs.frozen
class KernelDefault:
    """What one kernel got: ``kind`` is tuned (the user's record), library, model or none; ``how`` (None for
    tuned) says whether it was picked for this kernel, shared from its family's (``source`` names which) or
    read from the cache."""

    index: int
    task: str
    kernel_class: str
    weight: int
    flops: float
    kind: str
    source: str | None = None  # the library workload its schedule came from, or how many samples were ranked
    tried: int = 0  # candidates checked numerically
    how: str | None = None  # picked, shared or cached
    builds: int = 0  # kernels built for its checks: the unscheduled one and each candidate checked


@attrs.frozen
class DefaultsReport:
    """The defaults of one compile: the library used (if any) and each kernel's default, in task order;
    ``cache``: the cache folder read and written (None: off)."""

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
            f"{self.count('none')} none; {self.count('tuned')} kernels had records; {self.count_how('picked')} chosen, "
            f"{self.count_how('shared')} shared in their shape family, {self.count_how('cached')} from the cache; {self.seconds:.1f} s"
        )

    def table(self) -> str:
        rows = [f"{'#':>3}  {'task':<34} {'class':<36} {'default':<8} {'how':<7} from"]
        rows += [f"{k.index:>3}  {k.task[:34]:<34} {k.kernel_class[:36]:<36} {k.kind:<8} {k.how or '':<7} {k.source or ''}" for k in self.kernels]
        return "\n".join(rows)


def add_default_schedules(tasks: list, target, database, options: DefaultOptions = DefaultOptions()) -> DefaultsReport:
    """Commit a checked default schedule to ``database`` for every task it holds no record for."""
    from .schedule_library import find_library, read_library, target_features  # pylint: disable=import-outside-toplevel
    from .target import tuning_target
    from .transfer.classes import kernel_class

    start = time.time()
    target = tuning_target(target)  # MetaSchedule sizes parallel loops by num-cores: plain "llvm" gets this machine's
    todo = [t for t in tasks if not database.has_workload(t.mod)]
    path, in_family = (options.library, True) if options.library else find_library(target) if todo else (None, False)
    library = read_library(path) if path and options.use_library else None
    chooser = _Chooser(target, database, library, options) if todo else None
    rows = chooser.choose(shape_families(todo, options.share)) if todo else {}
    kernels = tuple(rows.get(t.index) or KernelDefault(t.index, t.name, str(kernel_class(t.mod)), t.weight, t.flops, "tuned") for t in tasks)
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
    (``transfer/replay.py``): DenseNet's pointwise convolutions of one block, whose input channels grow by 32
    from layer to layer. Their other loops must be alike: Inception-v2's 3x3 convolution with 160 output
    channels, given the tiles of one with 192 (remapped, its vector lanes no longer filled), ran 10-16x slower
    than when chosen for on its own. A kernel without a reduction (elementwise, layout, concatenation) has no
    tiles to fit: its family is its class, whatever the shapes (its design space is one or two schedules,
    parallelized and vectorized at its own shapes by the postprocessors)."""
    from .transfer.classes import main_func, sblocks  # pylint: disable=import-outside-toplevel

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
    from .transfer.classes import kernel_class  # pylint: disable=import-outside-toplevel

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


@attrs.frozen
class _Choice:
    """A kernel's default as its shape family takes it: ``candidate`` (a transfer ``Candidate`` holding the
    kernel's record) replays on the others as a library record does."""

    index: int
    row: KernelDefault
    candidate: object

    @classmethod
    def of(cls, task, klass, row, record) -> "_Choice":
        from .transfer.sources import Candidate, Source, SourceWorkload  # pylint: disable=import-outside-toplevel

        workload = SourceWorkload(task.index, task.mod, klass, (record,))
        return cls(task.index, row, Candidate(Source("this model", (workload,), 0, 0), workload, record, 0.0))

    def describe(self) -> str:
        return f"shared with #{self.index}: {self.row.source}"


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
        from .default_checks import check_target  # pylint: disable=import-outside-toplevel
        from .default_picks import load_cost_model
        from .defaults_cache import DefaultsCache
        from .records.listing import workload_hash
        from .threads import usable_cpus

        self.target, self.database, self.library, self.options = target, database, library, options
        self.check_target = check_target(target)
        self.model = load_cost_model()
        self.exact = {workload_hash(w.mod): w for w in library.source.workloads} if library else {}
        self.cache = DefaultsCache.open(_cache_context(target, library, self.model, options)) if options.cache else None
        self.workers = len(usable_cpus())

    def choose(self, families: list) -> dict:
        """``{task index: KernelDefault}`` of ``shape_families``: the first kernel of every family chosen for,
        then the others offered their family's choice."""
        rows, shared = {}, []
        for task, klass, row, record in self._choose([(task, klass, None) for (task, klass), *_ in families]):
            rows[task.index] = row
            shared.append(_Choice.of(task, klass, row, record) if record is not None else None)
        others = [(task, klass, choice) for family, choice in zip(families, shared) for task, klass in family[1:]]
        for task, _, row, _ in self._choose(others):
            rows[task.index] = row
        return rows

    def _choose(self, members: list) -> list:
        """``(task, class, row, record)`` of each of ``members`` (``(task, class, family's choice or None)``):
        from the cache, else its first candidate is checked, and then its next ones until one checks out. The
        first candidates are built together with the unscheduled kernels (``build_together``), ``BATCH`` kernels
        at a time, and checked in a thread per CPU while the next ones are drawn."""
        from concurrent.futures import ThreadPoolExecutor  # pylint: disable=import-outside-toplevel

        done, pending, batches = {}, [], []
        with ThreadPoolExecutor(max_workers=self.workers) as pool:
            for task, klass, shared in members:
                row = KernelDefault(task.index, task.name, str(klass), task.weight, task.flops, "none")
                item = self._cached(task, klass, row) or self._pending(task, klass, row, shared)
                if not isinstance(item, _Pending):
                    done[task.index] = item
                    continue
                pending.append(item)
                if len(pending) % BATCH == 0:
                    batches.append(pool.submit(self._check_firsts, pending[-BATCH:]))
            batches.append(pool.submit(self._check_firsts, pending[len(pending) - len(pending) % BATCH :]))
            firsts = dict(outcome for batch in batches for outcome in batch.result())
        for item in pending:
            row, record = self._check_in_turn(item, firsts[item.task.index])
            done[item.task.index] = (item.task, item.klass, row, record)
        return [done[task.index] for task, *_ in members]

    def _cached(self, task, klass, row) -> tuple | None:
        """``(task, class, row, record)`` from the cache, its record committed; None when it holds none."""
        hit = self.cache.get(task.mod) if self.cache else None
        if hit is None:
            return None
        if hit.record is not None:
            _commit(self.database, task.mod, hit.record.trace, self.target, hit.record.run_secs)
        return task, klass, attrs.evolve(row, kind=hit.kind, source=hit.source, how="cached"), hit.record

    def _pending(self, task, klass, row, shared):
        """The kernel's ``_Pending``, its first candidate drawn; ``(task, class, row, None)`` when drawing fails."""
        candidates = self._candidates(task, klass, shared)
        try:
            return _Pending(task, klass, row, candidates, next(candidates, None))
        except Exception as err:  # pylint: disable=broad-except
            # a default is never worth a failed compile: this kernel keeps the unscheduled loops
            log.warning("%s: no default schedule (%s)", task.name, one_line(err, 200))
            return task, klass, row, None

    def _check_firsts(self, pending: list) -> list:
        """``(task index, outcome)`` of ``pending``, built together (the unscheduled kernels and the first
        candidates): True when the first candidate is correct; else the kernel's check, for its next candidates
        (a check holds every parameter twice: only those still needed are kept), or the error that kept it
        from being made."""
        from .default_checks import BuiltCheck, build_together  # pylint: disable=import-outside-toplevel

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
            verdicts.append((item.task.index, True if lib is not None and check.built_error(lib) <= self.options.rtol else check))
        return verdicts

    def _check_in_turn(self, item: _Pending, outcome) -> tuple:
        """``(row, record)``: the first of ``item``'s candidates that computes what its unscheduled kernel does
        (``outcome``: of the first, ``_check_firsts``), committed and remembered; none when none does."""
        from .default_checks import build_together  # pylint: disable=import-outside-toplevel

        task, row = item.task, item.row
        if isinstance(outcome, Exception):
            log.warning("%s: the unscheduled kernel does not build or run here (%s); it keeps no default", task.name, one_line(outcome, 200))
            return row, None
        correct, check = outcome is True, outcome
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
            return attrs.evolve(row, tried=tried, builds=builds), None
        row = attrs.evolve(row, tried=tried, builds=builds, how="picked")
        record = None
        if candidate is not None:
            record = _commit(self.database, task.mod, candidate.schedule.trace, self.target, candidate.run_secs)
            row = attrs.evolve(row, kind=candidate.kind, source=candidate.source, how=candidate.how)
        if self.cache is not None:
            self.cache.put(task.mod, row.kind, row.source, record)
        return row, record

    def _candidates(self, task, klass, shared):
        """What ``task`` may take, in the order its candidates are checked: the library's records of this very
        kernel (measured: used as they are), ``shared`` (its family's choice) replayed on it, then the library's
        schedules at other shapes and design-space samples, best predicted first. A generator: the ranking
        is only drawn when the candidates before it fail."""
        from .default_picks import predicted_order  # pylint: disable=import-outside-toplevel
        from .records.listing import workload_hash

        key = workload_hash(task.mod)
        for schedule, source in self._replayed(task, klass, self._exact_candidates(key))[0]:
            yield _Candidate(schedule, "library", source.describe(), source.record.run_secs)
        if shared is not None:
            for schedule, _ in self._replayed(task, klass, [shared.candidate])[0]:
                if _innermost_tiles(schedule.trace) == _innermost_tiles(shared.candidate.record.trace):
                    yield _Candidate(schedule, shared.row.kind, shared.describe(), shared.candidate.record.run_secs, "shared")
        # At other shapes a library schedule is a guess like a design-space sample: the cost model ranks them together
        # (a MobileNetV2 took ResNet-50's pointwise schedules at 12.9x ONNX Runtime, the model's own picks at 6.5x).
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
        from .transfer.sources import Candidate  # pylint: disable=import-outside-toplevel

        workload = self.exact.get(key)
        if workload is None:
            return []
        return [Candidate(self.library.source, workload, workload.records[r], 0.0) for r in range(min(self.options.candidates, len(workload.records)))]

    def _nearby_candidates(self, task, klass) -> list:
        """The library's records of the kernel's class (or anchor) at the nearest shapes (``candidates_for``)."""
        from .transfer.classes import iter_extents  # pylint: disable=import-outside-toplevel
        from .transfer.options import TransferOptions
        from .transfer.sources import candidates_for

        if self.library is None:
            return []
        options = self.options
        transfer_options = TransferOptions(max_candidates=options.candidates, max_per_kernel=options.candidates, measure_top=None, rtol=options.rtol, seed=options.seed)
        return candidates_for(klass, iter_extents(task.mod), [self.library.source], transfer_options)

    def _replayed(self, task, klass, candidates) -> tuple:
        """``([(schedule, candidate)], TuneContext or None)``: ``candidates`` replayed on ``task`` and
        post-processed (transfer's ``replay_candidates``), those that do not replay left out."""
        from .transfer.kernel import replay_candidates  # pylint: disable=import-outside-toplevel
        from .transfer.report import KernelTransfer

        if not candidates:
            return [], None
        row = KernelTransfer(task.index, task.name, str(klass), task.weight, task.flops, "pending")
        replayed, context, _ = replay_candidates(task, klass, candidates, self.target, row)
        return replayed, context

    def _samples(self, task) -> tuple:
        from .default_picks import sample_schedules  # pylint: disable=import-outside-toplevel

        try:
            return sample_schedules(task.mod, self.target, self.options.samples, self.options.seed)
        except Exception as err:  # pylint: disable=broad-except
            log.debug("%s: no design space to sample (%s)", task.name, err)
            return [], None


def _innermost_tiles(trace) -> list:
    """The innermost factor of each tiling the trace samples. A family's choice is shared only where replaying
    it left them as they were: Inception-v2's 320-channel pointwise convolution, its reduction tiled 16x20 where
    its 256-channel sibling's was 16x16, ran 3x slower than when chosen for on its own."""
    tiles = []
    for inst in trace.insts:
        decision = trace.get_decision(inst) if inst.kind.name == "SamplePerfectTile" else None
        if decision is not None:
            tiles.append(int(decision[-1]))
    return tiles


def _cache_context(target, library, model, options) -> dict:
    """What a kernel's default depends on besides the kernel (``defaults_cache.py``)."""
    import tvm  # pylint: disable=import-outside-toplevel
    from tvm.target import codegen

    from . import __version__
    from .default_picks import MODEL
    from .defaults_cache import file_digest
    from .target import target_json

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
