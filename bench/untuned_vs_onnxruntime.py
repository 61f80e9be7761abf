"""Benchmark: an untuned compile (default schedules) against the unscheduled one and ONNX Runtime, in one run.

For each zoo model, with no tuning records: compile with default schedules (timed, with how many kernels got
which default) and without (--no-default-schedules), and, with --model-picked, with the library left out (every
kernel to the cost model: what a processor outside the library's family gets); check each against ONNX Runtime,
then time ONNX Runtime and the packages interleaved in one process. Ratios are what to compare; ONNX Runtime's
own time is printed too, because a loaded machine slows it more than our packages.

    python bench/untuned_vs_onnxruntime.py --models resnet50 googlenet alexnet --target native --model-picked
    python bench/untuned_vs_onnxruntime.py --models onnx-zoo:squeezenet onnx-zoo:shufflenet onnx-zoo:densenet121 \
        onnx-zoo:inception_v2 onnx-zoo:zfnet512 --skip-unscheduled   # real models nobody here wrote (onnx_zoo.py)

``--also-target LABEL=TARGET`` compiles the defaults for other targets too (e.g. the same CPU without AVX-512) and
times them in the same rounds: which target an untuned compile should default to.
"""

import argparse
import os
import sys
import time


sys.path.insert(0, os.path.dirname(__file__))
from common import against_onnxruntime, append_json, model_file  # noqa: E402

from tvmc_transfer import DefaultOptions, compile_model, load_model, parse_target  # noqa: E402


def compile_all(given: str, name: str, work: str, target, model_picked: bool, also: dict, skip_unscheduled: bool = False):
    """The packages of one model, ``given`` as a zoo name or an .onnx file and ``name`` in file names (the
    unscheduled one is kept between runs), and the default compile's report."""
    path = model_file(given, work)
    model = load_model(path)
    packages = {label: os.path.join(work, f"{name}-{label}.tar") for label in ("defaults", "unscheduled")[: 1 if skip_unscheduled else 2]}
    start = time.time()
    report = compile_model(model, target, packages["defaults"])
    compile_seconds = time.time() - start
    if "unscheduled" in packages and not os.path.exists(packages["unscheduled"]):
        compile_model(model, target, packages["unscheduled"], default_schedules=False)
    if model_picked:
        packages["model"] = os.path.join(work, f"{name}-model.tar")
        picked = compile_model(model, target, packages["model"], default_schedules=DefaultOptions(use_library=False))
        print(f"{name}: {picked.defaults.summary()}", flush=True)
    for label, other in also.items():
        packages[label] = os.path.join(work, f"{name}-{label}.tar")
        print(f"{name} {label}: {compile_model(model, other, packages[label]).defaults.summary()}", flush=True)
    return path, model, packages, report, compile_seconds


def measure(path, model, packages: dict, repeat: int, with_openvino: bool = False):
    return against_onnxruntime(path, model, packages, repeat, slow=("unscheduled",), with_openvino=with_openvino)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["resnet50", "googlenet", "alexnet"], help="zoo model names or .onnx files")
    parser.add_argument("--target", default="native")
    parser.add_argument("--work", default=os.path.expanduser("~/.cache/tvmc-transfer-bench/untuned"))
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--model-picked", action="store_true", help="also time the library left out (cost model only)")
    parser.add_argument("--json", help="append one JSON line per model here")
    parser.add_argument("--openvino", action="store_true", help="also time OpenVINO (pip install openvino) in the same rounds")
    parser.add_argument("--skip-unscheduled", action="store_true", help="leave out the unscheduled packages (minutes to time on big models)")
    parser.add_argument("--also-target", action="append", default=[], metavar="LABEL=TARGET", help="also time the defaults compiled for TARGET")
    args = parser.parse_args()
    also = {label: parse_target(text) for label, text in (a.split("=", 1) for a in args.also_target)}
    os.makedirs(args.work, exist_ok=True)
    target = parse_target(args.target)
    print(f"target {target}; load average at start {os.getloadavg()[0]:.1f}")
    print(f"{'model':<10} {'compile s':>9} {'lib/model/none':>14} {'ORT ms':>8} {'default ms':>10} {'unsched ms':>10} "
          f"{'default/ORT':>11} {'unsched/ORT':>11} {'unsched/default':>15} {'rel err':>8} {'model-only ms':>13} {'model/ORT':>9}")
    for given in args.models:
        name = os.path.basename(given).removesuffix(".onnx").replace(":", "-")
        path, model, packages, report, compile_seconds = compile_all(given, name, args.work, target, args.model_picked, also, args.skip_unscheduled)
        times, errors = measure(path, model, packages, args.repeat, args.openvino)
        d = report.defaults
        row = {
            "model": name, "target": str(target), "compile_seconds": round(compile_seconds, 1),
            "library": d.count("library"), "model_picked": d.count("model"), "none": d.count("none"),
            **{f"{k}_ms": round(v, 3) for k, v in times.items()},
            "defaults_over_onnxruntime": round(times["defaults"] / times["onnxruntime"], 2),
            "unscheduled_over_onnxruntime": round(times.get("unscheduled", float("nan")) / times["onnxruntime"], 1),
            "unscheduled_over_defaults": round(times.get("unscheduled", float("nan")) / times["defaults"], 1),
            "max_relative_error": max(errors.values()), "load_average": os.getloadavg()[0],
        }
        model_only = ""
        if "model" in times:
            row["model_only_over_onnxruntime"] = round(times["model"] / times["onnxruntime"], 2)
            model_only = f" {times['model']:>13.2f} {row['model_only_over_onnxruntime']:>9.2f}"
        counts = f"{row['library']}/{row['model_picked']}/{row['none']}"
        print(f"{name:<10} {compile_seconds:>9.1f} {counts:>14} {times['onnxruntime']:>8.2f} {times['defaults']:>10.2f} "
              f"{times.get('unscheduled', float('nan')):>10.1f} {row['defaults_over_onnxruntime']:>11.2f} {row['unscheduled_over_onnxruntime']:>11.1f} "
              f"{row['unscheduled_over_defaults']:>15.1f} {row['max_relative_error']:>8.1e}{model_only}", flush=True)
        for label in also:
            row[f"{label}_over_onnxruntime"] = round(times[label] / times["onnxruntime"], 2)
            print(f"  {label}: {times[label]:.2f} ms, {row[f'{label}_over_onnxruntime']:.2f}x ONNX Runtime, "
                  f"{times['defaults'] / times[label]:.2f}x faster than the defaults for {args.target}", flush=True)
        if "openvino" in times:
            row["openvino_over_onnxruntime"] = round(times["openvino"] / times["onnxruntime"], 2)
            row["defaults_over_best_peer"] = round(times["defaults"] / min(times["onnxruntime"], times["openvino"]), 2)
            print(f"  OpenVINO {times['openvino']:.2f} ms ({row['openvino_over_onnxruntime']:.2f}x ONNX Runtime); "
                  f"defaults {row['defaults_over_best_peer']:.2f}x the better of the two", flush=True)
        append_json(args.json, row)
    print(f"load average at end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
