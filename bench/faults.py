"""Kills at any moment: ``tvmc tune``, ``tvmc transfer`` and ``tvmc tune --droplet`` stopped with SIGKILL at
random moments, rerun, and checked.

Each command runs in chains: a fresh records folder, then the same command line again and again, each run killed
after a random time (uniform between half a second and ``--kill-within`` times the length of one uninterrupted
run), until a run completes. Then the package compiled from the records is run and compared with ONNX Runtime,
and the next chain starts, until ``--kills`` kills were made. After every kill the script reads what is on disk:

- **kept**: the complete record lines in the folder;
- **lost**: lines that were on disk after an earlier kill of the chain and are gone now (must be 0);
- **measured twice**: lines after the chain's completion that record a schedule (workload and trace) already
  recorded, beside the same count for the uninterrupted run (droplet search records the re-measurements of its
  incumbents by design; beyond that, the goal is 0: a resumed run measures again only what was not committed);
- **refused**: a rerun that did not start (a stale lock, a damaged file): reported with its ``Error:`` line.

Run::

    python bench/faults.py --kills 10 --out bench/results/faults-zen4.jsonl

Results (one JSON line per kill and per completed chain, then a summary) go to ``--out``; the table is printed.
"""

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time

from common import add_folder_arguments, processor

TINY = ["--target", "llvm -num-cores=2", "--trials-per-iter", "4", "--population", "16", "--min-repeat-ms", "5", "--number", "2"]


def command_lines(model: str, source: str, trials: int) -> dict:
    """The three command lines under test, each writing to the folder ``{out}``."""
    tvmc = [sys.executable, "-m", "tvmc_transfer"]
    return {
        "tune": tvmc + ["tune", model, "-o", "{out}", "--trials", str(trials), *TINY],
        "transfer": tvmc + ["transfer", model, "--from", source, "-o", "{out}", *TINY[:2], "--min-repeat-ms", "5", "--number", "2"],
        "droplet": tvmc + ["tune", model, "-o", "{out}", "--trials", str(trials // 2), "--droplet", "--droplet-trials", "24", *TINY],
    }


def record_lines(folder: str) -> list:
    """The complete lines of the folder's tuning records (a line cut short by a kill is not a record)."""
    path = os.path.join(folder, "database_tuning_record.json")
    if not os.path.exists(path):
        return []
    lines = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            try:
                json.loads(line)
                lines.append(line.strip())
            except ValueError:
                continue
    return lines


def workload_lines(folder: str) -> list:
    path = os.path.join(folder, "database_workload.json")
    if not os.path.exists(path):
        return []
    with open(path, encoding="utf-8") as f:
        return [line.strip() for line in f if line.strip()]


def record_keys(folder: str) -> list:
    """(workload, trace) of every record: the schedule it measured, whatever its time. Workloads by their line's
    text, not their index, so that a rewritten workload file does not hide or invent a duplicate."""
    workloads = workload_lines(folder)
    keys = []
    for line in record_lines(folder):
        index, (trace, *_) = json.loads(line)
        workload = workloads[index] if 0 <= index < len(workloads) else f"missing workload {index}"
        keys.append((workload, json.dumps(trace, sort_keys=True)))
    return keys


def run(argv: list, out: str, kill_after: float | None) -> dict:
    """Run ``argv`` writing to ``out``; SIGKILL it after ``kill_after`` seconds unless it ended first."""
    argv = [a.replace("{out}", out) for a in argv]
    start = time.monotonic()
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        _, err = proc.communicate(timeout=kill_after)
        killed = False
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGKILL)
        _, err = proc.communicate()
        killed = True
    errors = [line for line in err.splitlines() if line.startswith("Error:") or "Traceback" in line]
    return {"seconds": round(time.monotonic() - start, 2), "killed": killed, "code": proc.returncode, "errors": errors[-3:]}


def check_package(model: str, records: str, folder: str) -> dict:
    """Compile the model with the records, run it, compare every output with ONNX Runtime."""
    from tvmc_transfer import compile_model, load_model, parse_target, run_module  # pylint: disable=import-outside-toplevel
    from tvmc_transfer.run.module import make_inputs, verify_with_onnxruntime  # pylint: disable=import-outside-toplevel

    loaded = load_model(model)
    package = os.path.join(folder, "faults.tar")
    compile_model(loaded, parse_target("llvm -num-cores=2"), package, records=records)
    result = run_module(package, fill_mode="random")
    checks = verify_with_onnxruntime(model, make_inputs(loaded.inputs, None, "random"), result.outputs)
    return {"package_matches_onnxruntime": all(c.ok for c in checks), "max_relative_error": max(c.relative_error for c in checks)}


def chain(name: str, argv: list, folder: str, full: float, kills_left: int, rng: random.Random, args, log) -> tuple:
    """One chain: kill reruns until one completes (or ``kills_left`` kills are spent, then run to completion).
    ``(kills, completed)``: a rerun that exits with an error ends the chain uncompleted."""
    shutil.rmtree(folder, ignore_errors=True)
    seen = set()  # every complete line on disk after any kill of this chain
    kills = 0
    while True:
        kill_after = rng.uniform(0.5, args.kill_within * full) if kills < kills_left else None
        outcome = run(argv, folder, kill_after)
        lines = record_lines(folder)
        lost = len(seen - set(lines))
        seen |= set(lines)
        entry = {"command": name, "kill_after": kill_after and round(kill_after, 2), **outcome, "kept": len(lines), "lost": lost}
        if outcome["killed"]:
            kills += 1
            log(entry)
        elif outcome["code"] != 0:
            log({**entry, "refused": True})
            return kills, False
        else:
            keys = record_keys(folder)
            entry.update(completed=True, twice=len(keys) - len(set(keys)), **check_package(args.model_path, folder, args.work))
            log(entry)
            return kills, True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--kills", type=int, default=10, help="kills per command (default 10)")
    parser.add_argument("--commands", nargs="+", default=["tune", "transfer", "droplet"], choices=["tune", "transfer", "droplet"])
    parser.add_argument("--model", default="tiny-cnn", help="zoo model the commands tune (default tiny-cnn)")
    parser.add_argument("--source", default="tiny-cnn-b", help="zoo model tuned once as transfer's source (default tiny-cnn-b)")
    parser.add_argument("--trials", type=int, default=48, help="tuning trials of the tune command (default 48)")
    parser.add_argument("--kill-within", type=float, default=0.6, help="kills fall within this share of an uninterrupted run (default 0.6)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=None, help="JSON-lines results (default: WORK/faults.jsonl)")
    add_folder_arguments(parser, "faults")
    args = parser.parse_args()
    from tvmc_transfer.frontends import zoo  # pylint: disable=import-outside-toplevel

    os.makedirs(args.work, exist_ok=True)
    args.model_path = zoo.save(args.model, os.path.join(args.work, f"{args.model}.onnx"))
    source_model = zoo.save(args.source, os.path.join(args.work, f"{args.source}.onnx"))
    source = os.path.join(args.work, "source-records")
    lines = command_lines(args.model_path, source, args.trials)
    out_path = args.out or os.path.join(args.work, "faults.jsonl")
    out = open(out_path, "w", encoding="utf-8")  # pylint: disable=consider-using-with

    def log(entry):
        out.write(json.dumps(entry) + "\n")
        out.flush()
        print(json.dumps(entry), flush=True)

    log({"processor": processor(), "argv": sys.argv[1:], "started": time.strftime("%Y-%m-%d %H:%M:%S")})
    if not record_lines(source):
        tune_source = lines["tune"][:4] + [source_model] + lines["tune"][5:]
        log({"source": run(tune_source, source, None)})
    rng = random.Random(args.seed)
    for name in args.commands:
        reference = os.path.join(args.work, f"{name}-reference")
        shutil.rmtree(reference, ignore_errors=True)
        full = run(lines[name], reference, None)
        keys = record_keys(reference)
        log({"command": name, "uninterrupted": full, "kept": len(keys), "twice": len(keys) - len(set(keys))})
        kills = chains = 0
        while kills < args.kills:
            made, completed = chain(name, lines[name], os.path.join(args.work, f"{name}-chain{chains}"), full["seconds"], args.kills - kills, rng, args, log)
            kills, chains = kills + made, chains + 1
            if not completed:
                break  # a refused rerun is the finding; more chains would repeat it
    out.close()
    print_summary(out_path)


def print_summary(path: str) -> None:
    """The table: per command, kills, chains, records lost, measured twice, refused reruns, packages correct."""
    with open(path, encoding="utf-8") as f:
        entries = [json.loads(line) for line in f]
    print(f"\n{'command':<10} {'kills':>5} {'chains':>6} {'lost':>5} {'twice per chain (uninterrupted)':>32} {'refused':>7} {'correct':>8}")
    for name in dict.fromkeys(e["command"] for e in entries if "command" in e and "uninterrupted" not in e):
        mine = [e for e in entries if e.get("command") == name and "uninterrupted" not in e]
        done = [e for e in mine if e.get("completed")]
        reference = next((e.get("twice", "?") for e in entries if e.get("command") == name and "uninterrupted" in e), "?")
        twice = "/".join(str(e["twice"]) for e in done)
        print(f"{name:<10} {sum(e['killed'] for e in mine):>5} {len(done):>6} {sum(e['lost'] for e in mine):>5} "
              f"{f'{twice} ({reference})':>32} {sum(bool(e.get('refused')) for e in mine):>7} "
              f"{sum(e['package_matches_onnxruntime'] for e in done):>4}/{len(done)}")


if __name__ == "__main__":
    main()
