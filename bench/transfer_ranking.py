"""Which order finds a kernel's best transferred candidate soonest: every candidate measured, the orders compared.

For one SOURCE:TARGET pair of zoo models, every matched kernel of TARGET with more candidates than a batch has
all of them replayed, checked and measured in one batch by transfer's own loop (``transfer_kernel``, a
``TransferObserver`` taking the rows), heaviest kernels first, each kernel's rows appended to ``WORK/transfer-ranking/SOURCE-to-TARGET.jsonl`` as it finishes (a rerun goes
on where it stopped). Then four orders are compared by the weighted sum, over the kernels, of the best time
each finds:

- ``model``: the shipped cost model's order (transfer's default);
- ``distance``: nearest source shapes first (transfer's order without xgboost);
- ``gflops``: the source workload's own measured GFLOP/s, fastest first;
- ``rank sum``: the three ranks added;

each within its first 8, its first 16, and under transfer's stopping rule (8 at a time; the next batch only
while the last beat everything before it with a candidate of its lower-ranked half), with the candidates that
rule measures. Every time here comes from one measurement per candidate in one process, so noise between
processes does not enter the comparison. A kernel whose very workload the source holds is reused as ``tvmc
transfer`` reuses it (not ranked, nothing to compare) and has no rows.

    python bench/transfer_ranking.py googlenet:resnet50 --records-tag znver3-nhwc --lowering product --target native
"""

import argparse
import json
import os
import sys

import attrs

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import add_transfer_pair_arguments, lowering_of, model_file, tagged_records  # noqa: E402
from tvmc_transfer import load_model, parse_target  # noqa: E402
from tvmc_transfer.transfer import TransferObserver, TransferOptions  # noqa: E402
from tvmc_transfer.transfer.kernel import next_batch_pays, transfer_kernel  # noqa: E402

ORDERS = ("model", "distance", "gflops", "rank sum")


class CandidateRows(TransferObserver):
    """Each measured candidate of a kernel as a row: its place in the cost model's order (as transfer ranks a
    kernel with more than ``top`` candidates), its shape distance, its source workload's GFLOP/s, its time here."""

    def __init__(self, model, top: int):
        self.model, self.top, self.rows = model, top, []

    def replayed(self, task, replayed, context, seconds):
        from tvmc_transfer.defaults.cost_model import predicted_order  # pylint: disable=import-outside-toplevel

        schedules = [sch for sch, _ in replayed]
        order = list(range(len(replayed))) if len(replayed) <= self.top else predicted_order(task.mod, context, self.model, schedules)
        self.rank = {id(candidate): order.index(i) for i, (_, candidate) in enumerate(replayed)}

    def measured(self, task, batch, seconds_each, seconds):
        from tvm.s_tir.analysis import estimate_tir_flops  # pylint: disable=import-outside-toplevel

        from tvmc_transfer.records import mean_seconds  # pylint: disable=import-outside-toplevel

        self.rows += [{
            "task": task.name, "weight": task.weight, "model_rank": self.rank[id(candidate)], "distance": candidate.distance,
            "source_gflops": float(estimate_tir_flops(candidate.workload.mod)) / mean_seconds(candidate.record) / 1e9,
            "seconds": secs, "source": candidate.describe(),
        } for (_, candidate), secs in zip(batch, seconds_each)]


def measure_pair(args, rows_path: str) -> None:
    """Every candidate of each kernel with more than a batch of them, measured in one batch by transfer's own
    loop (``transfer_kernel``, ``measure_top`` None); each kernel's rows appended to ``rows_path`` when it ends."""
    from tvmc_transfer.build.tasks import extract_tasks, heaviest_first  # pylint: disable=import-outside-toplevel
    from tvmc_transfer.defaults.cost_model import load_cost_model
    from tvmc_transfer.kernels.classes import iter_extents, kernel_class
    from tvmc_transfer.records import RecordsFolder
    from tvmc_transfer.records.sources import candidates_for, read_source, records_to_read
    from tvmc_transfer.target import tuning_target
    from tvmc_transfer.tune.engine import measuring

    source, target_model = args.pair.split(":")
    target = tuning_target(parse_target(args.target))
    options = TransferOptions(lowering=lowering_of(args))  # the candidates tvmc transfer tries, by default
    every = attrs.evolve(options, measure_top=None)  # ... all measured, in one batch
    read = read_source(tagged_records(args, source), target, records_to_read(options))
    done = {json.loads(line)["task"] for line in open(rows_path)} if os.path.exists(rows_path) else set()
    model = load_cost_model()
    folder = RecordsFolder(rows_path.removesuffix(".jsonl") + "-records", create=True)
    with folder, measuring(target, options.measure) as (builder, runner):
        for task in heaviest_first(extract_tasks(load_model(model_file(target_model, args.work)), target, options.lowering)):
            klass = kernel_class(task.mod)
            candidates = candidates_for(klass, iter_extents(task.mod), [read], options)
            if task.name in done or len(candidates) <= options.measure_top:
                continue
            rows = CandidateRows(model, options.measure_top)
            transfer_kernel(task, klass, candidates, target, folder, builder, runner, every, observer=rows)
            with open(rows_path, "a") as f:
                f.writelines(json.dumps(row) + "\n" for row in rows.rows)
            print(f"{task.name}: {len(rows.rows)} candidates measured", flush=True)


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
    if not os.path.exists(rows_path):
        return f"{os.path.basename(rows_path)}: no kernel has more candidates than a batch"
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
    add_transfer_pair_arguments(parser, "transfer-ranking")
    parser.add_argument("--report-only", action="store_true", help="compare the orders of the rows measured so far")
    args = parser.parse_args()
    os.makedirs(args.work, exist_ok=True)
    rows_path = os.path.join(args.work, args.pair.replace(":", "-to-") + ".jsonl")
    if not args.report_only:
        measure_pair(args, rows_path)
    print(report(rows_path))


if __name__ == "__main__":
    main()
