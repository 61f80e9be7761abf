"""Which order finds a kernel's best transferred candidate soonest: every candidate measured, the orders compared.

For one SOURCE:TARGET pair of zoo models, every matched kernel of TARGET with more candidates than a batch has
all of them replayed, checked and measured, as ``tvmc transfer`` would measure them, heaviest kernels first,
each kernel's rows appended to ``WORK/transfer-ranking/SOURCE-to-TARGET.jsonl`` as it finishes (a rerun goes
on where it stopped). Then four orders are compared by the weighted sum, over the kernels, of the best time
each finds:

- ``model``: the shipped cost model's order (transfer's default);
- ``distance``: nearest source shapes first (transfer's order without xgboost);
- ``gflops``: the source workload's own measured GFLOP/s, fastest first;
- ``rank sum``: the three ranks added;

each within its first 8, its first 16, and under transfer's stopping rule (8 at a time; the next batch only
while the last beat everything before it with a candidate of its lower-ranked half), with the candidates that
rule measures. Every time here comes from one measurement per candidate in one process, so noise between
processes does not enter the comparison.

    python bench/transfer_ranking.py googlenet:resnet50 --records-tag znver3-nhwc --lowering product --target native
"""

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import add_folder_arguments, add_lowering_argument, add_records_tag_argument, lowering_of, model_file, tagged_records  # noqa: E402
from tvmc_transfer.transfer.kernel import next_batch_pays  # noqa: E402

ORDERS = ("model", "distance", "gflops", "rank sum")


def measure_pair(args, rows_path: str) -> None:
    from tvmc_transfer.defaults.cost_model import load_cost_model
    from tvmc_transfer.frontends.load import load_model
    from tvmc_transfer.build.intrinsics import load_tensor_intrinsics
    from tvmc_transfer.records.database import mean_seconds
    from tvmc_transfer.target import parse_target, tuning_target
    from tvmc_transfer.build.tasks import _flops, extract_tasks
    from tvmc_transfer.transfer import KernelTransfer, TransferOptions
    from tvmc_transfer.kernels.check import KernelCheck
    from tvmc_transfer.kernels.classes import iter_extents, kernel_class
    from tvmc_transfer.transfer.kernel import WRONG, _mean, _measure, _ranking, replay_candidates
    from tvmc_transfer.records.sources import candidates_for, read_source, records_to_read

    source, target_model = args.pair.split(":")
    target = tuning_target(parse_target(args.target))
    load_tensor_intrinsics(target)
    options = TransferOptions(lowering=lowering_of(args))
    read = read_source(tagged_records(args, source), target, records_to_read(options))
    done = {json.loads(line)["task"] for line in open(rows_path)} if os.path.exists(rows_path) else set()
    model = load_cost_model()
    builder, runner = options.measure.make_builder(target), options.measure.make_runner()
    try:
        tasks = extract_tasks(load_model(model_file(target_model, args.work)), target, options.lowering)
        for task in sorted(tasks, key=lambda t: -t.flops * t.weight):
            klass = kernel_class(task.mod)
            candidates = candidates_for(klass, iter_extents(task.mod), [read], options)
            if task.name in done or len(candidates) <= options.measure_top:
                continue
            row = KernelTransfer(task.index, task.name, str(klass), task.weight, task.flops, "failed")
            replayed, context, _ = replay_candidates(task, klass, candidates, target, row)
            order = _ranking(task, context, model, replayed, options.measure_top)
            measured = _measure(replayed, KernelCheck(task.mod, target, options.rtol), builder, runner, target)
            with open(rows_path, "a") as f:
                for i, ((_, candidate), (secs, _)) in enumerate(zip(replayed, measured)):
                    f.write(json.dumps({
                        "task": task.name, "weight": task.weight, "model_rank": order.index(i), "distance": candidate.distance,
                        "source_gflops": _flops(candidate.workload.mod) / mean_seconds(candidate.record) / 1e9,
                        "seconds": _mean(secs) if secs not in (None, WRONG) else None, "source": candidate.describe(),
                    }) + "\n")
            print(f"{task.name}: {len(replayed)} candidates measured", flush=True)
    finally:
        builder.shutdown()


def orders(rows: list) -> dict:
    """Each order of one kernel's rows, as a list of row indices."""
    n = range(len(rows))
    ranked = {
        "model": sorted(n, key=lambda i: rows[i]["model_rank"]),
        "distance": sorted(n, key=lambda i: rows[i]["distance"]),
        "gflops": sorted(n, key=lambda i: -rows[i]["source_gflops"]),
    }
    places = {name: {i: k for k, i in enumerate(order)} for name, order in ranked.items()}
    ranked["rank sum"] = sorted(n, key=lambda i: sum(p[i] for p in places.values()))
    return ranked


def stopping_rule(order: list, seconds: list, top: int = 8) -> tuple:
    """``(best found, candidates measured)`` under transfer's rule (``kernel.next_batch_pays``)."""
    best, count = None, 0
    while count < len(order):
        batch = order[count : count + top]
        count += len(batch)
        batch_best = min(((seconds[i], k) for k, i in enumerate(batch) if seconds[i] is not None), default=None)
        go_on = next_batch_pays(batch_best, best, len(batch))
        if batch_best is not None:
            best = batch_best[0] if best is None else min(best, batch_best[0])
        if not go_on:
            break
    return best, count


def report(rows_path: str) -> str:
    by_task = {}
    for line in open(rows_path):
        row = json.loads(line)
        by_task.setdefault(row["task"], []).append(row)
    total = {(name, how): 0.0 for name in ORDERS for how in ("8", "16", "rule")}
    counts, best_all, candidates = dict.fromkeys(ORDERS, 0), 0.0, 0
    for rows in by_task.values():
        seconds, weight = [r["seconds"] for r in rows], rows[0]["weight"]
        if not any(s is not None for s in seconds):
            continue
        candidates += len(rows)
        best_all += weight * min(s for s in seconds if s is not None)
        for name, order in orders(rows).items():
            for top in (8, 16):
                total[(name, str(top))] += weight * min((seconds[i] for i in order[:top] if seconds[i] is not None), default=float("inf"))
            best, count = stopping_rule(order, seconds)
            total[(name, "rule")] += weight * best
            counts[name] += count
    lines = [f"{os.path.basename(rows_path)}: {len(by_task)} kernels, {candidates} candidates; best of all, weighted: {best_all * 1e3:.2f} ms",
             f"{'order':10s} {'first 8 ms':>11s} {'first 16 ms':>12s} {'rule ms':>9s} {'rule measured':>14s}"]
    for name in ORDERS:
        lines.append(f"{name:10s} {total[(name, '8')] * 1e3:11.2f} {total[(name, '16')] * 1e3:12.2f} {total[(name, 'rule')] * 1e3:9.2f} {counts[name]:14d}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("pair", help="SOURCE:TARGET zoo models, e.g. googlenet:resnet50")
    parser.add_argument("--target", default="native")
    add_records_tag_argument(parser)
    parser.add_argument("--report-only", action="store_true", help="compare the orders of the rows measured so far")
    add_lowering_argument(parser)
    add_folder_arguments(parser, "transfer-ranking", records=True)
    args = parser.parse_args()
    os.makedirs(args.work, exist_ok=True)
    rows_path = os.path.join(args.work, args.pair.replace(":", "-to-") + ".jsonl")
    if not args.report_only:
        measure_pair(args, rows_path)
    print(report(rows_path))


if __name__ == "__main__":
    main()
