"""What a tvmc 0.19 user types by habit: -v after the command, exit codes, flat --config files, the --print-time
table, -i/-o on run, --rpc-tracker without a port, and clear errors for an unknown -mcpu and BYOC targets."""

import json
import logging

import numpy as np
import pytest

from conftest import assert_matches_onnxruntime, run_cli
from tvmc_transfer import main as driver
from tvmc_transfer.build.package import read_package
from tvmc_transfer.cli.driver import build_parser, read_config

TARGET = ["--target", "llvm -num-cores=2"]


@pytest.fixture(scope="module")
def package(models, tmp_path_factory):
    path = str(tmp_path_factory.mktemp("habits") / "cnn.tar")
    assert driver._main(["compile", models["tiny-cnn"], "-o", path, *TARGET]) == 0
    return models["tiny-cnn"], path


def test_verbose_after_the_command(tvmc):
    logger = logging.getLogger("tvmc")
    level = logger.level
    try:
        assert tvmc("zoo", "list", "-v").code == 0
        assert logger.level == logging.INFO
        assert tvmc("zoo", "list", "-vv").code == 0
        assert logger.level == logging.DEBUG
    finally:
        logger.setLevel(level)


def test_usage_errors_exit_2_and_user_errors_4(tmp_path):
    usage = run_cli("compile", "m.onnx", "--no-such-flag")
    assert usage.code == 2 and usage.err.count("\n") == 1 and usage.err.startswith("Error: unrecognized arguments")
    assert run_cli("compile", "m.onnx", "--desired-layout", "NCWH").code == 2  # not a choice
    user = run_cli("compile", tmp_path / "missing.onnx")
    assert user.code == 4 and user.err.count("\n") == 1 and "not found" in user.err


def test_tvmc_019_flat_config_file(models, tvmc, tmp_path):
    """0.19's flat file: targets, executor and runtime that map onto the Relax VM, pass-config, opt-level."""
    config = tmp_path / "config.json"
    config.write_text(json.dumps({
        "targets": [{"kind": "llvm", "num-cores": 2}],
        "executor": {"kind": "graph"},
        "runtime": {"kind": "cpp"},
        "pass-config": {"tir.disable_assert": True},
        "opt-level": 2,
    }))
    args = build_parser(read_config(["--config", str(config)])).parse_args(["compile", "m.onnx"])
    assert (args.target, args.pass_config, args.opt_level) == ("llvm -num-cores=2", ["tir.disable_assert=true"], 2)
    out = tmp_path / "p.tar"
    result = tvmc("--config", config, "compile", models["tiny-cnn"], "-o", out, "--dump-code", "ll")
    assert result.code == 0, result.err
    assert read_package(str(out)).metadata.target["num-cores"] == 2
    assert "assert_fail" not in (tmp_path / "p.tar.ll").read_text()  # the config's pass-config applied
    x = np.random.default_rng(0).standard_normal((1, 3, 16, 16)).astype("float32")
    np.savez(tmp_path / "x.npz", input=x)
    assert tvmc("run", out, "-i", tmp_path / "x.npz", "-o", tmp_path / "y.npz").code == 0
    with np.load(tmp_path / "y.npz") as y:
        assert_matches_onnxruntime(models["tiny-cnn"], {"input": x}, [y["output"]])

    config.write_text(json.dumps({"targets": [{"kind": "llvm"}], "executor": {"kind": "aot"}}))
    result = tvmc("--config", config, "compile", models["tiny-cnn"])
    assert result.code == 4 and result.err.count("\n") == 1 and "executor 'aot' has no counterpart" in result.err
    config.write_text(json.dumps({"no-such-option": 1}))
    result = tvmc("--config", config, "zoo", "list")
    assert result.code == 4 and "no command has: no_such_option" in result.err


def test_print_time_is_the_019_table(package, tvmc):
    from tvm.runtime.module import BenchmarkResult

    _, path = package
    result = tvmc("run", path, "--print-time", "--repeat", "3", "--number", "2")
    assert result.code == 0, result.err
    lines = result.out.splitlines()
    expected = str(BenchmarkResult([0.001, 0.002, 0.003])).splitlines()
    assert lines[:2] == expected[:2]  # the title and the header scripts look for
    mean, median, maximum, minimum, std = map(float, lines[2].split())
    assert 0 < minimum <= median <= maximum and minimum <= mean <= maximum and std >= 0
    assert len(lines[2]) == len(expected[2])  # same column widths and trailing blanks
    line = tvmc("run", path, "--print-time", "--time-format", "line", "--repeat", "3")
    assert line.code == 0 and line.out.startswith("execution time (ms): mean ")


def test_rpc_tracker_without_a_port_is_9090():
    from tvmc_transfer.errors import TVMCException
    from tvmc_transfer.tune.measure import MeasureOptions
    from tvmc_transfer.run.remote import parse_tracker

    assert parse_tracker("10.0.0.5") == ("10.0.0.5", 9090)
    assert parse_tracker("board.local:9191") == ("board.local", 9191)
    config = MeasureOptions(rpc_tracker="127.0.0.1", rpc_key="k").rpc_config()
    assert (config.tracker_host, config.tracker_port) == ("127.0.0.1", 9090)
    for bad in ("host:port", ":9090", "host:70000"):
        with pytest.raises(TVMCException, match="must be HOST or HOST:PORT"):
            parse_tracker(bad)


def test_invalid_mcpu_is_an_error_naming_valid_ones(models, tvmc, tmp_path):
    result = tvmc("compile", models["tiny-mlp"], "--target", "llvm -mcpu=skylak", "-o", tmp_path / "x.tar")
    assert result.code == 4 and result.err.count("\n") == 1
    assert "-mcpu=skylak is not a CPU LLVM knows" in result.err and "did you mean skylake" in result.err
    result = tvmc("compile", models["tiny-mlp"], "--target", "llvm -mtriple=aarch64-linux-gnu -mcpu=znver3", "-o", tmp_path / "x.tar")
    assert result.code == 4 and "for aarch64-linux-gnu" in result.err and "cortex-a72" in result.err
    assert not (tmp_path / "x.tar").exists()


@pytest.mark.parametrize("target", ["compute-library, llvm", "ethos-n, llvm", "cmsis-nn"])
def test_byoc_targets_say_they_are_not_in_this_build(models, tvmc, tmp_path, target):
    result = tvmc("compile", models["tiny-mlp"], "--target", target, "-o", tmp_path / "x.tar")
    assert result.code == 4 and result.err.count("\n") == 1
    assert "BYOC codegens are not in this TVM build" in result.err and target.split(",")[0] in result.err
