"""``compile_model``: apply tuning records, build with Relax, write one package file; and its report.

The report (``CompileReport``, ``tvmc compile --report FILE.json``) is what a CI job checks: each kernel and how
it was scheduled, the layout fallbacks taken, the warnings logged, the time of each phase. With ``strict=True``
a layout fallback or an unscheduled kernel stops the compile before any package is written.
"""

import contextlib
import logging
import os
import time

import attrs

from . import __version__
from .atomic import write_json
from .build.cross import CrossCompiler, check_linkable
from .build.intrinsics import load_tensor_intrinsics
from .build.layout_conversion import collect_fallbacks
from .build.lowering import Lowering, layout_passes, other_lowering_hint, tuned_count
from .build.package import PackageMetadata, write_package
from .build.pipeline import PipelineOptions, build, dump_code
from .build.tasks import extract_tasks
from .defaults.schedules import SCHEDULED_BY, DefaultOptions, KernelDefault, add_default_schedules
from .errors import TVMCException, lowering_hint, tvm_errors
from .kernels.classes import kernel_class
from .records import copy_records, open_database, records_digest
from .target import target_json

log = logging.getLogger("tvmc")


@attrs.frozen
class CompileReport:
    """What one compile did. ``package`` is None when none was written (``error`` says why); ``scheduled`` holds
    a ``defaults.schedules.KernelDefault`` per kernel (its ``kind`` is a key of ``SCHEDULED_BY``), ``fallbacks``
    the ``layout_conversion.LayoutFallback``s taken, ``warnings`` the lines logged, ``phases`` the seconds of
    each phase (tasks, default_schedules, build, write; ``tvmc compile`` adds load, which precedes the call)."""

    package: str | None
    kernels: int = 0
    tuned_kernels: int = 0
    other_target_records: int = 0
    hint: str | None = None  # what would make the records match more kernels
    defaults: object = None  # DefaultsReport, None with default_schedules=False
    scheduled: tuple = ()
    fallbacks: tuple = ()
    warnings: tuple = ()
    phases: dict = attrs.field(factory=dict)
    error: str | None = None
    model: str | None = None
    target: dict | None = None
    lowering: dict | None = None
    records: str | None = None

    def count(self, how: str) -> int:
        """How many kernels were scheduled ``how`` (a value of ``SCHEDULED_BY``)."""
        return sum(1 for k in self.scheduled if SCHEDULED_BY[k.kind] == how)

    def strict_failures(self) -> str | None:
        """What ``--strict`` refuses in this compile, in one line; None when nothing."""
        unscheduled = [k.name for k in self.scheduled if k.kind == "none"]
        failures = []
        if self.fallbacks:
            operators = ", ".join(sorted({f.operator for f in self.fallbacks}))
            failures.append(f"{_plural(len(self.fallbacks), 'layout fallback')} ({operators}; --desired-layout NCHW skips the conversion)")
        if unscheduled:
            names = ", ".join(unscheduled[:5]) + (", ..." if len(unscheduled) > 5 else "")
            failures.append(f"{_plural(len(unscheduled), 'kernel')} unscheduled ({names}; tune them with 'tvmc tune')")
        return "; ".join(failures) or None

    def to_json(self) -> dict:
        """The report as plain data: what ``--report FILE.json`` holds."""
        import tvm  # pylint: disable=import-outside-toplevel

        return {
            "status": "failed" if self.error else "ok",
            "error": self.error,
            "package": self.package,
            "model": self.model,
            "target": self.target,
            "lowering": self.lowering,
            "records": self.records,
            "other_target_records": self.other_target_records,
            "records_hint": self.hint,
            "default_schedule_library": self.defaults.library if self.defaults is not None else None,
            "counts": {how: self.count(how) for how in ("records", "library", "model", "none", "dlight")},
            "kernels": [k.to_json() for k in self.scheduled],
            "layout_fallbacks": [f.to_json() for f in self.fallbacks],
            "warnings": list(self.warnings),
            "phases": {name: round(seconds, 3) for name, seconds in self.phases.items()},
            "seconds": round(sum(self.phases.values()), 3),
            "tvmc_transfer_version": __version__,
            "tvm_version": tvm.__version__,
        }

    def summary(self) -> str:
        """What ``tvmc compile`` prints: the default schedules' line (when they were chosen) and the package's."""
        rows = [self.defaults.summary()] if self.defaults is not None else []
        rows.append(f"package: {self.package} ({self.tuned_kernels} of {self.kernels} kernels tuned)")
        return "\n".join(rows)

    def write_json(self, path: str) -> None:
        """Write ``to_json()`` atomically: a CI job reads the whole report or none."""
        write_json(path, self.to_json())


class CompileFailed(TVMCException):
    """A compile that stopped with an error for the user: ``report`` says how far it got and why."""

    def __init__(self, message: str, report: CompileReport):
        super().__init__(message)
        self.report = report


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


@contextlib.contextmanager
def logged_warnings(logger: str = "tvmc"):
    """``with logged_warnings() as lines:`` collects the WARNING (and worse) messages ``logger`` logs inside;
    they still reach the terminal as before."""
    lines: list = []

    class Collect(logging.Handler):
        def emit(self, record):
            lines.append(record.getMessage())

    handler = Collect(logging.WARNING)
    logging.getLogger(logger).addHandler(handler)
    try:
        yield lines
    finally:
        logging.getLogger(logger).removeHandler(handler)


@contextlib.contextmanager
def timed(phases: dict, name: str):
    """Add the block's wall time (``time.monotonic``) to ``phases[name]``, also when it raises."""
    start = time.monotonic()
    try:
        yield
    finally:
        phases[name] = phases.get(name, 0.0) + time.monotonic() - start


def _records_for(records: str, target):
    """The measured records of ``records`` that are for ``target``, in memory, and how many were for another.

    Records of failed builds or runs stay out: a schedule that never ran correctly is never applied."""
    from tvm.s_tir import meta_schedule as ms  # pylint: disable=import-outside-toplevel


    source = open_database(records)
    if not source.get_all_tuning_records():
        raise TVMCException(f"tuning records in '{records}' are empty; run 'tvmc tune' first or compile without them")
    memory = ms.database.MemoryDatabase()
    _, other = copy_records(source, memory, target, measured_only=True)
    return memory, other


def _scheduled(tasks, database, defaults, target) -> tuple:
    """A ``KernelDefault`` per task: the defaults' own rows, or (without defaults) records or nothing."""
    if defaults is not None:
        return defaults.kernels

    unscheduled = "none" if target.kind.name in ("llvm", "c") else "dlight"  # a GPU build schedules the rest with DLight
    return tuple(
        KernelDefault.of(t, str(kernel_class(t.mod)), "tuned" if database.has_workload(t.mod) else unscheduled)
        for t in tasks
    )


def compile_model(
    model,
    target,
    output: str,
    records: str | None = None,
    pipeline: PipelineOptions | None = None,
    cross: CrossCompiler | None = None,
    lowering: Lowering = Lowering(),
    default_schedules=True,
    strict: bool = False,
) -> CompileReport:
    """Compile ``model`` for ``target`` into the package file ``output``; the ``CompileReport``.

    Kernels with a record in ``records`` get their best tuned schedule; the others get a checked default
    schedule (``defaults/schedules.py``; ``default_schedules`` may be its ``DefaultOptions``), or with
    ``default_schedules=False`` the unscheduled loops.
    ``pipeline`` holds tvmc 0.19's build options (``-O``, ``--pass-config``, ...); ``cross`` links the
    package for another machine. ``lowering`` (weight prepacking, layout) must be the one the records were tuned under; when another
    matches more kernels, the report says which (``hint``) and a warning is logged.
    With ``strict``, a layout fallback or a kernel left unscheduled is an error and no package is written.
    Every error for the user is a ``CompileFailed``, whose ``report`` says how far the compile got and why.

    >>> compile_model(load_model("net.onnx"), parse_target("llvm"), "net.tar", records="records")  # doctest: +SKIP
    """
    import tvm  # pylint: disable=import-outside-toplevel
    from tvm.s_tir import meta_schedule as ms


    pipeline = pipeline or PipelineOptions()
    check_linkable(target, cross)
    phases, what_to_try = {}, lowering_hint(target, lowering)
    lowered = dict(zip(("weight_prepack", "layout", "winograd"), lowering.key(target)))
    known = {"model": model.path, "target": target_json(target), "lowering": lowered, "records": records, "phases": phases}
    with logged_warnings() as warnings, collect_fallbacks() as fallbacks:

        def report(**done) -> CompileReport:
            # a fallback warns once per process (layout_conversion): a later compile of the model still lists it
            lines = tuple(warnings) + tuple(str(f) for f in fallbacks if str(f) not in warnings)
            return CompileReport(**{"package": None, **known, **done, "fallbacks": tuple(fallbacks), "warnings": lines})

        with _failures_reported(report):
            with timed(phases, "tasks"), tvm_errors("task extraction", what_to_try):
                model = attrs.evolve(model, mod=pipeline.transform_model(model.mod))
                tasks = extract_tasks(model, target, lowering)
                database, other = _records_for(records, target) if records else (ms.database.MemoryDatabase(), 0)
                if other:
                    log.warning("%s: %d records are for another target and were ignored", records, other)
                tuned = tuned_count(tasks, database)
                known.update(kernels=len(tasks), tuned_kernels=tuned, other_target_records=other)
                use_defaults = default_schedules and target.kind.name == "llvm"
                if records and tuned < len(tasks):
                    with collect_fallbacks():  # the other lowerings' conversions are no part of this compile
                        known["hint"] = hint = other_lowering_hint(model, target, database, lowering, tuned)
                    others = "get a default schedule" if use_defaults else "are compiled unscheduled"
                    log.warning("the records match %d of the model's %d kernels; the others %s%s", tuned, len(tasks), others, f"; {hint}" if hint else "")
            load_tensor_intrinsics(target)  # tuned traces may tensorize
            defaults = None
            with timed(phases, "default_schedules"), tvm_errors("choosing default schedules", what_to_try):
                if use_defaults:

                    options = default_schedules if isinstance(default_schedules, DefaultOptions) else DefaultOptions()
                    defaults = add_default_schedules(tasks, target, database, options)
                known.update(defaults=defaults, scheduled=_scheduled(tasks, database, defaults, target))
            _refuse_if_strict(strict, report())  # before the build: a CI job learns it sooner
            with timed(phases, "build"), tvm_errors("compilation", what_to_try):
                executable, scheduled = build(model.mod, target, database, pipeline, lowering)
            _refuse_if_strict(strict, report())  # the build converts the layout again, under the pipeline's options
            with timed(phases, "write"):
                metadata = _metadata(model, target, records, len(tasks), tuned, defaults)
                write_package(executable, metadata, output, fcompile=cross.fcompile() if cross else None)
                if pipeline.dump_code:  # the Relax module as the kernels were cut from it: in the lowering's layout
                    dump_code(pipeline, output, tvm.transform.Sequential(layout_passes(target, lowering))(model.mod), scheduled, executable)
        return report(package=os.path.abspath(output))


def _metadata(model, target, records, kernels: int, tuned: int, defaults) -> PackageMetadata:
    import tvm  # pylint: disable=import-outside-toplevel

    return PackageMetadata(
        inputs=model.inputs,
        outputs=model.outputs,
        target=target_json(target),
        tvm_version=tvm.__version__,
        model=os.path.basename(model.path),
        model_digest=model.digest,
        records_digest=records_digest(records) if records else None,
        tuned_kernels=tuned,
        kernels=kernels,
        default_schedules=defaults.metadata() if defaults is not None else None,
        tvmc_transfer_version=__version__,
    )


@contextlib.contextmanager
def _failures_reported(report):
    """A user's error inside becomes ``CompileFailed`` with the report so far (``report(error=...)``)."""
    try:
        yield
    except TVMCException as err:
        raise CompileFailed(str(err), report(error=str(err))) from None


def _refuse_if_strict(strict: bool, report: CompileReport) -> None:
    failures = report.strict_failures() if strict else None
    if failures:
        raise TVMCException(f"--strict: {failures}; no package written")
