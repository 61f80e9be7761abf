"""How a model is lowered to kernels: the passes before tuning and the build after it, kept in step.

A tuning record's workload is the fused kernel exactly as these passes leave it, so records tuned under one
lowering are other workloads under another. ``Lowering`` is the one value that says which: task extraction
(tune, transfer, droplet), and compile all take it.

Weight prepacking is TVM 0.27's own CPU recipe (``relax.pipeline.static_shape_tuning_pipeline(...,
cpu_weight_prepack=True)``): weights are marked layout-free before tuning (``AttachAttrLayoutFreeBuffers``) so
MetaSchedule's ``RewriteLayout`` picks their layout; after the database is applied, the layout rewrite is split
out of each kernel (``SplitLayoutRewritePreproc``) and, since a tvmc model's weights are constants, folded into
the package's constants (``FoldConstant``): the package keeps ``main(inputs)`` and plain TVM loads it.
"""

import attrs


@attrs.frozen
class Lowering:
    """``weight_prepack``: rewrite weight layouts at compile time; ``None`` means on for CPU targets."""

    weight_prepack: bool | None = None

    def prepacks(self, target) -> bool:
        """Whether this lowering prepacks weights for ``target``."""
        if self.weight_prepack is not None:
            return self.weight_prepack
        return _is_cpu(target)

    def flag(self, target) -> str:
        """The command-line flag that selects this lowering for ``target``."""
        return "--weight-prepack" if self.prepacks(target) else "--no-weight-prepack"

    def others(self) -> tuple:
        """The lowerings records could have been tuned under instead (to name the flag that matches them)."""
        return (Lowering(weight_prepack=True), Lowering(weight_prepack=False))


def _is_cpu(target) -> bool:
    return str(target.kind.name) in ("llvm", "c")


def fusion_passes(target, lowering: Lowering = Lowering()) -> list:
    """The passes that turn a model into the fused kernels MetaSchedule tunes (and finds in the database)."""
    from tvm import relax  # pylint: disable=import-outside-toplevel

    try:
        dispatch = list(relax.pipeline.library_dispatch_passes(target))
    except (ValueError, AttributeError):
        dispatch = []
    passes = [
        *dispatch,
        relax.transform.LegalizeOps(),
        relax.transform.AnnotateTIROpPattern(),
        relax.transform.FoldConstant(),
        relax.transform.FuseOps(),
        relax.transform.FuseTIR(),
    ]
    if lowering.prepacks(target):
        passes.append(attach_layout_free_buffers())
    return passes


def _attach(mod, _ctx):
    """``relax.transform.AttachAttrLayoutFreeBuffers`` without renaming every kernel: TVM's pass re-adds each
    called function under a fresh name (``reshape2`` becomes ``reshape21``); this one sets the same attribute
    (the indices of the arguments that are constants or weights at every call) in place, so task names stay
    the same under either lowering and the workloads hash as TVM's pass makes them (``test_lowering``)."""
    import tvm  # pylint: disable=import-outside-toplevel
    from tvm import relax

    call_tir = tvm.ir.Op.get("relax.call_tir")
    free = {}
    for func in mod.functions.values():
        if not isinstance(func, relax.Function):
            continue
        inputs = int(func.attrs["num_input"]) if func.attrs is not None and "num_input" in func.attrs else len(func.params)
        weights = set(func.params[inputs:])

        def visit(expr, weights=weights):
            if isinstance(expr, tvm.ir.Call) and expr.op.same_as(call_tir):
                args = expr.args[1].fields if isinstance(expr.args[1], tvm.ir.Tuple) else [expr.args[1]]
                constant = {i for i, a in enumerate(args) if isinstance(a, tvm.ir.Constant) or a in weights}
                callee = expr.args[0]
                free[callee] = constant if callee not in free else free[callee] & constant

        relax.analysis.post_order_visit(func.body, visit)
    for gv, indices in free.items():
        mod.update_func(gv, mod[gv].with_attr("layout_free_buffers", sorted(indices)))
    return mod


def fuse(mod, target, lowering: Lowering = Lowering()):
    """``mod`` with its kernels fused as tuning sees them."""
    import tvm  # pylint: disable=import-outside-toplevel

    with target:
        return tvm.transform.Sequential(fusion_passes(target, lowering))(mod)


def after_database_passes(target, lowering: Lowering = Lowering()) -> list:
    """What runs once the database's schedules are applied: with prepacking, the weight layout rewrites split
    out and folded into constants; on a GPU, DLight's schedules for the kernels without a record."""
    from tvm import relax  # pylint: disable=import-outside-toplevel
    from tvm.relax import pipeline

    after = []
    if lowering.prepacks(target):
        # The weights are constants: the split-out rewrites fold into new constants, main keeps its inputs.
        after = [relax.transform.SplitLayoutRewritePreproc(), relax.transform.FoldConstant()]
    if pipeline.BackendDispatcher.is_gpu_target(target):  # as compile_relax does
        from tvm.s_tir import dlight as dl  # pylint: disable=import-outside-toplevel

        gpu = dl.gpu
        after.append(dl.ApplyDefaultSchedule(gpu.Matmul(), gpu.GEMV(), gpu.Reduction(), gpu.GeneralReduction(), gpu.Fallback()))
    return after


def apply_records(database, mod, target, lowering: Lowering = Lowering()):
    """``mod`` fused, with the database's schedules applied and the passes after them run: the Relax module
    the build lowers (the build runs the same steps, in ``pipeline_options.build``)."""
    import tvm  # pylint: disable=import-outside-toplevel
    from tvm import relax

    with target, database, tvm.transform.PassContext(opt_level=3):
        mod = fuse(mod, target, lowering)
        mod = relax.transform.MetaScheduleApplyDatabase()(mod)
        return tvm.transform.Sequential(after_database_passes(target, lowering))(mod)


def lower_passes(target) -> list:
    """Relax's dataflow lowering and finalizing passes for ``target``, as ``compile_relax`` picks them."""
    from tvm.relax import pipeline  # pylint: disable=import-outside-toplevel

    try:
        return [*pipeline.dataflow_lower_passes(target), *pipeline.finalize_passes(target)]
    except (ValueError, AttributeError):  # llvm among them in 0.27: compile_relax falls back to the CPU passes
        from tvm.relax.backend.cpu_generic import pipeline as cpu  # pylint: disable=import-outside-toplevel

        return [*cpu.dataflow_lower_passes(target), *cpu.finalize_passes(target)]


def add_lowering_arguments(parser) -> None:
    """``--weight-prepack`` / ``--no-weight-prepack`` for every command that extracts tasks or compiles."""
    import argparse  # pylint: disable=import-outside-toplevel

    parser.add_argument(
        "--weight-prepack",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="rewrite weight layouts for the tuned kernels at compile time (default: on for CPU targets); "
        "records tuned with it only match with it, and without it only without it",
    )


def lowering_from_args(args) -> Lowering:
    return Lowering(weight_prepack=args.weight_prepack)


def tuned_count(tasks: list, database) -> int:
    """How many of ``tasks`` have a workload in ``database``."""
    return sum(1 for t in tasks if database.has_workload(t.mod))


def other_lowering_hint(model, target, database, lowering: Lowering, tuned: int) -> str | None:
    """When the records match more kernels under another lowering, say how many and which flag gives that."""
    from .tasks import extract_tasks  # pylint: disable=import-outside-toplevel

    others = [other for other in lowering.others() if other.prepacks(target) != lowering.prepacks(target)]
    best = most_matched(others, tuned, lambda other: tuned_count(extract_tasks(model, target, other), database))
    if best is None:
        return None
    return f"the records were tuned under another lowering: compile with {best[0].flag(target)} and they match {best[1]} kernels"


def most_matched(alternatives, tuned: int, count) -> tuple | None:
    """``(alternative, kernels matched)`` for the alternative under which ``count`` matches the most kernels,
    when that is more than the ``tuned`` matched now; else None."""
    best = None
    for alternative in alternatives:
        matched = count(alternative)
        if matched > tuned and (best is None or matched > best[1]):
            best = (alternative, matched)
    return best


def attach_layout_free_buffers():
    """The pass that marks weights layout-free for MetaSchedule's ``RewriteLayout`` (see ``_attach``)."""
    import tvm  # pylint: disable=import-outside-toplevel

    return tvm.transform.module_pass(_attach, opt_level=0, name="AttachLayoutFreeBuffersInPlace")
