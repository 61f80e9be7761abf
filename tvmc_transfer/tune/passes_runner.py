"""A runner that measures a batch more than once, in alternating order, and keeps each candidate's fastest pass.

MetaSchedule's runners take a candidate's samples back to back. On a shared host the machine can slow down for
seconds at a time while the samples of each run stay close to each other (BENCHMARKS, "Figures moved out of the code"), so a slow spell marks a good candidate slow with full confidence, and whatever
decides on the measurements (a transfer's stopping rule, a droplet t-test, the best record kept) is misled.
``PassesRunner`` runs the batch's built candidates ``passes`` times, the second pass in reverse order, so a
candidate's two measurements lie a batch's run time apart, and returns for each the samples of its fastest pass:
a slow spell can only make a candidate look slow if it lasts through every pass. A candidate whose first pass
fails is not run again.
"""

from tvm.ir.utils import derived_object
from tvm.s_tir.meta_schedule.runner import PyRunner, RunnerResult
from tvm.s_tir.meta_schedule.runner.local_runner import LocalRunnerFuture

from ..records.database import run_samples


def _mean(result: RunnerResult):
    """Mean seconds of a successful run; None for a failed one (an error, or MetaSchedule's failure sentinel)."""
    secs = run_samples(result.run_secs) if result.error_msg is None else None
    return sum(secs) / len(secs) if secs else None


def done_future(result: RunnerResult) -> LocalRunnerFuture:
    """A finished future holding ``result``: what a runner returns for a result it already has."""
    if result.error_msg is not None:
        return LocalRunnerFuture(res=None, error_message=str(result.error_msg))
    return LocalRunnerFuture(res=[float(s) for s in result.run_secs])


@derived_object
class PassesRunner(PyRunner):
    """``inner`` runner, called ``passes`` times per batch; each candidate's result is its fastest pass."""

    def __init__(self, inner, passes: int = 2):
        super().__init__()
        self.inner, self.passes = inner, passes

    def run(self, runner_inputs):
        best = [f.result() for f in self.inner.run(runner_inputs)]
        for number in range(1, self.passes):
            again = [i for i, r in enumerate(best) if _mean(r) is not None]
            if number % 2:
                again.reverse()
            for i, future in zip(again, self.inner.run([runner_inputs[i] for i in again])):
                result = future.result()
                mean = _mean(result)
                if mean is not None and mean < _mean(best[i]):
                    best[i] = result
        return [done_future(r) for r in best]
