"""``tvmc compile`` and ``tvmc run``: packages that match ONNX Runtime and load with plain TVM."""

import json
import os
import subprocess
import sys
import tarfile
import textwrap

import numpy as np
import pytest

from conftest import FAST_TUNE, assert_matches_onnxruntime
from tvmc_transfer.build.package import read_package

TARGET = ["--target", "llvm -num-cores=2"]


@pytest.fixture(scope="module")
def packages(tuned_cnn, tmp_path_factory):
    """tiny-cnn compiled with and without its records."""
    from tvmc_transfer.main import _main

    model, records = tuned_cnn
    folder = tmp_path_factory.mktemp("packages")
    tuned, untuned = str(folder / "tuned.tar"), str(folder / "untuned.tar")
    assert _main(["compile", model, "-o", tuned, "--tuning-records", records, *TARGET]) == 0
    assert _main(["compile", model, "-o", untuned, *TARGET]) == 0
    return model, tuned, untuned


def test_tuned_and_untuned_packages_match_onnxruntime(packages, tvmc, tmp_path):
    model, tuned, untuned = packages
    x = np.random.default_rng(1).standard_normal((1, 3, 16, 16)).astype("float32")
    np.savez(tmp_path / "x.npz", input=x)
    for package in (tuned, untuned):
        out = tmp_path / "y.npz"
        result = tvmc("run", package, "--inputs", tmp_path / "x.npz", "--outputs", out, "--verify", model)
        assert result.code == 0, result.err
        assert "verify output" in result.out and ": ok" in result.out
        with np.load(out) as y:
            assert_matches_onnxruntime(model, {"input": x}, [y["output"]])


def test_package_metadata(packages, tuned_cnn):
    model, tuned, untuned = packages
    meta = read_package(tuned).metadata
    assert [(i.name, i.shape) for i in meta.inputs] == [("input", (1, 3, 16, 16))]
    assert [(o.name, o.shape) for o in meta.outputs] == [("output", (1, 10))]
    assert meta.target["kind"] == "llvm" and meta.target["num-cores"] == 2
    assert meta.kernels == 6 and 1 <= meta.tuned_kernels <= 6
    assert meta.records_digest and len(meta.model_digest) == 64 and meta.tvm_version.startswith("0.27")
    assert read_package(untuned).metadata.tuned_kernels == 0 and read_package(untuned).metadata.records_digest is None


def test_package_loads_with_plain_tvm(packages, tmp_path):
    """What the README tells a user: untar, load_module, relax.VirtualMachine, without this project."""
    model, tuned, _ = packages
    with tarfile.open(tuned) as tar:
        tar.extractall(tmp_path, filter="data")
    x = np.random.default_rng(2).standard_normal((1, 3, 16, 16)).astype("float32")
    np.save(tmp_path / "x.npy", x)
    script = textwrap.dedent(
        f"""
        import sys, json, numpy as np
        sys.modules["tvmc_transfer"] = None  # prove the project is not needed
        import tvm
        from tvm import relax
        lib = tvm.runtime.load_module({str(tmp_path / "mod.so")!r})
        vm = relax.VirtualMachine(lib, tvm.cpu())
        meta = json.load(open({str(tmp_path / "metadata.json")!r}))
        x = np.load({str(tmp_path / "x.npy")!r})
        np.save({str(tmp_path / "y.npy")!r}, vm["main"](tvm.runtime.tensor(x)).numpy())
        print(meta["inputs"][0]["name"])
        """
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "input"
    assert_matches_onnxruntime(model, {"input": x}, [np.load(tmp_path / "y.npy")])


def test_run_prints_time_and_top(packages, tvmc):
    _, tuned, _ = packages
    result = tvmc("run", tuned, "--print-time", "--time-format", "line", "--repeat", "5", "--number", "3", "--print-top", "3", "--fill-mode", "ones")
    assert result.code == 0
    times = dict(zip(*[iter(result.out.split("execution time (ms): ")[1].split())] * 2))
    assert set(times) == {"mean", "median", "std", "min", "max"}
    assert 0 < float(times["min"]) <= float(times["median"]) <= float(times["max"])
    top = result.out.split("output top 3: ")[1].splitlines()[0]
    values = [float(part.split("] ")[1]) for part in top.split(", ")]
    assert values == sorted(values, reverse=True) and len(values) == 3


def test_fill_modes_feed_the_model(packages, tvmc, tmp_path):
    model, tuned, _ = packages
    for mode, make in (("zeros", np.zeros), ("ones", np.ones)):
        out = tmp_path / f"{mode}.npz"
        assert tvmc("run", tuned, "--fill-mode", mode, "--outputs", out).code == 0
        with np.load(out) as y:
            assert_matches_onnxruntime(model, {"input": make((1, 3, 16, 16), "float32")}, [y["output"]])


def test_verify_fails_on_a_mismatch(packages, tvmc, models, tmp_path):
    from tvmc_transfer.frontends import zoo

    _, tuned, _ = packages
    other_weights = zoo.save("tiny-cnn", str(tmp_path / "seed1.onnx"), seed=1)
    result = tvmc("run", tuned, "--verify", other_weights)
    assert result.code == 4 and result.err.startswith("Error: outputs output differ from ONNX Runtime")
    assert "MISMATCH" in result.out
    result = tvmc("run", tuned, "--verify", models["tiny-cnn-b"])  # other input shape
    assert result.code == 4 and "expects input 'input' of shape [1, 3, 24, 24]" in result.err


def test_wrong_inputs_are_one_line_errors(packages, tvmc, tmp_path):
    _, tuned, _ = packages
    np.savez(tmp_path / "bad_name.npz", image=np.zeros((1, 3, 16, 16), "float32"))
    np.savez(tmp_path / "bad_shape.npz", input=np.zeros((1, 3, 8, 8), "float32"))
    (tmp_path / "garbage.npz").write_bytes(b"nope")
    out = tmp_path / "y.npz"
    out.write_bytes(b"previous results")
    for inputs, message in [
        ("bad_name.npz", "unknown tensor(s) image; the model's inputs are: input"),
        ("bad_shape.npz", "has shape [1, 3, 8, 8], the model expects [1, 3, 16, 16]"),
        ("garbage.npz", "cannot read inputs"),
        ("missing.npz", "not found"),
    ]:
        result = tvmc("run", tuned, "--inputs", tmp_path / inputs, "--outputs", out)
        assert result.code == 4 and message in result.err and result.err.count("\n") == 1, result.err
    assert out.read_bytes() == b"previous results"  # nothing overwritten by a failed run


def test_bad_packages_are_one_line_errors(tvmc, tmp_path):
    assert "not found" in tvmc("run", tmp_path / "none.tar").err
    (tmp_path / "junk.tar").write_bytes(b"junk")
    result = tvmc("run", tmp_path / "junk.tar")
    assert result.code == 4 and "not a readable tvmc package" in result.err


def test_records_of_another_target_and_another_model_warn(tuned_cnn, models, tvmc, tmp_path, caplog):
    model, records = tuned_cnn
    out = tmp_path / "other.tar"
    result = tvmc("compile", model, "-o", out, "--tuning-records", records, "--target", "llvm -mcpu=skylake -num-cores=2")
    assert result.code == 0 and "0 of 7 kernels tuned" in result.out  # Skylake has AVX2: NHWC, the input transposed too
    assert "records are for another target and were ignored" in caplog.text
    result = tvmc("compile", models["tiny-cnn-b"], "-o", tmp_path / "b.tar", "--tuning-records", records, *TARGET)
    assert result.code == 0 and "the records match 0 of the model's 6 kernels" in caplog.text


def test_empty_or_corrupt_records_fail_without_writing(tuned_cnn, tvmc, tmp_path):
    model, _ = tuned_cnn
    out = tmp_path / "keep.tar"
    out.write_bytes(b"an older package")
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "database_workload.json").write_text("")
    (empty / "database_tuning_record.json").write_text("")
    corrupt = tmp_path / "corrupt"
    corrupt.mkdir()
    (corrupt / "database_workload.json").write_text("[[[broken\n")
    (corrupt / "database_tuning_record.json").write_text("x\n")
    for records, message in [(empty, "are empty"), (corrupt, "corrupt"), (tmp_path / "none", "holds no tuning records")]:
        result = tvmc("compile", model, "-o", out, "--tuning-records", records, *TARGET)
        assert result.code == 4 and message in result.err and result.err.count("\n") == 1, result.err
    assert out.read_bytes() == b"an older package"
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".tvmc-partial")]


def test_tune_compile_run_cli_in_a_fresh_process(models, tmp_path):
    """The console flow a user types, in real processes, ending in --verify against ONNX Runtime."""
    from conftest import run_cli

    model = models["tiny-mlp"]
    assert run_cli("tune", model, "-o", tmp_path / "r", "--trials", "8", *FAST_TUNE).code == 0
    assert run_cli("compile", model, "-o", tmp_path / "m.tar", "--tuning-records", tmp_path / "r", *TARGET).code == 0
    result = run_cli("run", tmp_path / "m.tar", "--verify", model, "--print-time")
    assert result.code == 0 and ": ok" in result.out, result.err
    meta = json.loads(tarfile.open(tmp_path / "m.tar").extractfile("metadata.json").read())
    assert meta["format"] == "tvmc-transfer-package"


def test_failed_records_are_never_applied(tuned_cnn, tvmc, tmp_path):
    """A database whose only records are failed builds (what stock MetaSchedule leaves on a 2-core machine)."""
    from tvm.s_tir import meta_schedule as ms

    from tvmc_transfer.records import open_database

    model, records = tuned_cnn
    failed = open_database(str(tmp_path / "failed"), create=True)
    for record in open_database(records).get_all_tuning_records():
        workload = failed.commit_workload(record.workload.mod)
        failed.commit_tuning_record(ms.database.TuningRecord(record.trace, workload, [1e10], record.target, record.args_info))
    result = tvmc("compile", model, "-o", tmp_path / "m.tar", "--tuning-records", tmp_path / "failed", *TARGET)
    assert result.code == 0 and "(0 of 6 kernels tuned)" in result.out
    assert tvmc("run", tmp_path / "m.tar", "--verify", model).code == 0
