"""Our droplet search against TVM 0.27's droplet post-optimization and more evolutionary search, in one run.

From one evolutionary start per model (``droplet_bench.Start``: the same records copied into each arm), each
arm gets the same number of extra trials per task (``--trials``):
- ``droplet``: this package's droplet search (``tvmc tune --droplet``);
- ``tvm-droplet``: TVM 0.27's droplet post-optimization as it ships, run by
  ``ms.tune_tasks(..., post_optimization=True)`` with no evolutionary trial before it;
- ``evolutionary``: more of MetaSchedule's evolutionary search.
It prints per kernel each arm's best schedule timed again side by side, the trials each arm took to reach its
final latency (0: it never beat the start), the trials it measured, the tuning wall time, and the end-to-end
latency of each arm's compiled package, timed in interleaved rounds (ONNX Runtime beside them, for scale).

``tune_tasks`` gives the post-optimization no trial count (its ``PostOpt`` tries 100 per kernel) and deletes
each kernel's log of what it measured. This script sets the first (a ``functools.partial`` of ``PostOpt``) and
keeps the logs (``tvm-droplet/opt_*.log.kept``) to count the trials that ran, and counts those it tried (its
``Space.run``, wrapped); the algorithm runs unchanged.

Resumable as ``droplet_bench.py``: run the same command again and only the timing is done again.

    python bench/droplet_vs_peers.py tiny-cnn --base-trials 48 --trials 32
"""

import argparse
import functools
import json
import os
import random
import statistics
import sys

import attrs

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import WORK  # noqa: E402
from droplet_bench import Start, add_arguments, bench_models, first_reaching, own_series, run_arm, trials_to_best, trials_to_reach  # noqa: E402
from tvmc_transfer.droplet.phase import DropletOptions  # noqa: E402
from tvmc_transfer.records import WORKLOADS  # noqa: E402
from tvmc_transfer.tune.task_logs import tune_contexts  # noqa: E402

ARMS = ("base", "droplet", "tvm-droplet", "evolutionary")
PATIENT = "tvm-droplet-60s"  # TVM's droplet with a 60 s build timeout (--patient-tvm-droplet)
# our droplet's variants (--variants), each an arm of its own beside the default droplet: what the original's
# diagonal moves buy, and what the cost model's order of the neighbours buys
VARIANTS = {"diagonal": ("droplet-diagonal2", {"diagonal": 2}), "axis-order": ("droplet-axis-order", {"model_order": False})}
LETTERS = {"droplet": "d", "tvm-droplet": "t", "evolutionary": "e", PATIENT: "t60", "droplet-diagonal2": "d2", "droplet-axis-order": "da"}


def arms_run(keys) -> tuple:
    """The base, then those of ``ARMS`` and the patient TVM droplet that ``keys`` (a result's or the runs') hold."""
    variants = tuple(arm for arm, _ in VARIANTS.values())
    return ("base",) + tuple(a for a in ARMS[1:] + (PATIENT,) + variants if a in keys)


KEPT = ".kept"


def tvm_droplet(start: Start, arm: str = "tvm-droplet", build_timeout: float | None = None) -> dict:
    """TVM's droplet post-optimization from the copied start, ``--trials`` per kernel (resumable).
    ``build_timeout``: the seconds its builder waits (None: as it ships, 10 s, which the fresh workers of its
    ``LocalBuilder`` spend importing tensor intrinsics on a 2-core machine)."""
    folder = start.copy(arm)

    def tune():
        from tvm.s_tir import meta_schedule as ms  # pylint: disable=import-outside-toplevel
        from tvm.s_tir.meta_schedule import tune as ms_tune
        from tvm.s_tir.meta_schedule.post_optimization import post_opt, space

        def keep(filename):  # instead of deleting it: the kernel's measurements, in the order taken
            if os.path.isfile(filename):
                os.replace(filename, filename + KEPT)

        attempted = {}

        def run(self, configs, log, **kwargs):  # counts what it tries (it logs only what ran)
            attempted[self._id] = attempted.get(self._id, 0) + len(configs)  # pylint: disable=protected-access
            if build_timeout is not None:
                kwargs["timeout"] = build_timeout
            return shipped[2](self, configs, log, **kwargs)

        shipped = ms_tune.PostOpt, post_opt.clean_file, space.Space.run
        ms_tune.PostOpt, post_opt.clean_file = functools.partial(shipped[0], trials=start.args.trials), keep
        space.Space.run = run
        random.seed(0)  # its Space keeps a schedule's postprocessing at random (a quarter of the time)
        try:  # the contexts MetaSchedule would build, without its logging setup (tune/task_logs.py)
            with tune_contexts([t.extracted for t in start.tasks], folder, "replay-trace", start.measure.parallel, seed=0) as (contexts, weights):
                ms.tune_tasks(tasks=contexts, task_weights=weights, work_dir=folder, max_trials_global=0, post_optimization=True)
        finally:
            ms_tune.PostOpt, post_opt.clean_file, space.Space.run = shipped
        return {"new_trials": sum(len(s) for s in kept_series(folder, start.tasks).values()), "attempted": sum(attempted.values())}

    return run_arm(folder, tune)


def kept_series(folder: str, tasks) -> dict:
    """Per task name: the mean seconds of each schedule TVM's droplet measured, in order (failed ones are not
    logged by it)."""
    from tvm_ffi import structural_hash  # pylint: disable=import-outside-toplevel

    with open(os.path.join(folder, WORKLOADS)) as f:
        shash = [json.loads(line)[0] for line in f if line.strip()]
    names = {str(structural_hash(t.mod)): t.name for t in tasks}
    series = {}
    for log in sorted(n for n in os.listdir(folder) if n.endswith(KEPT)):
        with open(os.path.join(folder, log)) as f:
            for line in f:
                if line.strip():
                    index, record = json.loads(line)
                    name = names.get(shash[index])
                    if name is not None:
                        series.setdefault(name, []).append(statistics.fmean(float(s) for s in record[1]))
    return series


def tvm_trials_to_best(start: Start, folder: str) -> dict:
    """As ``trials_to_best`` for TVM's droplet: from its kept logs, against the start's best record."""
    base_best = {}
    for name, secs in _records(start):
        base_best[name] = min(base_best.get(name, 1e30), statistics.fmean(secs))
    result = {}
    for name, series in kept_series(folder, start.tasks).items():
        best = min(series)
        result[name] = 1 + series.index(best) if best < base_best.get(name, 1e30) else 0
    return result


def to_evolutionary(start: Start) -> dict:
    """Per arm and task: the extra trials it took to measure the best latency more evolutionary search recorded
    (None: never; tasks where evolutionary search did not beat the start are left out). Every arm's times
    here are its own records, measured at different moments: the re-timed columns say who is really ahead."""
    levels = {name: min(own) for name, (start_series, own) in own_series(start.folder("evolutionary"), start.tasks, start.base_lines).items()
              if own and min(own) < min(start_series or [1e30])}
    result = {"evolutionary": trials_to_reach(start.folder("evolutionary"), start.tasks, start.base_lines, levels),
              "droplet": trials_to_reach(start.folder("droplet"), start.tasks, start.base_lines, levels)}
    # and the other way round: evolutionary search's extra trials to record droplet's best time
    ours = {name: min(own) for name, (_, own) in own_series(start.folder("droplet"), start.tasks, start.base_lines).items() if own}
    result["evolutionary_to_droplet"] = trials_to_reach(start.folder("evolutionary"), start.tasks, start.base_lines, ours)
    for arm in ("tvm-droplet", PATIENT):
        if os.path.isdir(start.folder(arm)):
            series = kept_series(start.folder(arm), start.tasks)
            result[arm] = {name: first_reaching(series.get(name, []), level) for name, level in levels.items()}
    return result


def _records(start: Start):
    from droplet_bench import _task_records  # pylint: disable=import-outside-toplevel

    return ((n, s) for n, s in _task_records(start.folder("base"), start.tasks) if n is not None and s and max(s) < 1e9)


def format_result(result: dict, tasks) -> str:
    shown = arms_run(result)
    arms = shown[1:]
    order = "/".join(LETTERS[a] for a in arms)
    evolutionary = result.get("evolutionary_trials", result["trials"])
    per_task = f"{result['trials']} extra trials per task" + (f" ({evolutionary} for evolutionary search)" if evolutionary != result["trials"] else "")
    rows = [f"== {result['model']} (tasks {result['tasks'] or 'all'}, {result.get('lowering', 'records')} lowering), {per_task}",
            f"{'task':<28} " + " ".join(f"{a + ' us':>15}" for a in shown) + f"  {'to final latency (' + order + ')':>25}  {'to evo best (' + order + ')':>20}  {'evo to droplet best':>19}"]
    kernels, to_best, to_evo = result["kernels_us"], result["trials_to_best"], result.get("to_evolutionary", {})
    for t in tasks:
        cells = " ".join(f"{kernels[f'{t.name}|{a}']:15.2f}" if f"{t.name}|{a}" in kernels else f"{'-':>15}" for a in shown)
        best = "/".join(str(to_best[a].get(t.name, 0)) for a in arms)
        evo = "/".join(str(to_evo.get(a, {}).get(t.name, "-")) for a in arms) if t.name in to_evo.get("evolutionary", {}) else "-"
        back = str(to_evo.get("evolutionary_to_droplet", {}).get(t.name, "-"))
        rows.append(f"{t.name[:28]:<28} {cells}  {best:>25}  {evo:>20}  {back:>19}")
    tried = {a: f" of {result[a]['attempted']} tried" if "attempted" in result[a] else "" for a in arms}
    rows.append("schedules measured (wall time): " + ", ".join(f"{a} {result[a]['new_trials']}{tried[a]} ({result[a]['wall_seconds']:.0f} s)" for a in arms))
    rows.append("(droplet's include its controls, re-measurements that are no trials; to final latency counts trials only;")
    rows.append(" to evo best: extra trials until an arm recorded evolutionary search's best time, None: never;")
    rows.append(" evo to droplet best: evolutionary search's extra trials until it recorded droplet's best time; records' own times)")
    rows.append("end to end (median ms): " + ", ".join(f"{a} {ms:.3f}" for a, ms in result["end_to_end_ms"].items()))
    return "\n".join(rows)


def bench_model(name: str, args) -> dict:
    start = Start(name, args)
    ours = DropletOptions(trials=args.trials, diagonal=args.droplet_diagonal, model_order=not args.droplet_axis_order)
    runs = {"droplet": start.droplet(options=ours)}
    if not args.no_tvm_droplet:
        runs["tvm-droplet"] = tvm_droplet(start)
    runs["evolutionary"] = start.evolutionary()
    if args.patient_tvm_droplet:
        runs[PATIENT] = tvm_droplet(start, PATIENT, build_timeout=60.0)
    for variant in args.variants:
        arm, change = VARIANTS[variant]
        runs[arm] = start.droplet(arm, attrs.evolve(ours, **change))
    ours_arms = ["droplet", *(VARIANTS[v][0] for v in args.variants)]
    to_best = {arm: trials_to_best(start.folder(arm), start.tasks, start.base_lines) for arm in (*ours_arms, "evolutionary")}
    for arm in {"tvm-droplet", PATIENT} & set(runs):
        to_best[arm] = tvm_trials_to_best(start, start.folder(arm))
    kernels, end_to_end = start.timed(arms_run(runs))
    result = {
        "model": name,
        "tasks": start.spec,
        "trials": args.trials,
        "evolutionary_trials": args.evolutionary_trials or args.trials,
        "lowering": args.lowering,
        "droplet_options": {"diagonal": args.droplet_diagonal, "model_order": not args.droplet_axis_order},
        "base": start.base,
        **runs,
        "trials_to_best": to_best,
        "to_evolutionary": to_evolutionary(start),
        "kernels_us": {f"{task}|{arm}": s * 1e6 for (task, arm), s in kernels.items()},
        "end_to_end_ms": {arm: s * 1e3 for arm, s in end_to_end.items()},
    }
    start.save(result)
    print(format_result(result, start.tasks))
    return result


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_arguments(parser)
    parser.set_defaults(work=os.path.join(WORK, "droplet-vs-peers"))
    parser.add_argument("--droplet-diagonal", type=int, default=0, metavar="K", help="our droplet's --droplet-diagonal")
    parser.add_argument("--droplet-axis-order", action="store_true", help="our droplet without the cost model's order")
    parser.add_argument("--variants", nargs="*", default=[], choices=sorted(VARIANTS),
                        help="also our droplet with diagonal moves (2 directions) or with the axis order, each an arm of its own")
    parser.add_argument("--no-tvm-droplet", action="store_true", help="leave TVM's droplet out (for example against a long evolutionary run)")
    parser.add_argument("--patient-tvm-droplet", action="store_true",
                        help=f"also TVM's droplet with a 60 s build timeout ('{PATIENT}'): as it ships, its 10 s timeout expires while its fresh build workers import tensor intrinsics")
    return bench_models(parser, bench_model, argv)


if __name__ == "__main__":
    sys.exit(main())
