"""Transfer-tuning between zoo models, against no tuning, full tuning and ONNX Runtime, all timed in one run.

For every ordered pair SOURCE:TARGET it transfers SOURCE's full-tuning records to TARGET at a stated budget
(``--max-per-kernel`` candidates per kernel, the best ``--max-candidates`` records of each matching source
kernel), then, per target model, compiles the untuned, fully tuned and transfer-tuned packages and times them
with ONNX Runtime in interleaved rounds in one process. It reports:

- untuned, transfer-tuned, fully tuned and ONNX Runtime latency, and the search time of transfer and of full
  tuning;
- the fraction of full tuning's speedup that transfer achieved: ``(S_transfer - 1) / (S_full - 1)`` with
  ``S = untuned latency / latency``;
- with ``--droplet-trials K``, the transfer refined by droplet search (K trials per kernel); with
  ``--tune-rest N``, the transfer with its unmatched kernels tuned (N trials); each in a copy of its output;
- how long plain ``tvmc tune`` needed to reach the transferred latency: packages compiled from the first N
  records of the full-tuning run (its records file is in measurement order) on a grid of N, timed alongside;
  the first N at least as fast as transfer, and the tuning time it took to get there (from the timestamps of
  MetaSchedule's task logs in the records folder; gaps over 10 minutes, between sessions, are not counted).

Full-tuning records are ``RECORDS/<model>-records`` (``--records``, by default the committed ``bench/work``;
tuned on to ``--full-trials`` in a copy under WORK when they are missing or short). Everything else goes under
``--work`` (by default ``~/.cache/tvmc-transfer-bench``). Every step is resumable and the script stops
starting new steps after ``--time-limit`` seconds: run the same command again to go on. State is kept in
``WORK/transfer-bench/state.json`` (``--folder``); the final table prints when every step is done.

    python bench/transfer_bench.py --pairs resnet50:alexnet alexnet:resnet50 --droplet-trials 16 --time-limit 100000
    python bench/transfer_bench.py --all-pairs --droplet-trials 16 --time-limit 100000

With ``--exact-too`` each pair is also transferred with ``--exact-classes`` (no epilogue matches: what transfer
did before they existed) into a folder of its own, and that package is timed alongside.

With ``--droplet-trials K`` each transfer is also refined by droplet search (K trials per kernel that has a
record, as ``tvmc transfer --droplet``), in a copy of its output, and that package is timed alongside.

With ``--shares MODEL`` nothing is transferred: packages built earlier (by several runs, say, or two transfer
protocols) are timed side by side in one process with the untuned and fully tuned ones and ONNX Runtime, in
interleaved rounds, and each one's share of full tuning's speedup is printed. A share compares across runs only
when timed this way: on a noisy machine the same package can time 40% apart in two processes.

    python bench/transfer_bench.py --shares alexnet --untuned U.tar --full F.tar --packages ranked=A.tar every-candidate=B.tar --rounds 5
"""

import argparse
import bisect
import glob
import itertools
import os
import re
import shutil
import statistics
import sys
import time
from datetime import datetime

import attrs
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import add_folder_arguments, add_lowering_argument, add_records_tag_argument, lowering_of, onnxruntime_runner, package_runner, model_file, random_inputs, read_state, tagged_records, threads, write_state  # noqa: E402
from tvmc_transfer.compiler import compile_model  # noqa: E402
from tvmc_transfer.frontends.load import load_model  # noqa: E402
from tvmc_transfer.tune.measure import MeasureOptions  # noqa: E402
from tvmc_transfer.records import TUNING_RECORDS, WORKLOADS  # noqa: E402
from tvmc_transfer.target import parse_target  # noqa: E402
from tvmc_transfer.droplet.phase import DropletOptions, droplet_phase  # noqa: E402
from tvmc_transfer.session import Plan  # noqa: E402
from tvmc_transfer.transfer import TransferOptions, transfer_tune  # noqa: E402
from tvmc_transfer.tune.model import TuneOptions, tune_model  # noqa: E402

MODELS = ("resnet50", "googlenet", "alexnet")
SESSION_GAP = 600.0


class OutOfTime(Exception):
    pass


class Bench:
    def __init__(self, args):
        self.args = args
        self.work = os.path.abspath(args.work)
        self.folder = os.path.join(self.work, args.folder)
        os.makedirs(self.folder, exist_ok=True)
        self.state_path = os.path.join(self.folder, "state.json")
        self.state = read_state(self.state_path)
        self.start = time.time()
        self.target = parse_target(args.target)
        self.measure = MeasureOptions(number=args.number, repeat=args.repeat, min_repeat_ms=args.min_repeat_ms)
        # the lowering the records were tuned with: the committed NCHW 1000-trial records (default), or the
        # prepacked NHWC ones (--records-tag znver3-nhwc --lowering product)
        self.lowering = lowering_of(args)

    # -- bookkeeping ------------------------------------------------------------------------------------------
    def save(self):
        write_state(self.state_path, self.state)

    def left(self) -> float:
        return self.args.time_limit - (time.time() - self.start)

    def need(self, seconds: float, what: str):
        if self.left() < seconds:
            raise OutOfTime(what)

    def model_path(self, name):
        return model_file(name, self.work)

    def records(self, name):
        return tagged_records(self.args, name)

    def full_folder(self, name):
        """Where the full-tuning records actually are (after ``full_records``)."""
        own = os.path.join(self.folder, "full", os.path.basename(self.records(name)))
        return own if os.path.exists(os.path.join(own, TUNING_RECORDS)) else self.records(name)

    # -- full tuning ------------------------------------------------------------------------------------------
    def full_records(self, name) -> str:
        """The model's full-tuning records: ``RECORDS/<model>-records`` when it holds ``--full-trials`` records;
        otherwise a copy of it here, tuned on to ``--full-trials`` in resumable steps (the original folder is
        never written: it may be someone else's run)."""
        given = self.records(name)
        if _lines(os.path.join(given, TUNING_RECORDS)) >= self.args.full_trials:
            return given
        folder = os.path.join(self.folder, "full", os.path.basename(given))
        if not os.path.exists(folder) and os.path.exists(os.path.join(given, TUNING_RECORDS)):
            shutil.copytree(given, folder)  # logs included: they time the trials done before
        path = os.path.join(folder, TUNING_RECORDS)
        count = _lines(path)
        while count < self.args.full_trials:
            self.need(300, f"full tuning of {name} ({count} of {self.args.full_trials} trials)")
            step = min(self.args.full_trials, count + max(32, int((self.left() - 120) / 6)))  # ~5 s a trial here
            start = time.time()
            tune_model(load_model(self.model_path(name)), self.target, folder, TuneOptions(trials=step, measure=self.measure, lowering=self.lowering), progress=False)
            self.state.setdefault("tuned_here", {})[name] = self.state.get("tuned_here", {}).get(name, 0.0) + time.time() - start
            self.save()
            count = _lines(path)
        return folder

    # -- transfer ---------------------------------------------------------------------------------------------
    def transfer(self, source, target_model, exact=False) -> dict:
        """SOURCE's records transferred to TARGET (``exact``: with ``--exact-classes``, into a folder of its own)."""
        key = f"{source}:{target_model}"
        done = self.state.setdefault("exact" if exact else "transfer", {})
        if key in done:
            return done[key]
        self.need(60, f"transfer {key}" + (" (exact classes)" if exact else ""))
        name = f"{source}-to-{target_model}" + ("-exact" if exact else "")
        output = os.path.join(self.folder, f"{name}-records")
        options = attrs.evolve(self._options(), time_limit=max(self.left() - 30, 1), exact_classes=exact)
        report = transfer_tune(load_model(self.model_path(target_model)), self.target, [self.full_records(source)], output, options)
        if not report.complete:
            raise OutOfTime(f"transfer {key} (resumes where it stopped)")
        report.write_json(os.path.join(self.folder, f"{name}.json"))
        print(report.summary(), flush=True)
        done[key] = {"records": output, **report.totals()}
        self.save()
        return done[key]

    def droplet(self, source, target_model) -> dict:
        """The transfer's output refined by droplet search (``--droplet-trials`` per kernel), in a copy."""
        plan = Plan([droplet_phase(DropletOptions(trials=self.args.droplet_trials))])
        return self._follow_up("droplet", source, target_model, "droplet", self._options(), plan)

    def tune_rest(self, source, target_model) -> dict:
        """The transfer's output with the kernels no class matched tuned (``--tune-rest`` trials), in a copy."""
        options = attrs.evolve(self._options(), tune_rest=self.args.tune_rest)
        return self._follow_up("rest", source, target_model, f"rest{self.args.tune_rest}", options, None)

    def _options(self) -> TransferOptions:
        return TransferOptions(max_candidates=self.args.max_candidates, max_per_kernel=self.args.max_per_kernel or None, measure_top=self.args.measure_top or None,
                               e2e=False, measure=attrs.evolve(self.measure, passes=self.args.passes), lowering=self.lowering, use_library=False)

    def _follow_up(self, kind, source, target_model, suffix, options, plan) -> dict:
        """A step after the transfer, run on a copy of its output: the copy's journal says every kernel is
        transferred, so ``transfer_tune`` only runs what comes after (``plan``'s phases, ``tune_rest``)."""
        key = f"{source}:{target_model}"
        done = self.state.setdefault(kind, {})
        if key in done:
            return done[key]
        transferred = self.transfer(source, target_model)
        output = os.path.join(self.folder, f"{source}-to-{target_model}-{suffix}-records")
        if not os.path.exists(output):
            shutil.copytree(transferred["records"], output)
        self.need(120, f"{kind} after transfer {key}")
        report = transfer_tune(load_model(self.model_path(target_model)), self.target, [self.full_records(source)], output, options, plan=plan)
        report.write_json(os.path.join(self.folder, f"{source}-to-{target_model}-{suffix}.json"))
        print(report.summary(), flush=True)
        seconds = report.totals()["search_seconds"]
        done[key] = {"records": output, "search_seconds": seconds, f"{kind}_seconds": seconds - transferred["search_seconds"]}
        self.save()
        return done[key]

    # -- packages ---------------------------------------------------------------------------------------------
    def package(self, model, label, records) -> str:
        path = os.path.join(self.folder, "packages", f"{model}-{label}.tar")
        if not os.path.exists(path):
            os.makedirs(os.path.dirname(path), exist_ok=True)
            self.need(240, f"compile {model} {label}")
            compile_model(load_model(self.model_path(model)), self.target, path, records=records, lowering=self.lowering, default_schedules=False)
        return path

    def prefix_records(self, model, n) -> str:
        """A records folder with the first ``n`` records of the model's full-tuning run."""
        folder = os.path.join(self.folder, "prefix", f"{model}-{n}")
        if not os.path.exists(os.path.join(folder, TUNING_RECORDS)):
            source = self.full_records(model)
            os.makedirs(folder, exist_ok=True)
            shutil.copy(os.path.join(source, WORKLOADS), os.path.join(folder, WORKLOADS))
            with open(os.path.join(source, TUNING_RECORDS)) as f:
                lines = [line for line in f if line.strip()][:n]
            with open(os.path.join(folder, TUNING_RECORDS), "w") as f:
                f.writelines(lines)
        return folder

    # -- timing in one process --------------------------------------------------------------------------------
    def measure_model(self, model, sources) -> dict:
        done = self.state.setdefault("latency", {})
        key = f"{model}<-{','.join(sorted(sources))}"
        if key in done:
            return done[key]
        full = self.full_records(model)
        total = _lines(os.path.join(full, TUNING_RECORDS))
        packages = {"untuned": self.package(model, "untuned", None), "full": self.package(model, f"full{total}", full)}
        for source in sources:
            packages[f"transfer:{source}"] = self.package(model, f"from-{source}", self.state["transfer"][f"{source}:{model}"]["records"])
            if self.args.droplet_trials:
                records = self.state["droplet"][f"{source}:{model}"]["records"]
                packages[f"droplet:{source}"] = self.package(model, f"from-{source}-droplet{self.args.droplet_trials}", records)
            if self.args.tune_rest:
                records = self.state["rest"][f"{source}:{model}"]["records"]
                packages[f"rest:{source}"] = self.package(model, f"from-{source}-rest{self.args.tune_rest}", records)
            if self.args.exact_too:
                packages[f"exact:{source}"] = self.package(model, f"from-{source}-exact", self.state["exact"][f"{source}:{model}"]["records"])
        for n in self.args.grid:
            if n < total:
                packages[f"prefix:{n}"] = self.package(model, f"prefix{n}", self.prefix_records(model, n))
        self.need(60 + 15 * len(packages), f"timing {model}")
        result = time_packages(self.model_path(model), packages, self.args.rounds, self.args.runs)
        done[key] = result
        self.save()
        return result


def shares(args) -> str:
    """``--shares``: the packages timed side by side, each with its share of full tuning's speedup."""
    packages = {"untuned": args.untuned, "full": args.full, **dict(p.split("=", 1) for p in args.packages)}
    result = time_packages(model_file(args.shares, args.work), packages, args.rounds, args.runs)
    ms, errors = result["ms"], result["max_relative_error"]
    lines = [f"{args.shares}: {args.rounds} interleaved rounds; ONNX Runtime {ms['onnxruntime']:.2f} ms"]
    for label in packages:
        share = _fraction(ms["untuned"], ms[label], ms["full"])
        lines.append(f"  {label:28s} {ms[label]:10.2f} ms  share of full tuning's speedup {share * 100:6.1f}%  max rel. error vs ORT {errors[label]:.1e}")
    return "\n".join(lines)


def _lines(path) -> int:
    if not os.path.exists(path):
        return 0
    with open(path) as f:
        return sum(1 for line in f if line.strip())


def time_packages(model_path, packages, rounds, runs) -> dict:
    """Median latency (ms) of each package and ONNX Runtime, interleaved rounds in this process, and each
    package's largest error relative to ONNX Runtime."""
    model = load_model(model_path)
    inputs = random_inputs(model)
    run_ort = onnxruntime_runner(model_path, inputs, threads())
    reference = run_ort()[0]
    runners, errors = {}, {}
    for label, path in packages.items():
        run, _ = package_runner(path, inputs)
        out = run()
        out = (out[0] if isinstance(out, (list, tuple)) or type(out).__name__ == "Array" else out).numpy()
        errors[label] = float(np.max(np.abs(out - reference)) / np.max(np.abs(reference)))
        runners[label] = run
    samples = {label: [] for label in ["onnxruntime", *packages]}
    for _ in range(rounds):
        for label in samples:
            run = run_ort if label == "onnxruntime" else runners[label]
            repeat = max(2, runs // 10) if label == "untuned" else runs
            run()  # warm up
            for _ in range(repeat):
                start = time.perf_counter()
                run()
                samples[label].append((time.perf_counter() - start) * 1e3)
    return {"ms": {k: statistics.median(v) for k, v in samples.items()}, "max_relative_error": errors}


def tuning_timeline(folder) -> list:
    """Seconds of tuning spent when each trial of a records folder was measured, from MetaSchedule's task logs
    (each batch's 'Sending N sample(s) to builder' line; the next event's time ends it). Gaps longer than 10
    minutes are between sessions and not counted. Empty when the logs do not account for the records."""
    events = []
    pattern = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d) \[INFO\] \[task_scheduler\.cc:\d+\] Sending (\d+) sample\(s\) to builder")
    stamps = []
    for log in glob.glob(os.path.join(folder, "logs", "*.log")):
        with open(log, errors="replace") as f:
            for line in f:
                if line[:4].isdigit():
                    moment = datetime.strptime(line[:19], "%Y-%m-%d %H:%M:%S").timestamp()
                    stamps.append(moment)
                    match = pattern.match(line)
                    if match:
                        events.append((moment, int(match.group(2))))
    if not events:
        return []
    events.sort()
    stamps.sort()
    ends = [stamps[min(bisect.bisect_right(stamps, t), len(stamps) - 1)] for t, _ in events[1:]] + [stamps[-1]]
    spent, clock, previous = [], 0.0, events[0][0]
    for (moment, count), end in zip(events, ends):
        gap = moment - previous
        clock += gap if gap < SESSION_GAP else 0.0
        previous = moment
        done_at = clock + min(max(end - moment, 0.0), SESSION_GAP)
        spent += [done_at] * count
    return spent if len(spent) >= _lines(os.path.join(folder, TUNING_RECORDS)) else []


def tuning_seconds(bench, model, trials) -> float | None:
    """Seconds the full-tuning run had spent after ``trials`` trials. The timeline is read from its logs once
    and kept in the state: the logs are not committed, so a fresh clone has only the state's copy."""
    folder = bench.full_folder(model)
    kept = bench.state.setdefault("timeline", {})
    timeline = [round(t, 1) for t in tuning_timeline(folder)] or kept.get(model, [])
    if timeline and kept.get(model) != timeline:  # read from the logs for the first time (or they grew)
        kept[model] = timeline
        bench.save()
    if timeline:
        return timeline[min(trials, len(timeline)) - 1]
    here = bench.state.get("tuned_here", {}).get(model)
    return here * trials / max(_lines(os.path.join(folder, TUNING_RECORDS)), 1) if here else None


def report(bench, pairs) -> str:
    rows = []
    header = (
        f"{'source -> target':<22} {'cover':>6} {'xfer s':>7} {'untuned ms':>10} {'xfer ms':>8} {'full ms':>8} {'ORT ms':>7}"
        f" {'full s':>7} {'trials':>6} {'of full speedup':>15} {'tune to reach xfer':>26}"
    )
    rows.append(header)
    for source, target_model in pairs:
        t = bench.state["transfer"][f"{source}:{target_model}"]
        lat = _latencies(bench, pairs, target_model)
        total = _lines(os.path.join(bench.full_folder(target_model), TUNING_RECORDS))
        untuned, xfer, full, ort = lat["untuned"], lat[f"transfer:{source}"], lat["full"], lat["onnxruntime"]
        fraction = _fraction(untuned, xfer, full)
        full_seconds = tuning_seconds(bench, target_model, total)
        reach = _first_prefix(lat, xfer)
        if reach is None and full <= xfer:
            reach = total
        if reach is None:
            reach_text = f"not within {total} trials"
        else:
            seconds = tuning_seconds(bench, target_model, reach)
            reach_text = f"{reach} trials, {seconds:.0f} s ({seconds / t['search_seconds']:.1f}x)" if seconds else f"{reach} trials"
        rows.append(
            f"{source + ' -> ' + target_model:<22} {t['coverage'] * 100:5.1f}% {t['search_seconds']:7.0f} {untuned:10.1f} {xfer:8.2f} {full:8.2f} {ort:7.2f}"
            f" {full_seconds or float('nan'):7.0f} {total:>6} {fraction * 100:14.1f}% {reach_text:>26}"
        )
    if bench.args.droplet_trials:
        rows += ["", f"transfer, then droplet search ({bench.args.droplet_trials} trials per kernel):",
                 f"{'source -> target':<22} {'xfer ms':>8} {'+droplet ms':>11} {'gain':>6} {'droplet s':>9}"]
        for source, target_model in pairs:
            lat = _latencies(bench, pairs, target_model)
            xfer, drop = lat[f"transfer:{source}"], lat[f"droplet:{source}"]
            d = bench.state["droplet"][f"{source}:{target_model}"]
            rows.append(f"{source + ' -> ' + target_model:<22} {xfer:8.2f} {drop:11.2f} {(xfer / drop - 1) * 100:5.1f}% {d['droplet_seconds']:9.0f}")
    if bench.args.tune_rest:
        rows += ["", f"transfer, then the unmatched kernels tuned (--tune-rest {bench.args.tune_rest}):",
                 f"{'source -> target':<22} {'xfer ms':>8} {'+rest ms':>9} {'full ms':>8} {'of full speedup':>15} {'rest s':>7} {'xfer+rest s':>11} {'tune to reach':>13}"]
        for source, target_model in pairs:
            lat = _latencies(bench, pairs, target_model)
            r = bench.state["rest"][f"{source}:{target_model}"]
            untuned, rest, full = lat["untuned"], lat[f"rest:{source}"], lat["full"]
            fraction = _fraction(untuned, rest, full)
            reach = _first_prefix(lat, rest)
            reach_text = f"{reach} trials" if reach else ("full run" if full <= rest else "not in run")
            rows.append(f"{source + ' -> ' + target_model:<22} {lat[f'transfer:{source}']:8.2f} {rest:9.2f} {full:8.2f} {fraction * 100:14.1f}% {r['rest_seconds']:7.0f} {r['search_seconds']:11.0f} {reach_text:>13}")
    if bench.args.exact_too:
        rows += ["", "transfer with exact classes only (--exact-classes) against the default, epilogue matches included:",
                 f"{'source -> target':<22} {'cover exact':>11} {'cover':>6} {'exact ms':>9} {'xfer ms':>8} {'full ms':>8} {'of full: exact':>14} {'of full':>8} {'exact s':>8} {'xfer s':>7}"]
        for source, target_model in pairs:
            lat = _latencies(bench, pairs, target_model)
            e, t = bench.state["exact"][f"{source}:{target_model}"], bench.state["transfer"][f"{source}:{target_model}"]
            untuned, exact, xfer, full = lat["untuned"], lat[f"exact:{source}"], lat[f"transfer:{source}"], lat["full"]
            rows.append(
                f"{source + ' -> ' + target_model:<22} {e['coverage'] * 100:10.1f}% {t['coverage'] * 100:5.1f}% {exact:9.2f} {xfer:8.2f} {full:8.2f}"
                f" {_fraction(untuned, exact, full) * 100:13.1f}% {_fraction(untuned, xfer, full) * 100:7.1f}% {e['search_seconds']:8.0f} {t['search_seconds']:7.0f}"
            )
    slower = [f"{s}->{d}" for s, d in pairs if _slower_than_untuned(bench, pairs, s, d)]
    rows.append("every transferred model is faster than the untuned one" if not slower else f"SLOWER THAN UNTUNED: {', '.join(slower)}")
    return "\n".join(rows)


def _latencies(bench, pairs, target_model) -> dict:
    """Median ms of every package timed for ``target_model`` (with all its sources in ``pairs``)."""
    sources = sorted(s for s, d in pairs if d == target_model)
    return bench.state["latency"][f"{target_model}<-{','.join(sources)}"]["ms"]


def _fraction(untuned, latency, full) -> float:
    """Share of full tuning's speedup: ``(S - 1) / (S_full - 1)`` with ``S = untuned / latency``."""
    return (untuned / latency - 1) / (untuned / full - 1) if full < untuned else float("nan")


def _first_prefix(lat, latency):
    """The fewest full-tuning records (of the grid) whose package is at least as fast as ``latency``."""
    return next((n for n in sorted(int(k.split(":")[1]) for k in lat if k.startswith("prefix:")) if lat[f"prefix:{n}"] <= latency), None)


def _slower_than_untuned(bench, pairs, source, target_model) -> bool:
    lat = _latencies(bench, pairs, target_model)
    return any(lat[k] >= lat["untuned"] for k in (f"transfer:{source}", f"droplet:{source}", f"rest:{source}", f"exact:{source}") if k in lat)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", nargs="*", default=[], metavar="SOURCE:TARGET")
    parser.add_argument("--all-pairs", action="store_true", help="every ordered pair of ResNet-50, GoogLeNet, AlexNet")
    add_folder_arguments(parser, "", records=True)
    add_records_tag_argument(parser)
    add_lowering_argument(parser)
    parser.add_argument("--folder", default="transfer-bench", help="this run's state, outputs and packages, under WORK")
    parser.add_argument("--target", default="native")
    parser.add_argument("--full-trials", type=int, default=1000)
    parser.add_argument("--max-candidates", type=int, default=1)
    parser.add_argument("--max-per-kernel", type=int, default=8, help="candidates per kernel (0: no cap, as tvmc transfer)")
    parser.add_argument("--measure-top", type=int, default=8, help="as tvmc transfer --measure-top (0: all, unranked)")
    parser.add_argument("--number", type=int, default=3)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--min-repeat-ms", type=int, default=20)
    parser.add_argument("--passes", type=int, default=2, help="times transfer measures each batch, as 'tvmc transfer --passes' (default 2, its default)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved timing rounds")
    parser.add_argument("--runs", type=int, default=10, help="timed runs per package per round (untuned: a tenth)")
    parser.add_argument("--droplet-trials", type=int, default=0, metavar="K",
                        help="also refine each transfer with droplet search, K trials per kernel, and time it alongside")
    parser.add_argument("--tune-rest", type=int, default=0, metavar="N",
                        help="also time the transfer with the unmatched kernels tuned (tvmc transfer --tune-rest N), in a copy")
    parser.add_argument("--exact-too", action="store_true",
                        help="also transfer with --exact-classes (no epilogue matches), in a folder of its own, and time it alongside")
    parser.add_argument("--grid", type=lambda t: [int(n) for n in t.split(",")], default=[100, 250, 500],
                        help="prefixes of the full-tuning records compiled to see when plain tune catches up")
    parser.add_argument("--time-limit", type=float, default=420, help="start no new step after this many seconds")
    side = parser.add_argument_group("side by side (--shares MODEL): packages built earlier, timed in one process; nothing transferred")
    side.add_argument("--shares", metavar="MODEL", help="the zoo model (or ONNX file) the packages were compiled from")
    side.add_argument("--packages", nargs="+", default=[], metavar="LABEL=PACKAGE", help="the packages to compare")
    side.add_argument("--untuned", help="the package compiled without records")
    side.add_argument("--full", help="the package compiled with the full-tuning records")
    args = parser.parse_args()
    if args.shares:
        if not (args.untuned and args.full):
            parser.error("--shares needs --untuned and --full")
        print(shares(args))
        return 0
    pairs = list(itertools.permutations(MODELS, 2)) if args.all_pairs else [tuple(p.split(":")) for p in args.pairs]
    if not pairs or any(len(p) != 2 for p in pairs):
        parser.error("give --pairs SOURCE:TARGET ... or --all-pairs")
    bench = Bench(args)
    try:
        for source, target_model in pairs:
            bench.transfer(source, target_model)
            if args.exact_too:
                bench.transfer(source, target_model, exact=True)
            if args.droplet_trials:
                bench.droplet(source, target_model)
            if args.tune_rest:
                bench.tune_rest(source, target_model)
        for target_model in sorted({d for _, d in pairs}):
            bench.measure_model(target_model, [s for s, d in pairs if d == target_model])
    except OutOfTime as stop:
        print(f"stopped before: {stop}; run the same command again to go on", flush=True)
        return 3
    print(f"target {bench.target}; budget: {args.max_per_kernel} candidates per kernel, best {args.max_candidates} per source kernel")
    print(report(bench, pairs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
