"""Benchmark: a model nobody tuned, five minutes of `tvmc transfer` from the shipped library, against ONNX Runtime.

For each model (by default five ONNX-zoo networks of the onnx wheel, seeded random weights, ``onnx_zoo.py``), run
what a user runs, with no ``--from``:

    tvmc transfer MODEL -o RECORDS --droplet --time-limit 300 --no-e2e
    tvmc compile MODEL --tuning-records RECORDS -o PACKAGE

and the untuned compile (``tvmc compile MODEL``), then time both packages, ONNX Runtime and (``--openvino``)
OpenVINO interleaved in one process on the same threads. Prints each ratio, the search time, and the geometric
means. The transfer resumes where a stopped run left off (its journal); a finished model is not redone unless
``--fresh``.

    python bench/transfer_onnx_zoo.py --openvino --json bench/results/transfer-onnx-zoo.jsonl
"""

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
from common import against_onnxruntime, append_json, model_file  # noqa: E402

from tvmc_transfer import compile_model, load_model, parse_target  # noqa: E402

MODELS = ["onnx-zoo:squeezenet", "onnx-zoo:shufflenet", "onnx-zoo:densenet121", "onnx-zoo:inception_v2", "onnx-zoo:zfnet512"]


def transfer(path: str, records: str, target: str, time_limit: float, droplet_trials: int) -> float:
    """Run ``tvmc transfer`` as a user does; its wall seconds."""
    command = [sys.executable, "-m", "tvmc_transfer", "transfer", path, "-o", records, "--target", target,
               "--droplet", "--droplet-trials", str(droplet_trials), "--time-limit", str(time_limit), "--no-e2e"]
    start = time.time()
    subprocess.run(command, check=True)
    return time.time() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=MODELS, help="onnx-zoo:NAME, zoo names or .onnx files")
    parser.add_argument("--target", default="native")
    parser.add_argument("--time-limit", type=float, default=300)
    parser.add_argument("--droplet-trials", type=int, default=8)
    parser.add_argument("--work", default=os.path.expanduser("~/.cache/tvmc-transfer-bench/transfer-onnx-zoo"))
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--openvino", action="store_true")
    parser.add_argument("--fresh", action="store_true", help="start every transfer again")
    parser.add_argument("--json", help="append one JSON line per model here")
    args = parser.parse_args()
    os.makedirs(args.work, exist_ok=True)
    target = parse_target(args.target)
    print(f"target {target}; load average at start {os.getloadavg()[0]:.1f}", flush=True)
    ratios = {"transfer": [], "untuned": []}
    for given in args.models:
        name = os.path.basename(given).removesuffix(".onnx").replace(":", "-")
        path = model_file(given, args.work)
        records = os.path.join(args.work, f"{name}-records")
        done = os.path.join(args.work, f"{name}-transfer.json")
        if args.fresh:
            shutil.rmtree(records, ignore_errors=True)
            if os.path.exists(done):
                os.remove(done)
        if os.path.exists(done):
            with open(done, encoding="utf-8") as f:
                search = json.load(f)["seconds"]
        else:
            search = transfer(path, records, args.target, args.time_limit, args.droplet_trials)
            with open(done, "w", encoding="utf-8") as f:
                json.dump({"seconds": search}, f)
        model = load_model(path)
        packages = {label: os.path.join(args.work, f"{name}-{label}.tar") for label in ("transfer", "untuned")}
        compile_model(model, target, packages["transfer"], records=records)
        compile_model(model, target, packages["untuned"])
        times, errors = against_onnxruntime(path, model, packages, args.repeat, with_openvino=args.openvino)
        row = {"model": name, "target": str(target), "search_seconds": round(search, 1), **{f"{k}_ms": round(v, 3) for k, v in times.items()},
               "max_relative_error": max(errors.values()), "load_average": os.getloadavg()[0]}
        peer = min(times["onnxruntime"], times.get("openvino", math.inf))
        for label in ("transfer", "untuned"):
            row[f"{label}_over_onnxruntime"] = round(times[label] / times["onnxruntime"], 3)
            row[f"{label}_over_best_peer"] = round(times[label] / peer, 3)
            ratios[label].append(times[label] / times["onnxruntime"])
        openvino = f", OpenVINO {times['openvino']:.2f} ms" if "openvino" in times else ""
        print(f"{name}: search {search:.0f} s; ONNX Runtime {times['onnxruntime']:.2f} ms{openvino}; transfer {times['transfer']:.2f} ms "
              f"({row['transfer_over_onnxruntime']:.2f}x ORT, {row['transfer_over_best_peer']:.2f}x the better peer); untuned "
              f"{times['untuned']:.2f} ms ({row['untuned_over_onnxruntime']:.2f}x ORT); max rel err {row['max_relative_error']:.1e}", flush=True)
        append_json(args.json, row)
    for label, values in ratios.items():
        if values:
            print(f"geometric mean {label}/ONNX Runtime over {len(values)} models: {math.exp(sum(map(math.log, values)) / len(values)):.3f}")
    print(f"load average at end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
