"""Kernel classes: which kernels compute the same thing up to shapes.

Transfer-tuning replays the schedules of one model's kernels on another model's kernels of the same kind. "The
same kind" must come from the kernel itself, never from its task name: names gain numeric suffixes
(``conv2d16``, ``fused_conv2d1_add1_relu1``) and a database holds no names at all, only workloads.

A kernel's class is a shape-abstracted normal form of its fused TIR ``PrimFunc``. For every block, in program
order: its name with digits stripped, its iterator kinds (``SSSSRRR``), the operators of its init and body with
every shape detail removed (constants become ``const:dtype``, an index expression becomes the set of block
iterators it uses, a bounds guard that reads no buffer, i.e. padding, becomes the value it guards), which
buffer it reads and writes; and for every buffer its dtype and rank. Two kernels are in one class when their
normal forms are equal: same blocks, same operators and epilogue, same layout, same dtypes, any shapes,
strides, paddings and constants. The class key is a hash of the normal form, so it is the same in every model
and every session.

A kernel whose last reduction block is followed by elementwise blocks (an *epilogue*: bias, residual add,
ReLU) also has an *anchor*: the hash of the normal form of its blocks up to that reduction, with only the
buffers they touch. ``conv2d+bias+add+relu``, ``conv2d+bias+relu`` and ``conv2d+bias`` share an anchor when
their convolutions are alike, and so do ``matmul+bias+relu`` and ``matmul+bias``. A schedule of a kernel with
the same anchor replays on another epilogue once the two are fitted to each other (``epilogue_plan``,
``replay.py``).

A kernel whose input goes through a *padding* block first (a spatial copy of a parameter behind a bounds
guard: ``pad+max_pool``, ``pad+conv2d``) also has a *padless* key: the hash of its normal form without those
blocks, their output read as their input. A max-pool with padding and one without (AlexNet's) share it, and
take each other's schedules: the padding block inlined on one side, or left out of the source's schedules on
the other (``epilogue_plan``).

>>> from tvmc_transfer.kernels.classes import kernel_class       # doctest: +SKIP
>>> str(kernel_class(task.mod))                           # doctest: +SKIP
'conv2d+bias+relu NCHW fp32 [6c1f0a9e2b]'
"""

import hashlib
import json
import re

import attrs

_DTYPES = {"float32": "fp32", "float16": "fp16", "bfloat16": "bf16", "float64": "fp64", "int8": "int8", "uint8": "uint8", "int32": "int32", "int64": "int64"}


@attrs.frozen
class KernelClass:
    """A class of kernels: ``key`` decides equality, ``name`` is for people."""

    key: str  # 10 hex digits of sha256 over the normal form
    name: str  # e.g. "conv2d+bias+relu NCHW fp32"
    blocks: tuple = attrs.field(eq=False, repr=False)  # block names in normal-form order (for replay)
    anchor: str | None = attrs.field(default=None, eq=False, repr=False)  # key of the blocks up to the last reduction
    epilogue: int = attrs.field(default=0, eq=False, repr=False)  # elementwise blocks after it (the last ones of blocks)
    padless: str | None = attrs.field(default=None, eq=False, repr=False)  # key without the padding blocks (None: it has none)
    pads: tuple = attrs.field(default=(), eq=False, repr=False)  # names of the padding blocks

    def __str__(self) -> str:
        return f"{self.name} [{self.key}]"

    def takes_epilogue_of(self, other: "KernelClass") -> bool:
        """Whether ``other``'s schedules replay here with the epilogues fitted (``epilogue_plan``): the same
        anchor and an epilogue on at least one side: a convolution without bias takes the schedules of one with
        a bias (the epilogue left out of them) and the other way round (the epilogue left to the post-processors,
        a loop nest of its own)."""
        return self.anchor is not None and self.anchor == other.anchor and (self.epilogue >= 1 or other.epilogue >= 1)

    def takes_padding_of(self, other: "KernelClass") -> bool:
        """Whether ``other``'s schedules replay here with the padding fitted: the two differ only in that one
        pads its input and the other does not (``padless``)."""
        return bool(self.pads) != bool(other.pads) and (self.padless or self.key) == (other.padless or other.key)

    def drops_epilogue_of(self, other: "KernelClass") -> bool:
        """Whether ``other``'s schedules lose their whole epilogue here (this kernel has none)."""
        return self.epilogue == 0 and other.epilogue >= 1

    def consumers_differ(self, other: "KernelClass") -> bool:
        """Whether one of the two has an epilogue and the other none: then the reduction's consumers differ,
        and ``other``'s schedules replay without what they did with them (``GetConsumers``)."""
        return (self.epilogue == 0) != (other.epilogue == 0)

    def epilogue_plan(self, other: "KernelClass") -> tuple:
        """``(inline, drop)``: the blocks of this kernel to inline and those of ``other`` to leave out of its
        schedules, so that the two epilogues line up: the first ``n - 1`` blocks of each and the last, with
        ``n`` the shorter epilogue's length. The rest of the longer one goes (inlined here, or left out there).
        With no epilogue here, all of ``other``'s goes. A kernel that pads where ``other`` does not, or the other
        way round (``takes_padding_of``), inlines its padding blocks, or leaves ``other``'s out."""
        if self.takes_padding_of(other):
            return self.pads, other.pads
        if self.drops_epilogue_of(other):
            return (), tuple(other.blocks[len(other.blocks) - other.epilogue :])
        if other.epilogue == 0:
            return (), ()  # this kernel's epilogue stays as it is
        n = min(self.epilogue, other.epilogue)
        return _middle(self.blocks, self.epilogue, n), _middle(other.blocks, other.epilogue, n)


def kernel_class(mod) -> KernelClass:
    """The class of a kernel given as its workload module (one PrimFunc) or a PrimFunc."""
    func = main_func(mod)
    form = _NormalForm(func)
    anchor, epilogue = form.anchor()
    padless, pads = form.padless()
    names = tuple(b.name_hint for b in form.block_nodes)
    return KernelClass(_hash(form.summary()), _readable_name(form), names, anchor and _hash(anchor), epilogue, padless and _hash(padless), tuple(names[i] for i in pads))


def _middle(blocks: tuple, epilogue: int, keep: int) -> tuple:
    """The epilogue blocks after its first ``keep - 1``, the last one excepted."""
    first = len(blocks) - epilogue
    return tuple(blocks[first + keep - 1 : len(blocks) - 1])


def _hash(summary: dict) -> str:
    text = json.dumps(summary, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:10]


def normal_form(mod) -> dict:
    """The shape-abstracted normal form a class key is the hash of (JSON data, for inspection and tests)."""
    return _NormalForm(main_func(mod)).summary()


def main_func(mod):
    """The one PrimFunc of a kernel workload (a module of one function, or the function itself)."""
    import tvm  # pylint: disable=import-outside-toplevel

    if isinstance(mod, tvm.tirx.PrimFunc):
        return mod
    funcs = [f for f in mod.functions.values() if isinstance(f, tvm.tirx.PrimFunc)]
    if len(funcs) != 1:
        raise ValueError(f"a kernel workload has one PrimFunc, this module has {len(funcs)}")
    return funcs[0]


def sblocks(stmt):
    """The blocks of a kernel's TIR in program order: the root block, then those in it, through loops,
    sequences and attributes (not blocks inside other blocks: TVM's kernels have none)."""
    import tvm  # pylint: disable=import-outside-toplevel

    if isinstance(stmt, tvm.s_tir.SBlockRealize):
        yield from sblocks(stmt.block)
    elif isinstance(stmt, tvm.s_tir.SBlock):
        yield stmt
        if _is_root(stmt):
            yield from sblocks(stmt.body)
    elif isinstance(stmt, tvm.tirx.SeqStmt):
        for child in stmt.seq:
            yield from sblocks(child)
    elif stmt is not None and hasattr(stmt, "body"):  # a loop, attribute, let, allocation, ...: look through it
        yield from sblocks(stmt.body)


def _is_root(block) -> bool:
    return block.name_hint == "root" and not block.iter_vars


# A block's normal-form body that copies a parameter into an intermediate buffer (once a bounds guard is left
# out: padding, reshapes, copies); groups: the buffer written, the parameter read.
_COPY = re.compile(r"(a\d+)\[[^\]]*\]=(p\d+)\[[^\]]*\]")


def strip_digits(name: str) -> str:
    """``T_add_1`` -> ``T_add``, ``conv2d_nchw`` stays: trailing and embedded counters are not structure."""
    return re.sub(r"_+$", "", re.sub(r"(?<=[A-Za-z_])\d+(?=_|$)", "", name)) or name


class _NormalForm:
    """Walks one PrimFunc once, collecting its blocks and a shape-free description of each."""

    def __init__(self, func):
        import tvm  # pylint: disable=import-outside-toplevel

        self.tvm = tvm
        self.buffers = {}  # Buffer -> canonical id ("p0", "a1", ...)
        self.buffer_info = {}  # id -> [dtype, rank]
        for i, param in enumerate(func.params):  # TVM 0.27: a PrimFunc's params are its buffers
            self._name_buffer(param, f"p{i}")
        self.block_nodes = []
        self.blocks = []
        self.block_buffers = []  # per block, the ids of the buffers it reads or writes
        self._allocs = 0
        for block in sblocks(func.body):
            for buffer in block.alloc_buffers:
                self._buffer(buffer)
            if not _is_root(block):
                self._block(block)

    # -- buffers and blocks ------------------------------------------------------------------------------------
    def _name_buffer(self, buffer, name: str) -> str:
        self.buffers[buffer] = name
        self.buffer_info[name] = [str(buffer.dtype), len(buffer.shape)]
        return name

    def _buffer(self, buffer) -> str:
        if buffer not in self.buffers:
            self._name_buffer(buffer, f"a{self._allocs}")
            self._allocs += 1
        return self.buffers[buffer]

    def summary(self) -> dict:
        return {"buffers": self.buffer_info, "blocks": self.blocks}

    def anchor(self) -> tuple:
        """``(normal form of the blocks up to the last reduction, number of blocks after it)``; ``(None, 0)``
        without a reduction block. The reduction's output is named alike whether it is the kernel's output (no
        epilogue) or an intermediate buffer, so a kernel without an epilogue has the anchor of those with one."""
        reductions = [i for i, b in enumerate(self.blocks) if "R" in b["iters"]]
        if not reductions:
            return None, 0
        core = reductions[-1] + 1
        used = set().union(*self.block_buffers[:core])
        written = re.match(r"(\w+)\[", self.blocks[core - 1]["body"] or "")
        rename = (lambda text: text) if written is None else (lambda text: text and re.sub(rf"\b{written.group(1)}\[", "out[", text))
        blocks = [{**b, "init": rename(b["init"]), "body": rename(b["body"])} for b in self.blocks[:core]]
        buffers = {("out" if written is not None and b == written.group(1) else b): self.buffer_info[b] for b in sorted(used)}
        return {"anchor": blocks, "buffers": dict(sorted(buffers.items()))}, len(self.blocks) - core

    def padless(self) -> tuple:
        """``(normal form without the padding blocks, their positions)``; ``(None, ())`` without any. A padding
        block copies a parameter into an intermediate buffer behind a bounds guard; without it the blocks read
        the parameter itself, and the intermediate buffers are numbered again in order."""
        pads = [i for i, b in enumerate(self.block_nodes) if self._pads(i, b)]
        if not pads:
            return None, ()
        rename = {}
        for i in pads:
            written, read = _COPY.fullmatch(self.blocks[i]["body"]).groups()
            rename[written] = read
        dropped = set(rename)
        kept = [b for i, b in enumerate(self.blocks) if i not in pads]
        intermediates = sorted({n for n in self.buffer_info if n.startswith("a") and n not in rename}, key=lambda n: int(n[1:]))
        rename.update({n: f"a{j}" for j, n in enumerate(intermediates)})

        def renamed(text):
            return text and re.sub(r"\b([ap]\d+)\[", lambda m: f"{rename.get(m.group(1), m.group(1))}[", text)

        blocks = [{**b, "init": renamed(b["init"]), "body": renamed(b["body"])} for b in kept]
        buffers = {rename.get(n, n): info for n, info in self.buffer_info.items() if n not in dropped}
        return {"buffers": dict(sorted(buffers.items())), "blocks": blocks}, tuple(pads)

    def _pads(self, index, block) -> bool:
        """Whether block ``index`` is a padding block: all spatial, ``a[...] = p[...]`` once the bounds guard
        is left out, and the value behind a guard."""
        signature = self.blocks[index]
        if index == len(self.blocks) - 1 or "R" in signature["iters"] or not _COPY.fullmatch(signature["body"] or ""):
            return False
        return isinstance(block.body, self.tvm.tirx.BufferStore) and _guard(self.tvm, block.body.value) is not None

    def _block(self, block):
        self.block_nodes.append(block)
        iters = {iv.var: i for i, iv in enumerate(block.iter_vars)}
        kinds = "".join("R" if iv.iter_type == 2 else "S" if iv.iter_type == 0 else "O" for iv in block.iter_vars)
        annotations = sorted(f"{k}={v}" for k, v in block.annotations.items() if isinstance(v, str))
        self.block_buffers.append(set())
        self.blocks.append(
            {
                "name": strip_digits(block.name_hint),
                "iters": kinds,
                "init": self._body(block.init, iters) if block.init is not None else None,
                "body": self._body(block.body, iters),
                "annotations": annotations,
            }
        )

    def _body(self, stmt, iters) -> str:
        tirx = self.tvm.tirx
        if isinstance(stmt, tirx.BufferStore):
            return f"{self._access(stmt.buffer, stmt.indices, iters)}={self._expr(stmt.value, iters)}"
        if isinstance(stmt, tirx.SeqStmt):
            return ";".join(self._body(s, iters) for s in stmt.seq)
        if isinstance(stmt, tirx.IfThenElse):
            return f"if({self._expr(stmt.condition, iters)}){{{self._body(stmt.then_case, iters)}}}else{{{self._body(stmt.else_case, iters) if stmt.else_case is not None else ''}}}"
        if isinstance(stmt, tirx.For):
            return f"for{{{self._body(stmt.body, iters)}}}"
        if isinstance(stmt, tirx.Evaluate):
            return self._expr(stmt.value, iters)
        if hasattr(stmt, "body"):
            return self._body(stmt.body, iters)
        return type(stmt).__name__

    def _access(self, buffer, indices, iters) -> str:
        dims = []
        for index in indices:
            used = sorted({iters[v] for v in self._vars(index) if v in iters})
            dims.append("+".join(map(str, used)) or "-")
        name = self._buffer(buffer)
        if self.block_buffers:
            self.block_buffers[-1].add(name)
        return f"{name}[{','.join(dims)}]"

    def _vars(self, expr) -> list:
        tirx = self.tvm.tirx
        if isinstance(expr, tirx.Var):
            return [expr]
        found = []
        for child in _children(self.tvm, expr):
            found += self._vars(child)
        return found

    def _reads_buffer(self, expr) -> bool:
        if isinstance(expr, self.tvm.ir.expr.TensorLoad):
            return True
        return any(self._reads_buffer(c) for c in _children(self.tvm, expr))

    def _expr(self, expr, iters) -> str:
        tirx = self.tvm.tirx
        if isinstance(expr, self.tvm.ir.expr.TensorLoad):
            return self._access(expr.source, expr.indices, iters)
        if isinstance(expr, (tirx.IntImm, tirx.FloatImm)):
            return f"const:{_dtype(expr)}"
        if isinstance(expr, tirx.Var):
            return f"v{iters[expr]}" if expr in iters else f"var:{_dtype(expr)}"
        if isinstance(expr, tirx.Cast):
            return f"cast:{_dtype(expr)}({self._expr(expr.value, iters)})"
        guarded = _guard(self.tvm, expr)
        if guarded is not None and not self._reads_buffer(guarded[0]) and _is_const(self.tvm, guarded[2]):
            # A bounds guard that reads no buffer, such as padding: its condition is shape, not computation.
            return self._expr(guarded[1], iters)
        if isinstance(expr, self.tvm.ir.expr.Call):
            name = getattr(expr.op, "name", str(expr.op))
            return f"{name}({','.join(self._expr(a, iters) for a in expr.args)})"
        children = _children(self.tvm, expr)
        return f"{type(expr).__name__}({','.join(self._expr(c, iters) for c in children)})"


def _dtype(expr) -> str:
    """An expression's dtype: TVM 0.27 keeps it in ``ty`` for expressions, ``dtype`` for buffers."""
    dtype = getattr(expr, "dtype", None)
    return str(dtype if dtype is not None else expr.ty)


def _children(tvm, expr) -> list:
    tirx = tvm.tirx
    if isinstance(expr, tvm.ir.expr.TensorLoad):
        return list(expr.indices)
    if isinstance(expr, tvm.ir.expr.Call):
        return list(expr.args)
    if isinstance(expr, tirx.Select):
        return [expr.condition, expr.true_value, expr.false_value]
    if isinstance(expr, tirx.Cast):
        return [expr.value]
    if isinstance(expr, tirx.Not):
        return [expr.a]
    if isinstance(expr, tirx.Let):
        return [expr.value, expr.body]
    if isinstance(expr, (tirx.Ramp,)):
        return [expr.base, expr.stride]
    if isinstance(expr, tirx.Broadcast):
        return [expr.value]
    if hasattr(expr, "a") and hasattr(expr, "b"):
        return [expr.a, expr.b]
    return []


def _guard(tvm, expr):
    """``(condition, value, fallback)`` of an ``if_then_else`` or ``Select``, else None."""
    tirx = tvm.tirx
    if isinstance(expr, tirx.Select):
        return expr.condition, expr.true_value, expr.false_value
    if isinstance(expr, tvm.ir.expr.Call) and str(getattr(expr.op, "name", "")).endswith("if_then_else") and len(expr.args) == 3:
        return tuple(expr.args)
    return None


def _is_const(tvm, expr) -> bool:
    return isinstance(expr, (tvm.tirx.IntImm, tvm.tirx.FloatImm))


# -- readable names ---------------------------------------------------------------------------------------------

_LAYOUT = re.compile(r"_(nchw|nhwc|ncdhw|ndhwc|ncw|nwc|nchw\d*c|hwcn)$", re.IGNORECASE)
_ARITH = {"Add": "add", "Sub": "subtract", "Mul": "multiply", "Div": "divide", "FloorDiv": "divide", "Max": "maximum", "Min": "minimum"}


def _block_word(tvm, block, form, index) -> str | None:
    """One word for what a block does, or None for a block that only moves data around another op."""
    name = strip_digits(block.name_hint)
    signature = form.blocks[index]
    bare = re.sub(r"^T_", "", name)
    if name == "pad_temp":
        following = [strip_digits(b.name_hint) for b in form.block_nodes[index + 1 : index + 2]]
        return None if following and following[0].startswith("conv") else "pad"
    if (bare in ("reshape", "multiply") and _COPY.fullmatch(signature["body"])):
        return None  # padding, parameter reshapes and copies belong to the op they feed
    if "R" in signature["iters"]:
        if bare.endswith("_red"):
            return "sum"
        if bare.startswith("pool_"):
            return f"{bare[5:]}_pool"
        return _LAYOUT.sub("", bare)
    store = block.body
    value = getattr(store, "value", None)
    tirx = tvm.tirx
    if value is not None:
        op = type(value).__name__
        if op == "Max" and _is_const(tvm, value.b) and float(value.b.value) == 0.0:
            return "relu"
        if op == "Min" and isinstance(value.a, tirx.Max):
            return "clip"
        if op == "Add" and all(isinstance(x, tvm.ir.expr.TensorLoad) for x in (value.a, value.b)):
            # a broadcast operand (uses fewer iterators than the other) is a bias
            used = [len({v for i in x.indices for v in form._vars(i)}) for x in (value.a, value.b)]  # pylint: disable=protected-access
            return "bias" if used[0] != used[1] else "add"
        if op in _ARITH:
            return _ARITH[op]
        if isinstance(value, tvm.ir.expr.Call) and not str(getattr(value.op, "name", "")).endswith("if_then_else"):
            return str(getattr(value.op, "name", "call")).split(".")[-1]
    return bare


def _readable_name(form) -> str:
    import tvm  # pylint: disable=import-outside-toplevel

    words = [w for i, b in enumerate(form.block_nodes) if (w := _block_word(tvm, b, form, i))]
    if not words and form.block_nodes:
        words = [re.sub(r"^T_", "", strip_digits(form.block_nodes[0].name_hint))]
    text = "+".join(words)
    # legalized batch_norm: (x - mean) / sqrt(var + eps) * gamma + beta
    text = re.sub(r"subtract\+add\+sqrt\+divide\+multiply\+(bias|add)", "batch_norm", text)
    text = re.sub(r"^sum\+divide$", "mean", text)
    merged = []  # [word, repeats]
    for word in text.split("+"):
        if merged and merged[-1][0] == word:
            merged[-1][1] += 1
        else:
            merged.append([word, 1])
    words = [w if n == 1 else f"{w}x{n}" for w, n in merged]
    words = words if len(words) <= 8 else words[:7] + ["..."]
    layouts = sorted({m.group(1).upper() for b in form.block_nodes if (m := _LAYOUT.search(strip_digits(b.name_hint)))})
    dtypes = sorted({_DTYPES.get(d, d) for d, _ in form.buffer_info.values()})
    return " ".join(["+".join(words), *layouts, "/".join(dtypes)])


def iter_extents(mod) -> tuple:
    """Per block, in normal-form order, the extents of its iterators (for ranking sources by shape)."""
    form = _NormalForm(main_func(mod))
    return tuple(tuple(int(iv.dom.extent) if hasattr(iv.dom.extent, "value") else 1 for iv in b.iter_vars) for b in form.block_nodes)
