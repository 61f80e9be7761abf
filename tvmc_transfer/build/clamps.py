"""Clamps rewritten as ``R.maximum`` / ``R.minimum``, so that a layout conversion goes through them.

``from_onnx`` imports ONNX's ``Clip`` (ReLU6) as ``call_tir`` of TE ``maximum`` and ``minimum`` kernels, and
``HardSwish`` / ``HardSigmoid`` with ``R.clip``. Relax's ``ConvertLayout`` carries a layout through neither: it
wraps each in a transpose back to the model's layout and one to the new layout again. On a MobileNet in NHWC,
every ReLU6 then became a kernel of its own with two transposes instead of its convolution's epilogue. Written as
the binary operators with a scalar bound, the clamps keep the new layout and fuse into the convolution;
``LegalizeOps`` lowers them to the same TE kernels."""


def clamps_as_binary_ops():
    """The module pass: before ``ConvertLayout``."""
    import tvm  # pylint: disable=import-outside-toplevel

    return tvm.ir.transform.module_pass(_rewrite, opt_level=0, name="ClampsAsBinaryOps")


def _rewrite(mod, _ctx):
    import tvm  # pylint: disable=import-outside-toplevel
    from tvm import relax
    from tvm.relax.expr_functor import PyExprMutator, mutator

    clip, call_tir = tvm.ir.Op.get("relax.clip"), tvm.ir.Op.get("relax.call_tir")
    binary = {"maximum": relax.op.maximum, "minimum": relax.op.minimum}

    @mutator
    class Rewriter(PyExprMutator):
        def visit_call_(self, op):  # pylint: disable=arguments-renamed
            call = self.visit_expr_post_order(op)
            if call.op.same_as(clip):
                x, low, high = call.args
                dtype = x.ty.dtype
                return relax.op.minimum(relax.op.maximum(x, relax.const(float(low.value), dtype)), relax.const(float(high.value), dtype))
            if call.op.same_as(call_tir) and len(call.args[1].fields) == 2:
                name = _scalar_bound(mod, call.args[0], *call.args[1].fields)
                if name:
                    return binary[name](*call.args[1].fields)
            return call

    rewriter = Rewriter(mod)
    for gvar, func in mod.functions.items():
        if isinstance(func, relax.Function):
            rewriter.builder_.update_func(gvar, rewriter.visit_expr(func))
    return relax.transform.DeadCodeElimination()(rewriter.builder_.get())


def _scalar_bound(mod, gvar, x, bound) -> str | None:
    """"maximum" or "minimum" when ``gvar`` is TE's elementwise kernel of that name between the tensor ``x`` and
    the scalar tensor ``bound`` (what ``from_onnx`` emits for a Clip), else None."""
    from tvm import te, topi  # pylint: disable=import-outside-toplevel
    from tvm_ffi import structural_equal

    func = mod[gvar]
    x_info, bound_info = x.ty, bound.ty
    if not hasattr(x_info, "shape") or getattr(bound_info, "ndim", None) != 0 or x_info.shape is None:
        return None
    for name in ("maximum", "minimum"):
        a = te.placeholder(list(x_info.shape), x_info.dtype)
        b = te.placeholder((), bound_info.dtype)
        expected = te.create_prim_func([a, b, getattr(topi, name)(a, b)])
        if structural_equal(func.without_attr("global_symbol"), expected.without_attr("global_symbol"), map_free_vars=True):
            return name
    return None
