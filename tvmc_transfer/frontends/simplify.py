"""Inference simplification applied to every loaded model, before task extraction and compilation alike.

What frontends import is the training graph, written the way each exporter wrote it; what a CPU runs well is
the inference graph, in few kernels. Run on every model, in this order:

1. **Identities and constants** (``_Rewriter``, first pass). A weight written as ``ConstantOfShape`` (older
   exporters, the ONNX model zoo) arrives as ``broadcast_to`` of a scalar, a bias as ``Unsqueeze`` of an
   initializer: shape operators on constants are computed in NumPy, so weights are constants that the folds
   below and weight prepacking see (TVM's ``FoldConstant`` compiled a kernel for each; BENCHMARKS, session 22).
   ``Dropout`` is the identity at inference. ONNX ``Sum`` is imported as ``stack`` then ``sum`` over a new
   5-D axis, which no layout conversion can carry: it becomes a chain of ``add`` (``Max``, ``Min`` and ``Mean``
   likewise). A per-channel constant of
   fewer dimensions than the 4-D tensor it meets (``[C,1,1]``) is given the same rank, so that converting the
   tensor to NHWC converts the constant with it instead of wrapping the operator in transposes.
2. **Batch norms after a convolution** (``_fold_batch_norms``) are folded into its weights and a bias, as
   Relay's ``SimplifyInference`` + ``FoldScaleAxis`` did for tvmc: on ResNet-50, 28 kernels to tune, not 43,
   and convolution classes that match the models whose convolutions carry a bias.
3. **Per-channel scales and shifts** (``_Rewriter``, second pass): every other batch norm becomes one multiply
   and one add with constants, and a per-channel multiply or add after a convolution (with or without its
   bias) is folded into the convolution's weights and bias, as ONNX Runtime does: Inception-v2 and DenseNet
   follow each batch norm with an explicit ``Mul`` and ``Add``.
4. ``DecomposeOpsForInference`` for the composite operators that are left.

Every constant is computed in NumPy (in float64 where it combines two, then cast back).
"""

import functools

import numpy as np

_SHAPE_OPS = ("relax.broadcast_to", "relax.reshape", "relax.expand_dims", "relax.squeeze", "relax.permute_dims")
_BINARY_OPS = ("relax.add", "relax.multiply", "relax.subtract", "relax.divide", "relax.maximum", "relax.minimum")


def simplify_for_inference(mod):
    """The model's inference graph (see the module's note); returns the new module."""
    from tvm import relax  # pylint: disable=import-outside-toplevel

    mod = _rewrite(mod, "identities")
    mod = _fold_batch_norms(mod)
    mod = _rewrite(mod, "affine")
    return relax.transform.DecomposeOpsForInference()(mod)


def fold_constant_shapes():
    """A module pass: shape operators on constants computed in NumPy (step 1's rule alone). After the layout
    conversion, which transposes every convolution's weights: Relax's ``FoldConstant`` compiled a kernel for
    each (BENCHMARKS, session 22)."""
    import tvm  # pylint: disable=import-outside-toplevel

    return tvm.transform.module_pass(lambda mod, _ctx: _rewrite(mod, "shapes"), opt_level=0, name="tvmc.FoldConstantShapes")


def _rewrite(mod, step: str):
    from tvm import relax  # pylint: disable=import-outside-toplevel

    rewriter = _rewriter_class()
    # a rule that returns an operand leaves ``y = x``: ConvertLayout would wrap such an alias in transposes
    return _each_function(mod, lambda func: rewriter(mod, _use_counts(func), step).visit_expr(func), relax.transform.CanonicalizeBindings())


def _each_function(mod, rewrite, *then):
    """``mod`` with each Relax function replaced by ``rewrite(function)``, the passes ``then`` run, and the
    bindings nothing uses any more removed."""
    from tvm import relax  # pylint: disable=import-outside-toplevel

    updated = mod.clone() if hasattr(mod, "clone") else mod
    for gvar, func in list(mod.functions.items()):
        if isinstance(func, relax.Function):
            updated[gvar] = rewrite(func)
    for step in then:
        updated = step(updated)
    return relax.transform.DeadCodeElimination()(updated)


def _use_counts(func) -> dict:
    """How many times each variable of ``func`` is used: a convolution is folded into only when its result
    has no other user (else both the old and the new convolution would run)."""
    from tvm import relax  # pylint: disable=import-outside-toplevel

    counts: dict = {}

    def visit(expr):
        if isinstance(expr, relax.Var):
            counts[expr] = counts.get(expr, 0) + 1

    relax.analysis.post_order_visit(func.body, visit)
    return counts


@functools.cache
def _rewriter_class():
    """The mutator, made on first use: ``tvm.relax`` is imported only when a model is loaded."""
    import tvm  # pylint: disable=import-outside-toplevel
    from tvm import relax
    from tvm.relax.expr_functor import PyExprMutator, mutator

    @mutator
    class Rewriter(PyExprMutator):
        """One post-order walk; ``step`` selects the rules: ``identities`` step 1's (the module's note),
        ``affine`` step 3's, ``shapes`` step 1's shape operators alone."""

        def __init__(self, mod, uses, step):
            super().__init__(mod)
            self.uses, self.fold_affine, self.shapes_only = uses, step == "affine", step == "shapes"

        def value_of(self, expr):
            """What a variable is bound to (itself when it is no bound variable)."""
            while isinstance(expr, relax.Var):
                bound = self.lookup_binding(expr)
                if bound is None:
                    break
                expr = bound
            return expr

        def constant(self, expr):
            value = self.value_of(expr)
            return value.value.numpy() if isinstance(value, tvm.ir.Constant) else None

        def visit_tuple_getitem_(self, op):  # pylint: disable=arguments-renamed
            item = self.visit_expr_post_order(op)
            source = self.value_of(item.tuple_value)
            if self.shapes_only or not isinstance(source, relax.Call) or not isinstance(source.op, tvm.ir.Op) or item.index != 0:
                return item
            if source.op.name == "relax.nn.dropout":
                return source.args[0]
            if self.fold_affine and source.op.name == "relax.nn.batch_norm":
                return _or(self.batch_norm(source), item)
            return item

        def visit_call_(self, op):  # pylint: disable=arguments-renamed
            call = self.visit_expr_post_order(op)
            if not isinstance(call.op, tvm.ir.Op):
                return call
            name = call.op.name
            if self.fold_affine:
                if name in ("relax.multiply", "relax.add"):
                    return _or(self.affine(call, name), call)
                return call
            if name in _SHAPE_OPS:
                return _or(self.shape_op(call, name), call)
            if self.shapes_only:
                return call
            if name in ("relax.sum", "relax.mean", "relax.max", "relax.min"):
                return _or(self.stacked_reduction(call, name), call)
            if name in _BINARY_OPS:
                return _or(self.same_rank(call), call)
            return call

        # step 1 -------------------------------------------------------------------------------------------
        def shape_op(self, call, name):
            shape = _static_shape(call)
            data = self.constant(call.args[0])
            if shape is not None and name in ("relax.broadcast_to", "relax.reshape") and _static_shape(call.args[0]) == shape:
                return call.args[0]  # to its own shape
            if data is None or shape is None:
                return None
            if name == "relax.broadcast_to":
                folded = np.broadcast_to(data, shape)
            elif name == "relax.permute_dims":
                folded = np.transpose(data, None if call.attrs.axes is None else [int(a) for a in call.attrs.axes])
            else:  # reshape, expand_dims, squeeze: the same values in another shape
                folded = data.reshape(shape)
            return relax.const(np.ascontiguousarray(folded), str(data.dtype))

        def stacked_reduction(self, call, name):
            """``sum(stack([a, b, ...]), axis=0)`` (how ONNX's variadic ``Sum``, ``Max``, ``Min`` and ``Mean`` are
            imported) as ``a + b + ...`` (``maximum``, ``minimum``; the mean divided by the count)."""
            axes = [int(a) for a in call.attrs.axis] if call.attrs.axis is not None else None
            stack = self.value_of(call.args[0])
            if axes != [0] or bool(call.attrs.keepdims) or not _is_call(stack, "relax.stack") or int(stack.attrs.axis) != 0:
                return None
            items = self.value_of(stack.args[0])
            if not isinstance(items, relax.Tuple) or len(items.fields) < 2:
                return None
            binary = {"relax.sum": relax.op.add, "relax.mean": relax.op.add, "relax.max": relax.op.maximum, "relax.min": relax.op.minimum}[name]
            terms = [_unbroadcast(self, item) for item in items.fields]
            total = terms[0]
            for term in terms[1:]:
                total = binary(total, term)
            if name == "relax.mean":
                total = relax.op.divide(total, relax.const(len(terms), _dtype(call)))
            return total if _static_shape(call) == _static_shape(self.builder_.normalize(total)) else None

        def same_rank(self, call):
            """A constant operand of fewer dimensions than a 4-D tensor operand gets its rank (leading 1s)."""
            a, b = call.args
            ranks = [_rank(a), _rank(b)]
            if 4 not in ranks:
                return None
            args = list(call.args)
            for i, arg in enumerate(args):
                data = self.constant(arg)
                if data is not None and 1 <= data.ndim < 4:
                    args[i] = relax.const(data.reshape((1,) * (4 - data.ndim) + data.shape), str(data.dtype))
            if all(x.same_as(y) for x, y in zip(args, call.args)):
                return None
            return relax.Call(call.op, args, call.attrs)

        # step 3 -------------------------------------------------------------------------------------------
        def batch_norm(self, call):
            """An inference batch norm of constant statistics as ``x * scale + shift``."""
            x, gamma, beta, mean, var = call.args
            consts = [self.constant(c) for c in (gamma, beta, mean, var)]
            rank, axis = _rank(x), int(call.attrs.axis)
            if any(c is None for c in consts) or rank is None or consts[3].dtype.kind != "f":
                return None
            g, b, m, v = (c.astype(np.float64) for c in consts)
            scale = (g if bool(call.attrs.scale) else np.ones_like(v)) / np.sqrt(v + float(call.attrs.epsilon))
            shift = (b if bool(call.attrs.center) else np.zeros_like(m)) - m * scale
            shape = [1] * rank
            shape[axis % rank] = -1
            dtype = consts[3].dtype
            scaled = self.scaled(x, scale.reshape(shape).astype(dtype))
            return self.shifted(scaled, shift.reshape(shape).astype(dtype))

        def affine(self, call, name):
            a, b = call.args
            for x, c in ((a, b), (b, a)):
                data = self.constant(c)
                if data is not None and _rank(x) == 4 and data.dtype.kind == "f" and _per_channel(data):
                    folded = self.scaled(x, data, fold_only=True) if name == "relax.multiply" else self.shifted(x, data, fold_only=True)
                    if folded is not None:
                        return folded
            return None

        def single_use(self, x):
            """What ``x`` computes when nothing else uses it: a nested call (used where it stands) or a variable
            used once; else None."""
            if isinstance(x, relax.Var):
                return self.value_of(x) if self.uses.get(x, 0) == 1 else None
            return x if isinstance(x, relax.Call) else None

        def conv_of(self, x):
            """``(conv call, bias or None)`` when ``x`` is a single-use NCHW convolution with constant weights,
            or one plus a constant per-channel bias; else None."""
            value = self.single_use(x)
            bias = None
            if _is_call(value, "relax.add"):
                for inner, c in (value.args, value.args[::-1]):
                    data = self.constant(c)
                    if data is not None and _per_channel(data) and self.single_use(inner) is not None:
                        value, bias = self.single_use(inner), data
                        break
                else:
                    return None
            if not _is_call(value, "relax.nn.conv2d"):
                return None
            attrs = value.attrs
            weight = self.constant(value.args[1])
            if (attrs.data_layout, attrs.kernel_layout, attrs.out_layout or attrs.data_layout) != ("NCHW", "OIHW", "NCHW"):
                return None
            if weight is None or weight.dtype.kind != "f":
                return None
            if bias is not None and bias.size not in (1, weight.shape[0]):
                return None
            return value, weight, bias

        def affine_of(self, x):
            """``(base, scale, shift)`` when ``x`` is ``base * scale + shift`` with per-channel constants (either
            may be None), computed once for ``x`` alone; else None."""
            value = self.single_use(x)
            base, scale, shift = x, None, None
            if _is_call(value, "relax.add"):
                base, shift = self.constant_operand(value)
                value = None if shift is None else self.single_use(base)
            if _is_call(value, "relax.multiply"):
                inner, factor = self.constant_operand(value)
                if factor is not None:
                    base, scale = inner, factor
            return None if scale is None and shift is None else (base, scale, shift)

        def constant_operand(self, call):
            """``(other operand, per-channel constant)`` of a binary call with one, else ``(None, None)``."""
            for x, c in (call.args, call.args[::-1]):
                data = self.constant(c)
                if data is not None and data.dtype.kind == "f" and _per_channel(data):
                    return x, data
            return None, None

        def chained(self, x, scale, shift):
            """``x * scale + shift`` where ``x`` is already such an affine map of its own: one multiply and one
            add instead of two of each (DenseNet's batch norm then Mul and Add); None when it is not."""
            found = self.affine_of(x)
            if found is None:
                return None
            base, s1, t1 = found
            s1 = np.ones((), scale.dtype if scale is not None else shift.dtype) if s1 is None else s1.astype(np.float64)
            t1 = np.zeros((), s1.dtype) if t1 is None else t1.astype(np.float64)
            s2 = np.ones(()) if scale is None else scale.astype(np.float64)
            t2 = np.zeros(()) if shift is None else shift.astype(np.float64)
            dtype = str((scale if scale is not None else shift).dtype)
            factor, offset = s1 * s2, t1 * s2 + t2
            out = base if np.all(factor == 1) else relax.op.multiply(base, relax.const(np.asarray(factor, dtype=dtype), dtype))
            return out if np.all(offset == 0) else relax.op.add(out, relax.const(np.asarray(offset, dtype=dtype), dtype))

        def scaled(self, x, scale, fold_only=False):
            """``x * scale``, folded into the weights and bias of the convolution ``x`` is, when it is one."""
            found = self.conv_of(x)
            if found is None or scale.size not in (1, found[1].shape[0]):
                chained = self.chained(x, scale, None)
                if chained is not None:
                    return chained
                return None if fold_only else relax.op.multiply(x, relax.const(scale, str(scale.dtype)))
            conv, weight, bias = found
            per_out = np.broadcast_to(scale.astype(np.float64).reshape(-1), (weight.shape[0],))
            new_weight = (weight.astype(np.float64) * per_out.reshape(-1, 1, 1, 1)).astype(weight.dtype)
            out = relax.Call(conv.op, [conv.args[0], relax.const(new_weight, str(weight.dtype))], conv.attrs)
            if bias is None:
                return out
            new_bias = (np.broadcast_to(bias.astype(np.float64).reshape(-1), per_out.shape) * per_out).astype(bias.dtype)
            return relax.op.add(out, relax.const(new_bias.reshape(1, -1, 1, 1), str(bias.dtype)))

        def shifted(self, x, shift, fold_only=False):
            """``x + shift``, added to the bias of the convolution ``x`` is, when it has one."""
            found = self.conv_of(x)
            if found is None or found[2] is None or shift.size not in (1, found[1].shape[0]):
                chained = self.chained(x, None, shift) if found is None else None
                if chained is not None:
                    return chained
                return None if fold_only else relax.op.add(x, relax.const(shift, str(shift.dtype)))
            conv, weight, bias = found
            channels = weight.shape[0]
            total = np.broadcast_to(bias.astype(np.float64).reshape(-1), (channels,)) + np.broadcast_to(shift.astype(np.float64).reshape(-1), (channels,))
            out = relax.Call(conv.op, [conv.args[0], conv.args[1]], conv.attrs)
            return relax.op.add(out, relax.const(total.astype(bias.dtype).reshape(1, -1, 1, 1), str(bias.dtype)))

    return Rewriter


def _or(rewritten, original):
    """``rewritten`` unless a rule gave None (an ``or`` would ask a TVM expression for its truth)."""
    return original if rewritten is None else rewritten


def _is_call(expr, name: str) -> bool:
    import tvm  # pylint: disable=import-outside-toplevel
    from tvm import relax

    return isinstance(expr, relax.Call) and isinstance(expr.op, tvm.ir.Op) and expr.op.name == name


def _static_shape(expr):
    """The static shape of a tensor expression, or None."""
    ty = getattr(expr, "ty", None)
    shape = getattr(ty, "shape", None)
    values = getattr(shape, "values", None)
    if values is None:
        return None
    try:
        return tuple(int(v) for v in values)
    except TypeError:
        return None


def _dtype(expr) -> str:
    return str(expr.ty.dtype)


def _rank(expr):
    shape = _static_shape(expr)
    return None if shape is None else len(shape)


def _per_channel(data) -> bool:
    """A constant that broadcasts along a 4-D NCHW tensor's channels only: a scalar or ``[1, C, 1, 1]``."""
    return data.ndim == 0 or (data.ndim == 4 and data.shape[0] == 1 and data.shape[2:] == (1, 1))


def _unbroadcast(rewriter, item):
    """``x`` for ``broadcast_to(x, shape)`` (``add`` broadcasts by itself), else ``item``."""
    value = rewriter.value_of(item)
    return value.args[0] if _is_call(value, "relax.broadcast_to") else item


def _fold_batch_norms(mod):
    from tvm import relax  # pylint: disable=import-outside-toplevel
    from tvm.relax.dpl import TupleGetItemPattern, is_const, is_op, rewrite_call, wildcard  # pylint: disable=import-outside-toplevel

    weight = is_const()
    conv = is_op("relax.nn.conv2d")(wildcard(), weight)
    gamma, beta, mean, var = is_const(), is_const(), is_const(), is_const()
    bn = is_op("relax.nn.batch_norm")(conv, gamma, beta, mean, var)
    pattern = TupleGetItemPattern(bn, 0)

    def rewrite(expr, matches):
        conv_call, bn_call = matches[conv], matches[bn]
        ca, ba = conv_call.attrs, bn_call.attrs
        if (ca.data_layout, ca.kernel_layout, ca.out_layout or ca.data_layout) != ("NCHW", "OIHW", "NCHW") or int(ba.axis) != 1:
            return expr
        w = matches[weight].value.numpy()
        if w.dtype.kind != "f":
            return expr
        g, b, m, v = (matches[p].value.numpy().astype(np.float64) for p in (gamma, beta, mean, var))
        scale = (g if ba.scale else np.ones_like(v)) / np.sqrt(v + float(ba.epsilon))
        shift = (b if ba.center else np.zeros_like(m)) - m * scale
        folded = (w.astype(np.float64) * scale.reshape(-1, 1, 1, 1)).astype(w.dtype)
        bias = shift.astype(w.dtype).reshape(1, -1, 1, 1)
        out = relax.Call(conv_call.op, [conv_call.args[0], relax.const(folded)], ca)
        return relax.op.add(out, relax.const(bias))

    return _each_function(mod, lambda func: rewrite_call(pattern, rewrite, func))
