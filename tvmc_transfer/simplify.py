"""Inference simplification applied to every loaded model, before task extraction and compilation alike.

Frontends import a ``BatchNormalization`` after a convolution as its own ``relax.nn.batch_norm``. Relax's
``FuseOps`` cannot fuse it into the convolution (both are "out-elementwise fusable"), so every such
convolution became two kernels and an extra pass over memory: on ResNet-50, 43 tasks instead of 28, and
convolution classes (``conv2d``) that never matched a model whose convolutions carry a bias
(``conv2d+bias+relu``), which starved transfer-tuning between them. As Relay's ``SimplifyInference`` +
``FoldScaleAxis`` did for tvmc, the batch norm is folded into the convolution's weights and a bias here.

The fold computes the new constants with NumPy (TVM's ``FoldBatchnormToConv2D`` + ``FoldConstant`` does the
same in 27 s on ResNet-50, compiling every arithmetic op). Batch norms that do not follow a convolution with
constant weights are decomposed into element-wise arithmetic, which fuses into its neighbours.
"""

import numpy as np


def simplify_for_inference(mod):
    """Fold batch norms into preceding convolutions, decompose the rest; returns the new module."""
    from tvm import relax  # pylint: disable=import-outside-toplevel

    mod = _fold_batch_norms(mod)
    return relax.transform.DecomposeOpsForInference()(mod)


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

    updated = mod.clone() if hasattr(mod, "clone") else mod
    for gvar, func in list(mod.functions.items()):
        if isinstance(func, relax.Function):
            updated[gvar] = rewrite_call(pattern, rewrite, func)
    return relax.transform.DeadCodeElimination()(updated)
