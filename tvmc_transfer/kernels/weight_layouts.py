"""Weight layout rewrites computed in NumPy: what a prepacked kernel's layout-rewrite blocks do to a weight.

A schedule tuned with weight prepacking reads its weights in a blocked layout (``[O/4, H, W, I, 4]`` for a
convolution). Its layout-rewrite blocks say how: ``packed[f(v)] = weight[v]``, ``f`` made of floor-division,
modulo, sums and products of the weight's axes. Two places need the packed weights:

- the build (``fold_weight_layouts``): ``SplitLayoutRewritePreproc`` splits the rewrites out as functions of the
  constant weights, and Relax's ``FoldConstant`` would compile each one with LLVM and run it, a large share of a
  big model's compile (BENCHMARKS, session 21). Here they are computed in NumPy and become the package's constants directly;
- transfer's numeric check (``kernels/check.py``), which runs the builder's library on weights packed here.

A rewrite that is not such a plain relayout is left to ``FoldConstant``.
"""

import operator

import numpy as np

from .classes import sblocks

_OPERATORS = ("Add", operator.add), ("Sub", operator.sub), ("Mul", operator.mul), ("FloorDiv", operator.floordiv), ("FloorMod", operator.mod)


def relayout_plan(block, params):
    """``(parameter index, pack function)`` of one rewrite block ``packed[f(v)] = weight[v]`` over the whole
    parameter ``params[index]`` (a PrimFunc's parameters), or None when the block is not such a relayout."""
    import tvm  # pylint: disable=import-outside-toplevel

    store, tirx = block.body, tvm.tirx
    if not isinstance(store, tirx.BufferStore) or not isinstance(store.value, tvm.ir.TensorLoad):
        return None
    load = store.value  # TVM 0.27: a load names its buffer (a parameter here) as its source
    index = next((i for i, p in enumerate(params) if p.same_as(load.source)), None)
    axes = [iv.var for iv in block.iter_vars]
    if index is None or len(load.indices) != len(axes) or not all(i.same_as(v) for i, v in zip(load.indices, axes)):
        return None
    try:
        extents = [int(iv.dom.extent) for iv in block.iter_vars]
        if [int(iv.dom.min) for iv in block.iter_vars] != [0] * len(axes) or extents != [int(d) for d in params[index].shape]:
            return None
        shape = tuple(int(d) for d in store.buffer.shape)
        env = {v: np.arange(n).reshape([-1 if k == j else 1 for k in range(len(axes))]) for j, (v, n) in enumerate(zip(axes, extents))}
        where = tuple(_evaluate(tirx, e, env) for e in store.indices)
    except (TypeError, ValueError, KeyError):
        return None

    def pack(weight):
        packed = np.zeros(shape, weight.dtype)
        packed[where] = weight
        return packed

    return index, pack


def _evaluate(tirx, expr, env):
    """An index expression over the block's axes, evaluated on ``env``'s (broadcastable) index arrays."""
    if isinstance(expr, tirx.IntImm):
        return int(expr.value)
    if isinstance(expr, tirx.Var):
        return env[expr]
    for name, op in _OPERATORS:
        if isinstance(expr, getattr(tirx, name)):
            return op(_evaluate(tirx, expr.a, env), _evaluate(tirx, expr.b, env))
    raise TypeError(f"not a relayout index: {type(expr).__name__}")


def _rewrites(func):
    """``[(input index, output index, pack)]`` of a function that only relayouts its inputs into its outputs
    (what ``SplitLayoutRewritePreproc`` splits out: one block per weight), each value to a place of its own
    (a packed layout may pad: 96 channels as 2 x 64; the padding is never read, and is zero here); None for
    any other function."""

    params = list(func.params)
    blocks = [b for b in sblocks(func.body) if b.name_hint != "root"]
    plans = []
    for block in blocks:
        plan = relayout_plan(block, params)
        written = next((i for i, p in enumerate(params) if p.same_as(block.body.buffer)), None) if plan else None
        if plan is None or written is None:
            return None
        plans.append((plan[0], written, plan[1]))
    inputs, outputs = {p[0] for p in plans}, sorted(p[1] for p in plans)
    if not plans or outputs != list(range(len(params) - len(plans), len(params))) or max(inputs) >= outputs[0]:
        return None
    for source, _, pack in plans:  # a relayout moves every value to a place of its own (the rest: padding, zero)
        shape = tuple(int(d) for d in params[source].shape)
        if np.count_nonzero(pack(np.arange(1, 1 + int(np.prod(shape)), dtype=np.float64).reshape(shape))) != int(np.prod(shape)):
            return None
    return plans


def fold_weight_layouts():
    """A Relax module pass: every call of a relayout function (``_rewrites``) on constants becomes the packed
    constants, computed in NumPy. Run it after ``SplitLayoutRewritePreproc`` and before ``FoldConstant``."""
    import tvm  # pylint: disable=import-outside-toplevel
    from tvm import relax

    @tvm.transform.module_pass(opt_level=0, name="tvmc.FoldWeightLayouts")
    def fold(mod, _ctx):
        plans = {}
        for gv, func in mod.functions.items():
            if isinstance(func, tvm.tirx.PrimFunc):
                plans[gv] = _rewrites(func)
        call_tir = tvm.ir.Op.get("relax.call_tir")

        @relax.expr_functor.mutator
        class Folder(relax.PyExprMutator):
            def visit_call_(self, call):  # pylint: disable=arguments-renamed
                call = super().visit_call_(call)
                if not call.op.same_as(call_tir) or plans.get(call.args[0]) is None:
                    return call
                args = call.args[1].fields if isinstance(call.args[1], tvm.ir.Tuple) else [call.args[1]]
                if not all(isinstance(a, tvm.ir.Constant) for a in args):
                    return call
                arrays = [a.value.numpy() for a in args]
                packed = [relax.const(pack(arrays[source])) for source, _, pack in sorted(plans[call.args[0]], key=lambda p: p[1])]
                return relax.Tuple(packed) if isinstance(call.ty, relax.TupleType) else packed[0]

        folded = mod.clone()  # a pass leaves its input as it was
        for gv, func in list(mod.functions.items()):
            if isinstance(func, relax.Function):
                folded[gv] = Folder().visit_expr(func)
        return relax.transform.DeadCodeElimination()(folded)

    return fold
