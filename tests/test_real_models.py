"""Real models nobody here wrote: the ONNX model zoo's networks that ship in the onnx wheel compile with no flags
at the default lowering (NHWC and weight prepacking on an AVX2 CPU) and match ONNX Runtime; each graph construct
that broke the layout conversion is checked again on a graph with random weights; a conversion that still fails
falls back to the model's layout with one warning and a correct package.

The target is a fixed AVX2 CPU (``-mcpu=haswell``), so the lowering and the schedule library do not depend on
the processor CI runs on; its code runs on any x86 CPU with AVX2.
"""

import logging
import re

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from tvmc_transfer.compiler import compile_model
from tvmc_transfer.frontends.load import load_model
from tvmc_transfer.frontends.onnx_zoo import LIGHT_MODELS, light_path, with_random_weights
from tvmc_transfer.run.module import run_module
from tvmc_transfer.target import parse_target

AVX2 = "llvm -mcpu=haswell -num-cores=2"
LAYOUT_ONLY = {"fused", "transpose", "reshape", "layout", "transform", "permute", "dims", "expand", "squeeze", ""}
# Kernels that only move data, per model, at NHWC: the input's conversion and the one before the classifier's
# flatten (NCHW order); ShuffleNet's four channel shuffles (a 5-D reshape, done in NCHW); SqueezeNet's closing
# reshape. None between two convolutions for a per-channel Mul/Add or a batch norm (DenseNet, Inception-v2).
EXPECTED_LAYOUT_ONLY = {"shufflenet": 6, "squeezenet": 3}


def _matches_onnxruntime(path, package, seed=0):
    """The package's outputs against ONNX Runtime's on the same random inputs: |got - ref| <= 1e-4 + 1e-3 max|ref|."""
    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(seed)
    inputs = {i.name: rng.standard_normal([d if isinstance(d, int) else 1 for d in i.shape]).astype("float32") for i in session.get_inputs()}
    references = session.run(None, inputs)
    outputs = list(run_module(package, inputs).outputs.values())
    assert len(outputs) == len(references)
    for got, ref in zip(outputs, references):
        assert got.shape == ref.shape
        error = float(np.abs(got.astype(np.float64) - ref).max())
        assert error <= 1e-4 + 1e-3 * float(np.abs(ref).max()), (path, error, float(np.abs(ref).max()))


def _layout_only(report) -> list:
    return [k.name for k in report.defaults.kernels if set(re.sub(r"\d+", "", k.name).split("_")) <= LAYOUT_ONLY]


def _logits(model):
    """``model`` without its closing Softmax: a saturated softmax would hide errors in the layers before it."""
    last = model.graph.node[-1]
    if last.op_type == "Softmax":
        model.graph.node.remove(last)
        for node in model.graph.node:
            node.output[:] = [last.output[0] if name == last.input[0] else name for name in node.output]
    return model


@pytest.mark.parametrize("name", LIGHT_MODELS)
def test_onnx_zoo_model_compiles_with_no_flags_and_matches_onnxruntime(name, tmp_path, caplog):
    path = light_path(name)
    with caplog.at_level(logging.WARNING, logger="tvmc"):
        report = compile_model(load_model(path), parse_target(AVX2), str(tmp_path / "model.tar"))
    assert "layout conversion" not in caplog.text  # converted to NHWC, no fallback
    assert report.defaults is not None and report.defaults.count("none") == 0, report.defaults.table()
    assert len(_layout_only(report)) <= EXPECTED_LAYOUT_ONLY.get(name, 2), _layout_only(report)
    _matches_onnxruntime(path, str(tmp_path / "model.tar"))


@pytest.mark.parametrize("name", ["squeezenet", "shufflenet", "inception_v2"])  # Dropout; Sum and a channel shuffle; batch norm then Mul and Add
def test_onnx_zoo_graph_with_random_weights_matches_onnxruntime(name, tmp_path):
    """The shipped weights are one value each: random ones check that every folded constant lands where it should."""
    path = str(tmp_path / f"{name}.onnx")
    onnx.save(_logits(with_random_weights(onnx.load(light_path(name)), seed=3)), path)
    compile_model(load_model(path), parse_target(AVX2), str(tmp_path / "model.tar"), default_schedules=False)
    _matches_onnxruntime(path, str(tmp_path / "model.tar"))
