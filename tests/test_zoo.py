"""Tests for tvmc_transfer.frontends.zoo: exact torchvision parameter counts, valid ONNX, ONNX Runtime and TVM agree."""

import os

import attrs
import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import numpy_helper

from tvmc_transfer.frontends import zoo

BIG = ["resnet50", "googlenet", "alexnet", "mobilenet_v2"]
TINY = ["tiny-cnn", "tiny-cnn-b", "tiny-resnet", "tiny-mobile", "tiny-mlp"]

TORCHVISION_PARAMETERS = {
    "resnet50": 25_557_032,
    "googlenet": 6_624_904,
    "alexnet": 61_100_840,
    "mobilenet_v2": 3_504_872,
}
TINY_OUTPUTS = {"tiny-cnn": 10, "tiny-cnn-b": 5, "tiny-resnet": 10, "tiny-mobile": 10, "tiny-mlp": 10}


def _session(model: onnx.ModelProto) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 2
    return ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])


def _input(shape, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def _weights(model: onnx.ModelProto) -> dict[str, np.ndarray]:
    return {init.name: numpy_helper.to_array(init) for init in model.graph.initializer}


def _op_count(model: onnx.ModelProto, op_type: str) -> int:
    return sum(node.op_type == op_type for node in model.graph.node)


@pytest.fixture(scope="module")
def big_models():
    """Each big model built once (seed 0) and run once in ONNX Runtime: name -> (model, output)."""
    results = {}
    for name in BIG:
        model = zoo.build(name)
        (output,) = _session(model).run(None, {"input": _input(zoo.MODELS[name].input_shape)})
        results[name] = (model, output)
    return results


# ---- registry and API --------------------------------------------------------------------------------------


def test_registry_lists_all_models_as_frozen_values():
    assert set(zoo.MODELS) == set(BIG + TINY)
    for name, entry in zoo.MODELS.items():
        assert isinstance(entry, zoo.ZooModel)
        assert entry.name == name and entry.description
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        zoo.MODELS["tiny-cnn"].name = "other"  # type: ignore[misc]


@pytest.mark.parametrize("call", [zoo.build, lambda name: zoo.save(name, "unused.onnx")])
def test_unknown_name_is_a_value_error_listing_known_models(call):
    with pytest.raises(ValueError, match="unknown zoo model 'vgg16'") as info:
        call("vgg16")
    for name in zoo.MODELS:
        assert name in str(info.value)


def test_save_writes_atomically_and_returns_path(tmp_path):
    path = str(tmp_path / "new" / "dir" / "tiny.onnx")
    assert zoo.save("tiny-cnn", path, seed=3) == path
    assert os.listdir(os.path.dirname(path)) == ["tiny.onnx"]  # no temporary file left behind
    loaded = onnx.load(path)
    assert loaded.SerializeToString() == zoo.build("tiny-cnn", seed=3).SerializeToString()
    # Overwriting an existing file works too.
    zoo.save("tiny-cnn", path, seed=4, dynamic_batch=True)
    assert onnx.load(path).graph.input[0].type.tensor_type.shape.dim[0].dim_param == "N"


# ---- the big four: torchvision's graphs ----------------------------------------------------------------


@pytest.mark.parametrize("name", BIG)
def test_parameter_count_matches_torchvision(big_models, name):
    assert zoo.count_parameters(big_models[name][0]) == TORCHVISION_PARAMETERS[name]


@pytest.mark.parametrize("name", BIG)
def test_big_model_is_valid_and_runs_in_onnxruntime(big_models, name):
    model, output = big_models[name]
    onnx.checker.check_model(model)
    assert [i.name for i in model.graph.input] == ["input"]
    assert [o.name for o in model.graph.output] == ["output"]
    assert model.opset_import[0].version == zoo.OPSET == 17
    assert output.shape == (1, 1000)
    assert np.isfinite(output).all()
    assert 1e-3 < output.std() < 1e3  # activations neither explode nor vanish


def test_batchnorm_stays_a_node_and_running_stats_are_not_parameters(big_models):
    resnet, _ = big_models["resnet50"]
    assert _op_count(resnet, "Conv") == 53 and _op_count(resnet, "BatchNormalization") == 53
    assert _op_count(resnet, "Add") == 16
    total = sum(w.size for w in _weights(resnet).values())
    bn_channels = sum(
        numpy_helper.to_array(init).size
        for init in resnet.graph.initializer
        if init.name.endswith(".running_mean")
    )
    assert total - zoo.count_parameters(resnet) == 2 * bn_channels
    running_var = [w for n, w in _weights(resnet).items() if n.endswith(".running_var")]
    assert all((v > 0).all() for v in running_var)


def test_googlenet_follows_torchvision_quirks(big_models):
    googlenet, _ = big_models["googlenet"]
    bns = [node for node in googlenet.graph.node if node.op_type == "BatchNormalization"]
    assert len(bns) == _op_count(googlenet, "Conv") == 57
    assert all(onnx.helper.get_node_attr_value(bn, "epsilon") == pytest.approx(1e-3) for bn in bns)
    # No conv bias; the "5x5" branch is a 3x3 conv.
    weights = _weights(googlenet)
    assert not any(n.endswith("conv.bias") for n in weights)
    assert weights["inception3a.branch3.1.conv.weight"].shape == (32, 16, 3, 3)
    pools = [node for node in googlenet.graph.node if node.op_type == "MaxPool"]
    assert all(onnx.helper.get_node_attr_value(p, "ceil_mode") == 1 for p in pools)


def test_resnet50_is_v1_5(big_models):
    weights = _weights(big_models["resnet50"][0])
    strided = {
        node.name
        for node in big_models["resnet50"][0].graph.node
        if node.op_type == "Conv" and onnx.helper.get_node_attr_value(node, "strides") == [2, 2]
    }
    assert strided == {"conv1", "layer2.0.conv2", "layer3.0.conv2", "layer4.0.conv2"} | {
        f"layer{i}.0.downsample.0" for i in (2, 3, 4)
    }
    assert weights["layer4.2.conv3.weight"].shape == (2048, 512, 1, 1)
    assert weights["fc.weight"].shape == (1000, 2048)


def test_mobilenet_v2_is_torchvisions(big_models):
    model, _ = big_models["mobilenet_v2"]
    weights = _weights(model)
    convs = [node for node in model.graph.node if node.op_type == "Conv"]
    assert len(convs) == _op_count(model, "BatchNormalization") == 52
    assert all(len(node.input) == 2 for node in convs)  # no conv bias
    depthwise = [node for node in convs if any(a.name == "group" for a in node.attribute)]
    assert len(depthwise) == 17  # one per inverted residual: group = channels, 3x3, padded by 1
    for node in depthwise:
        channels = weights[node.input[1]].shape[0]
        assert onnx.helper.get_node_attr_value(node, "group") == channels
        assert weights[node.input[1]].shape == (channels, 1, 3, 3)
        assert onnx.helper.get_node_attr_value(node, "pads") == [1, 1, 1, 1]
    strided = {node.name for node in convs if onnx.helper.get_node_attr_value(node, "strides") == [2, 2]}
    assert strided == {"features.0.0"} | {f"features.{i}.conv.1.0" for i in (2, 4, 7, 14)}
    # ReLU6 is Clip(0, 6) after every conv but the 17 linear projections; residual adds where shapes allow.
    clips = [node for node in model.graph.node if node.op_type == "Clip"]
    assert len(clips) == 52 - 17 and {tuple(c.input[1:]) for c in clips} == {("relu6.min", "relu6.max")}
    assert (weights["relu6.min"], weights["relu6.max"]) == (0.0, 6.0)
    assert _op_count(model, "Add") == 10
    # t=1 block has no expansion; the others expand 6x (features.17: 160 -> 960 -> 320).
    assert weights["features.1.conv.0.0.weight"].shape == (32, 1, 3, 3)
    assert weights["features.1.conv.1.weight"].shape == (16, 32, 1, 1)
    assert weights["features.17.conv.0.0.weight"].shape == (960, 160, 1, 1)
    assert weights["features.17.conv.2.weight"].shape == (320, 960, 1, 1)
    assert weights["features.18.0.weight"].shape == (1280, 320, 1, 1)
    assert weights["classifier.1.weight"].shape == (1000, 1280)


def test_tiny_mobile_has_depthwise_convs_hard_swish_and_a_conv_without_bias():
    model = zoo.build("tiny-mobile")
    convs = [node for node in model.graph.node if node.op_type == "Conv"]
    groups = {n.name: next((a.i for a in n.attribute if a.name == "group"), 1) for n in convs}
    assert groups == {"stem.conv": 1, "block1.dw": 8, "block1.pw": 1, "block2.dw": 16, "block2.pw": 1}
    assert all(len(node.input) == 2 for node in convs)
    assert _op_count(model, "HardSwish") == 4 and _op_count(model, "BatchNormalization") == 4
    # The last pointwise conv feeds the pool directly: no BatchNorm gives it a bias when BNs are folded.
    (pool,) = [node for node in model.graph.node if node.op_type == "GlobalAveragePool"]
    assert list(pool.input) == ["block2.pw"]


# ---- determinism -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", TINY + ["googlenet"])
def test_same_seed_same_weights_other_seed_other_weights(big_models, name):
    first = zoo.build(name, seed=0)
    assert first.SerializeToString() == zoo.build(name, seed=0).SerializeToString()
    if name in big_models:
        assert first.SerializeToString() == big_models[name][0].SerializeToString()
    a, b = _weights(first), _weights(zoo.build(name, seed=1))
    assert a.keys() == b.keys()
    assert all(a[k].shape == b[k].shape for k in a)
    assert not any(np.array_equal(a[k], b[k]) for k in a if k.endswith(".weight"))


# ---- tiny nets: ONNX Runtime vs TVM ------------------------------------------------------------------------


def _tvm_run(model: onnx.ModelProto, x: np.ndarray, shape_dict=None) -> np.ndarray:
    import tvm  # pylint: disable=import-outside-toplevel
    from tvm.relax.frontend.onnx import from_onnx  # pylint: disable=import-outside-toplevel

    mod = from_onnx(model, shape_dict=shape_dict, keep_params_in_input=False)
    executable = tvm.compile(mod, target=tvm.target.Target("llvm"))
    vm = tvm.relax.VirtualMachine(executable, tvm.cpu())
    return vm["main"](tvm.runtime.tensor(x)).numpy()


@pytest.mark.parametrize("name", TINY)
def test_tiny_model_tvm_matches_onnxruntime(name):
    model = zoo.build(name)
    onnx.checker.check_model(model, full_check=True)
    x = _input(zoo.MODELS[name].input_shape)
    (expected,) = _session(model).run(None, {"input": x})
    assert expected.shape == (1, TINY_OUTPUTS[name]) and np.isfinite(expected).all()
    np.testing.assert_allclose(_tvm_run(model, x), expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", TINY)
def test_tiny_model_dynamic_batch(name):
    model = zoo.build(name, dynamic_batch=True)
    onnx.checker.check_model(model, full_check=True)
    for value in (model.graph.input[0], model.graph.output[0]):
        assert value.type.tensor_type.shape.dim[0].dim_param == "N"
    static_shape = zoo.MODELS[name].input_shape
    x = _input((2, *static_shape[1:]))
    (output,) = _session(model).run(None, {"input": x})
    assert output.shape == (2, TINY_OUTPUTS[name]) and np.isfinite(output).all()
    # The batch-1 answer does not depend on whether the batch dim was symbolic; TVM fixes it via shape_dict.
    (static_output,) = _session(zoo.build(name)).run(None, {"input": x[:1]})
    np.testing.assert_allclose(output[:1], static_output, rtol=1e-5, atol=1e-6)
    tvm_output = _tvm_run(model, x[:1], shape_dict={"input": list(static_shape)})
    np.testing.assert_allclose(tvm_output, static_output, rtol=1e-4, atol=1e-5)
