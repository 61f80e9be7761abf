"""tvmc 0.19's compile-pipeline options on Relax: each changes the build the way it says, outputs checked
against ONNX Runtime."""

import numpy as np
import pytest

from conftest import FAST_TUNE, assert_matches_onnxruntime
from tvmc_transfer.build.package import read_package

TARGET = ["--target", "llvm -num-cores=2"]


def run_and_compare(tvmc, model, package, tmp_path, rtol=1e-4):
    x = np.random.default_rng(3).standard_normal((1, 3, 16, 16)).astype("float32")
    np.savez(tmp_path / "x.npz", input=x)
    result = tvmc("run", package, "-i", tmp_path / "x.npz", "-o", tmp_path / "y.npz")
    assert result.code == 0, result.err
    with np.load(tmp_path / "y.npz") as y:
        assert_matches_onnxruntime(model, {"input": x}, [y["output"]], rtol=rtol)


def test_opt_level_pass_config_and_dump_code(models, tvmc, tmp_path):
    """-O0 builds a correct package; a 0.19 'tir.*' pass-config name reaches TVM's 'tirx.*' option."""
    model = models["tiny-cnn"]
    plain, bare = tmp_path / "plain.tar", tmp_path / "bare.tar"
    assert tvmc("compile", model, "-o", plain, *TARGET, "--dump-code", "relax,tir,ll,asm").code == 0
    result = tvmc("compile", model, "-o", bare, *TARGET, "-O0", "--pass-config", "tir.disable_assert=true", "--dump-code", "ll")
    assert result.code == 0, result.err
    dumps = {fmt: (tmp_path / f"plain.tar.{fmt}").read_text() for fmt in ("relax", "tir", "ll", "asm")}
    assert "R.nn.conv2d" in dumps["relax"] and "@T.prim_func" in dumps["tir"] and "fused_conv2d" in dumps["tir"]
    assert "define" in dumps["ll"] and "fused_conv2d" in dumps["asm"] and ".text" in dumps["asm"]
    assert "assert_fail" in dumps["ll"]  # argument checks branch to assert_fail blocks...
    assert "assert_fail" not in (tmp_path / "bare.tar.ll").read_text()  # ...and tir.disable_assert removed them
    run_and_compare(tvmc, model, bare, tmp_path)


def test_disabled_pass_print_ir_and_pass_times(models, tvmc, tmp_path):
    model = models["tiny-cnn"]
    timed = tvmc("compile", model, "-o", tmp_path / "a.tar", *TARGET, "--print-pass-times", "--print-ir-after", "FuseTIR", "--dump-code", "tir")
    assert timed.code == 0, timed.err
    assert "FuseOps: " in timed.out and "Print IR after: FuseTIR" in timed.out and "LegalizeOps: " in timed.out
    unfused = tvmc("compile", model, "-o", tmp_path / "b.tar", *TARGET, "--print-pass-times", "--disabled-pass", "FuseOps,FoldConstant", "--dump-code", "tir")
    assert unfused.code == 0, unfused.err
    assert "FuseOps: " not in unfused.out and "FoldConstant: " not in unfused.out and "LegalizeOps: " in unfused.out
    kernels = [(tmp_path / f"{name}.tar.tir").read_text().count("@T.prim_func") for name in ("a", "b")]
    assert kernels[1] > kernels[0]  # nothing fused: one kernel per operator
    run_and_compare(tvmc, model, tmp_path / "b.tar", tmp_path)


def test_mixed_precision(models, tvmc, tmp_path):
    model = models["tiny-cnn"]
    result = tvmc("compile", model, "-o", tmp_path / "h.tar", *TARGET, "--mixed-precision", "--mixed-precision-acc-type", "float32", "--dump-code", "relax")
    assert result.code == 0, result.err
    relax_text = (tmp_path / "h.tar.relax").read_text()
    assert 'dtype="float16"' in relax_text and 'out_dtype="float32"' in relax_text
    run_and_compare(tvmc, model, tmp_path / "h.tar", tmp_path, rtol=1e-2)  # float16 weights: 1e-2, not 1e-4
    bad = tvmc("compile", model, "--mixed-precision", "--mixed-precision-calculation-type", "bfloat16")
    assert bad.code == 4 and "computes in float16 only" in bad.err


def test_desired_layout_tunes_and_compiles_in_nhwc(models, tvmc, tmp_path):
    """Records tuned with --desired-layout NHWC are NHWC kernels: compile finds them with the same layout only."""
    model = models["tiny-cnn"]
    records = tmp_path / "nhwc"
    result = tvmc("tune", model, "-o", records, "--trials", "8", *FAST_TUNE, "--desired-layout", "NHWC")
    assert result.code == 0, result.err
    nhwc = tvmc("compile", model, "-o", tmp_path / "n.tar", *TARGET, "--tuning-records", records, "--desired-layout", "NHWC", "--dump-code", "relax")
    assert nhwc.code == 0, nhwc.err
    assert 'data_layout="NHWC"' in (tmp_path / "n.tar.relax").read_text()
    tuned_nhwc = read_package(str(tmp_path / "n.tar")).metadata.tuned_kernels
    nchw = tvmc("compile", model, "-o", tmp_path / "c.tar", *TARGET, "--tuning-records", records)
    assert nchw.code == 0, nchw.err
    assert tuned_nhwc > read_package(str(tmp_path / "c.tar")).metadata.tuned_kernels
    run_and_compare(tvmc, model, tmp_path / "n.tar", tmp_path)


@pytest.mark.parametrize(
    "args, message",
    [
        (["--pass-config", "tir.disable_vectorise=true"], "did you mean tirx.disable_vectorize"),
        (["--pass-config", "tir.disable_vectorize=maybe"], "tirx.disable_vectorize expects bool"),
        (["--pass-config", "relay.FuseOps.max_depth=2"], "Relay is gone"),
        (["--pass-config", "nonsense"], "must be NAME=VALUE"),
        (["--dump-code", "relay"], "Relay is gone in TVM 0.27"),
    ],
)
def test_pipeline_option_mistakes_are_one_line(models, tvmc, tmp_path, args, message):
    result = tvmc("compile", models["tiny-mlp"], "-o", tmp_path / "x.tar", *args)
    assert result.code == 4 and message in result.err and result.err.count("\n") == 1, result.err
    assert not (tmp_path / "x.tar").exists()
