"""Transfer-tuning onto a model outside the zoo, against plain tuning of the same wall time (issue 15).

The target is built here, not taken from the zoo, so that no source was tuned on it: MobileNetV2 at width 0.75
on 160x160 inputs (torchvision's channel rounding), with hard-swish in place of ReLU6 from block 8 on, as
MobileNetV3 does. Its depthwise, pointwise, projection and classifier kernels are of the zoo's classes at other
shapes; the hard-swish ones match only by anchor (another epilogue). Seeded weights, as the zoo's.

Steps, each kept in WORK/state.json and skipped when done (run the same command again to go on):

1. ``transfer``: ``tvmc transfer`` from the sources' records folders (default: the zoo's records tuned with
   weight prepacking for this kind of processor, ``--records-tag``) with ``--time-limit``;
2. ``tune``: plain ``tvmc tune`` from no records for the wall time the transfer took (``--time-budget``), as it
   runs by default (each kernel's default schedule measured first, the search from there);
3. ``tune-random``: the same from random samples only (``--no-default-schedules``, how stock MetaSchedule starts);
4. ``timing``: packages compiled as a user compiles them (kernels without a record get the default schedules)
   from no records, the transfer's and the two tunings', timed with ONNX Runtime in interleaved rounds.

It prints coverage (of all weighted FLOPs, and of those whose classes the sources hold), search times, and
latencies as ratios to ONNX Runtime and to the untuned package.

    python bench/transfer_new_model.py --sources googlenet alexnet mobilenet_v2 --records-tag znver4-nhwc --time-limit 300

Sources must be tuned in the layout the transfer lowers the model to (NHWC on AVX-512 CPUs) and for this processor
(transfer uses the records of the target's own ``-mcpu``); session 8's run used ``--sources resnet50 alexnet
--records-tag znver5`` (NCHW records, before NHWC was the default there).
"""

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
from common import add_folder_arguments, against_onnxruntime, append_json, read_state, tagged_records, write_state  # noqa: E402

from tvmc_transfer import TransferOptions, TuneOptions, compile_model, load_model, parse_target, transfer_tune, tune_model  # noqa: E402
from tvmc_transfer.atomic import atomic_write  # noqa: E402
from tvmc_transfer.frontends.onnx_graph import Graph  # noqa: E402
from tvmc_transfer.records.database import database_paths  # noqa: E402

NAME = "mobilenet_v2-0.75-160-hswish"
# torchvision's inverted residual settings: expansion t, channels c, repeats n, first stride s
SETTINGS = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)]
HARD_SWISH_FROM = 8  # block index from which the activation is hard-swish


def _divisible(v: float, divisor: int = 8) -> int:
    """torchvision's ``_make_divisible``: round to a multiple of 8, never more than 10% down."""
    new = max(divisor, int(v + divisor / 2) // divisor * divisor)
    return new + divisor if new < 0.9 * v else new


def build_model(width: float = 0.75, size: int = 160, seed: int = 0):
    g = Graph(seed)

    def conv_bn_act(x, name, cin, cout, kernel, stride=1, group=1, hswish=False):
        x = g.conv(x, f"{name}.0", cin, cout, kernel, stride=stride, pad=(kernel - 1) // 2, bias=False, group=group)
        x = g.batch_norm(x, f"{name}.1", cout)
        return g.hard_swish(x) if hswish else g.relu6(x)

    cin = _divisible(32 * width)
    x = conv_bn_act("input", "features.0", 3, cin, 3, stride=2)
    index = 1
    for expand, c, repeats, stride in SETTINGS:
        cout = _divisible(c * width)
        for block in range(repeats):
            hswish, s, hidden = index >= HARD_SWISH_FROM, stride if block == 0 else 1, cin * expand
            y, i = x, 0
            if expand != 1:
                y, i = conv_bn_act(y, f"features.{index}.conv.0", cin, hidden, 1, hswish=hswish), 1
            y = conv_bn_act(y, f"features.{index}.conv.{i}", hidden, hidden, 3, stride=s, group=hidden, hswish=hswish)
            y = g.batch_norm(g.conv(y, f"features.{index}.conv.{i + 1}", hidden, cout, 1, bias=False), f"features.{index}.conv.{i + 2}", cout)
            x = g.add(x, y, f"features.{index}.add") if s == 1 and cin == cout else y
            cin, index = cout, index + 1
    last = _divisible(1280 * max(1.0, width))
    x = conv_bn_act(x, f"features.{index}", cin, last, 1, hswish=True)
    x = g.global_avg_pool_flatten(x, "avgpool")
    g.linear(x, "classifier.1", last, 1000, output="output")
    description = f"MobileNetV2 x{width} at {size}x{size}, hard-swish from block {HARD_SWISH_FROM} (bench only, not in the zoo)"
    return g.to_model(NAME, description, (1, 3, size, size), (1, 1000), False)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sources", nargs="+", default=["googlenet", "alexnet", "mobilenet_v2"], help="zoo models whose records are the sources (default: googlenet alexnet mobilenet_v2)")
    parser.add_argument("--records-tag", default="znver4-nhwc", help="sources are RECORDS/<model>-TAG-records (prepacked, for this processor; default znver4-nhwc)")
    parser.add_argument("--time-limit", type=float, default=300, help="the transfer's --time-limit, seconds (default 300)")
    parser.add_argument("--population", type=int, default=512, help="plain tuning's population (default 512, as tvmc tune)")
    parser.add_argument("--target", default="native")
    parser.add_argument("--repeat", type=int, default=20)
    add_folder_arguments(parser, "transfer-new-model", records=True)
    parser.add_argument("--json", help="append the result as one JSON line here")
    args = parser.parse_args()
    os.makedirs(args.work, exist_ok=True)
    target = parse_target(args.target)
    state_path = os.path.join(args.work, "state.json")
    state = read_state(state_path)
    path = os.path.join(args.work, f"{NAME}.onnx")
    if not os.path.exists(path):
        with atomic_write(path, "wb") as f:
            f.write(build_model().SerializeToString())
    model = load_model(path)
    sources = [tagged_records(args, m) for m in args.sources]

    transferred = os.path.join(args.work, "transfer-records")
    if "transfer" not in state:
        report = transfer_tune(model, target, sources, transferred, TransferOptions(time_limit=args.time_limit, e2e=False, use_library=False))
        print(report.summary())
        totals = report.totals()
        if not totals["complete"]:
            print(f"transfer stopped at --time-limit {args.time_limit:g} s with kernels left: that is the result at this budget")
        state["transfer"] = {k: totals[k] for k in ("kernels", "matched", "transferred", "candidates", "measured", "valid", "wrong",
                                                    "invalid", "coverage", "search_seconds", "complete")}
        # the classes the sources hold: every kernel but the unmatched ones, those the time limit left pending included
        total = sum(k.flops * k.weight for k in report.kernels)
        state["transfer"]["class_coverage"] = sum(k.flops * k.weight for k in report.kernels if k.status != "unmatched") / total
        write_state(state_path, state)
    budget = state["transfer"]["search_seconds"]

    # plain tuning as tvmc tune runs it (from each kernel's measured default schedule) and from random samples
    # only (--no-default-schedules, as stock MetaSchedule starts), each for the transfer's search time
    arms = {"tune": True, "tune-random": False}
    for arm, default_start in arms.items():
        if arm not in state:
            start = time.time()
            report = tune_model(model, target, os.path.join(args.work, f"{arm}-records"),
                                TuneOptions(trials=100000, time_budget=budget, population=args.population, default_start=default_start))
            state[arm] = {"seconds": round(time.time() - start, 1), "trials": report.new_trials,
                          "tasks_with_records": sum(1 for t in report.tasks if t.best_seconds is not None), "tasks": len(report.tasks),
                          "seeded": report.seeds.seeded if report.seeds else 0}
            write_state(state_path, state)

    packages = {}
    for label, records in (("untuned", None), ("transfer", transferred), *((arm, os.path.join(args.work, f"{arm}-records")) for arm in arms)):
        packages[label] = os.path.join(args.work, f"{label}.tar")
        if not os.path.exists(packages[label]):
            has_records = records and os.path.getsize(database_paths(records)[1]) > 0  # a transfer may end with none
            compile_model(model, target, packages[label], records=records if has_records else None)
    times, errors = against_onnxruntime(path, model, packages, args.repeat)
    t = state["transfer"]
    share = t["coverage"] / t["class_coverage"] if t["class_coverage"] else 0.0
    print(f"\n{NAME}: {t['kernels']} kernels, {t['matched']} matched a source class, {t['transferred']} transferred")
    print(f"transfer: {t['search_seconds']:.0f} s, {t['measured']} candidates measured ({t['wrong']} wrong, {t['invalid']} invalid); "
          f"coverage {t['coverage'] * 100:.1f}% of weighted FLOPs, {share * 100:.1f}% of the {t['class_coverage'] * 100:.1f}% whose classes the sources hold")
    for arm in arms:
        u = state[arm]
        print(f"plain {arm}: {u['seconds']:.0f} s, {u['trials']} trials ({u.get('seeded', 0)} of them measured defaults), "
              f"{u['tasks_with_records']} of {u['tasks']} tasks with records")
    print(f"{'package':<11} {'ms':>8} {'/ ORT':>7} {'untuned /':>10} {'rel err':>8}")
    for label in ("onnxruntime", "untuned", "transfer", *arms):
        print(f"{label:<11} {times[label]:>8.2f} {times[label] / times['onnxruntime']:>7.2f} {times['untuned'] / times[label]:>10.2f} "
              f"{errors.get(label, 0.0):>8.1e}")
    append_json(args.json, {"model": NAME, "sources": args.sources, "records_tag": args.records_tag, "target": args.target,
                            "time_limit": args.time_limit, **state, "ms": {k: round(v, 3) for k, v in times.items()},
                            "max_relative_error": max(errors.values()), "covered_share_of_class_flops": round(share, 4)})


if __name__ == "__main__":
    main()
