"""Issue 11, acceptance 2: does `tvmc tune` reach stock MetaSchedule's best end-to-end latency in a third of its time?

Stock is TVM 0.27's own CPU recipe as its docstring shows it, run as a fresh process and timed whole (import,
tuning, build): the ONNX model imported with ``relax.frontend.onnx.from_onnx``, then
``relax.get_pipeline("static_shape_tuning", total_trials=N, cpu_weight_prepack=True,
max_trials_per_task=ceil(N / tasks))`` (the docstring's advice, so that every task gets trials), ``tvm.compile``
and ``export_library``. Its builder and runner are MetaSchedule's defaults. TVM sizes its thread pool to half the
logical CPUs on x86, which is one thread on a 2-core machine without SMT; ``--stock-threads`` sets
``TVM_NUM_THREADS`` for it (default: the physical cores, stock at its strongest; ``default`` leaves it unset).

Ours is ``tune_model`` then ``compile_model`` in one fresh process, timed whole, with ``--time-budget`` set to a
third of stock's wall time less ``--compile-allowance`` seconds. Three arms:
- ``tvmc``: as shipped, the default schedules from the shipped library, which holds this model's own records;
- ``tvmc-held-out``: a library built from the other zoo models' records only (``--held-out``), as a model the
  library has never seen would get;
- ``tvmc-no-library`` (not run unless named in ``--arms``): no library at all, every kernel starts from the
  schedule the cost model ranks first among the design space's samples: the tuner alone.

Then every package, stock's included, runs in this process on the same inputs beside ONNX Runtime, all with one
thread per physical core, in interleaved rounds. Each arm's result is kept in WORK/state.json, so a stopped run
resumes with the next arm.

    python bench/stock_pipeline_vs_tvmc.py --model resnet50 --stock-trials 1000
"""

import argparse
import json
import os
import subprocess
import sys
import textwrap
import time

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
from common import (add_folder_arguments, median_ms, model_file, onnxruntime_runner, package_runner,  # noqa: E402
                    random_inputs, read_state, records_folder, threads, write_state)

from tvmc_transfer import load_model  # noqa: E402

STOCK = textwrap.dedent(
    """
    import json, math, sys, onnx, tvm
    from tvm import relax
    from tvm.relax.frontend.onnx import from_onnx
    from tvm.s_tir import meta_schedule as ms
    model_path, target_json, work, trials, output = sys.argv[1:6]
    target = tvm.target.Target(json.loads(target_json))
    mod = from_onnx(onnx.load(model_path))
    with target:  # count the tasks as the pipeline will see them, for max_trials_per_task
        seen = tvm.transform.Sequential([relax.transform.DecomposeOpsForInference(), relax.transform.CanonicalizeBindings(),
                                         relax.pipeline.zero_pipeline(), relax.transform.AttachAttrLayoutFreeBuffers()])(mod)
    tasks = len(ms.relax_integration.extract_tasks(seen, target))
    mod = relax.get_pipeline("static_shape_tuning", target=target, total_trials=int(trials), work_dir=work,
                             cpu_weight_prepack=True, max_trials_per_task=math.ceil(int(trials) / tasks))(mod)
    tvm.compile(mod, target=target).export_library(output)
    print(json.dumps({"tasks": tasks}))
    """
)

OURS = textwrap.dedent(
    """
    import json, sys
    from tvmc_transfer import TuneOptions, compile_model, load_model, parse_target, tune_model
    from tvmc_transfer.defaults.schedules import DefaultOptions
    model_path, target, records, output, budget, library = sys.argv[1:7]
    defaults = DefaultOptions(use_library=False) if library == "none" else DefaultOptions(library=library or None)
    model, target = load_model(model_path), parse_target(target)
    report = tune_model(model, target, records, TuneOptions(trials=100000, time_budget=float(budget), defaults=defaults))
    print(report.summary())
    compile_model(model, target, output, records=records, default_schedules=defaults)
    """
)


def timed(command, log: str, env: dict | None = None) -> float:
    """Run ``command`` as a fresh process, its output to ``log``; its wall seconds."""
    start = time.time()
    with open(log, "w") as out:
        proc = subprocess.run(command, stdout=out, stderr=subprocess.STDOUT, text=True, env=env)
    if proc.returncode != 0:
        sys.exit(f"failed ({log}): {' '.join(command)}")
    return time.time() - start


def stock_trials(work: str) -> int:
    with open(os.path.join(work, "database_tuning_record.json")) as f:
        return sum(1 for line in f if line.strip())


def held_out_library(args) -> str:
    from tvmc_transfer.defaults.library import find_library, read_library, write_library  # pylint: disable=import-outside-toplevel
    from tvmc_transfer import parse_target  # pylint: disable=import-outside-toplevel

    shipped = read_library(find_library(parse_target(args.target))[0])
    path = os.path.join(args.work, "held-out-library.json.xz")
    if not os.path.exists(path):
        folders = [records_folder(os.path.join(args.records, f"{name}-records")) for name in args.held_out]
        write_library(path, folders, shipped.family, shipped.arch, list(shipped.requires), "held-out")
    return path


def stock_runner(path: str, inputs: dict, names: list):
    import tvm  # pylint: disable=import-outside-toplevel
    from tvm import relax

    vm = relax.VirtualMachine(tvm.runtime.load_module(path), tvm.cpu())
    params = vm["main_transform_params"]([])  # weights are constants, prepacked at compile time: nothing to pass
    tensors = [tvm.runtime.tensor(inputs[name]) for name in names] + list(params)
    main = vm["main"]
    return lambda: main(*tensors)


def first_output(result) -> np.ndarray:
    return (result if hasattr(result, "numpy") else result[0]).numpy()


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="resnet50")
    parser.add_argument("--stock-trials", type=int, default=1000)
    parser.add_argument("--stock-threads", default=None, help="TVM_NUM_THREADS for stock (default: physical cores; 'default': unset)")
    parser.add_argument("--target", default="native")
    parser.add_argument("--compile-allowance", type=float, default=120.0,
                        help="seconds taken off our tuning budget for our compile (default 120)")
    parser.add_argument("--held-out", nargs="+", default=["googlenet-znver4-nhwc", "alexnet-znver4-nhwc"],
                        help="records folders (under --records) of the held-out library")
    parser.add_argument("--arms", nargs="+", default=["tvmc", "tvmc-held-out"])
    parser.add_argument("--repeat", type=int, default=20)
    add_folder_arguments(parser, "stock-pipeline", records=True)
    args = parser.parse_args()
    from tvmc_transfer import parse_target  # pylint: disable=import-outside-toplevel

    os.makedirs(args.work, exist_ok=True)
    state_path = os.path.join(args.work, "state.json")
    state = read_state(state_path)
    path = model_file(args.model, args.work)
    target = parse_target(args.target)
    if "stock" not in state:
        env = dict(os.environ)
        stock_threads = args.stock_threads or str(threads())
        env.pop("TVM_NUM_THREADS", None)
        if stock_threads != "default":
            env["TVM_NUM_THREADS"] = stock_threads
        work = os.path.join(args.work, "stock")
        output = os.path.join(args.work, "stock.so")
        seconds = timed([sys.executable, "-c", STOCK, path, str(target), work,
                         str(args.stock_trials), output], os.path.join(args.work, "stock.log"), env)
        state["stock"] = {"wall_s": round(seconds, 1), "trials": stock_trials(work), "package": output,
                          "threads": stock_threads}
        write_state(state_path, state)
    budget = state["stock"]["wall_s"] / 3 - args.compile_allowance
    for arm in args.arms:
        if arm in state:
            continue
        library = held_out_library(args) if arm == "tvmc-held-out" else ("none" if arm == "tvmc-no-library" else "")
        records, output = os.path.join(args.work, f"{arm}-records"), os.path.join(args.work, f"{arm}.tar")
        seconds = timed([sys.executable, "-c", OURS, path, args.target, records, output, str(budget), library],
                        os.path.join(args.work, f"{arm}.log"))
        state[arm] = {"wall_s": round(seconds, 1), "tune_budget_s": round(budget, 1), "package": output}
        write_state(state_path, state)

    model = load_model(path)
    inputs = random_inputs(model)
    names = [i.name for i in model.inputs]
    runs = {"stock": stock_runner(state["stock"]["package"], inputs, names)}
    runs.update({arm: package_runner(state[arm]["package"], inputs)[0] for arm in args.arms})
    run_ort = onnxruntime_runner(path, inputs, threads())
    reference = run_ort()[0]
    errors = {label: float(np.max(np.abs(first_output(run()) - reference)) / np.max(np.abs(reference))) for label, run in runs.items()}
    times = {"onnxruntime": [], **{label: [] for label in runs}}
    for _ in range(3):
        for label, run in [("onnxruntime", run_ort), *runs.items()]:
            times[label].append(median_ms(run, args.repeat))
    latency = {label: float(np.median(t)) for label, t in times.items()}
    print(f"model {args.model}, target {args.target}; stock {state['stock']['trials']} trials on "
          f"TVM_NUM_THREADS={state['stock']['threads']}; packages run on {threads()} threads beside ONNX Runtime")
    print(f"{'':<16} {'wall s':>8} {'/ stock':>8} {'ms':>9} {'/ ORT':>7} {'/ stock':>8} {'rel err':>9}")
    for label in ["onnxruntime", "stock", *args.arms]:
        wall = state.get(label, {}).get("wall_s")
        share = f"{wall / state['stock']['wall_s']:.2f}" if wall else ""
        print(f"{label:<16} {wall or '':>8} {share:>8} {latency[label]:>9.2f} {latency[label] / latency['onnxruntime']:>7.2f} "
              f"{latency[label] / latency['stock']:>8.2f} {errors.get(label, 0.0):>9.1e}")
    print(json.dumps({"model": args.model, "state": state, "latency_ms": latency, "rel_err": errors}))


if __name__ == "__main__":
    main()
