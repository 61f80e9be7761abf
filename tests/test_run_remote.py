"""``tvmc run`` on a device behind an RPC tracker, with --device, --end-to-end and --profile; outputs checked
against ONNX Runtime."""

import numpy as np
import pytest

from conftest import assert_matches_onnxruntime
from tvmc_transfer.main import _main

TARGET = ["--target", "llvm -num-cores=2"]


@pytest.fixture(scope="module")
def package(models, tmp_path_factory):
    path = str(tmp_path_factory.mktemp("remote") / "cnn.tar")
    assert _main(["compile", models["tiny-cnn"], "-o", path, *TARGET]) == 0
    return models["tiny-cnn"], path


@pytest.fixture(scope="module")
def rpc_device():
    """A real RPC tracker and a server registered under 'tvmc-run' on 127.0.0.1: ``host:port`` of the tracker."""
    from tvm.rpc.server import Server
    from tvm.rpc.tracker import Tracker

    tracker = Tracker(host="127.0.0.1", port=9190, port_end=9290, silent=True)
    server = Server(host="127.0.0.1", port=9300, port_end=9400, key="tvmc-run", tracker_addr=("127.0.0.1", tracker.port), silent=True)
    yield f"127.0.0.1:{tracker.port}"
    server.terminate()
    tracker.terminate()


def write_input(tmp_path, seed=0):
    x = np.random.default_rng(seed).standard_normal((1, 3, 16, 16)).astype("float32")
    np.savez(tmp_path / "x.npz", input=x)
    return x


def test_run_through_an_rpc_tracker(package, rpc_device, tvmc, tmp_path):
    model, path = package
    x = write_input(tmp_path)
    result = tvmc("run", path, "--rpc-tracker", rpc_device, "--rpc-key", "tvmc-run", "--device", "cpu",
                  "-i", tmp_path / "x.npz", "-o", tmp_path / "y.npz", "--print-time", "--repeat", "3", "--verify", model)
    assert result.code == 0, result.err
    assert result.out.startswith("Execution time summary:") and ": ok" in result.out
    with np.load(tmp_path / "y.npz") as y:
        assert_matches_onnxruntime(model, {"input": x}, [y["output"]])


def test_end_to_end_timing_remote_and_local(package, rpc_device, tvmc, tmp_path):
    model, path = package
    x = write_input(tmp_path, seed=1)
    for where in (["--rpc-tracker", rpc_device, "--rpc-key", "tvmc-run"], []):
        result = tvmc("run", path, *where, "--end-to-end", "--print-time", "--time-format", "line", "--repeat", "3",
                      "-i", tmp_path / "x.npz", "-o", tmp_path / "y.npz")
        assert result.code == 0, result.err
        median = float(result.out.split("median ")[1].split()[0])
        assert median > 0
        with np.load(tmp_path / "y.npz") as y:
            assert_matches_onnxruntime(model, {"input": x}, [y["output"]])


def test_profile_names_every_kernel(package, tvmc, tmp_path):
    model, path = package
    result = tvmc("run", path, "--profile", "--repeat", "4", "--verify", model)
    assert result.code == 0, result.err
    table = result.out.split("verify")[0].splitlines()
    assert table[0].split() == ["name", "calls", "time", "(ms)", "percent"]
    rows = {line.split()[0]: line.split()[1:] for line in table[1:]}
    kernels = [name for name in rows if name.startswith("fused_conv2d")]
    assert len(kernels) == 2 and "max_pool2d" in rows and "total" in rows  # tiny-cnn's two convolutions, by name
    assert all(int(rows[k][0]) == 1 for k in kernels)  # each kernel once per inference
    shares = [float(v[2].rstrip("%")) for name, v in rows.items() if name != "total"]
    assert abs(sum(shares) - 100.0) < 0.1 and all(float(v[1]) >= 0 for v in rows.values())
    assert ": ok" in result.out


def test_run_place_mistakes_are_one_line(package, rpc_device, tvmc):
    _, path = package
    for args, message in [
        (["--profile", "--rpc-tracker", rpc_device, "--rpc-key", "tvmc-run"], "--profile runs on this machine"),
        (["--device", "cuda"], "this machine has no 'cuda' device"),
        (["--rpc-key", "tvmc-run"], "--rpc-key needs --rpc-tracker"),
        (["--rpc-tracker", rpc_device], "--rpc-tracker needs --rpc-key"),
        (["--rpc-tracker", "127.0.0.1:1", "--rpc-key", "tvmc-run"], "no RPC tracker answers at 127.0.0.1:1"),
    ]:
        result = tvmc("run", path, *args)
        assert result.code == 4 and message in result.err and result.err.count("\n") == 1, result.err
