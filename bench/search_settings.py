"""Which evolutionary-search settings reach the lowest latency per wall-clock minute on this machine.

Issue 11 judges a cheaper trial by the best latency reached per wall-clock hour, not per trial. Each arm is one
``tvmc tune`` process on the same tasks (the model's ``--heaviest`` tasks by FLOPs x weight), from no records,
for the same ``--minutes`` of wall time (``--time-budget``), differing only in ``--population`` and
``--trials-per-iter``. The result of an arm is the sum over its tasks of weight x best measured time: what those
kernels cost in the end-to-end latency. Arms run one after another (tuning cannot be interleaved), so run it on
a quiet machine and read differences under about 10% as noise.

With ``--trials N`` each arm instead stops after N trials, and the question is how long each took to get how far
(the quickstart's tiny CNN: ``--model tiny-cnn --heaviest 7 --trials 64``). An arm ``default`` passes neither
``--population`` nor ``--trials-per-iter``: what ``tvmc tune`` does by default. Each arm prints where its wall
time went (``tvmc tune --report``: search split into sampling, mutation, cost model prediction and training).

Resumable: an arm whose records folder holds a finished result (``result.json``) is not run again.

    python bench/search_settings.py --model resnet50 --heaviest 6 --minutes 12 --arms 512:64 128:64 128:128
    python bench/search_settings.py --model tiny-cnn --heaviest 7 --trials 64 --arms 512:auto 128:auto default
"""

import argparse
import json
import os
import re
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
from common import add_folder_arguments, model_file, processor  # noqa: E402

from tvmc_transfer import load_model, parse_target  # noqa: E402
from tvmc_transfer.build.lowering import Lowering  # noqa: E402
from tvmc_transfer.records import open_database  # noqa: E402
from tvmc_transfer.target import tuning_target  # noqa: E402
from tvmc_transfer.build.tasks import extract_tasks, heaviest_first  # noqa: E402
from tvmc_transfer.tune.model import task_results  # noqa: E402


def heaviest(tasks, n: int) -> list:
    return heaviest_first(tasks)[:n]


def run_arm(model_path, target, tasks, population, per_iter, minutes, folder, trials=None) -> dict:
    """One ``tvmc tune`` process; ``population``/``per_iter`` None: tune's default."""
    result_path = os.path.join(folder, "result.json")
    if os.path.exists(result_path):
        with open(result_path, encoding="utf-8") as f:
            return json.load(f)
    report = os.path.join(os.path.dirname(folder), os.path.basename(folder) + "-report.json")
    budget = ["--trials", str(trials)] if trials else ["--trials", "1000000", "--time-budget", str(minutes * 60)]
    command = [
        sys.executable, "-m", "tvmc_transfer", "tune", model_path, "-o", folder, "--target", target, "--report", report,
        "--tasks", ",".join(str(t.index) for t in tasks), *budget,
        *(["--population", str(population)] if population else []), *(["--trials-per-iter", str(per_iter)] if per_iter else []),
    ]
    start = time.time()
    proc = subprocess.run(command, capture_output=True, text=True)
    wall = time.time() - start
    if proc.returncode != 0:
        sys.exit(f"failed: {' '.join(command)}\n{proc.stderr[-2000:]}")
    results = task_results(tasks, open_database(folder))
    per_task, done = {r.name: r.weighted_seconds for r in results}, sum(r.trials for r in results)
    with open(report, encoding="utf-8") as f:
        breakdown = json.load(f).get("time", {})
    result = {
        "population": population or "default", "trials_per_iter": per_iter or "default", "minutes": minutes, "wall_seconds": round(wall, 1),
        "trials": done, "weighted_ms": {k: None if v is None else round(v * 1e3, 4) for k, v in per_task.items()},
        "breakdown": breakdown,
    }
    with open(result_path, "w", encoding="utf-8") as f:
        json.dump(result, f, indent=1)
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="resnet50")
    parser.add_argument("--target", default="native")
    parser.add_argument("--heaviest", type=int, default=6, help="tune the model's N heaviest tasks")
    parser.add_argument("--minutes", type=float, default=12.0, help="wall-clock budget of each arm")
    parser.add_argument("--trials", type=int, help="stop each arm after this many trials instead of --minutes")
    parser.add_argument("--arms", nargs="+", default=["512:64", "128:64", "128:128"], help="POPULATION:TRIALS_PER_ITER ('auto' for either: tune's default), or 'default'")
    add_folder_arguments(parser, "search-settings")
    args = parser.parse_args()
    os.makedirs(args.work, exist_ok=True)
    model_path = model_file(args.model, args.work)
    target = tuning_target(parse_target(args.target))
    tasks = heaviest(extract_tasks(load_model(model_path), target, Lowering()), args.heaviest)
    budget = f"{args.trials} trials" if args.trials else f"{args.minutes:g} min"
    print(f"{args.model}: tasks {', '.join(f'#{t.index} {t.name} x{t.weight}' for t in tasks)}; {budget} per arm; {processor()}")
    results = []
    for arm in args.arms:
        population, per_iter = (None, None) if arm == "default" else (None if x == "auto" else int(x) for x in re.fullmatch(r"(\d+|auto):(\d+|auto)", arm).groups())
        folder = os.path.join(args.work, f"{args.model}-h{args.heaviest}-{budget.replace(' ', '')}-p{population or 'auto'}-b{per_iter or 'auto'}")
        results.append(run_arm(model_path, args.target, tasks, population, per_iter, args.minutes, folder, args.trials))
    print(f"{'population':>10} {'per iter':>8} {'trials':>7} {'wall s':>7} {'s/trial':>8} {'weighted ms':>12} {'vs first':>9}")
    first = None
    for r in results:
        times = list(r["weighted_ms"].values())
        total = sum(times) if None not in times else float("nan")
        first = first if first is not None else total
        print(f"{r['population']:>10} {r['trials_per_iter']:>8} {r['trials']:>7} {r['wall_seconds']:>7.1f} {r['wall_seconds'] / max(r['trials'], 1):>8.2f} "
              f"{total:>12.4f} {total / first:>9.3f}")
        seconds, search = r["breakdown"].get("seconds", {}), r["breakdown"].get("search", {})
        print("  " + ", ".join(f"{k} {v:.1f} s" for k, v in seconds.items()))
        print("  search: " + ", ".join(f"{k} {v:.1f} s" for k, v in search.items()) + f"; cores busy {r['breakdown'].get('cores_busy') or 0:.0%}")


if __name__ == "__main__":
    main()
