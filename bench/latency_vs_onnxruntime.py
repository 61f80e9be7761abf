"""Benchmark (b): a tuned package against ONNX Runtime, same inputs, same process, as ratios.

For each zoo model: tune to --trials (resumable: records live in RECORDS/<model>-records, by default the
committed bench/work, and a re-run goes on where the last one stopped), compile tuned and untuned packages
(under --work, by default ~/.cache/tvmc-transfer-bench/latency), check both against ONNX Runtime, then time
tuned, untuned and ONNX Runtime interleaved in one process.

    python bench/latency_vs_onnxruntime.py --models resnet50 googlenet alexnet --trials 1000

The committed records were tuned without weight prepacking, so by default models are lowered that way too.
``--weight-prepack --records-tag TAG`` tunes (and resumes) prepacked records in RECORDS/<model>-TAG-records
instead, the default lowering of ``tvmc tune`` on a CPU; ``--time-budget`` bounds this run's tuning.
"""

import argparse
import os
import sys
import time

import attrs


sys.path.insert(0, os.path.dirname(__file__))
from common import RECORDS_LOWERING, add_folder_arguments, add_records_tag_argument, against_onnxruntime, append_json, model_file, tagged_records  # noqa: E402

from tvmc_transfer import MeasureOptions, TuneOptions, compile_model, load_model, parse_target, tune_model  # noqa: E402
from tvmc_transfer.build.lowering import Lowering  # noqa: E402


def prepare(name: str, work: str, target, args):
    path = model_file(name, work)
    model = load_model(path)
    lowering = Lowering(layout=args.desired_layout) if args.weight_prepack else attrs.evolve(RECORDS_LOWERING, layout=args.desired_layout or "NCHW")
    tag = f"-{args.records_tag}" if args.records_tag else ""
    records = tagged_records(args, name)
    start = time.time()
    options = TuneOptions(trials=args.trials, measure=MeasureOptions(), lowering=lowering, time_budget=args.time_budget,
                          population=args.population)
    report = tune_model(model, target, records, options)
    tune_seconds = time.time() - start
    layout = f"-{(lowering.layout_for(target) or 'NCHW').lower()}"  # an untuned package per layout
    tuned, untuned = os.path.join(work, f"{name}{tag}.tar"), os.path.join(work, f"{name}-untuned{layout}.tar")
    compile_model(model, target, tuned, records=records, lowering=lowering, default_schedules=False)
    if not os.path.exists(untuned):
        compile_model(model, target, untuned, lowering=lowering, default_schedules=False)  # unscheduled: see untuned_vs_onnxruntime.py
    return path, model, tuned, untuned, report, tune_seconds


def measure(path, model, tuned, untuned, repeat):
    return against_onnxruntime(path, model, {"tuned": tuned, "untuned": untuned}, repeat, slow=("untuned",))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["resnet50", "googlenet", "alexnet"])
    parser.add_argument("--trials", type=int, default=1000)
    parser.add_argument("--target", default="native")
    add_folder_arguments(parser, "latency", records=True)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--json", help="append one JSON line per model here")
    parser.add_argument("--weight-prepack", action="store_true", help="tune and compile with weight prepacking (tvmc's CPU default)")
    add_records_tag_argument(parser)
    parser.add_argument("--time-budget", type=float, metavar="SECONDS", help="wall-clock bound on this run's tuning (resumable)")
    parser.add_argument("--desired-layout", choices=["NCHW", "NHWC"], help="convert convolutions first, as tune/compile --desired-layout (default: theirs with --weight-prepack, else NCHW as the committed records)")
    parser.add_argument("--population", type=int, default=512, help="evolutionary search population (default 512, as tvmc tune)")
    args = parser.parse_args()
    os.makedirs(args.work, exist_ok=True)
    target = parse_target(args.target)
    print(f"{'model':<10} {'trials':>6} {'tune s':>7} {'ORT ms':>8} {'tuned ms':>9} {'untuned ms':>10} "
          f"{'tuned/ORT':>9} {'untuned/tuned':>13} {'rel err':>8}")
    for name in args.models:
        path, model, tuned, untuned, report, tune_seconds = prepare(name, args.work, target, args)
        times, errors = measure(path, model, tuned, untuned, args.repeat)
        trials = sum(t.trials for t in report.tasks)
        row = {
            "model": name, "trials": trials, "tune_seconds_this_run": round(tune_seconds, 1),
            **{f"{k}_ms": round(v, 3) for k, v in times.items()},
            "tuned_over_onnxruntime": round(times["tuned"] / times["onnxruntime"], 3),
            "untuned_over_tuned": round(times["untuned"] / times["tuned"], 2),
            "max_relative_error": max(errors.values()), "weight_prepack": args.weight_prepack, "target": args.target,
            "population": args.population, "desired_layout": args.desired_layout,
            "tune_time": {k: round(v, 1) for k, v in report.time.parts().items()} if report.time else None,
            "new_trials": report.new_trials,
        }
        print(f"{name:<10} {trials:>6} {tune_seconds:>7.0f} {times['onnxruntime']:>8.2f} {times['tuned']:>9.2f} "
              f"{times['untuned']:>10.1f} {row['tuned_over_onnxruntime']:>9.2f} {row['untuned_over_tuned']:>13.1f} "
              f"{row['max_relative_error']:>8.1e}", flush=True)
        if report.time and report.new_trials:
            print(f"  this run: {report.new_trials} trials, {report.time.total / report.new_trials:.2f} s per trial; {report.time.line()}")
        append_json(args.json, row)


if __name__ == "__main__":
    main()
