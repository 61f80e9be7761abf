"""Winograd F(4x4, 3x3) for stride-1 3x3 NHWC convolutions (``--winograd``): exact against NumPy, used only where
it applies and only when asked for, tuned by MetaSchedule with our rule for its transforms, transferred to other
shapes, and packages that match ONNX Runtime."""

import json

import numpy as np
import onnx
import pytest
import tvm
from tvm import te

from conftest import FAST_TUNE, assert_matches_onnxruntime, onnxruntime_outputs, run_cli
from tvmc_transfer import compile_model, load_model, parse_target
from tvmc_transfer.build.lowering import Lowering
from tvmc_transfer.frontends.onnx_graph import Graph
from tvmc_transfer.build.package import read_package
from tvmc_transfer.build.tasks import extract_tasks
from tvmc_transfer.build.winograd import convolution_te, transform_weight

TARGET = "llvm -num-cores=2"
NHWC = Lowering(layout="NHWC", winograd=True)


def direct_nhwc(x, w, padding):
    """The convolution in float64 NumPy: ``x`` NHWC, ``w`` HWIO, ``padding`` (top, left, bottom, right)."""
    top, left, bottom, right = padding
    xp = np.pad(x.astype(np.float64), ((0, 0), (top, bottom), (left, right), (0, 0)))
    out_h, out_w = xp.shape[1] - 2, xp.shape[2] - 2
    out = np.zeros((x.shape[0], out_h, out_w, w.shape[3]))
    for i in range(3):
        for j in range(3):
            out += np.einsum("nhwc,co->nhwo", xp[:, i : i + out_h, j : j + out_w, :], w[i, j].astype(np.float64))
    return out


@pytest.mark.parametrize("shape, padding", [((1, 14, 14, 16, 24), (1, 1, 1, 1)), ((2, 9, 7, 8, 5), (0, 0, 0, 0)), ((1, 10, 13, 4, 4), (1, 0, 2, 1))])
def test_the_winograd_kernel_computes_the_convolution(shape, padding):
    """Output sizes that are and are not multiples of the 4x4 tile, batches, asymmetric padding."""
    n, h, w, ci, co = shape
    rng = np.random.default_rng(0)
    x, weight = rng.standard_normal((n, h, w, ci)).astype("float32"), rng.standard_normal((3, 3, ci, co)).astype("float32")
    data, packed = te.placeholder(x.shape, name="data"), te.placeholder((6, 6, co, ci), name="packed")
    out = convolution_te(data, packed, padding)
    kernel = tvm.compile(te.create_prim_func([data, packed, out]), target="llvm")
    result = tvm.runtime.tensor(np.zeros([int(s) for s in out.shape], "float32"))
    kernel(tvm.runtime.tensor(x), tvm.runtime.tensor(transform_weight(weight)), result)
    expected = direct_nhwc(x, weight, padding)
    assert result.shape == expected.shape
    np.testing.assert_allclose(result.numpy(), expected, rtol=0, atol=2e-5 * np.abs(expected).max())


def four_convs(path, channels=16, size=16):
    """A stride-1 3x3 convolution that Winograd takes (16x16: 16 output tiles), and three it leaves alone: the
    RGB stem (too few input channels), one with stride 2, and one at 8x8 (4 tiles); a residual add and a ReLU
    after the first, to fuse as its epilogue."""
    g = Graph(0)
    stem = g.relu(g.conv("input", "stem", 3, channels, 3, pad=1))
    body = g.relu(g.add(g.conv(stem, "body", channels, channels, 3, pad=1), stem, "residual"))
    down = g.conv(body, "down", channels, channels, 3, stride=2, pad=1)
    g.conv(down, "small", channels, channels, 3, pad=1)
    g.nodes[-1].output[0] = "output"
    onnx.save(g.to_model("four-convs", "four convolutions", (1, 3, size, size), (1, channels, size // 2, size // 2), False), path)
    return path


@pytest.fixture(scope="module")
def convs_model(tmp_path_factory):
    return four_convs(str(tmp_path_factory.mktemp("winograd") / "four-convs.onnx"))


def test_only_stride_one_3x3_convolutions_with_enough_channels_and_tiles_become_winograd_kernels(convs_model):
    model, target = load_model(convs_model), parse_target(TARGET)
    names = [t.name for t in extract_tasks(model, target, NHWC)]
    winograd = [n for n in names if "winograd" in n]
    assert len(winograd) == 1 and "add" in winograd[0] and "relu" in winograd[0]  # the epilogue fused into it
    assert sum(1 for n in names if n.startswith("fused_conv2d") and "winograd" not in n) == 3
    assert not any("winograd" in t.name for t in extract_tasks(model, target, Lowering(layout="NHWC")))  # off by default


@pytest.mark.parametrize("target, nhwc", [("llvm -mcpu=znver4", True), ("llvm -mcpu=znver3", True), ("llvm -mcpu=sandybridge", False), ("cuda", False)])
def test_winograd_is_used_only_when_asked_for_and_on_nhwc_cpu_convolutions(target, nhwc):
    target = parse_target(target)
    assert not Lowering().winograd_for(target) and not Lowering(layout="NHWC").winograd_for(target)  # off by default
    assert Lowering(winograd=True).winograd_for(target) is nhwc  # NHWC by default on AVX2 and AVX-512 CPUs
    assert Lowering(layout="NHWC", winograd=True).winograd_for(target) is (str(target.kind.name) == "llvm")
    assert not Lowering(layout="NCHW", winograd=True).winograd_for(target)


@pytest.fixture(scope="module")
def tuned_convs(convs_model, tmp_path_factory):
    """The model tuned with a handful of trials, Winograd on (``--desired-layout NHWC`` on a generic x86-64)."""
    records = str(tmp_path_factory.mktemp("winograd-records") / "records")
    tuned = run_cli("tune", convs_model, "-o", records, "--trials", "24", "--desired-layout", "NHWC", "--winograd", *FAST_TUNE)
    assert tuned.code == 0, tuned.err
    return records


def run_package(package, x):
    vm = tvm.relax.VirtualMachine(read_package(package).load(), tvm.cpu())
    return [vm["main"](tvm.runtime.tensor(x)).numpy()]


def test_a_tuned_winograd_package_matches_onnxruntime_and_names_its_kernels(convs_model, tuned_convs, tmp_path):
    """Real tuning with our Winograd rule on the transforms, then a package whose output ONNX Runtime confirms
    and whose profile names the Winograd kernel."""
    model, target = load_model(convs_model), parse_target(TARGET)
    package = str(tmp_path / "convs.tar")
    result = compile_model(model, target, package, records=tuned_convs, lowering=NHWC)
    assert result.tuned_kernels >= 1 and result.hint is None
    x = np.random.default_rng(3).standard_normal((1, 3, 16, 16)).astype("float32")
    assert_matches_onnxruntime(convs_model, {"input": x}, run_package(package, x))
    profile = run_cli("run", package, "--profile", "--repeat", "2")
    assert profile.code == 0 and "fused_conv2d_winograd" in profile.out
    # Compiled without Winograd the records of its kernel do not match, and the hint names the flag that does.
    plain = run_cli("compile", convs_model, "-o", tmp_path / "plain.tar", "--tuning-records", tuned_convs, "--desired-layout", "NHWC", "--target", TARGET)
    assert plain.code == 0 and "compile with --winograd and they match" in plain.err


def test_winograd_schedules_transfer_to_other_shapes(tuned_convs, tmp_path):
    """A Winograd kernel's class holds it at any shape: the tuned schedules replay on twice the channels and
    another image size, checked and measured, and the package matches ONNX Runtime."""
    other = four_convs(str(tmp_path / "wider.onnx"), channels=32, size=20)
    output, report = tmp_path / "transferred", tmp_path / "report.json"
    result = run_cli("transfer", other, "--from", tuned_convs, "-o", output, "--report", report, "--desired-layout", "NHWC", "--winograd", "--no-e2e", "--no-library",
                     "--target", TARGET, "--min-repeat-ms", "5", "--number", "2")
    assert result.code == 0, result.err
    kernels = {k["task"]: k for k in json.load(open(report))["kernels"]}
    (winograd,) = [k for name, k in kernels.items() if "winograd" in name]
    assert winograd["status"] == "transferred" and winograd["valid"] >= 1
    model, target = load_model(other), parse_target(TARGET)
    package = str(tmp_path / "wider.tar")
    assert compile_model(model, target, package, records=str(output), lowering=NHWC).tuned_kernels >= 1
    x = np.random.default_rng(5).standard_normal((1, 3, 20, 20)).astype("float32")
    assert_matches_onnxruntime(other, {"input": x}, run_package(package, x))


def test_winograd_output_stays_close_to_onnxruntime_through_a_deep_stack(tmp_path):
    """Eight Winograd layers in a row: their float32 error (larger than a direct convolution's) stays within
    the 1e-4 that every package is held to."""
    g = Graph(0)
    x = g.relu(g.conv("input", "stem", 3, 32, 3, pad=1))
    for i in range(8):
        x = g.relu(g.conv(x, f"layer{i}", 32, 32, 3, pad=1))
    g.nodes[-1].output[0] = "output"
    path = str(tmp_path / "deep.onnx")
    onnx.save(g.to_model("deep", "eight 3x3 layers", (1, 3, 16, 16), (1, 32, 16, 16), False), path)
    model, target = load_model(path), parse_target(TARGET)
    assert sum("winograd" in t.name for t in extract_tasks(model, target, NHWC)) >= 1
    package = str(tmp_path / "deep.tar")
    compile_model(model, target, package, lowering=NHWC)
    inputs = {"input": np.random.default_rng(4).standard_normal((1, 3, 16, 16)).astype("float32")}
    (out,) = run_package(package, inputs["input"])
    reference = onnxruntime_outputs(path, inputs)[0]
    assert_matches_onnxruntime(path, inputs, [out])
    assert np.abs(out - reference).max() / np.abs(reference).max() > 1e-8  # not a direct convolution in disguise
