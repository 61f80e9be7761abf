"""``PassesRunner``: a batch measured twice, the second time in reverse order; each candidate keeps its fastest
pass, and a candidate that failed its first pass is not run again. Real builds, real runs on this CPU."""

import tvm
from tvm import te
from tvm.ir.utils import derived_object
from tvm.s_tir import meta_schedule as ms
from tvm.s_tir.meta_schedule.runner import PyRunner

from tvmc_transfer.tune.measure import MeasureOptions
from tvmc_transfer.target import parse_target
from tvmc_transfer.tune.passes_runner import PassesRunner, done_future


@derived_object
class _Recording(PyRunner):
    """The real local runner, with every call's inputs and results written down."""

    def __init__(self, inner):
        super().__init__()
        self.inner, self.calls = inner, []

    def run(self, runner_inputs):
        results = [f.result() for f in self.inner.run(runner_inputs)]
        self.calls.append(([str(i.artifact_path) for i in runner_inputs], results))
        return [done_future(r) for r in results]


def _matmul(n: int):
    a = te.placeholder((n, n), name="A")
    b = te.placeholder((n, n), name="B")
    k = te.reduce_axis((0, n), "k")
    c = te.compute((n, n), lambda i, j: te.sum(a[i, k] * b[k, j], axis=k), name="C")
    return tvm.IRModule({"main": te.create_prim_func([a, b, c])})


def _mean(result):
    return sum(float(s) for s in result.run_secs) / len(result.run_secs)


def test_a_batch_is_measured_twice_in_alternating_order_and_keeps_each_fastest_pass():
    target = parse_target("llvm -num-cores=2")
    measure = MeasureOptions(number=2, repeat=2, min_repeat_ms=2)
    mods = [_matmul(n) for n in (32, 64, 96)]
    builder = measure.make_builder(target)
    try:
        built = builder.build([ms.builder.BuilderInput(m, target) for m in mods])
        assert all(b.error_msg is None for b in built), [b.error_msg for b in built]
        inputs = [ms.runner.RunnerInput(b.artifact_path, "cpu", ms.arg_info.ArgInfo.from_entry_func(m, remove_preproc=True)) for b, m in zip(built, mods)]
        missing = ms.runner.RunnerInput(str(built[0].artifact_path) + ".missing.so", "cpu", inputs[0].args_info)
        recording = _Recording(measure.make_runner())
        results = [f.result() for f in PassesRunner(recording, passes=2).run(inputs[:2] + [missing] + inputs[2:])]
    finally:
        builder.shutdown()
    paths = [str(i.artifact_path) for i in inputs]
    assert len(recording.calls) == 2
    first, second = recording.calls
    assert first[0] == [paths[0], paths[1], str(missing.artifact_path), paths[2]]
    assert second[0] == [paths[2], paths[1], paths[0]]  # reversed, without the one that failed
    assert results[2].error_msg is not None and results[2].run_secs is None
    for position, index in ((0, 0), (1, 1), (3, 2)):
        again = second[1][second[0].index(paths[index])]
        fastest = min(first[1][position], again, key=_mean)
        assert [float(s) for s in results[position].run_secs] == [float(s) for s in fastest.run_secs]
        assert results[position].error_msg is None and len(results[position].run_secs) == 2
    # the measurements are real: the 96x96 product takes longer than the 32x32 one
    assert _mean(results[3]) > _mean(results[0]) > 0


def test_one_pass_is_the_runner_itself_and_passes_below_one_are_refused():
    import pytest

    from tvmc_transfer.errors import TVMCException

    assert not isinstance(MeasureOptions().make_runner(), PassesRunner)
    assert isinstance(MeasureOptions(passes=3).make_runner(), PassesRunner)
    with pytest.raises(TVMCException, match="--passes must be at least 1"):
        MeasureOptions(passes=0)
