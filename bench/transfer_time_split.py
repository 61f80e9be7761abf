"""Where a transfer's search time goes: the reference runs, replay, ranking, checks, builds and runs, timed.

Transfers SOURCE's records onto TARGET (zoo models) for ``--time-limit`` seconds, as ``tvmc transfer`` does,
with timers around the steps of ``transfer/kernel.py`` (wrapped here; nothing in the product changes), and
prints the seconds and calls of each. The steps overlap where transfer overlaps them (a check compiled in a
thread while the builder builds), so the rows can add up to more than the wall time.

    python bench/transfer_time_split.py googlenet:resnet50 --records-tag znver3-nhwc --lowering product --time-limit 100
"""

import argparse
import collections
import functools
import os
import shutil
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import add_folder_arguments, add_lowering_argument, add_records_tag_argument, lowering_of, model_file, tagged_records  # noqa: E402


def timed(owner, name: str, label: str, seconds, calls, wait=False) -> None:
    """Wrap ``owner.name`` so that its calls add to ``seconds[label]`` (``wait``: it returns futures; wait for them)."""
    original = getattr(owner, name, None)
    if original is None:  # an older tvmc_transfer (PYTHONPATH) without this step
        return

    @functools.wraps(original)
    def wrapper(*args, **kwargs):
        start = time.time()
        result = original(*args, **kwargs)
        if wait:
            for future in result:
                future.result()
        seconds[label] += time.time() - start
        calls[label] += 1
        return result

    setattr(owner, name, wrapper)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("pair", help="SOURCE:TARGET zoo models, e.g. googlenet:resnet50")
    parser.add_argument("--target", default="native")
    add_records_tag_argument(parser)
    parser.add_argument("--time-limit", type=float, default=100.0, help="no kernel is started after it (seconds)")
    add_lowering_argument(parser)
    add_folder_arguments(parser, "transfer-time-split", records=True)
    args = parser.parse_args()

    from tvm.s_tir.meta_schedule.runner import LocalRunner

    from tvmc_transfer.frontends.load import load_model
    from tvmc_transfer.target import parse_target
    from tvmc_transfer.kernels import check
    from tvmc_transfer.transfer import TransferOptions, kernel, transfer_tune
    from tvmc_transfer.tune.builder import PersistentBuilder

    seconds, calls = collections.Counter(), collections.Counter()
    for owner, name, label in [
        (check.KernelCheck, "__init__", "reference (compile, run the unscheduled kernel)"),
        (kernel, "replay_candidates", "replay and post-process every candidate"),
        (kernel, "_ranking", "rank by the cost model"),
        (check.KernelCheck, "error", "check by compiling here"),
        (check.KernelCheck, "library_error", "check on the built library"),
        (PersistentBuilder, "build", "build (2 workers)"),
    ]:
        timed(owner, name, label, seconds, calls)
    timed(LocalRunner, "run", "run (every pass)", seconds, calls, wait=True)
    source, target_model = args.pair.split(":")
    output = os.path.join(args.work, f"{source}-to-{target_model}")
    shutil.rmtree(output, ignore_errors=True)
    start = time.time()
    report = transfer_tune(load_model(model_file(target_model, args.work)), parse_target(args.target),
                           [tagged_records(args, source)], output,
                           TransferOptions(e2e=False, time_limit=args.time_limit, lowering=lowering_of(args), use_library=False))
    wall = time.time() - start
    done = [k for k in report.kernels if k.search_seconds]
    print(f"{args.pair}: {len(done)} kernels, {sum(k.measured for k in done)} candidates measured in {wall:.1f} s "
          f"({sum(k.search_seconds for k in done):.1f} s in the kernels)")
    for label, total in seconds.most_common():
        print(f"  {label:50s} {total:7.1f} s  {calls[label]:4d} calls")


if __name__ == "__main__":
    main()
