"""ONNX graphs whose Reshape targets are computed from ``Shape`` (Paddle-style exports, older opsets) compile
with ``--input-shapes`` and match ONNX Runtime on the original graph."""

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from conftest import assert_matches_onnxruntime
from tvmc_transfer.frontends.onnx_static import make_static


def conv_then_flatten(name, opset, shape_nodes, constants, seed):
    """x[N,3,8,8] -> conv -> relu -> Reshape(relu, target computed by ``shape_nodes``) -> MatMul/Gemm -> y[N,10]."""
    rng = np.random.default_rng(seed)
    weights = {
        "w": rng.standard_normal((4, 3, 3, 3)).astype("float32"),
        "b": rng.standard_normal(4).astype("float32"),
        "w2": (rng.standard_normal((256, 10)) * 0.1).astype("float32"),
        "b2": rng.standard_normal(10).astype("float32"),
        **constants,
    }
    nodes = [
        helper.make_node("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c"], ["r"]),
        helper.make_node("Shape", ["r"], ["s"]),
        *shape_nodes,
        helper.make_node("Reshape", ["r", "target"], ["flat"]),
        helper.make_node("Gemm", ["flat", "w2", "b2"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes, name, [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 10])],
        [numpy_helper.from_array(value, key) for key, value in weights.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], producer_name=name)
    onnx.checker.check_model(model)
    return model


def paddle_opset13():
    """Paddle's flatten: Shape -> Slice[0:1] and Slice[1:] -> ReduceProd -> Concat -> Reshape."""
    i64 = lambda *v: np.array(v, "int64")  # noqa: E731
    return conv_then_flatten("paddle", 13, [
        helper.make_node("Slice", ["s", "zero", "one"], ["n"]),
        helper.make_node("Slice", ["s", "one", "four"], ["chw_dims"]),
        helper.make_node("ReduceProd", ["chw_dims"], ["chw"], keepdims=1),
        helper.make_node("Concat", ["n", "chw"], ["target"], axis=0),
    ], {"zero": i64(0), "one": i64(1), "four": i64(4)}, seed=0)


def older_opset11():
    """Opset 11: Gather -> Unsqueeze(axes attribute), ReduceProd over the whole shape, Div, ConstantOfShape."""
    return conv_then_flatten("opset11", 11, [
        helper.make_node("Gather", ["s", "zero"], ["n0"], axis=0),
        helper.make_node("Unsqueeze", ["n0"], ["n"], axes=[0]),
        helper.make_node("ReduceProd", ["s"], ["total"], keepdims=1),
        helper.make_node("Div", ["total", "n"], ["rest"]),
        helper.make_node("ConstantOfShape", ["n"], ["ones"], value=numpy_helper.from_array(np.array([1], "int64"))),
        helper.make_node("ReduceSum", ["ones"], ["batch"], keepdims=1),
        helper.make_node("Concat", ["batch", "rest"], ["target"], axis=0),
    ], {"zero": np.array(0, "int64")}, seed=1)


@pytest.mark.parametrize("make", [paddle_opset13, older_opset11])
def test_computed_reshape_targets_compile_with_input_shapes(make, tvmc, tmp_path):
    model = tmp_path / "model.onnx"
    onnx.save(make(), model)
    plain = tvmc("compile", model, "-o", tmp_path / "x.tar")
    assert plain.code == 4 and "give its shape with --input-shapes x:" in plain.err
    for batch in (2, 3):  # the dynamic batch, fixed each time
        package = tmp_path / f"b{batch}.tar"
        result = tvmc("compile", model, "--input-shapes", f"x:[{batch},3,8,8]", "-o", package, "--target", "llvm -num-cores=2")
        assert result.code == 0, result.err
        x = np.random.default_rng(batch).standard_normal((batch, 3, 8, 8)).astype("float32")
        np.savez(tmp_path / "x.npz", x=x)
        assert tvmc("run", package, "-i", tmp_path / "x.npz", "-o", tmp_path / "y.npz").code == 0
        with np.load(tmp_path / "y.npz") as y:
            assert y["y"].shape == (batch, 10)
            assert_matches_onnxruntime(str(model), {"x": x}, [y["y"]], rtol=1e-4)


def run_unoptimized(model, x):
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: x})[0]


def test_folding_keeps_the_original_numerics(models):
    """The shape arithmetic is folded, nothing else: ONNX Runtime computes bit-equal outputs before and after,
    also on a model with batch norms that ONNX Runtime's default fusions would fold into the convolutions."""
    for original, shape in [(paddle_opset13(), (2, 3, 8, 8)), (onnx.load(models["tiny-resnet"]), (1, 3, 16, 16))]:
        static = make_static(original, {original.graph.input[0].name: shape})
        x = np.random.default_rng(5).standard_normal(shape).astype("float32")
        assert np.array_equal(run_unoptimized(original, x), run_unoptimized(static, x))
        assert not any(node.op_type in ("Shape", "ReduceProd") for node in static.graph.node)
    resnet = make_static(onnx.load(models["tiny-resnet"]), {"input": (1, 3, 16, 16)})
    assert sum(node.op_type == "BatchNormalization" for node in resnet.graph.node) == 2  # not fused into Conv


def test_input_shapes_that_contradict_the_graph_are_one_line(tvmc, tmp_path):
    model = tmp_path / "model.onnx"
    onnx.save(paddle_opset13(), model)
    result = tvmc("compile", model, "--input-shapes", "x:[2,3,9,9]", "-o", tmp_path / "x.tar")
    assert result.code == 4 and result.err.count("\n") == 1 and "cannot make the model static with --input-shapes" in result.err
    assert "mismatch" in result.err and "256" in result.err, result.err
