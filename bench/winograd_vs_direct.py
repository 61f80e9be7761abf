"""Winograd F(4x4, 3x3) against the direct convolution, kernel by kernel, against ONNX Runtime.

For each SHAPE (channels@size), a model of one 3x3 convolution with bias and ReLU (NCHW input, converted to NHWC
as on an AVX-512 CPU) is tuned for --trials with each lowering (same population and measurement), compiled, and
timed side by side with ONNX Runtime in one process. ResNet-50's four 3x3 convolutions by default:

    python bench/winograd_vs_direct.py --trials 128

``--min-tiles 1`` also takes convolutions with fewer than 16 output tiles per image (ResNet-50's 7x7 stage),
which ``winograd.MIN_TILES`` leaves direct.

End to end, ``--model NAME --records DIR`` starts from a zoo model's records tuned with Winograd: the records are
copied to WORK/DIR-direct, where the direct convolutions that Winograd replaced (the only kernels without a record
there) are tuned to as many trials each as the most-tuned Winograd kernel got; then both packages are timed side
by side with ONNX Runtime. Every other kernel runs the same records in both:

    python bench/winograd_vs_direct.py --model resnet50 --records bench/work/resnet50-znver4-winograd-records
"""

import argparse
import os
import sys
import time

import onnx

sys.path.insert(0, os.path.dirname(__file__))
from common import against_onnxruntime, append_json  # noqa: E402

from tvmc_transfer import MeasureOptions, TuneOptions, compile_model, load_model, parse_target, tune_model  # noqa: E402
from tvmc_transfer.build import winograd  # noqa: E402
from tvmc_transfer.build.lowering import Lowering  # noqa: E402
from tvmc_transfer.frontends.onnx_graph import Graph  # noqa: E402


def conv_model(path: str, channels: int, size: int) -> str:
    g = Graph(0)
    g.relu(g.conv("input", "conv", channels, channels, 3, pad=1))
    g.nodes[-1].output[0] = "output"
    shape = (1, channels, size, size)
    onnx.save(g.to_model("one-conv", "one 3x3 convolution", shape, shape, False), path)
    return path


def end_to_end(args, target) -> None:
    import shutil  # pylint: disable=import-outside-toplevel

    from common import model_file, records_folder  # pylint: disable=import-outside-toplevel

    from tvmc_transfer.records.database import open_database, records_of  # pylint: disable=import-outside-toplevel
    from tvmc_transfer.build.tasks import extract_tasks  # pylint: disable=import-outside-toplevel

    path = model_file(args.model, args.work)
    model = load_model(path)
    records = records_folder(args.records)
    direct_records = os.path.join(args.work, os.path.basename(records.rstrip("/")) + "-direct")
    if not os.path.isdir(direct_records):
        os.makedirs(direct_records)
        for name in ("database_workload.json", "database_tuning_record.json"):
            shutil.copy(os.path.join(records, name), direct_records)
    database = open_database(records)
    winograd_tasks = [t for t in extract_tasks(model, target, Lowering(winograd=True)) if "winograd" in t.name]
    per_task = max(len(records_of(database, t.mod)) for t in winograd_tasks)
    direct_database = open_database(direct_records)
    direct_tasks = extract_tasks(model, target, Lowering(winograd=False))
    untuned = [t.index for t in direct_tasks if not direct_database.has_workload(t.mod)]
    trials = len(direct_database.get_all_tuning_records()) + per_task * len(untuned)
    print(f"{len(winograd_tasks)} Winograd kernels, at most {per_task} trials each; tuning the {len(untuned)} direct kernels without a record to as many", flush=True)
    start = time.time()
    tune_model(model, target, direct_records, TuneOptions(trials=trials, trials_per_task=per_task, tasks=",".join(map(str, untuned)),
                                                          measure=MeasureOptions(), lowering=Lowering(winograd=False), population=args.population))
    seconds = time.time() - start
    packages = {}
    for arm, on, folder in (("direct", False, direct_records), ("winograd", True, records)):
        packages[arm] = os.path.join(args.work, f"{args.model}-{arm}.tar")
        compile_model(model, target, packages[arm], records=folder, lowering=Lowering(winograd=on), default_schedules=False)
    times, errors = against_onnxruntime(path, model, packages, args.repeat)
    ort, direct, wino = times["onnxruntime"], times["direct"], times["winograd"]
    print(f"{args.model}: ORT {ort:.2f} ms, direct {direct:.2f} ms ({direct / ort:.2f}x ORT), Winograd {wino:.2f} ms ({wino / ort:.2f}x ORT): "
          f"direct / Winograd {direct / wino:.2f}x; rel. error direct {errors['direct']:.1e}, Winograd {errors['winograd']:.1e}; "
          f"direct kernels tuned in {seconds:.0f} s")
    append_json(args.json, {"model": args.model, "per_task": per_task, "times_ms": times, "errors": errors, "direct_tune_seconds": seconds})


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("shapes", nargs="*", default=["64@56", "128@28", "256@14", "512@7"], metavar="SHAPE")
    parser.add_argument("--trials", type=int, default=128)
    parser.add_argument("--population", type=int, default=128)
    parser.add_argument("--target", default="native")
    parser.add_argument("--min-tiles", type=int, default=winograd.MIN_TILES)
    parser.add_argument("--repeat", type=int, default=50)
    parser.add_argument("--work", default=os.path.expanduser("~/.cache/tvmc-transfer-bench/winograd"))
    parser.add_argument("--model", help="end to end: this zoo model, from --records tuned with Winograd")
    parser.add_argument("--records", help="with --model: the Winograd records folder")
    parser.add_argument("--json", help="append one JSON line per shape here")
    args = parser.parse_args()
    winograd.MIN_TILES = args.min_tiles
    target = parse_target(args.target)
    os.makedirs(args.work, exist_ok=True)
    if args.model:
        end_to_end(args, target)
        return
    print(f"{'shape':>8} {'ORT ms':>8} {'direct':>8} {'winograd':>9} {'direct/wino':>11} {'wino/ORT':>8}  tune s (direct, winograd)  rel err")
    for shape in args.shapes:
        channels, size = (int(v) for v in shape.split("@"))
        path = conv_model(os.path.join(args.work, f"conv{channels}_{size}.onnx"), channels, size)
        model = load_model(path)
        packages, seconds = {}, {}
        for arm, on in (("direct", False), ("winograd", True)):
            lowering = Lowering(layout="NHWC", winograd=on)
            records = os.path.join(args.work, f"records-{channels}-{size}-{arm}-{args.trials}")
            start = time.time()
            tune_model(model, target, records, TuneOptions(trials=args.trials, measure=MeasureOptions(), lowering=lowering, population=args.population))
            seconds[arm] = time.time() - start
            packages[arm] = os.path.join(args.work, f"{arm}-{channels}-{size}.tar")
            compile_model(model, target, packages[arm], records=records, lowering=lowering, default_schedules=False)
        times, errors = against_onnxruntime(path, model, packages, args.repeat)
        ort, direct, wino = times["onnxruntime"], times["direct"], times["winograd"]
        print(
            f"{shape:>8} {ort:8.3f} {direct:8.3f} {wino:9.3f} {direct / wino:10.2f}x {wino / ort:7.2f}x  "
            f"{seconds['direct']:6.0f} {seconds['winograd']:6.0f}  {errors['direct']:.1e} {errors['winograd']:.1e}",
            flush=True,
        )
        append_json(args.json, {"shape": shape, "trials": args.trials, "times_ms": times, "errors": errors, "tune_seconds": seconds})


if __name__ == "__main__":
    main()
