"""Make an ONNX graph static before TVM imports it: shapes computed from ``Shape`` become constants.

Exporters (Paddle, older PyTorch, TF converters) compute Reshape targets with ``Shape -> Slice/Gather ->
ReduceProd/Mul/Div -> Concat``. Relax's importer needs such a target as a shape and fails ("Reshape requires the
input new shape to be Shape") when arithmetic sits in between. With ``--input-shapes`` every such shape is known,
so: the input dims are fixed, ONNX shape inference (with data propagation) types every tensor, and ONNX Runtime's
basic offline optimizer folds the shape arithmetic into constants. Its fusions that change arithmetic (a batch
norm or bias folded into a convolution's weights, MatMul+Add into Gemm, ...) are turned off, so the numbers
computed are the model's own: ONNX Runtime gives bit-equal outputs on the graph before and after.
"""

import os
import tempfile

from ..errors import TVMCException, one_line

SHAPE_OPS = ("Shape", "Size")
# ONNX Runtime's level-1 rewrites that change the arithmetic, not only the graph: kept off.
ARITHMETIC_FUSIONS = (
    "ConvBNFusion",
    "ConvAddFusion",
    "ConvMulFusion",
    "MatMulAddFusion",
    "DivMulFusion",
    "GemmTransposeFusion",
    "FuseReluClip",
    "NotWhereFusion",
    "ClipQuantFusion",
    "ReluQuantFusion",
)


def computes_shapes(model) -> bool:
    """Whether the graph reads tensor shapes at run time (``Shape``/``Size``), which the importer may not fold."""
    return any(node.op_type in SHAPE_OPS for node in model.graph.node)


def _fix_input_dims(model, shapes: dict) -> None:
    for value in model.graph.input:
        if value.name not in shapes:
            continue
        dims = value.type.tensor_type.shape.dim
        for dim, size in zip(dims, shapes[value.name]):
            dim.Clear()
            dim.dim_value = int(size)
    for value in model.graph.output:  # symbolic output dims ('N') are inferred again from the inputs
        value.type.tensor_type.ClearField("shape")
    del model.graph.value_info[:]


def make_static(model, shapes: dict):
    """``model`` with inputs of ``shapes`` and its shape arithmetic folded into constants (a new ModelProto)."""
    import onnx  # pylint: disable=import-outside-toplevel
    import onnxruntime as ort

    static = onnx.ModelProto()
    static.CopyFrom(model)
    _fix_input_dims(static, shapes)
    try:
        static = onnx.shape_inference.infer_shapes(static, strict_mode=True, data_prop=True)
    except Exception as err:  # InferenceError: the given shapes contradict the graph
        raise TVMCException(f"cannot make the model static with --input-shapes (ONNX shape inference: {one_line(err)})") from None
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    options.log_severity_level = 3
    with tempfile.TemporaryDirectory(prefix="tvmc-onnx-") as work:
        options.optimized_model_filepath = os.path.join(work, "static.onnx")
        try:
            ort.InferenceSession(
                static.SerializeToString(), options, providers=["CPUExecutionProvider"], disabled_optimizers=list(ARITHMETIC_FUSIONS)
            )
        except Exception as err:
            raise TVMCException(f"cannot make the model static with --input-shapes (ONNX Runtime: {one_line(err)})") from None
        return onnx.load(options.optimized_model_filepath)
