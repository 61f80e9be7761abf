"""Measuring on a fleet: a real RPC tracker and real ``python -m tvm.exec.rpc_server`` processes on 127.0.0.1.

A server killed mid-tune costs no record and no run; a tracker or a key that is not there is an ``Error:`` within
seconds; a tracker that dies mid-run ends the run with one, the records kept.
"""

import json
import os
import signal
import subprocess
import sys
import time
from datetime import datetime

import numpy as np
import pytest

from conftest import FAST_TUNE, assert_matches_onnxruntime, run_cli
from tvmc_transfer.records import TUNING_RECORDS
from tvmc_transfer.records.database import run_samples
from tvmc_transfer.run.remote import server_keys, tracker_summary

KEY = "tvmc-fleet"
# Candidates that take a while to measure (repeat x 300 ms), so that a server killed after it loads one is killed
# in the middle of measuring it.
SLOW_MEASURE = ["--min-repeat-ms", "300", "--repeat", "2"]


def start(log, *args):
    """A ``python -m tvm.exec.*`` process logging to the file ``log``, in its own process group: TVM's tracker and
    server each do their work in a child process, and killing the group is a device going away."""
    command = [sys.executable, "-u", "-m", *map(str, args)]
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=open(log, "w"), start_new_session=True)
    proc.log = str(log)
    return proc


def kill(proc):
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


def log_lines(proc, text: str) -> list:
    with open(proc.log) as f:
        return [line for line in f if text in line]


def wait_for_line(proc, text: str, timeout: float = 60.0) -> str:
    deadline = time.monotonic() + timeout
    while not log_lines(proc, text):
        assert proc.poll() is None and time.monotonic() < deadline, f"{proc.args}: no '{text}' in its log"
        time.sleep(0.05)
    return log_lines(proc, text)[0]


def start_tracker(folder):
    """A tracker on a free port of 9190-9289: ``(process, port)`` (it logs ``bind to HOST:PORT``)."""
    tracker = start(folder / "tracker.log", "tvm.exec.rpc_tracker", "--host", "127.0.0.1", "--port", 9190, "--port-end", 9290)
    return tracker, int(wait_for_line(tracker, "bind to").rsplit(":", 1)[1])


def start_server(folder, name, tracker_port: int, key: str = KEY):
    return start(folder / f"{name}.log", "tvm.exec.rpc_server", "--host", "127.0.0.1", "--port", 9300, "--port-end", 9400,
                 "--tracker", f"127.0.0.1:{tracker_port}", "--key", key)


def wait_for_servers(tracker_port: int, count: int, key: str = KEY) -> None:
    deadline = time.monotonic() + 60
    while server_keys(tracker_summary("127.0.0.1", tracker_port)).count(key) < count:
        assert time.monotonic() < deadline, "the servers did not register with the tracker"
        time.sleep(0.2)


def sessions(proc) -> list:
    """The (start, end) times of the sessions a server finished serving, from its log."""
    stamp = lambda line: datetime.strptime(" ".join(line.split()[:2]), "%Y-%m-%d %H:%M:%S.%f")  # noqa: E731
    starts = [stamp(line) for line in log_lines(proc, "connected from")]
    ends = [stamp(line) for line in log_lines(proc, "finish serving")]
    return list(zip(starts, ends))


def kill_while_measuring(victim, records, at_least: int, watch=None) -> list:
    """Once ``records`` holds ``at_least`` lines, SIGKILL ``victim`` as soon as the server ``watch`` (default: the
    victim) loads a candidate to measure, which then takes 0.6 s or more: the record lines there were then."""
    watch = watch or victim
    deadline = time.monotonic() + 240
    seen = len(log_lines(watch, "load_module"))
    while time.monotonic() < deadline:
        loads = len(log_lines(watch, "load_module"))
        if loads > seen and len(record_lines(records)) >= at_least:
            before = record_lines(records)
            kill(victim)
            return before
        seen = loads
        time.sleep(0.02)
    raise AssertionError("the server measured nothing after the first records")


def record_lines(folder) -> list:
    path = os.path.join(folder, TUNING_RECORDS)
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [line for line in f if line.strip()]


def tune_command(model, records, tracker_port, *extra):
    return [sys.executable, "-m", "tvmc_transfer", "tune", model, "-o", records, *FAST_TUNE, "--rpc-tracker",
            f"127.0.0.1:{tracker_port}", "--rpc-key", KEY, *extra]


def test_a_server_killed_mid_tune_costs_no_record(models, tmp_path):
    """Two servers measure at once; one is SIGKILLed while it measures a candidate. That candidate is measured
    again on the other, the run completes with every trial, every record line written before the kill is still
    there, and the package compiled with the records matches ONNX Runtime (run on the surviving server)."""
    from tvmc_transfer import compile_model, load_model, parse_target
    from tvmc_transfer.run.remote import Remote
    from tvmc_transfer.run.module import RunPlace, run_module

    tracker, port = start_tracker(tmp_path)
    servers = [start_server(tmp_path, "server-1", port), start_server(tmp_path, "server-2", port)]
    try:
        wait_for_servers(port, 2)
        records, out, err = str(tmp_path / "records"), tmp_path / "tune.out", tmp_path / "tune.err"
        command = tune_command(models["tiny-cnn"], records, port, "--trials", "20", *SLOW_MEASURE)
        tune = subprocess.Popen(command, stdout=open(out, "w"), stderr=open(err, "w"))
        try:
            before = kill_while_measuring(servers[0], records, at_least=6)  # the defaults' records are in
            tune.wait(timeout=300)
        finally:
            tune.kill()
        out, err = out.read_text(), err.read_text()
        assert tune.returncode == 0, err
        assert "a server was lost while measuring a candidate" in err and "lost its server twice" not in err
        after = record_lines(records)
        assert len(before) >= 6 and after[: len(before)] == before  # nothing written before the kill was lost
        assert len(after) == 20 and "20 new trials" in out
        # both servers measured, at the same time: a session of one began while one of the other was under way
        first, second = sessions(servers[0]), sessions(servers[1])
        assert any(a0 < b1 and b0 < a1 for a0, a1 in first for b0, b1 in second)

        model, target = load_model(models["tiny-cnn"]), parse_target("llvm -num-cores=2")
        package = str(tmp_path / "cnn.tar")
        compile_model(model, target, package, records=records)
        inputs = {i.name: np.random.default_rng(0).standard_normal(i.shape).astype(i.dtype) for i in model.inputs}
        place = RunPlace(remote=Remote(f"127.0.0.1:{port}", KEY))  # the tracker hands out the survivor
        assert_matches_onnxruntime(models["tiny-cnn"], inputs, list(run_module(package, inputs, place=place).outputs.values()))
    finally:
        for proc in [*servers, tracker]:
            kill(proc)


def test_no_tracker_listening_is_an_error_within_seconds(models, tmp_path):
    start = time.monotonic()
    result = run_cli("tune", models["tiny-mlp"], "-o", tmp_path / "records", "--trials", "4", "--rpc-tracker", "127.0.0.1:1", "--rpc-key", KEY)
    assert result.code != 0 and result.err.startswith("Error: no RPC tracker answers at 127.0.0.1:1")
    assert "python -m tvm.exec.rpc_tracker" in result.err and result.err.count("\n") == 1
    assert time.monotonic() - start < 60  # TVM alone retried forever (the limit is generous for a loaded machine)
    assert not os.path.exists(tmp_path / "records")


@pytest.mark.parametrize("command", ["tune", "transfer"])
def test_a_key_no_server_has_is_an_error_naming_it(models, tmp_path, command):
    tracker, port = start_tracker(tmp_path)
    server = start_server(tmp_path, "server", port, key="other-board")
    try:
        wait_for_servers(port, 1, key="other-board")
        result = run_cli(command, models["tiny-mlp"], "-o", tmp_path / "records", "--rpc-tracker", f"127.0.0.1:{port}", "--rpc-key", KEY)
        assert result.code != 0 and result.err.count("\n") == 1, result.err
        assert f"no RPC server is registered under the key '{KEY}'" in result.err and "other-board" in result.err
        assert f"python -m tvm.exec.rpc_server --tracker 127.0.0.1:{port} --key {KEY}" in result.err
        assert not os.path.exists(tmp_path / "records")
    finally:
        kill(server)
        kill(tracker)


def test_a_tracker_that_dies_mid_tune_ends_the_run_with_the_records_kept(models, tmp_path):
    """The sessions under way finish on their servers; the next candidate gets no server, and the run ends with an
    ``Error:`` instead of recording every later candidate as failed."""
    tracker, port = start_tracker(tmp_path)
    server = start_server(tmp_path, "server", port)
    try:
        wait_for_servers(port, 1)
        records, err = str(tmp_path / "records"), tmp_path / "tune.err"
        command = tune_command(models["tiny-cnn"], records, port, "--trials", "16", *SLOW_MEASURE)
        tune = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=open(err, "w"))
        try:
            kept = kill_while_measuring(tracker, records, at_least=6, watch=server)
            tune.wait(timeout=120)
        finally:
            tune.kill()
        err = err.read_text()
        assert tune.returncode == 4 and err.strip().splitlines()[-1].startswith("Error: lost the fleet while measuring"), err
        assert "run the same command again" in err
        after = record_lines(records)
        assert after[: len(kept)] == kept and all(run_samples(json.loads(line)[1][1]) for line in after)  # no failed record
    finally:
        kill(server)
        kill(tracker)
