"""A candidate that crashes or hangs the runner is recorded as failed and measuring goes on: real kernels that
abort, segfault or never return, built and run by the builder and runner that tuning uses."""

import logging

import tvm
from tvm.script import tirx as T

from tvmc_transfer.tune.measure import MeasureOptions, measure_modules
from tvmc_transfer.target import parse_target


@T.prim_func
def _double(a: T.Buffer((256,), "float32"), b: T.Buffer((256,), "float32")):
    for i in range(256):
        b[i] = a[i] * T.float32(2)


@T.prim_func
def _aborts(a: T.Buffer((256,), "float32"), b: T.Buffer((256,), "float32")):
    T.evaluate(T.call_extern("int32", "abort"))
    for i in range(256):
        b[i] = a[i]


@T.prim_func
def _segfaults(a: T.Buffer((256,), "float32"), b: T.Buffer((256,), "float32")):
    T.evaluate(T.call_extern("int32", "raise", 11))  # SIGSEGV, as a wild pointer would
    for i in range(256):
        b[i] = a[i]


@T.prim_func
def _never_returns(a: T.Buffer((256,), "float32"), b: T.Buffer((256,), "float32")):
    while a[0] == a[0] or a[0] != a[0]:  # always true, NaN included; the store keeps the loop
        b[0] = b[0] + T.float32(1)


def test_crashing_and_hanging_candidates_fail_and_the_others_are_measured(caplog):
    target = parse_target("llvm -num-cores=2")
    measure = MeasureOptions(number=2, repeat=2, min_repeat_ms=1, timeout=5)
    mods = [tvm.IRModule({"main": f}) for f in (_double, _aborts, _segfaults, _never_returns, _double)]
    builder, runner = measure.make_builder(target), measure.make_runner()
    try:
        with caplog.at_level(logging.DEBUG, logger="tvmc"):
            first = measure_modules(builder, runner, target, mods)
        after = measure_modules(builder, runner, target, mods[:1])  # the same runner, after the crashes
    finally:
        builder.shutdown()
    secs = [s for s, _ in first]
    assert [s is None for s in secs] == [False, True, True, True, False]
    assert all(len(s) == 2 and all(0 < x < 1 for x in s) for s in (secs[0], secs[4], after[0][0]))
    # each failed in running (not in building), the hang by the runner's timeout; each was tried twice
    failures = [r.getMessage() for r in caplog.records]
    assert not any("failed to build" in line for line in failures)
    for index, reason in ((1, "An exception occurred"), (2, "An exception occurred"), (3, "Timeout")):
        assert sum(line.startswith(f"module {index} failed to run") and reason in line for line in failures) == 2, failures
