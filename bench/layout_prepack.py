"""Lowerings side by side: a model's heaviest kernels tuned under each for the same trials.

The arms (``--arms``, the first is the reference) are ways to lower the model: ``plain`` (``--no-weight-prepack``),
``prepack`` (``--weight-prepack``, the CPU default), ``nhwc`` (prepacked, ``--desired-layout NHWC``) and
``nhwc-plain``. They are tuned in alternating rounds of ``--trials-per-round`` trials per kernel, so all see the
same machine load; after each round it prints each arm's best measured time per kernel, and at the end it times
each arm's best schedule per kernel again in interleaved rounds in this process (with prepacking, the kernel as
the package runs it: weights already in their rewritten layout) and prints the per-kernel ratios to the first
arm and the ratio of the weighted sums. The kernels are the same convolutions in every arm: the heaviest by
weighted FLOPs. Resumable: the records live in ``WORK/<model>/<arm>``; a second run only times again.

    python bench/layout_prepack.py --model resnet50 --kernels 2 --rounds 3 --trials-per-round 16 --population 128
    python bench/layout_prepack.py --model resnet50 --arms prepack nhwc --kernels 4
"""

import argparse
import os
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import model_file  # noqa: E402
from droplet_bench import time_kernels  # noqa: E402
from tvmc_transfer.frontends.load import load_model  # noqa: E402
from tvmc_transfer.build.lowering import Lowering  # noqa: E402
from tvmc_transfer.tune.measure import MeasureOptions  # noqa: E402
from tvmc_transfer.records import open_database  # noqa: E402
from tvmc_transfer.target import parse_target  # noqa: E402
from tvmc_transfer.build.tasks import extract_tasks  # noqa: E402
from tvmc_transfer.tune.model import TuneOptions, task_results, tune_model  # noqa: E402

# arm -> lowering
ARMS = {
    "plain": Lowering(weight_prepack=False, layout="NCHW"),
    "prepack": Lowering(weight_prepack=True, layout="NCHW"),
    "nhwc": Lowering(weight_prepack=True, layout="NHWC"),
    "nhwc-plain": Lowering(weight_prepack=False, layout="NHWC"),
}


def heaviest(tasks, k: int) -> list:
    """The ``k`` kernels with the most weighted FLOPs, heaviest first (the same kernels under either lowering:
    prepacking changes a kernel's attributes and name suffix, not its computation)."""
    return sorted(tasks, key=lambda t: (-t.flops * t.weight, re.sub(r"\d+$", "", t.name)))[:k]


def best_line(label: str, chosen: list, folder: str) -> str:
    results = task_results(chosen, open_database(folder)) if os.path.exists(folder) else ()
    cells = [f"{r.name}: {r.best_seconds * 1e6:.0f} us ({r.trials})" if r.best_seconds else f"{r.name}: -" for r in results]
    return f"  {label:<8} " + "; ".join(cells)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="resnet50", help="zoo model name or .onnx file")
    parser.add_argument("--arms", nargs="+", choices=list(ARMS), default=["plain", "prepack"], help="lowerings compared, the first the reference")
    parser.add_argument("--kernels", type=int, default=2, help="heaviest kernels to tune (default 2)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--trials-per-round", type=int, default=16, help="trials per kernel per round")
    parser.add_argument("--population", type=int, default=128)
    parser.add_argument("--target", default="native")
    parser.add_argument("--timing-rounds", type=int, default=15, help="interleaved re-timing rounds at the end")
    parser.add_argument("--work", default=os.path.expanduser("~/.cache/tvmc-transfer-bench/layout-prepack"))
    args = parser.parse_args()

    name = os.path.basename(args.model).removesuffix(".onnx")
    work = os.path.join(args.work, name)
    os.makedirs(work, exist_ok=True)
    start = time.time()
    model, target = load_model(model_file(args.model, work)), parse_target(args.target)
    chosen = {arm: heaviest(extract_tasks(model, target, ARMS[arm]), args.kernels) for arm in args.arms}
    folders = {arm: os.path.join(work, arm) for arm in args.arms}
    first = args.arms[0]
    for t in chosen[first]:
        print(f"kernel {t.name}: {t.flops / 1e6:.1f} MFLOP x {t.weight}")
    wall = dict.fromkeys(args.arms, 0.0)
    for r in range(1, args.rounds + 1):
        print(f"round {r}: best measured during tuning (trials)")
        for arm in args.arms:
            options = TuneOptions(
                trials=r * args.trials_per_round * args.kernels,
                trials_per_iter=args.trials_per_round,
                tasks=",".join(str(t.index) for t in chosen[arm]),
                population=args.population,
                measure=MeasureOptions(),
                lowering=ARMS[arm],
            )
            report = tune_model(model, target, folders[arm], options, progress=False)
            wall[arm] += report.wall_seconds if report.new_trials else 0.0
            print(best_line(arm, chosen[arm], folders[arm]) + f"  [{report.time.line()}]")

    timed = time_kernels([t for arm in args.arms for t in chosen[arm]], folders, target, args.timing_rounds)
    print(f"\nbest schedules timed again, {args.timing_rounds} interleaved rounds (median, us; ratios: {first} / arm):")
    print(f"{'kernel':<36} {'weight':>6} " + " ".join(f"{arm:>10}" for arm in args.arms) + " " + " ".join(f"{'/' + arm:>10}" for arm in args.arms[1:]))
    sums = dict.fromkeys(args.arms, 0.0)
    for row in zip(*(chosen[arm] for arm in args.arms)):
        times = [timed.get((t.name, arm)) for t, arm in zip(row, args.arms)]
        if len({round(t.flops * t.weight) for t in row}) > 1:
            print(f"{row[0].name:<36} the arms' heaviest kernels differ here: " + ", ".join(t.name for t in row))
            continue
        if any(x is None for x in times):
            print(f"{row[0].name:<36} {row[0].weight:>6} (an arm has no valid schedule)")
            continue
        for t, arm, x in zip(row, args.arms, times):
            sums[arm] += x * t.weight
        print(f"{row[0].name:<36} {row[0].weight:>6} " + " ".join(f"{x * 1e6:>10.1f}" for x in times) + " "
              + " ".join(f"{times[0] / x:>9.2f}x" for x in times[1:]))
    if all(sums.values()):
        print(f"{'weighted sum':<36} {'':>6} " + " ".join(f"{sums[a] * 1e6:>10.1f}" for a in args.arms) + " "
              + " ".join(f"{sums[first] / sums[a]:>9.2f}x" for a in args.arms[1:]))
    print("tuning wall time this run: " + ", ".join(f"{arm} {wall[arm]:.0f} s" for arm in args.arms) + f"; whole run {time.time() - start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
