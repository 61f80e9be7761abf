"""Model loading: ONNX, format guessing, input shapes, and a clear error for every bad model file."""

import importlib.util

import onnx
import pytest

from tvmc_transfer.frontends import zoo
from tvmc_transfer.errors import TVMCException
from tvmc_transfer.frontends.load import load_model, parse_input_shapes


def test_onnx_model_loads_with_its_inputs_and_outputs(models):
    model = load_model(models["tiny-cnn"])
    assert model.format == "onnx"
    assert [(i.name, i.shape, i.dtype) for i in model.inputs] == [("input", (1, 3, 16, 16), "float32")]
    assert [(o.name, o.shape, o.dtype) for o in model.outputs] == [("output", (1, 10), "float32")]
    assert len(model.digest) == 64


def test_dynamic_dimension_needs_input_shapes(tmp_path):
    path = zoo.save("tiny-cnn", str(tmp_path / "dyn.onnx"), dynamic_batch=True)
    with pytest.raises(TVMCException, match=r"dynamic dimension \('N'\).*--input-shapes input:"):
        load_model(path)
    model = load_model(path, input_shapes="input:[2,3,16,16]")
    assert model.inputs[0].shape == (2, 3, 16, 16) and model.outputs[0].shape == (2, 10)


def test_input_shapes_parsing():
    assert parse_input_shapes("a:[1,3,224,224] b:[1, 10]") == {"a": (1, 3, 224, 224), "b": (1, 10)}
    assert parse_input_shapes("a:[1,2],b:[3]") == {"a": (1, 2), "b": (3,)}
    for bad in ("a[1,2]", "a:[1,x]", "a:[0,2]", "a:[1,2] junk"):
        with pytest.raises(TVMCException, match="--input-shapes"):
            parse_input_shapes(bad)


def test_input_shapes_must_name_real_inputs_with_the_right_rank(models):
    with pytest.raises(TVMCException, match="unknown input.*the model's inputs are: input"):
        load_model(models["tiny-mlp"], input_shapes="x:[1,64]")
    with pytest.raises(TVMCException, match="3 dimensions, the model has 2"):
        load_model(models["tiny-mlp"], input_shapes="input:[1,64,1]")


def test_missing_corrupt_and_unknown_format(tmp_path, models):
    with pytest.raises(TVMCException, match="not found"):
        load_model(str(tmp_path / "nope.onnx"))
    corrupt = tmp_path / "corrupt.onnx"
    corrupt.write_bytes(b"\x00not a protobuf at all" * 10)
    with pytest.raises(TVMCException, match="is not a valid ONNX model"):
        load_model(str(corrupt))
    weird = tmp_path / "model.xyz"
    weird.write_bytes(open(models["tiny-mlp"], "rb").read())
    with pytest.raises(TVMCException, match="cannot guess the format.*--model-format"):
        load_model(str(weird))
    assert load_model(str(weird), model_format="onnx").inputs[0].shape == (1, 64)
    with pytest.raises(TVMCException, match="unknown model format 'tflite'"):
        load_model(str(weird), model_format="tflite")


def test_truncated_onnx_file(tmp_path, models):
    data = open(models["tiny-cnn"], "rb").read()
    cut = tmp_path / "cut.onnx"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(TVMCException, match="not a valid ONNX model"):
        load_model(str(cut))


def test_pytorch_frontend(tmp_path):
    """With torch installed a torch.export program loads; without it, a clear error says what to do."""
    path = tmp_path / "net.pt2"
    if importlib.util.find_spec("torch") is None:
        path.write_bytes(b"placeholder")
        with pytest.raises(TVMCException, match="needs torch: pip install torch"):
            load_model(str(path))
        return
    import torch

    class Net(torch.nn.Module):
        def forward(self, x):
            return torch.relu(x) * 2

    torch.export.save(torch.export.export(Net(), (torch.randn(1, 8),)), str(path))
    model = load_model(str(path))
    assert model.format == "pytorch" and model.inputs[0].shape == (1, 8)


def test_cli_reports_model_errors_in_one_line(tvmc, tmp_path):
    result = tvmc("compile", tmp_path / "missing.onnx", "-o", tmp_path / "x.tar")
    assert result.code == 4 and result.err == f"Error: model file '{tmp_path / 'missing.onnx'}' not found\n"
    assert not (tmp_path / "x.tar").exists()


def test_zoo_command_writes_a_model(tvmc, tmp_path):
    result = tvmc("zoo", "tiny-mlp", "-o", tmp_path / "mlp.onnx", "--seed", "3")
    assert result.code == 0
    assert zoo.count_parameters(onnx.load(str(tmp_path / "mlp.onnx"))) == 64 * 32 + 32 + 32 * 10 + 10
    assert tvmc("zoo", "vgg", "-o", tmp_path / "v.onnx").code == 4


def test_batch_norms_fold_into_their_convolutions(models, tvmc, tmp_path):
    """A conv + BatchNormalization becomes one conv2d+bias kernel, of the class a biased conv has, and the
    compiled model still matches ONNX Runtime."""
    from tvmc_transfer.kernels.classes import kernel_class  # pylint: disable=import-outside-toplevel
    from tvmc_transfer.target import parse_target  # pylint: disable=import-outside-toplevel
    from tvmc_transfer.build.tasks import extract_tasks  # pylint: disable=import-outside-toplevel

    model = load_model(models["tiny-resnet"])
    assert "batch_norm" not in model.mod.script()
    target = parse_target("llvm")
    classes = {kernel_class(t.mod).name for t in extract_tasks(model, target)}
    assert {"conv2d+bias+relu NCHW fp32", "conv2d+bias+add+relu NCHW fp32"} <= classes
    assert not any("batch_norm" in c for c in classes)
    cnn = {kernel_class(t.mod).key for t in extract_tasks(load_model(models["tiny-cnn"]), target)}
    assert any(kernel_class(t.mod).key in cnn for t in extract_tasks(model, target) if t.name.startswith("fused_conv2d"))
    package = str(tmp_path / "r.tar")
    assert tvmc("compile", models["tiny-resnet"], "-o", package, "--target", "llvm").code == 0
    result = tvmc("run", package, "--verify", models["tiny-resnet"], "--fill-mode", "random")
    assert result.code == 0 and "ok" in result.out
