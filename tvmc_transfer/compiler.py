"""``compile_model``: apply tuning records, build with Relax, write one package file."""

import logging
import os

import attrs

from . import __version__
from .cross import CrossCompiler, check_linkable
from .errors import TVMCException, one_line
from .lowering import Lowering, layout_passes, other_lowering_hint, tuned_count
from .package import PackageMetadata, write_package
from .pipeline_options import PipelineOptions, build, dump_code
from .records import open_database, records_digest
from .target import target_json
from .tasks import extract_tasks

log = logging.getLogger("tvmc")


@attrs.frozen
class CompileReport:
    package: str
    kernels: int
    tuned_kernels: int
    other_target_records: int
    hint: str | None = None  # what would make the records match more kernels
    defaults: object = None  # DefaultsReport, None with default_schedules=False


def _records_for(records: str, target):
    """The measured records of ``records`` that are for ``target``, in memory, and how many were for another.

    Records of failed builds or runs stay out: a schedule that never ran correctly is never applied."""
    from tvm.s_tir import meta_schedule as ms  # pylint: disable=import-outside-toplevel

    from .records import copy_records

    source = open_database(records)
    if not source.get_all_tuning_records():
        raise TVMCException(f"tuning records in '{records}' are empty; run 'tvmc tune' first or compile without them")
    memory = ms.database.MemoryDatabase()
    _, other = copy_records(source, memory, target, measured_only=True)
    return memory, other


def compile_model(
    model,
    target,
    output: str,
    records: str | None = None,
    pipeline: PipelineOptions | None = None,
    cross: CrossCompiler | None = None,
    lowering: Lowering = Lowering(),
    default_schedules=True,
) -> CompileReport:
    """Compile ``model`` for ``target`` into the package file ``output``.

    Kernels with a record in ``records`` get their best tuned schedule; the others get a checked default
    schedule (``default_schedules.py``; ``default_schedules`` may be its ``DefaultOptions``), or with
    ``default_schedules=False`` the unscheduled loops.
    ``pipeline`` holds tvmc 0.19's build options (``-O``, ``--pass-config``, ...); ``cross`` links the
    package for another machine. ``lowering`` (weight prepacking, layout) must be the one the records were tuned under; when another
    matches more kernels, the report says which (``hint``) and a warning is logged.

    >>> compile_model(load_model("net.onnx"), parse_target("llvm"), "net.tar", records="records")  # doctest: +SKIP
    """
    import tvm  # pylint: disable=import-outside-toplevel
    from tvm.s_tir import meta_schedule as ms

    from .intrinsics import load_tensor_intrinsics

    pipeline = pipeline or PipelineOptions()
    check_linkable(target, cross)
    model = attrs.evolve(model, mod=pipeline.transform_model(model.mod))
    tasks = extract_tasks(model, target, lowering)
    other = 0
    if records:
        database, other = _records_for(records, target)
        if other:
            log.warning("%s: %d records are for another target and were ignored", records, other)
    else:
        database = ms.database.MemoryDatabase()
    tuned = tuned_count(tasks, database)
    use_defaults = default_schedules and target.kind.name == "llvm"
    hint = None
    if records and tuned < len(tasks):
        hint = other_lowering_hint(model, target, database, lowering, tuned)
        others = "get a default schedule" if use_defaults else "are compiled unscheduled"
        log.warning("the records match %d of the model's %d kernels; the others %s%s", tuned, len(tasks), others, f"; {hint}" if hint else "")
    load_tensor_intrinsics(target)  # tuned traces may tensorize
    defaults = None
    if use_defaults:
        from .default_schedules import DefaultOptions, add_default_schedules  # pylint: disable=import-outside-toplevel

        options = default_schedules if isinstance(default_schedules, DefaultOptions) else DefaultOptions()
        defaults = add_default_schedules(tasks, target, database, options)
    try:
        executable, scheduled = build(model.mod, target, database, pipeline, lowering)
    except TVMCException:
        raise
    except Exception as err:
        raise TVMCException(f"compilation failed: {one_line(err)}") from None
    metadata = PackageMetadata(
        inputs=model.inputs,
        outputs=model.outputs,
        target=target_json(target),
        tvm_version=tvm.__version__,
        model=os.path.basename(model.path),
        model_digest=model.digest,
        records_digest=records_digest(records) if records else None,
        tuned_kernels=tuned,
        kernels=len(tasks),
        default_schedules=defaults.metadata() if defaults is not None else None,
        tvmc_transfer_version=__version__,
    )
    write_package(executable, metadata, output, fcompile=cross.fcompile() if cross else None)
    if pipeline.dump_code:  # the Relax module as the kernels were cut from it: in the lowering's layout
        dump_code(pipeline, output, tvm.transform.Sequential(layout_passes(target, lowering))(model.mod), scheduled, executable)
    return CompileReport(os.path.abspath(output), len(tasks), tuned, other, hint, defaults)
