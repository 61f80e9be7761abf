"""Packages on TVM's default thread pool against one thread per core, each beside ONNX Runtime.

TVM sizes its CPU thread pool to half the logical CPUs on x86 (it assumes SMT); on a machine without SMT that
is half the cores, and ``tvmc_transfer`` now sets ``TVM_NUM_THREADS`` to the physical cores instead
(``tvmc_transfer/threads.py``). A process's pool is fixed when its first kernel runs, so each setting runs in a
child process of its own, which times the package and ONNX Runtime (on ``threads()`` threads, as always)
side by side; the settings alternate over --rounds, and the ratios to ONNX Runtime are what compare.

    python bench/threads_vs_onnxruntime.py resnet50=PATH.tar googlenet=PATH.tar --threads 1 2
"""

import argparse
import json
import os
import subprocess
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
from common import WORK, against_onnxruntime, append_json, model_file, threads  # noqa: E402


def child(name: str, package: str, work: str, repeat: int) -> None:
    import tvm  # pylint: disable=import-outside-toplevel

    from tvmc_transfer import load_model

    path = model_file(name, work)
    times, errors = against_onnxruntime(path, load_model(path), {"tvm": package}, repeat)
    pool = int(tvm.get_global_func("runtime.NumThreads")())
    print(json.dumps({"tvm_ms": times["tvm"], "onnxruntime_ms": times["onnxruntime"], "relative_error": errors["tvm"], "tvm_threads": pool}))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("packages", nargs="*", metavar="MODEL=PACKAGE", help="a zoo model (or ONNX file) and its compiled package")
    parser.add_argument("--threads", nargs="+", type=int, default=[1, threads()], help="TVM_NUM_THREADS settings to compare")
    parser.add_argument("--rounds", type=int, default=2, help="alternating rounds of child processes (default 2)")
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--work", default=os.path.join(WORK, "latency"), help="where zoo models are saved (default %(default)s)")
    parser.add_argument("--json", help="append one JSON line per package and setting here")
    parser.add_argument("--child", nargs=2, metavar=("MODEL", "PACKAGE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(*args.child, args.work, args.repeat)
    print(f"ONNX Runtime on {threads()} threads. {'model':<10} {'TVM threads':>11} {'ORT ms':>8} {'TVM ms':>8} {'TVM/ORT':>8} {'rel err':>8}")
    for spec in args.packages:
        name, package = spec.split("=", 1)
        rows = {n: [] for n in args.threads}
        for r in range(args.rounds):
            for n in args.threads if r % 2 == 0 else reversed(args.threads):
                env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
                env["TVM_NUM_THREADS"] = str(n)
                out = subprocess.run([sys.executable, __file__, "--child", name, package, "--work", args.work, "--repeat", str(args.repeat)],
                                     env=env, capture_output=True, text=True, check=True)
                rows[n].append(json.loads(out.stdout.strip().splitlines()[-1]))
        for n, runs in rows.items():
            row = {"model": name, "package": package, "tvm_threads": runs[0]["tvm_threads"], "onnxruntime_threads": threads(),
                   **{k: round(float(np.median([x[k] for x in runs])), 3) for k in ("tvm_ms", "onnxruntime_ms")},
                   "tvm_over_onnxruntime": round(float(np.median([x["tvm_ms"] / x["onnxruntime_ms"] for x in runs])), 3),
                   "max_relative_error": max(x["relative_error"] for x in runs), "rounds": args.rounds}
            print(f"{'':<25}{name:<10} {row['tvm_threads']:>11} {row['onnxruntime_ms']:>8.2f} {row['tvm_ms']:>8.2f} "
                  f"{row['tvm_over_onnxruntime']:>8.2f} {row['max_relative_error']:>8.1e}", flush=True)
            append_json(args.json, row)
    return None


if __name__ == "__main__":
    main()
