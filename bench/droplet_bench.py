"""Droplet search against more evolutionary search, from the same starting records, side by side.

For each model: tune a base records folder with evolutionary search (``--base-trials``), copy it twice, then
give the same budget of ``--trials`` per task to droplet search in one copy and to evolutionary search in the
other. It reports per kernel the best schedule of each arm timed again side by side in this process, the
trials each arm used (and droplet's convergence), the tuning wall time, and the end-to-end latency of the
three compiled packages timed in interleaved rounds (ONNX Runtime alongside, for scale; the kernels outside
``--heaviest``/``--tasks`` get their default schedules, the same in every package).

Everything it tunes is resumable: run the same command again and it measures nothing new, only times again.

    python bench/droplet_bench.py tiny-cnn --base-trials 48 --trials 32
    python bench/droplet_bench.py alexnet --base-trials 32 --trials 24 --heaviest 2
"""

import argparse
import json
import os
import shutil
import statistics
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import add_folder_arguments, add_lowering_argument, lowering_of, model_file, onnxruntime_runner, random_inputs, threads  # noqa: E402
from tvmc_transfer.compiler import compile_model  # noqa: E402
from tvmc_transfer.droplet.phase import DropletOptions, refine_with_droplet  # noqa: E402
from tvmc_transfer.frontends.load import load_model  # noqa: E402
from tvmc_transfer.tune.measure import MeasureOptions  # noqa: E402
from tvmc_transfer.records import TUNING_RECORDS, WORKLOADS, open_database  # noqa: E402
from tvmc_transfer.records.folder import CONTROLS, RecordsFolder  # noqa: E402
from tvmc_transfer.target import parse_target  # noqa: E402
from tvmc_transfer.build.tasks import extract_tasks, heaviest_first, select_tasks  # noqa: E402
from tvmc_transfer.tune.model import TuneOptions, task_results, tune_model  # noqa: E402

ARMS = ("base", "droplet", "evolutionary")


def task_spec(tasks, args) -> str | None:
    if args.heaviest:
        heavy = heaviest_first(tasks)[: args.heaviest]
        return ",".join(str(t.index) for t in sorted(heavy, key=lambda t: t.index))
    return args.tasks


def run_arm(folder: str, tune) -> dict:
    """Tune once (resumably); keep the wall time and report of the run that did the work."""
    done = os.path.join(folder, "bench.json")
    if os.path.isfile(done):
        with open(done) as f:
            return json.load(f)
    start = time.time()
    result = tune()
    result["wall_seconds"] = time.time() - start
    with open(done, "w") as f:
        json.dump(result, f, indent=1)
    return result


def _task_records(folder: str, tasks):
    """``(task name, run seconds)`` of every record in a folder, in file order (which is time order)."""
    from tvm_ffi import structural_hash  # pylint: disable=import-outside-toplevel

    with open(os.path.join(folder, WORKLOADS)) as f:
        shash = [json.loads(line)[0] for line in f if line.strip()]
    names = {str(structural_hash(t.mod)): t.name for t in tasks}
    with open(os.path.join(folder, TUNING_RECORDS)) as f:
        for line in f:
            if line.strip():
                index, (_, secs, *_rest) = json.loads(line)
                yield names.get(shash[index]), secs


def _controls(folder: str) -> frozenset:
    """The samples of droplet's controls in a folder: re-measurements of schedules it had tried, not trials."""
    controls = RecordsFolder(folder).read_json(CONTROLS)  # empty when the arm is not droplet's
    return frozenset(tuple(float(v) for v in s) for walk in controls.values() for s in walk if s)


def own_series(folder: str, tasks, skip: dict) -> dict:
    """Per task: ``(start, own)``, the mean seconds of the start's records and of the arm's own new ones, in file
    order (time order); droplet's controls are neither trials nor new schedules, so they are left out."""
    times, controls, seen = {}, _controls(folder), {}
    for name, secs in _task_records(folder, tasks):
        if name is not None:
            seen[name] = seen.get(name, 0) + 1
            if seen[name] <= skip.get(name, 0) or tuple(float(s) for s in secs) not in controls:
                times.setdefault(name, []).append(statistics.fmean(secs))
    return {name: (series[: skip.get(name, 0)], series[skip.get(name, 0) :]) for name, series in times.items()}


def trials_to_best(folder: str, tasks, skip: dict) -> dict:
    """Per task: how many of the arm's own new records it took to reach its best (0: it never beat the start)."""
    result = {}
    for name, (start, own) in own_series(folder, tasks, skip).items():
        result[name] = 1 + own.index(min(own)) if own and min(own) < min(start or [1e30]) else 0
    return result


def first_reaching(series: list, level: float) -> int | None:
    """How many entries of ``series`` (seconds, in time order) it took to reach ``level`` or less (None: never)."""
    return next((i + 1 for i, secs in enumerate(series) if secs <= level), None)


def trials_to_reach(folder: str, tasks, skip: dict, levels: dict) -> dict:
    """Per task: how many of the arm's own new records it took to measure ``levels[task]`` seconds or less
    (None: it never did)."""
    return {name: first_reaching(own, levels[name]) for name, (_, own) in own_series(folder, tasks, skip).items() if name in levels}


def time_kernels(tasks, folders: dict, target, rounds: int) -> dict:
    """Median seconds of each arm's best schedule per task, timed in interleaved rounds in this process."""
    import tvm  # pylint: disable=import-outside-toplevel
    from tvm.s_tir import Schedule
    from tvm.s_tir.meta_schedule.arg_info import ArgInfo
    from tvm.s_tir.transform import RemoveWeightLayoutRewriteBlock

    dev, rng = tvm.cpu(), np.random.default_rng(0)
    timers = {}
    for arm, folder in folders.items():
        database = open_database(folder)
        for task in tasks:
            if not database.has_workload(task.mod):
                continue
            best = database.get_top_k(database.commit_workload(task.mod), 1)
            if not best:
                continue
            sch = Schedule(task.mod)
            best[0].trace.apply_to_schedule(sch, remove_postproc=False)
            # Arguments as the kernel takes them once its weight layout rewrite (if any) is done ahead of time.
            infos = ArgInfo.from_entry_func(sch.mod, remove_preproc=True)
            lib = tvm.compile(RemoveWeightLayoutRewriteBlock(skip_tensor_rewrite=True)(sch.mod), target=target).jit()
            args = [tvm.runtime.tensor(rng.standard_normal([int(d) for d in a.shape]).astype(a.dtype), dev) for a in infos]
            timer = lib.time_evaluator("main", dev, number=1, repeat=1, min_repeat_ms=50)
            timers[(task.name, arm)] = (timer, args)
    samples = {key: [] for key in timers}
    for _ in range(rounds):
        for key, (timer, args) in timers.items():
            samples[key].append(timer(*args).mean)
    return {key: statistics.median(s) for key, s in samples.items()}


def time_packages(packages: dict, model, rounds: int) -> dict:
    """Median end-to-end seconds per package (and ONNX Runtime), interleaved rounds, one process. The
    packages are timed by the VM's time evaluator (at least 100 ms a sample): tiny-cnn runs in ~50 us."""
    import tvm  # pylint: disable=import-outside-toplevel
    from tvm import relax

    from tvmc_transfer.build.package import read_package

    dev, inputs, runs = tvm.cpu(), random_inputs(model), {}
    for arm, path in packages.items():
        package = read_package(path)
        vm = relax.VirtualMachine(package.load(), dev)
        vm.set_input("main", *[tvm.runtime.tensor(inputs[i.name], dev) for i in package.metadata.inputs])
        timer = vm.time_evaluator("invoke_stateful", dev, number=1, repeat=1, min_repeat_ms=100)
        runs[arm] = lambda timer=timer: timer("main").mean
    onnxruntime = onnxruntime_runner(model.path, inputs, threads())

    def onnxruntime_run(calls=10):
        start = time.perf_counter()
        for _ in range(calls):
            onnxruntime()
        return (time.perf_counter() - start) / calls

    runs["onnxruntime"] = onnxruntime_run
    samples = {arm: [] for arm in runs}
    for _ in range(rounds):
        for arm, run in runs.items():
            samples[arm].append(run())
    return {arm: statistics.median(s) for arm, s in samples.items()}


class Start:
    """One model's common start: its tasks, and a records folder tuned by evolutionary search (``--base-trials``)
    that each arm copies and tunes further with the same budget per task. ``droplet_vs_peers.py`` reuses it."""

    def __init__(self, name: str, args):
        self.args, self.name = args, name
        self.work = os.path.join(args.work, os.path.basename(name).removesuffix(".onnx"))
        os.makedirs(self.work, exist_ok=True)
        self.model, self.target = load_model(model_file(name, self.work)), parse_target(args.target)
        self.lowering = lowering_of(args)
        all_tasks = extract_tasks(self.model, self.target, self.lowering)
        self.spec = task_spec(all_tasks, args)
        self.tasks = select_tasks(all_tasks, self.spec)
        self.measure = MeasureOptions(number=args.number, repeat=args.repeat, min_repeat_ms=args.min_repeat_ms)
        self.tune_options = dict(tasks=self.spec, population=args.population, trials_per_iter=args.trials_per_iter, measure=self.measure, lowering=self.lowering)
        base = self.folder("base")
        self.base = run_arm(base, lambda: {"new_trials": tune_model(self.model, self.target, base, TuneOptions(trials=args.base_trials, **self.tune_options)).new_trials})
        self.base_trials = {t.name: t.trials for t in task_results(self.tasks, open_database(base))}
        self.base_lines = _record_counts(base, self.tasks)

    def folder(self, arm: str) -> str:
        return os.path.join(self.work, arm)

    def copy(self, arm: str) -> str:
        """The arm's folder: a copy of the base records (made once)."""
        if not os.path.isdir(self.folder(arm)):
            shutil.copytree(self.folder("base"), self.folder(arm), ignore=shutil.ignore_patterns("logs", "bench.json", "opt_*.log"))
        return self.folder(arm)

    def droplet(self, arm: str = "droplet", options: DropletOptions | None = None) -> dict:
        """Our droplet search, ``--trials`` per task, from the copied start (resumable)."""
        options = options or DropletOptions(trials=self.args.trials)

        def tune():
            report = refine_with_droplet(self.model, self.target, self.copy(arm), options, measure=self.measure, tasks=self.spec, lowering=self.lowering)
            print(report.summary())
            per_task = {t.name: {"trials": t.trials, "measured": t.measured, "converged": t.converged, "moves": len(t.moves)} for t in report.tasks}
            return {"new_trials": report.measured, "tasks": per_task}

        return run_arm(self.copy(arm), tune)

    def evolutionary(self, arm: str = "evolutionary") -> dict:
        """More evolutionary search: ``--evolutionary-trials`` (by default ``--trials``) more per task, from the
        copied start (resumable)."""
        total = sum(self.base_trials.values()) + (self.args.evolutionary_trials or self.args.trials) * len(self.tasks)
        folder = self.copy(arm)
        return run_arm(folder, lambda: {"new_trials": tune_model(self.model, self.target, folder, TuneOptions(trials=total, **self.tune_options)).new_trials})

    def timed(self, arms) -> tuple:
        """``(kernels, end_to_end)``: each arm's best schedule per task and its compiled package, timed side by
        side in interleaved rounds (ONNX Runtime beside the packages); ``--kernels-only`` keeps the last
        end-to-end timing."""
        folders = {arm: self.folder(arm) for arm in arms}
        kernels = time_kernels(self.tasks, folders, self.target, self.args.rounds)
        previous = os.path.join(self.work, "results.json")
        if self.args.kernels_only and os.path.exists(previous):
            with open(previous) as f:
                return kernels, {arm: ms / 1e3 for arm, ms in json.load(f)["end_to_end_ms"].items()}
        packages = {}
        for arm in arms:
            packages[arm] = os.path.join(self.work, f"{arm}.tar")
            # the kernels no arm tuned get their default schedules, the same in every arm, as a user's compile
            # gives them (unscheduled, they would bury the tuned kernels' differences)
            compile_model(self.model, self.target, packages[arm], records=folders[arm], lowering=self.lowering)
        return kernels, time_packages(packages, self.model, self.args.rounds)

    def save(self, result: dict) -> None:
        with open(os.path.join(self.work, "results.json"), "w") as f:
            json.dump(result, f, indent=1)


def bench_model(name: str, args) -> dict:
    start = Start(name, args)
    droplet, evolutionary = start.droplet(), start.evolutionary()
    to_best = {arm: trials_to_best(start.folder(arm), start.tasks, start.base_lines) for arm in ("droplet", "evolutionary")}
    kernels, end_to_end = start.timed(ARMS)
    result = {
        "model": name,
        "tasks": start.spec,
        "base": start.base,
        "droplet": droplet,
        "evolutionary": evolutionary,
        "trials_to_best": to_best,
        "kernels_us": {f"{task}|{arm}": s * 1e6 for (task, arm), s in kernels.items()},
        "end_to_end_ms": {arm: s * 1e3 for arm, s in end_to_end.items()},
    }
    start.save(result)
    print(format_result(result, start.tasks))
    return result


def _record_counts(folder: str, tasks) -> dict:
    """Records per task in a folder (measured or not), in file order: the base's share of each arm's file."""
    counts = {}
    for name, _ in _task_records(folder, tasks):
        counts[name] = counts.get(name, 0) + 1
    return counts


def format_result(result: dict, tasks) -> str:
    d, e = result["droplet"], result["evolutionary"]
    rows = [f"== {result['model']} (tasks {result['tasks'] or 'all'})",
            f"{'task':<28} {'base us':>9} {'droplet us':>10} {'evo us':>9}  {'droplet trials':>14} {'to best d/e':>11}"]
    kernels = result["kernels_us"]
    for t in tasks:
        k = [kernels.get(f"{t.name}|{arm}") for arm in ARMS]
        cells = " ".join(f"{v:9.2f}" if v else f"{'-':>9}" for v in k)
        info = d.get("tasks", {}).get(t.name, {})
        trials = f"{info.get('trials', 0)}{' conv' if info.get('converged') else ''}"
        best = f"{result['trials_to_best']['droplet'].get(t.name, 0)}/{result['trials_to_best']['evolutionary'].get(t.name, 0)}"
        rows.append(f"{t.name[:28]:<28} {cells}  {trials:>14} {best:>11}")
    rows.append(f"new trials: droplet {d['new_trials']} in {d['wall_seconds']:.0f} s, evolutionary {e['new_trials']} in {e['wall_seconds']:.0f} s")
    rows.append("end to end (median ms): " + ", ".join(f"{arm} {ms:.3f}" for arm, ms in result["end_to_end_ms"].items()))
    return "\n".join(rows)


def add_arguments(parser) -> None:
    """The options of the common start, the budget and the timing, shared with droplet_vs_peers.py."""
    parser.add_argument("models", nargs="+", help="zoo model names or .onnx files")
    add_folder_arguments(parser, "droplet")
    parser.add_argument("--target", default="llvm -num-cores=2")
    parser.add_argument("--base-trials", type=int, default=48, help="evolutionary trials of the common start")
    parser.add_argument("--trials", type=int, default=32, help="trials per task given to each arm")
    parser.add_argument("--evolutionary-trials", type=int, metavar="N",
                        help="trials per task for more evolutionary search (default --trials): a long run against droplet's short one")
    add_lowering_argument(parser)
    parser.add_argument("--tasks", help="which tasks (0,2-5); default all")
    parser.add_argument("--heaviest", type=int, help="only the N heaviest tasks (FLOPs x weight)")
    parser.add_argument("--population", type=int, default=64)
    parser.add_argument("--trials-per-iter", type=int, default=16)
    parser.add_argument("--number", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--min-repeat-ms", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=15, help="interleaved timing rounds")
    parser.add_argument("--kernels-only", action="store_true",
                        help="re-time only the kernels (end to end: keep the last run's timing, if any)")


def bench_models(parser, bench, argv=None) -> int:
    """Parse ``argv`` and run ``bench(name, args)`` for each model named: a droplet script's main."""
    args = parser.parse_args(argv)
    for name in args.models:
        bench(name, args)
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_arguments(parser)
    return bench_models(parser, bench_model, argv)


if __name__ == "__main__":
    sys.exit(main())
