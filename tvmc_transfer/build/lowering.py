"""How a model is lowered to kernels: the passes before tuning and the build after it, kept in step.

A tuning record's workload is the fused kernel exactly as these passes leave it, so records tuned under one
lowering are other workloads under another. ``Lowering`` is the one value that says which: task extraction
(tune, transfer, droplet), and compile all take it.

Weight prepacking is TVM 0.27's own CPU recipe (``relax.pipeline.static_shape_tuning_pipeline(...,
cpu_weight_prepack=True)``): weights are marked layout-free before tuning (``AttachAttrLayoutFreeBuffers``) so
MetaSchedule's ``RewriteLayout`` picks their layout; after the database is applied, the layout rewrite is split
out of each kernel (``SplitLayoutRewritePreproc``) and, since a tvmc model's weights are constants, folded into
the package's constants (``FoldConstant``): the package keeps ``main(inputs)`` and plain TVM loads it.

The data layout is part of the lowering too: Relax's ``ConvertLayout`` runs first, so a kernel's workload includes
its layout. On an x86 CPU with AVX2 or AVX-512 the default is NHWC: in NCHW the vectorized axis is the image
width, 7-56, and wastes lanes; in NHWC it is the channels. On AVX-512, ResNet-50's heaviest convolutions tuned
faster in NHWC than in ONNX's NCHW for the same trials (BENCHMARKS, 2026-12-03, "NHWC against NCHW"); on AVX2,
the zoo's NHWC schedules tuned on an AVX-512 machine already beat the NCHW schedules tuned on the AVX2 processor
itself (session 16). Elsewhere (generic x86-64, other architectures) the model keeps its own layout: not
measured.

With ``--winograd``, where convolutions are NHWC on a CPU, the stride-1 3x3 ones with enough channels and output
tiles are computed as Winograd F(4x4, 3x3) (``winograd.py``): after the same trials, ResNet-50's 3x3
convolutions at 56x56, 28x28 and 14x14 ran faster than direct ones in isolation (BENCHMARKS, session 12). It is
not the default: end to end, ResNet-50 gained nothing at the same trials (in the model the 4x larger transformed
weights come from memory), and its kernels take longer to build, so a tuning run of fixed wall time gets far
fewer trials; the schedule library holds none of its kernels.
"""

import attrs

from ..errors import TVMCException
from ..target import target_features

LAYOUTS = {"NCHW": ["NCHW", "OIHW"], "NHWC": ["NHWC", "HWIO"]}  # data, kernel: tvmc 0.19's defaults for each


@attrs.frozen
class Lowering:
    """``weight_prepack``: rewrite weight layouts at compile time; ``None`` means on for CPU targets.
    ``layout``: convert convolutions to this data layout first; ``None`` means NHWC on x86 CPUs with AVX2 (AVX-512
    CPUs have it too), else none.
    ``winograd``: compute stride-1 3x3 NHWC convolutions as Winograd F(4x4, 3x3) (``winograd.py``) on CPU
    targets; off unless asked for (``None`` or ``False``): see the module's note on its build cost."""

    weight_prepack: bool | None = None
    layout: str | None = None
    winograd: bool | None = None

    def __attrs_post_init__(self):
        if self.layout is not None and self.layout not in LAYOUTS:

            raise TVMCException(f"--desired-layout must be one of {', '.join(LAYOUTS)}, got '{self.layout}'")

    def layout_for(self, target) -> str | None:
        """The layout convolutions are converted to for ``target`` (None: left as the model has them)."""
        if self.layout is not None:
            return self.layout
        return "NHWC" if _is_cpu(target) and "avx2" in _features(target) else None

    def prepacks(self, target) -> bool:
        """Whether this lowering prepacks weights for ``target``."""
        if self.weight_prepack is not None:
            return self.weight_prepack
        return _is_cpu(target)

    def winograd_for(self, target) -> bool:
        """Whether this lowering computes 3x3 convolutions with Winograd for ``target`` (only NHWC ones on a CPU)."""
        return bool(self.winograd) and _is_cpu(target) and self.layout_for(target) == "NHWC"

    def key(self, target) -> tuple:
        """What decides the kernels for ``target``: (prepacks, layout, winograd), the model's own layout read as
        NCHW (ONNX's and PyTorch's)."""
        return self.prepacks(target), self.layout_for(target) or "NCHW", self.winograd_for(target)

    def flags(self, target, current=None) -> str:
        """The command-line flags that select this lowering for ``target`` (only those that differ from
        ``current``'s, when given)."""
        prepacks, layout, winograd = self.key(target)
        now_prepacks, now_layout, _ = current.key(target) if current else (None, None, None)
        flags = []
        if prepacks != now_prepacks:
            flags.append("--weight-prepack" if prepacks else "--no-weight-prepack")
        if layout != now_layout:
            flags.append(f"--desired-layout {layout}")
        # --winograd / --no-winograd only where the flags above would not already give it
        given = Lowering(layout=layout, winograd=current.winograd if current else None).winograd_for(target)
        if winograd != given:
            flags.append("--winograd" if winograd else "--no-winograd")
        return " ".join(flags)

    def others(self, target) -> list:
        """The lowerings records could have been tuned under instead of this one, for ``target`` (to name the
        flags that match them)."""
        every = [Lowering(weight_prepack=p, layout=l, winograd=w) for l in LAYOUTS for p in (True, False) for w in (None, True)]
        unique = {}
        for other in every:  # the fewest flags first: without Winograd where it would make no difference
            unique.setdefault(other.key(target), other)
        return [other for key, other in unique.items() if key != self.key(target)]


def _is_cpu(target) -> bool:
    return str(target.kind.name) in ("llvm", "c")


def _features(target) -> set:
    return target_features(target)


def layout_passes(target, lowering: Lowering = Lowering()) -> list:
    """The conversion of the convolutions to the lowering's layout for ``target``, when it is not the model's own
    NCHW (the clamps rewritten first, so that the new layout goes through them: ``clamps.py``). A model the
    conversion fails on keeps its own layout, with one warning (``layout_conversion.py``)."""
    from ..frontends.simplify import fold_constant_shapes
    from .clamps import clamps_as_binary_ops  # pylint: disable=import-outside-toplevel
    from .layout_conversion import convert_layout_or_keep
    from .winograd import winograd_convolutions

    layout = lowering.layout_for(target)
    passes = [clamps_as_binary_ops()] if layout else []  # (with NCHW too: records tuned under it saw them rewritten)
    if layout and layout != "NCHW":  # the model's own layout: nothing to convert
        passes += [convert_layout_or_keep(layout, LAYOUTS[layout]), fold_constant_shapes()]  # the weights' transposes
    return passes + [winograd_convolutions()] if lowering.winograd_for(target) else passes


def fusion_passes(target, lowering: Lowering = Lowering()) -> list:
    """The passes that turn a model into the fused kernels MetaSchedule tunes (and finds in the database)."""
    from tvm import relax  # pylint: disable=import-outside-toplevel

    try:
        dispatch = list(relax.pipeline.library_dispatch_passes(target))
    except (ValueError, AttributeError):
        dispatch = []
    passes = [
        *layout_passes(target, lowering),
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

    from ..kernels.weight_layouts import fold_weight_layouts

    after = []
    if lowering.prepacks(target):
        # The weights are constants: the split-out rewrites fold into new constants, main keeps its inputs.
        # The rewrites are relayouts: computed in NumPy (``kernels/weight_layouts.py``), FoldConstant would compile each one.
        after = [relax.transform.SplitLayoutRewritePreproc(), fold_weight_layouts(), relax.transform.FoldConstant()]
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


def tuned_count(tasks: list, database) -> int:
    """How many of ``tasks`` have a workload in ``database``."""
    return sum(1 for t in tasks if database.has_workload(t.mod))


def other_lowering_hint(model, target, database, lowering: Lowering, tuned: int) -> str | None:
    """When the records match more kernels under another lowering, say how many and which flag gives that."""
    from .tasks import extract_tasks  # pylint: disable=import-outside-toplevel

    best = most_matched(lowering.others(target), tuned, lambda other: tuned_count(extract_tasks(model, target, other), database))
    if best is None:
        return None
    return f"the records were tuned under another lowering: compile with {best[0].flags(target, lowering)} and they match {best[1]} kernels"


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
