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

Records given by the user always win: a kernel with a record gets no default. The defaults are added to the
in-memory database that ``compile_relax`` applies and are never written to the user's records.

>>> report = add_default_schedules(tasks, target, database)                     # doctest: +SKIP
>>> print(report.summary())                                                     # doctest: +SKIP
default schedules: 25 library (x86-64 AVX2+FMA, tuned on llvm -mcpu=znver3), 2 model-picked, 1 none; 9.8 s
"""

import logging
import time

import attrs

log = logging.getLogger("tvmc")

KINDS = ("tuned", "library", "model", "none")


@attrs.frozen
class DefaultOptions:
    """How defaults are chosen: ``candidates`` library records tried per kernel (nearest shapes first),
    ``samples`` design-space samples ranked by the cost model, ``rtol`` the numeric check's tolerance
    (relative to the largest reference value), ``library`` a library file instead of the one found for the
    target (``schedule_library.find_library``); ``use_library=False`` leaves every kernel to the cost model (what
    a processor outside every library's family gets)."""

    candidates: int = 3
    samples: int = 16
    rtol: float = 1e-3
    seed: int = 0
    library: str | None = None
    use_library: bool = True


@attrs.frozen
class KernelDefault:
    """What one kernel got: ``kind`` is tuned (the user's record), library, model or none."""

    index: int
    task: str
    kernel_class: str
    weight: int
    flops: float
    kind: str
    source: str | None = None  # the library workload its schedule came from, or how many samples were ranked
    tried: int = 0  # candidates replayed or sampled and checked


@attrs.frozen
class DefaultsReport:
    """The defaults of one compile: the library used (if any) and each kernel's default, in task order."""

    library: str | None  # e.g. "x86-64 AVX2+FMA (schedules-x86-avx2.json.xz 2026.12-1, tuned on llvm -mcpu=znver3)"; None: none fits
    kernels: tuple
    seconds: float

    def count(self, kind: str) -> int:
        return sum(1 for k in self.kernels if k.kind == kind)

    def metadata(self) -> dict:
        """What a package's metadata keeps of it: the library and how many kernels got which default."""
        return {"library": self.library, "counts": {kind: self.count(kind) for kind in ("library", "model", "none")}}

    def summary(self) -> str:
        """One line: how many kernels got which default."""
        library = f" ({self.library})" if self.library else " (no library for this target)"
        return (
            f"default schedules: {self.count('library')} library{library}, {self.count('model')} model-picked, "
            f"{self.count('none')} none; {self.count('tuned')} kernels had records; {self.seconds:.1f} s"
        )

    def table(self) -> str:
        rows = [f"{'#':>3}  {'task':<34} {'class':<36} {'default':<8} from"]
        rows += [f"{k.index:>3}  {k.task[:34]:<34} {k.kernel_class[:36]:<36} {k.kind:<8} {k.source or ''}" for k in self.kernels]
        return "\n".join(rows)


def add_default_schedules(tasks: list, target, database, options: DefaultOptions = DefaultOptions()) -> DefaultsReport:
    """Commit a checked default schedule to ``database`` for every task it holds no record for."""
    from .transfer.classes import kernel_class  # pylint: disable=import-outside-toplevel
    from .default_picks import load_cost_model
    from .schedule_library import find_library, read_library, target_features

    from .target import tuning_target

    start = time.time()
    target = tuning_target(target)  # MetaSchedule sizes parallel loops by num-cores: plain "llvm" gets this machine's
    todo = {t.index for t in tasks if not database.has_workload(t.mod)}
    path, in_family = (options.library, True) if options.library else find_library(target) if todo else (None, False)
    library = read_library(path) if path and options.use_library else None
    model = load_cost_model() if todo else None
    kernels = []
    for task in tasks:
        klass = kernel_class(task.mod)
        row = KernelDefault(task.index, task.name, str(klass), task.weight, task.flops, "none" if task.index in todo else "tuned")
        if task.index in todo:
            try:
                row = _default_for(task, klass, target, database, library, model, options, row)
            except Exception as err:  # pylint: disable=broad-except
                # a default is never worth a failed compile: this kernel keeps the unscheduled loops
                log.warning("%s: no default schedule (%s)", task.name, str(err).strip().splitlines()[-1][:200] if str(err).strip() else type(err).__name__)
            log.info("default schedule of #%d %s: %s %s", task.index, task.name, row.kind, row.source or "")
        kernels.append(row)
    label = f"{library.family} ({library.name} {library.version}, tuned on {library.tuned_on})" if library else None
    if library and not in_family:
        label += f"; outside its family: the target lacks {', '.join(sorted(set(library.requires) - target_features(target)))}"
    label = label if options.use_library else "library left out"
    label = label if todo else "none needed"
    return DefaultsReport(label, tuple(kernels), time.time() - start)


def _default_for(task, klass, target, database, library, model, options, row) -> KernelDefault:
    from .default_picks import predicted_order, sample_schedules  # pylint: disable=import-outside-toplevel
    from .records.listing import workload_hash
    from .transfer.check import KernelCheck

    try:
        check = KernelCheck(task.mod, check_target(target), options.rtol, options.seed)
    except Exception as err:  # pylint: disable=broad-except
        log.warning("%s: the unscheduled kernel does not build or run here (%s); it keeps no default", task.name, str(err).strip()[-200:])
        return row
    tried, picks = 0, []  # picks: (schedule, library candidate) that replayed and checked out
    key = workload_hash(task.mod)
    if library is not None:
        for schedule, source in _library_schedules(task, klass, target, library, options, check):
            tried += 1
            if schedule is None:
                continue
            if workload_hash(source.workload.mod) == key:  # this very kernel, measured: use it
                _commit(database, task.mod, schedule.trace, target, source.record.run_secs)
                return attrs.evolve(row, kind="library", source=source.describe(), tried=tried)
            picks.append((schedule, source))
    # At other shapes a library schedule is a guess like a design-space sample: the cost model ranks them together
    # (a MobileNetV2 took ResNet-50's pointwise schedules at 12.9x ONNX Runtime, the model's own picks at 6.5x).
    try:
        samples, context = sample_schedules(task.mod, target, options.samples, options.seed)
    except Exception as err:  # pylint: disable=broad-except
        log.debug("%s: no design space to sample (%s)", task.name, err)
        samples, context = [], None
    pool = picks + [(schedule, None) for schedule in samples]
    order = predicted_order(task.mod, context, model, [schedule for schedule, _ in pool]) if context is not None else range(len(pool))
    checked = 0
    for i in order:
        schedule, source = pool[i]
        if source is not None:  # checked already
            _commit(database, task.mod, schedule.trace, target, source.record.run_secs)
            return attrs.evolve(row, kind="library", source=source.describe(), tried=tried)
        if checked == 3:  # the best predicted samples keep failing the check: a library schedule, if any, is next
            continue
        checked += 1
        tried += 1
        if check.is_correct(schedule.mod):
            _commit(database, task.mod, schedule.trace, target, [1.0])
            return attrs.evolve(row, kind="model", source=f"best predicted of {len(pool)} ({len(picks)} from the library)", tried=tried)
    return attrs.evolve(row, tried=tried)


def _library_schedules(task, klass, target, library, options, check):
    """``(schedule or None, candidate)`` for the library's candidates of ``task``, nearest shapes first: the
    schedule when it replayed, post-processed and checked out (transfer's own replay and check)."""
    from .transfer.classes import iter_extents  # pylint: disable=import-outside-toplevel
    from .transfer.kernel import replay_all
    from .transfer.options import TransferOptions
    from .transfer.report import KernelTransfer
    from .transfer.sources import candidates_for

    transfer_options = TransferOptions(max_candidates=options.candidates, max_per_kernel=options.candidates, measure_top=None, rtol=options.rtol, seed=options.seed)
    row = KernelTransfer(task.index, task.name, str(klass), task.weight, task.flops, "pending")
    for candidate in candidates_for(klass, iter_extents(task.mod), [library.source], transfer_options):
        valid, row = replay_all(task, klass, [candidate], target, check, row)
        yield (valid[0][0] if valid else None), candidate


def _commit(database, mod, trace, target, run_secs) -> None:
    """An in-memory record: its time is the source's (a library record) or a placeholder; nothing compares it."""
    from tvm.s_tir import meta_schedule as ms  # pylint: disable=import-outside-toplevel

    workload = database.commit_workload(mod)
    args = ms.arg_info.ArgInfo.from_entry_func(mod, remove_preproc=True)
    database.commit_tuning_record(ms.database.TuningRecord(trace, workload, [float(s) for s in run_secs], target, args))


def check_target(target):
    """The target the numeric check builds for: ``target`` itself when its code runs on this machine, else the
    host's generic ``llvm`` (a schedule computes the same numbers whatever instructions it is compiled to)."""
    import tvm  # pylint: disable=import-outside-toplevel

    from .schedule_library import target_arch, target_features

    host = tvm.target.Target("llvm")
    if target.kind.name != "llvm" or target_arch(target) != target_arch(host):
        return host
    native = target_features(tvm.target.Target({"kind": "llvm", "mcpu": str(tvm.target.codegen.llvm_get_system_cpu())}))
    return target if target_features(target) <= native else host
