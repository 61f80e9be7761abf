"""Relax's ``ConvertLayout``, made safe: a model it cannot convert keeps its own layout, with one warning.

``ConvertLayout`` stops with an internal check on graphs it has no rule for (seen on the ONNX model zoo: a tuple it
cannot carry a layout through, a 5-D tensor whose layout has no ``S``). Most of those come from operators that
``frontends/simplify.py`` now removes before the conversion; whatever is left must not break a compile. The pass tries the
conversion, and when it fails, finds the first binding of the model that the conversion cannot get past (a
bisection over the model's bindings), names its operator in one warning line, and returns the module as it was:
the kernels then keep the model's NCHW layout, and records tuned under NHWC do not match them.

A compile collects what fell back (``collect_fallbacks``) for its report.
"""

import contextlib
import contextvars
import logging

import attrs

from ..errors import one_line

log = logging.getLogger("tvmc")

_COLLECTOR: contextvars.ContextVar = contextvars.ContextVar("tvmc_layout_fallbacks", default=None)
_FOUND: dict = {}  # (model's hash, layout) -> LayoutFallback: tasks and the build both convert, one warning a process


@attrs.frozen
class LayoutFallback:
    """A model the conversion to ``layout`` failed on: the ``operator`` it could not get past and TVM's reason."""

    layout: str
    operator: str
    reason: str

    def __str__(self) -> str:
        return (
            f"layout conversion to {self.layout} failed at {self.operator} ({self.reason}); "
            f"the model keeps its own layout (NCHW): its kernels run slower than converted ones, pass "
            f"--desired-layout NCHW to skip the conversion"
        )

    def to_json(self) -> dict:
        return {"layout": self.layout, "operator": self.operator, "reason": self.reason}


@contextlib.contextmanager
def collect_fallbacks():
    """``with collect_fallbacks() as fallbacks:`` lists every ``LayoutFallback`` taken inside, once each."""
    found: list = []
    token = _COLLECTOR.set(found)
    try:
        yield found
    finally:
        _COLLECTOR.reset(token)


def convert_layout_or_keep(layout: str, layouts: list):
    """The module pass: ``ConvertLayout({"relax.nn.conv2d": layouts})``, or the module unchanged where it fails."""
    import tvm  # pylint: disable=import-outside-toplevel

    def convert(mod, _ctx):
        try:
            return _convert(mod, layouts)
        except Exception as err:  # pylint: disable=broad-except  # TVM's InternalError, ValueError, ...
            _report(mod, layout, layouts, err)
            return mod

    return tvm.transform.module_pass(convert, opt_level=0, name="ConvertLayoutOrKeep")


def _convert(mod, layouts):
    from tvm import relax  # pylint: disable=import-outside-toplevel

    # A transposed convolution would follow its input into NHWC, where TVM 0.27 has no kernel for it (it legalizes
    # NCHW only, and the build then fails in code generation): it keeps NCHW, with a transpose on each side.
    return relax.transform.ConvertLayout({"relax.nn.conv2d": layouts, "relax.nn.conv2d_transpose": ["NCHW", "IOHW"]})(mod)


def _report(mod, layout: str, layouts: list, err) -> None:
    """Warn of the fallback once per model and layout (the bisection that names its operator runs once too), and
    hand it to the compile that collects them."""
    from tvm_ffi import structural_hash  # pylint: disable=import-outside-toplevel

    key = (structural_hash(mod), layout)
    if key not in _FOUND:
        _FOUND[key] = LayoutFallback(layout, _failing_operator(mod, layouts), _reason(err))
        log.warning("%s", _FOUND[key])
    fallback = _FOUND[key]
    found = _COLLECTOR.get()
    if found is not None and fallback not in found:
        found.append(fallback)


def _reason(err) -> str:
    return one_line(err, 200)


def _failing_operator(mod, layouts) -> str:
    """The operator of the first binding of ``main`` that ``ConvertLayout`` cannot get past: the shortest prefix
    of the bindings that fails, found by bisection (each try converts a prefix, a fraction of a second)."""
    import tvm  # pylint: disable=import-outside-toplevel
    from tvm import relax

    func = mod["main"] if "main" in [g.name_hint for g in mod.get_global_vars()] else None
    if func is None or not isinstance(func.body, relax.SeqExpr):
        return "an unknown operator"
    bindings = [b for block in func.body.blocks for b in block.bindings]

    def fails(count: int) -> bool:
        last = bindings[count - 1].var  # the prefix's result leaves the dataflow block as a plain variable
        out = relax.Var("prefix_out", last.ty)
        body = relax.SeqExpr([relax.DataflowBlock([*bindings[:count], relax.VarBinding(out, last)])], out)
        probe = tvm.IRModule(dict(mod.functions))
        probe["main"] = relax.Function(func.params, body, last.ty, attrs=func.attrs)
        try:
            _convert(probe, layouts)
            return False
        except Exception:  # pylint: disable=broad-except
            return True

    low, high = 1, len(bindings)  # the first failing prefix length is in [low, high]
    if not bindings or fails(1) or not fails(high):  # a first binding that fails alone: the probe is not sound
        return "an unknown operator"
    while low < high:
        mid = (low + high) // 2
        if fails(mid):
            high = mid
        else:
            low = mid + 1
    return _describe(bindings[high - 1].value)


def _describe(value) -> str:
    """``relax.nn.dropout`` for an operator call, ``a tuple`` for a tuple, ``call_tir(NAME)`` for a TIR call."""
    import tvm  # pylint: disable=import-outside-toplevel
    from tvm import relax

    if isinstance(value, relax.Call):
        if isinstance(value.op, tvm.ir.Op):
            if value.op.name in ("relax.call_tir", "relax.call_dps_packed") and len(value.args):
                return f"{value.op.name}({getattr(value.args[0], 'name_hint', '?')})"
            return value.op.name
        return f"a call of {getattr(value.op, 'name_hint', type(value.op).__name__)}"
    if isinstance(value, relax.Tuple):
        return "a tuple"
    if isinstance(value, relax.TupleGetItem):
        return "a tuple item"
    return type(value).__name__
