"""Benchmark (a): wall time of `tvmc tune` against stock MetaSchedule `tune_relax`, same model, same trials.

Both run as fresh processes (what a user waits for, imports included), one after the other in this run, with
the same batch size, population, seed and measurement protocol (MetaSchedule's defaults: number 3, repeat 1,
min_repeat_ms 100; a batch size small enough that every task gets a first batch). Stock uses its default LocalBuilder and LocalRunner. Then both record sets are compiled and
the packages timed side by side in this process, with the untuned package as the reference: the median
of ``--rounds`` interleaved rounds, and the spread of the rounds. With --patient-stock, stock runs a second time with a
120 s build timeout instead of its default 30 s, so that it measures something to compare latencies with.

    python bench/tuning_throughput.py --model tiny-cnn --trials 64   # outputs under ~/.cache/tvmc-transfer-bench/throughput
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import textwrap
import time

sys.path.insert(0, os.path.dirname(__file__))
from common import add_folder_arguments, median_ms, package_runner, random_inputs  # noqa: E402

from tvmc_transfer import compile_model, load_model, parse_target, zoo  # noqa: E402
from tvmc_transfer.records import is_measured, open_database  # noqa: E402

STOCK = textwrap.dedent(
    """
    import sys, tvm
    from tvm.s_tir import meta_schedule as ms
    from tvmc_transfer.frontends.load import load_model
    from tvmc_transfer.build.tasks import fusion_passes
    model_path, target_json, work, trials, per_iter, build_timeout = sys.argv[1:7]
    target = tvm.target.Target(target_json)
    mod = load_model(model_path).mod
    with target:
        fused = tvm.transform.Sequential(fusion_passes(target))(mod)  # unfused, extract_tasks finds nothing
    ms.relax_integration.tune_relax(
        fused, params={}, target=target, work_dir=work, max_trials_global=int(trials),
        num_trials_per_iter=int(per_iter), seed=0,
        builder=ms.builder.LocalBuilder(timeout_sec=float(build_timeout)),
        runner=ms.runner.LocalRunner(evaluator_config=ms.runner.EvaluatorConfig(number=3, repeat=1, min_repeat_ms=100)),
    )
    """
)


def timed(command) -> float:
    start = time.time()
    proc = subprocess.run(command, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"failed: {' '.join(command)}\n{proc.stderr[-2000:]}")
    return time.time() - start


def summary(records: str) -> tuple:
    database = open_database(records)
    all_records = database.get_all_tuning_records()
    return len(all_records), sum(1 for r in all_records if is_measured(r))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="tiny-cnn")
    parser.add_argument("--trials", type=int, default=64)
    parser.add_argument("--trials-per-iter", type=int, default=8,
                        help="batch size for both (tasks x this <= trials, so that every task gets a first batch)")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved timing rounds of 50 runs each")
    parser.add_argument("--target", default="llvm -num-cores=2")
    add_folder_arguments(parser, "throughput")
    parser.add_argument("--patient-stock", action="store_true", help="also run stock with a 120 s build timeout")
    args = parser.parse_args()
    shutil.rmtree(args.work, ignore_errors=True)
    os.makedirs(args.work)
    path = zoo.save(args.model, os.path.join(args.work, f"{args.model}.onnx"))
    target = parse_target(args.target)
    ours = os.path.join(args.work, "tvmc-records")
    ours_s = timed([sys.executable, "-m", "tvmc_transfer", "tune", path, "-o", ours, "--target", args.target,
                    "--trials", str(args.trials), "--trials-per-iter", str(args.trials_per_iter),
                    "--number", "3", "--repeat", "1", "--min-repeat-ms", "100", "--seed", "0"])
    runs = [("tvmc tune", ours, ours_s)]
    for label, timeout in [("stock tune_relax", 30)] + ([("stock, 120 s build", 120)] if args.patient_stock else []):
        records = os.path.join(args.work, f"stock-{timeout}-records")
        stock_args = [path, str(target), records, str(args.trials), str(args.trials_per_iter), str(timeout)]
        runs.append((label, records, timed([sys.executable, "-c", STOCK, *stock_args])))
    model = load_model(path)
    inputs = random_inputs(model)
    rows = {}
    untuned = os.path.join(args.work, "untuned.tar")
    compile_model(model, target, untuned, default_schedules=False)
    rows["untuned"] = {"wall_s": 0.0, "records": 0, "measured": 0, "run": package_runner(untuned, inputs)[0]}
    for label, records, seconds in runs:
        total, measured = summary(records)
        package = os.path.join(args.work, f"{os.path.basename(records)}.tar")
        compile_model(model, target, package, records=records, default_schedules=False)
        run, _ = package_runner(package, inputs)
        rows[label] = {"wall_s": round(seconds, 1), "records": total, "measured": measured, "run": run}
    for _ in range(args.rounds):  # interleave the timings
        for row in rows.values():
            row.setdefault("ms", []).append(median_ms(row["run"], 50))
    print(f"model {args.model}, {args.trials} trials, {args.trials_per_iter} per batch, target {args.target}")
    print(f"{'':<20} {'wall s':>8} {'records':>8} {'measured':>9} {'latency ms':>11} {'round min-max ms':>17}")
    for label, row in rows.items():
        ms = sorted(row.pop("ms"))
        row["latency_ms"], row["round_ms"] = round(ms[len(ms) // 2], 4), [round(m, 4) for m in ms]
        row.pop("run")
        spread = f"{ms[0]:.4f}-{ms[-1]:.4f}"
        print(f"{label:<20} {row['wall_s']:>8.1f} {row['records']:>8} {row['measured']:>9} {row['latency_ms']:>11.4f} {spread:>17}")
    ours_row = rows["tvmc tune"]
    for label, row in rows.items():
        if label not in ("tvmc tune", "untuned"):
            print(f"{label}: wall {row['wall_s'] / ours_row['wall_s']:.1f}x tvmc's; "
                  f"latency tvmc/stock {ours_row['latency_ms'] / row['latency_ms']:.2f}")
    print(json.dumps({"model": args.model, "trials": args.trials, **{k: v for k, v in rows.items()}}))


if __name__ == "__main__":
    main()
