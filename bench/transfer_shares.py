"""Packages of several transfer runs timed side by side in one process, each with its share of full tuning's speedup.

``transfer_bench.py`` times each run's packages in that run's process, and on a noisy machine the same package
can time 40% apart in two processes. To compare runs (two transfer protocols, say), this times their packages
together with the untuned and fully tuned ones and ONNX Runtime, in interleaved rounds, and prints
``(S - 1) / (S_full - 1)`` with ``S = untuned latency / latency`` for each.

    python bench/transfer_shares.py alexnet --untuned U.tar --full F.tar ranked=A.tar every-candidate=B.tar --rounds 5
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import WORK, model_file  # noqa: E402
from transfer_bench import time_packages  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("model", help="the zoo model (or ONNX file) the packages were compiled from")
    parser.add_argument("packages", nargs="+", metavar="LABEL=PACKAGE")
    parser.add_argument("--untuned", required=True, help="the package compiled without records")
    parser.add_argument("--full", required=True, help="the package compiled with the full-tuning records")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved timing rounds (default 5)")
    parser.add_argument("--runs", type=int, default=10, help="timed runs per package per round (untuned: a tenth)")
    parser.add_argument("--work", default=os.path.join(WORK, "transfer-bench"), help="where the zoo model is saved")
    args = parser.parse_args()
    packages = {"untuned": args.untuned, "full": args.full, **dict(p.split("=", 1) for p in args.packages)}
    result = time_packages(model_file(args.model, args.work), packages, args.rounds, args.runs)
    ms, errors = result["ms"], result["max_relative_error"]
    speedup = lambda label: ms["untuned"] / ms[label]  # noqa: E731
    print(f"{args.model}: {args.rounds} interleaved rounds; ONNX Runtime {ms['onnxruntime']:.2f} ms")
    for label in packages:
        share = (speedup(label) - 1) / (speedup("full") - 1)
        print(f"  {label:28s} {ms[label]:10.2f} ms  share of full tuning's speedup {share * 100:6.1f}%  max rel. error vs ORT {errors[label]:.1e}")


if __name__ == "__main__":
    main()
