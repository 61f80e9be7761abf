"""3x3 convolutions as Winograd F(4x4, 3x3): 36 multiplications per 4x4 output tile and channel pair, not 144.

A stride-1 3x3 convolution in NHWC with constant weights becomes one kernel of five stages: the input cut into
overlapping 6x6 tiles (``input_tile``), each tile transformed (``data_pack``: B^T d B), 36 independent matrix
products over the input channels (``bgemm``), each product transformed back (``inverse``: A^T m A), and the 4x4
results laid out as the output. The weights' transform (G g G^T) is done once, here, in float64 at compile time:
the kernel takes the transformed weights as its constant argument, which prepacking marks layout-free like any
weight. The two transforms carry a ``schedule_rule`` attribute that MetaSchedule's ``ApplyCustomRule`` resolves to
this module's rule (``_schedule_transform``): the 6x6 loops and their two reductions unrolled, so that the
constant matrices fold into additions, and the channels innermost and vectorized. TVM ships a CPU rule for its
own Winograd compute that unrolls the same loops but leaves the channels outside them, scalar: over direct
convolution it gains less than this rule does (BENCHMARKS, session 12). The
matrix products get MetaSchedule's usual multi-level tiling. The kernel's op pattern is set to "output
element-wise fusable", so the bias, residual and activation after the convolution fuse into it as they do into
a direct one. The rule is a MetaSchedule trace like any other: records replay without it.

It is opt-in (``--winograd``): its kernels take longer to build than direct ones (the unrolled transforms), so
a tuning run of fixed wall time gets far fewer trials (BENCHMARKS, session 12, "Tuning cost").

The matrices are Lavin and Gray's for the points 0, 1, -1, 2, -2 and infinity ("Fast Algorithms for
Convolutional Neural Networks", 2016). Their float32 error is larger than a direct convolution's: against ONNX
Runtime, one layer at ResNet-50's shapes was 0.6-1.3e-5 off relative to its largest output, a direct one 1-3e-6
(``test_winograd`` checks the kernel against NumPy and a deep stack against ONNX Runtime).
"""

import numpy as np

TILE = 4  # m: output tile side
ALPHA = TILE + 3 - 1  # input tile side for a 3x3 kernel

# F(4x4, 3x3): Y = A^T [(G g G^T) * (B^T d B)] A
_BT = np.array(
    [
        [4, 0, -5, 0, 1, 0],
        [0, -4, -4, 1, 1, 0],
        [0, 4, -4, -1, 1, 0],
        [0, -2, -1, 2, 1, 0],
        [0, 2, -1, -2, 1, 0],
        [0, 4, 0, -5, 0, 1],
    ],
    dtype=np.float64,
)
_G = np.array(
    [
        [1 / 4, 0, 0],
        [-1 / 6, -1 / 6, -1 / 6],
        [-1 / 6, 1 / 6, -1 / 6],
        [1 / 24, 1 / 12, 1 / 6],
        [1 / 24, -1 / 12, 1 / 6],
        [0, 0, 1],
    ],
    dtype=np.float64,
)
_AT = np.array(
    [
        [1, 1, 1, 1, 1, 0],
        [0, 1, -1, 2, -2, 0],
        [0, 1, 1, 4, 4, 0],
        [0, 1, -1, 8, -8, 1],
    ],
    dtype=np.float64,
)

MIN_CHANNELS = 16  # below this the transforms cost more than the multiplications saved (the RGB stem)
MIN_TILES = 16  # 4x4 output tiles per image: at 7x7 (4 tiles) the transformed weights, 4x the size, cost more
# than the multiplications saved (measured: ResNet-50's 3x3 512-channel convolution at 7x7 ran 0.97x direct)


def transform_weight(weight_hwio: np.ndarray) -> np.ndarray:
    """The weights ``[3, 3, CI, CO]`` transformed once: ``[6, 6, CO, CI]`` = G g G^T per channel pair."""
    w = weight_hwio.astype(np.float64)
    packed = np.einsum("ak,klio,bl->abio", _G, w, _G)  # [alpha, alpha, CI, CO]
    return np.ascontiguousarray(packed.transpose(0, 1, 3, 2)).astype(weight_hwio.dtype)


def convolution_te(data, packed, padding):
    """The TE compute of the convolution of NHWC ``data`` with the transformed weights ``packed``
    (``[6, 6, CO, CI]``), ``padding`` = (top, left, bottom, right)."""
    from tvm import te, topi  # pylint: disable=import-outside-toplevel
    from tvm.topi.utils import const_matrix

    n, h, w, ci = (int(d) for d in data.shape)
    co = int(packed.shape[2])
    top, left, bottom, right = padding
    out_h, out_w = h + top + bottom - 2, w + left + right - 2
    tiles_h, tiles_w = -(-out_h // TILE), -(-out_w // TILE)
    tiles = n * tiles_h * tiles_w
    # Pad up to whole tiles: the last tile reads ALPHA rows from (tiles - 1) * TILE.
    extra_h = (tiles_h - 1) * TILE + ALPHA - (h + top + bottom)
    extra_w = (tiles_w - 1) * TILE + ALPHA - (w + left + right)
    none = {"schedule_rule": "None"}  # scheduled by the data_pack rule, not by the generic ones
    padded = topi.nn.pad(data, (0, top, left, 0), (0, bottom + extra_h, right + extra_w, 0), name="data_pad", attrs=none)
    bt, at = const_matrix(_BT.T.astype(str(data.dtype)), "B"), const_matrix(_AT.T.astype(str(data.dtype)), "A")

    def tile_origin(p):
        return p // (tiles_h * tiles_w), (p // tiles_w) % tiles_h * TILE, p % tiles_w * TILE

    def tile_element(eps, nu, p, c):
        image, row, col = tile_origin(p)
        return padded[image, row + eps, col + nu, c]

    input_tile = te.compute((ALPHA, ALPHA, tiles, ci), tile_element, name="input_tile", attrs=none)
    data_pack = _transform(input_tile, bt, ALPHA, "data_pack", DATA_PACK_RULE)
    rc = te.reduce_axis((0, ci), "ci")
    bgemm = te.compute(
        (ALPHA, ALPHA, tiles, co),
        lambda eps, nu, p, o: te.sum(data_pack[eps, nu, p, rc] * packed[eps, nu, o, rc], axis=[rc]),
        name="bgemm",
    )
    inverse = _transform(bgemm, at, TILE, "inverse", INVERSE_RULE)
    return te.compute(
        (n, out_h, out_w, co),
        lambda b, y, x, o: inverse[y % TILE, x % TILE, b * tiles_h * tiles_w + y // TILE * tiles_w + x // TILE, o],
        name="conv2d_winograd",
    )


def _transform(x, matrix, size: int, name: str, rule: str):
    """The 2-D transform ``M^T x M`` of each 6x6 tile of ``x`` (``[6, 6, tiles, channels]``), ``matrix`` being
    M (``[6, size]``): ``data_pack`` (B, size 6) and ``inverse`` (A, size 4); scheduled by ``rule``."""
    from tvm import te  # pylint: disable=import-outside-toplevel

    ra, rb = te.reduce_axis((0, ALPHA), "r_a"), te.reduce_axis((0, ALPHA), "r_b")
    return te.compute(
        (size, size, *x.shape[2:]),
        lambda i, j, p, c: te.sum(x[ra, rb, p, c] * matrix[ra, i] * matrix[rb, j], axis=[ra, rb]),
        name=name,
        attrs={"schedule_rule": rule},
    )


DATA_PACK_RULE, INVERSE_RULE = "tvmc_winograd_data_pack", "tvmc_winograd_inverse"


def _schedule_transform(sch, block, producer=None):
    """A transform (``data_pack`` or ``inverse``, loops ``[a, b, tile, channel, r_a, r_b]``) with its 6x6 (or
    4x4) loops and its two reduction loops unrolled, so that the constant matrix folds into additions, and the
    channel loop innermost and vectorized: each unrolled step works on a vector of channels. The tiles and
    channels outside are split by sampled factors and run in parallel; ``producer`` (the input tiles) is
    computed at a sampled loop."""
    for const in sch.get_producers(block):  # the constant matrix
        if sch.get(const).name_hint in ("A", "B"):
            sch.compute_inline(const)
    a, b, tile, channel, r_a, r_b = sch.get_loops(block)
    tile_o, tile_i = sch.split(tile, sch.sample_perfect_tile(tile, n=2, max_innermost_factor=16))
    channel_o, channel_i = sch.split(channel, sch.sample_perfect_tile(channel, n=2, max_innermost_factor=64))
    sch.reorder(tile_o, channel_o, tile_i, a, b, r_a, r_b, channel_i)
    for loop in (a, b, r_a, r_b):
        sch.unroll(loop)
    sch.vectorize(channel_i)
    sch.parallel(sch.fuse(tile_o, channel_o))
    if producer is not None:
        padded = sch.get_producers(producer)[0]
        sch.compute_at(producer, sch.sample_compute_location(producer), preserve_unit_loops=True)
        sch.compute_at(padded, sch.sample_compute_location(padded), preserve_unit_loops=True)
    return [sch]


def _register_rules():
    """The transforms' rules, found by MetaSchedule's ``ApplyCustomRule`` under the "cpu" target key."""
    import tvm  # pylint: disable=import-outside-toplevel

    def data_pack(sch, block):
        tile = next(p for p in sch.get_producers(block) if sch.get(p).name_hint == "input_tile")
        return _schedule_transform(sch, block, tile)

    tvm.register_global_func(f"s_tir.meta_schedule.cpu.{DATA_PACK_RULE}", data_pack, override=True)
    tvm.register_global_func(f"s_tir.meta_schedule.cpu.{INVERSE_RULE}", _schedule_transform, override=True)


_register_rules()


def eligible(call) -> bool:
    """Whether the Relax ``conv2d`` ``call`` is one this rewrite takes: NHWC / HWIO, 3x3, stride 1, no dilation,
    no groups, float32, a constant weight, at least ``MIN_CHANNELS`` channels in and out and ``MIN_TILES``
    output tiles per image."""
    import tvm  # pylint: disable=import-outside-toplevel

    attrs = call.attrs
    weight = call.args[1]
    if not isinstance(weight, tvm.ir.Constant):
        return False
    shape = [int(d) for d in weight.value.shape]
    return (
        attrs.data_layout == "NHWC"
        and attrs.kernel_layout == "HWIO"
        and attrs.out_layout == "NHWC"
        and [int(s) for s in attrs.strides] == [1, 1]
        and [int(d) for d in attrs.dilation] == [1, 1]
        and int(attrs.groups) == 1
        and shape[:2] == [3, 3]
        and min(shape[2:]) >= MIN_CHANNELS
        and _tiles(call) >= MIN_TILES
        and str(weight.value.dtype) == "float32"
        and str(call.args[0].ty.dtype) == "float32"
        and str(attrs.out_dtype) in ("None", "void", "", "float32")
    )


def _tiles(call) -> int:
    """The 4x4 output tiles per image of the NHWC convolution ``call``."""
    _, out_h, out_w, _ = (int(d) for d in call.ty.shape)
    return -(-out_h // TILE) * -(-out_w // TILE)


def winograd_convolutions():
    """The module pass: eligible 3x3 convolutions become Winograd kernels (after the layout conversion, before
    legalization). It folds constants first, so that the weights a layout conversion transposed are constants."""
    import tvm  # pylint: disable=import-outside-toplevel

    return tvm.ir.transform.module_pass(_rewrite, opt_level=0, name="WinogradConvolutions")


def _rewrite(mod, _ctx):
    import tvm  # pylint: disable=import-outside-toplevel
    from tvm import relax
    from tvm.relax.expr_functor import PyExprMutator, mutator

    mod = relax.transform.FoldConstant()(mod)
    conv2d = tvm.ir.Op.get("relax.nn.conv2d")

    @mutator
    class Rewriter(PyExprMutator):
        def visit_call_(self, op):  # pylint: disable=arguments-renamed
            call = self.visit_expr_post_order(op)
            if not (call.op.same_as(conv2d) and eligible(call)):
                return call
            packed = relax.const(transform_weight(call.args[1].value.numpy()))
            padding = [int(p) for p in call.attrs.padding]
            return self.builder_.call_te(convolution_te, call.args[0], packed, padding, primfunc_name_hint="conv2d_winograd")

    rewriter = Rewriter(mod)
    for gvar, func in mod.functions.items():
        if isinstance(func, relax.Function):
            rewriter.builder_.update_func(gvar, rewriter.visit_expr(func))
    mod = rewriter.builder_.get()
    for gvar, func in mod.functions.items():
        if isinstance(func, tvm.tirx.PrimFunc) and gvar.name_hint.startswith("conv2d_winograd"):
            mod.update_func(gvar, func.with_attr("op_pattern", 4))  # kOutEWiseFusable, as a direct conv2d
    return mod
