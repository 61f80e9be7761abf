"""Where a transfer's search time goes: the reference runs, replay, ranking, checks, and measuring, timed.

Transfers SOURCE's records onto TARGET (zoo models) for ``--time-limit`` seconds, as ``tvmc transfer`` does,
and prints the seconds and calls of each step of ``transfer/kernel.py`` as a ``TransferObserver`` sees them
(nothing in the product changes). Measuring a batch is its build, its checks on the built libraries and its
runs (every pass); a check compiled here runs in a thread beside the builds, so the rows can add up to more
than the kernels' time.

    python bench/transfer_time_split.py googlenet:resnet50 --records-tag znver3-nhwc --lowering product --time-limit 100
"""

import argparse
import collections
import os
import shutil
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import add_transfer_pair_arguments, lowering_of, model_file, tagged_records  # noqa: E402
from tvmc_transfer import load_model, parse_target  # noqa: E402
from tvmc_transfer.transfer import TransferObserver, TransferOptions, transfer_tune  # noqa: E402


class StepTimes(TransferObserver):
    """Seconds and calls of each step, summed over the kernels."""

    STEPS = {
        "reference": "reference (compile, run the unscheduled kernel)",
        "replay": "replay and post-process every candidate",
        "rank": "rank by the cost model",
        "measure": "measure the batches (build, check, run every pass)",
        "library check": "  of it, check on the built library",
        "compiled check": "  of it, check by compiling here (in a thread)",
    }

    def __init__(self):
        self.seconds, self.calls = collections.Counter(), collections.Counter()

    def add(self, step: str, seconds: float) -> None:
        self.seconds[step] += seconds
        self.calls[step] += 1

    def reference_ran(self, task, seconds):
        self.add("reference", seconds)

    def replayed(self, task, replayed, context, seconds):
        self.add("replay", seconds)

    def ranked(self, task, order, seconds):
        self.add("rank", seconds)

    def checked(self, task, candidate, correct, seconds, on_library):
        self.add("library check" if on_library else "compiled check", seconds)

    def measured(self, task, batch, seconds_each, seconds):
        self.add("measure", seconds)

    def table(self) -> str:
        return "\n".join(f"  {label:52s} {self.seconds[step]:7.1f} s  {self.calls[step]:4d} calls"
                         for step, label in self.STEPS.items() if self.calls[step])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_transfer_pair_arguments(parser, "transfer-time-split")
    parser.add_argument("--time-limit", type=float, default=100.0, help="no kernel is started after it (seconds)")
    args = parser.parse_args()
    source, target_model = args.pair.split(":")
    output = os.path.join(args.work, f"{source}-to-{target_model}")
    shutil.rmtree(output, ignore_errors=True)
    steps = StepTimes()
    start = time.time()
    report = transfer_tune(load_model(model_file(target_model, args.work)), parse_target(args.target), [tagged_records(args, source)], output,
                           TransferOptions(e2e=False, time_limit=args.time_limit, lowering=lowering_of(args), use_library=False), observer=steps)
    wall = time.time() - start
    done = [k for k in report.kernels if k.search_seconds]
    print(f"{args.pair}: {len(done)} kernels, {sum(k.measured for k in done)} candidates measured in {wall:.1f} s "
          f"({sum(k.search_seconds for k in done):.1f} s in the kernels)")
    print(steps.table())


if __name__ == "__main__":
    main()
