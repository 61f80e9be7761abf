"""Weight prepacking against none: a model's heaviest kernels tuned both ways for the same trials, side by side.

The two arms (``--no-weight-prepack`` and ``--weight-prepack``) are tuned in alternating rounds of
``--trials-per-round`` trials per kernel, so both see the same machine load; after each round it prints each
arm's best measured time per kernel, and at the end it times each arm's best schedule per kernel again in
interleaved rounds in this process (with prepacking, the kernel as the package runs it: weights already in
their rewritten layout) and prints the per-kernel ratios and the ratio of the weighted sums.
Resumable: the records live in ``WORK/<model>/<arm>``; a second run with the same arguments only times again.

    python bench/layout_prepack.py --model resnet50 --kernels 2 --rounds 3 --trials-per-round 16 --population 128
"""

import argparse
import os
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from droplet_bench import model_file, time_kernels  # noqa: E402
from tvmc_transfer.frontends import load_model  # noqa: E402
from tvmc_transfer.lowering import Lowering  # noqa: E402
from tvmc_transfer.measure import MeasureOptions  # noqa: E402
from tvmc_transfer.records import open_database  # noqa: E402
from tvmc_transfer.target import parse_target  # noqa: E402
from tvmc_transfer.tasks import extract_tasks  # noqa: E402
from tvmc_transfer.tune import TuneOptions, task_results, tune_model  # noqa: E402

ARMS = {"plain": Lowering(weight_prepack=False), "prepack": Lowering(weight_prepack=True)}


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
    chosen = {arm: heaviest(extract_tasks(model, target, lowering), args.kernels) for arm, lowering in ARMS.items()}
    folders = {arm: os.path.join(work, arm) for arm in ARMS}
    for t in chosen["plain"]:
        print(f"kernel {t.name}: {t.flops / 1e6:.1f} MFLOP x {t.weight}")
    wall = dict.fromkeys(ARMS, 0.0)
    for r in range(1, args.rounds + 1):
        print(f"round {r}: best measured during tuning (trials)")
        for arm, lowering in ARMS.items():
            options = TuneOptions(
                trials=r * args.trials_per_round * args.kernels,
                trials_per_iter=args.trials_per_round,
                tasks=",".join(str(t.index) for t in chosen[arm]),
                population=args.population,
                measure=MeasureOptions(),
                lowering=lowering,
            )
            report = tune_model(model, target, folders[arm], options, progress=False)
            wall[arm] += report.wall_seconds if report.new_trials else 0.0
            print(best_line(arm, chosen[arm], folders[arm]) + f"  [{report.time.line()}]")

    timed = time_kernels([t for arm in ARMS for t in chosen[arm]], folders, target, args.timing_rounds)
    print(f"\nbest schedules timed again, {args.timing_rounds} interleaved rounds (median, us):")
    print(f"{'kernel':<36} {'weight':>6} {'plain':>10} {'prepack':>10} {'plain/prepack':>14}")
    sums = dict.fromkeys(ARMS, 0.0)
    for plain, packed in zip(chosen["plain"], chosen["prepack"]):
        a, b = timed.get((plain.name, "plain")), timed.get((packed.name, "prepack"))
        if a is None or b is None:
            print(f"{plain.name:<36} {plain.weight:>6} (an arm has no valid schedule)")
            continue
        sums["plain"] += a * plain.weight
        sums["prepack"] += b * packed.weight
        print(f"{plain.name:<36} {plain.weight:>6} {a * 1e6:>10.1f} {b * 1e6:>10.1f} {a / b:>13.2f}x")
    if sums["prepack"]:
        print(f"{'weighted sum':<36} {'':>6} {sums['plain'] * 1e6:>10.1f} {sums['prepack'] * 1e6:>10.1f} {sums['plain'] / sums['prepack']:>13.2f}x")
    print(f"tuning wall time this run: plain {wall['plain']:.0f} s, prepack {wall['prepack']:.0f} s; whole run {time.time() - start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
