"""``tvmc tune``: real MetaSchedule tuning on a tiny model, resumable, with records plain TVM reads."""

import json
import os
import shutil

from tvm.s_tir import meta_schedule as ms

from conftest import FAST_TUNE
from tvmc_transfer.records import TUNING_RECORDS, WORKLOADS


def record_lines(folder):
    with open(os.path.join(folder, TUNING_RECORDS)) as f:
        return [line for line in f if line.strip()]


def test_tune_writes_metaschedule_records_that_plain_tvm_reads(tuned_cnn, tvmc):
    _, records = tuned_cnn
    database = ms.database.JSONDatabase(work_dir=records)  # plain TVM, no tvmc_transfer involved
    all_records = database.get_all_tuning_records()
    assert len(all_records) == 24
    measured = [r for r in all_records if r.run_secs and float(r.run_secs[0]) < 1e9]
    assert len(measured) >= 20  # a build or run may fail; most must succeed
    assert all(len(r.run_secs) == 3 for r in measured)  # --repeat 3 samples per candidate
    assert all(0 < float(s) < 1.0 for r in measured for s in r.run_secs)  # seconds, not ms (a loaded machine stretches them)


def test_rerun_resumes_and_extends_exactly(tuned_cnn, tvmc, tmp_path):
    model, records = tuned_cnn
    copy = str(tmp_path / "records")
    shutil.copytree(records, copy)
    again = tvmc("tune", model, "-o", copy, "--trials", "24", *FAST_TUNE)
    assert again.code == 0 and "0 new trials" in again.out
    assert len(record_lines(copy)) == 24
    more = tvmc("tune", model, "-o", copy, "--trials", "32", *FAST_TUNE)
    assert more.code == 0 and "8 new trials" in more.out
    lines = record_lines(copy)
    assert len(lines) == 32
    # no schedule measured twice: every (workload, trace) pair is unique
    keys = [json.dumps(json.loads(line)[:1] + [json.loads(line)[1][0]]) for line in lines]
    assert len(set(keys)) == len(keys)


def test_task_table_and_task_selection(models, tvmc, tmp_path):
    listed = tvmc("tune", models["tiny-cnn"], "--tasks", "list", *FAST_TUNE[:2])  # the target tuned for below
    assert listed.code == 0
    names = [line.split()[1] for line in listed.out.splitlines()[1:]]
    assert any("conv2d" in n for n in names) and len(names) == 6
    conv = next(i for i, n in enumerate(names) if n.startswith("fused_conv2d_add_relu"))
    records = str(tmp_path / "one-task")
    result = tvmc("tune", models["tiny-cnn"], "-o", records, "--tasks", str(conv), "--trials", "8", *FAST_TUNE)
    assert result.code == 0
    workloads = [json.loads(line) for line in open(os.path.join(records, WORKLOADS))]
    assert len(workloads) == 1 and len(record_lines(records)) == 8
    bad = tvmc("tune", models["tiny-cnn"], "-o", records, "--tasks", "3-99", *FAST_TUNE[:2])
    assert bad.code == 4 and "has tasks 0-5" in bad.err


def test_prior_records_seed_a_new_folder(tuned_cnn, tvmc, tmp_path):
    model, prior = tuned_cnn
    fresh = str(tmp_path / "fresh")
    result = tvmc("tune", model, "-o", fresh, "--tuning-records", prior, "--trials", "24", *FAST_TUNE)
    assert result.code == 0 and "0 new trials" in result.out  # the prior's 24 trials fill the budget
    assert len(record_lines(fresh)) == 24


def test_half_written_last_line_is_dropped_not_fatal(tuned_cnn, tvmc, tmp_path):
    model, records = tuned_cnn
    copy = str(tmp_path / "records")
    shutil.copytree(records, copy)
    with open(os.path.join(copy, TUNING_RECORDS), "a") as f:
        f.write('[0, [[["GetSBlock", [], ["root"')  # what a kill mid-write leaves behind
    result = tvmc("tune", model, "-o", copy, "--trials", "24", *FAST_TUNE)
    assert result.code == 0
    assert len(record_lines(copy)) == 24


def test_bad_records_are_one_line_errors(models, tvmc, tmp_path):
    corrupt = tmp_path / "corrupt"
    corrupt.mkdir()
    (corrupt / WORKLOADS).write_text("this is not json\n")
    (corrupt / TUNING_RECORDS).write_text("[0, nonsense]\n")
    result = tvmc("tune", models["tiny-mlp"], "-o", tmp_path / "out", "--tuning-records", corrupt, "--trials", "4")
    assert result.code == 4 and result.err.startswith("Error: ") and "corrupt" in result.err
    assert "no record could be read; database_tuning_record.json line 1: not JSON" in result.err  # names the line
    assert result.err.count("\n") == 1
    assert sorted(os.listdir(corrupt)) == [TUNING_RECORDS, WORKLOADS]  # a prior is read, never repaired
    assert not os.path.exists(tmp_path / "out")  # refused before anything was created
    a_file = tmp_path / "file.json"
    a_file.write_text("{}")
    result = tvmc("tune", models["tiny-mlp"], "-o", a_file, "--trials", "4")
    assert result.code == 4 and "must be a folder" in result.err
    assert a_file.read_text() == "{}"


def test_tuning_options_are_checked(models, tvmc, tmp_path):
    for args, message in [
        (["--trials", "-1"], "--trials must be >= 0"),
        (["--number", "0"], "--number must be at least 1"),
        (["--rpc-tracker", "host:9190"], "--rpc-tracker and --rpc-key go together"),
        (["--time-limit", "0"], "--time-limit must be a positive number of seconds"),
        (["--patience", "0"], "--patience at least 1"),
    ]:
        result = tvmc("tune", models["tiny-mlp"], "-o", tmp_path / "r", *args)
        assert result.code == 4 and message in result.err, result.err


def unique_traces(folder) -> bool:
    keys = [json.dumps(json.loads(line)[:1] + [json.loads(line)[1][0]]) for line in record_lines(folder)]
    return len(set(keys)) == len(keys)


def test_time_budget_stops_cleanly_and_the_rerun_resumes(models, tvmc, tmp_path):
    records = str(tmp_path / "records")
    result = tvmc("tune", models["tiny-cnn"], "-o", records, "--trials", "400", "--time-budget", "30", *FAST_TUNE)
    assert result.code == 0, result.err
    assert "stopped at --time-limit: run the same command again" in result.out  # --time-budget: the same option
    kept = len(record_lines(records)) if os.path.exists(os.path.join(records, TUNING_RECORDS)) else 0
    assert kept < 400 and f"{kept} new trials" in result.out  # every batch measured was committed
    etas = [line.rsplit("ETA ", 1)[1].split(":") for line in result.err.splitlines() if "ETA " in line]
    assert etas and all(int(h) * 3600 + int(m) * 60 + int(s) <= 30 for h, m, s in etas)  # counts down to the budget, not the 400 trials
    again = tvmc("tune", models["tiny-cnn"], "-o", records, "--trials", str(kept + 8), *FAST_TUNE)
    assert again.code == 0 and "8 new trials" in again.out and "--time-limit" not in again.out
    assert len(record_lines(records)) == kept + 8 and unique_traces(records)


def test_patience_stops_tasks_whose_best_stopped_moving(models, tvmc, tmp_path):
    from tvmc_transfer.tune.scheduler import improved

    assert improved([3.0], 1) and improved([3.0, 2.0], 1) and not improved([3.0, 2.0, 2.0], 1)
    assert improved([3.0, 3.0, 2.0], 2) and not improved([3.0, 2.0, 2.0, 2.0], 2)
    records = str(tmp_path / "records")
    result = tvmc("tune", models["tiny-mlp"], "-o", records, "--trials", "400", "--patience", "1", *FAST_TUNE)
    assert result.code == 0, result.err
    stopped = next(line for line in result.out.splitlines() if line.startswith("--patience stopped task(s)"))
    new = int(result.out.split(" new trials")[0].split()[-1])
    assert new < 400 and len(record_lines(records)) == new and unique_traces(records)
    # a task is stopped only after batches of its own that did not improve on its best
    trials = {int(line.split()[0]): int(line.split()[3]) for line in result.out.splitlines() if line.split() and line.split()[0].isdigit()}
    named = [int(i) for i in stopped.split(":")[0].replace("--patience stopped task(s)", "").replace("#", "").split(",")]
    assert named and all(trials[i] >= 16 for i in named)  # FAST_TUNE batches of 8: at least two


def test_killed_run_keeps_its_records_and_resumes(models, tmp_path):
    """SIGKILL in the middle of tuning: what was measured is on disk, and the rerun finishes the budget."""
    import signal
    import subprocess
    import sys

    records = str(tmp_path / "records")
    command = [sys.executable, "-m", "tvmc_transfer", "tune", models["tiny-cnn"], "-o", records, "--trials", "40",
               *FAST_TUNE[:2], "--trials-per-iter", "4", "--population", "16", "--min-repeat-ms", "5"]
    proc = subprocess.Popen(command, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    try:
        for line in proc.stderr:  # progress: one line per committed batch when not on a terminal
            if line.startswith("tune: ") and int(line.split()[1].split("/")[0]) >= 12:  # defaults measured, then batches of 4
                proc.send_signal(signal.SIGKILL)
                break
    finally:
        proc.kill()
        proc.wait()
    kept = len(record_lines(records))
    assert 12 <= kept < 40  # every batch reported was committed; the run did not get to finish
    from conftest import run_cli

    result = run_cli(*command[3:])
    assert result.code == 0, result.err
    lines = record_lines(records)
    assert len(lines) == 40
    keys = [json.dumps(json.loads(line)[:1] + [json.loads(line)[1][0]]) for line in lines]
    assert len(set(keys)) == len(keys)


def test_first_batches_go_to_the_kernels_that_cost_most(models, tmp_path):
    """After the defaults are measured, the scheduler's first round is ordered by measured time per inference,
    not FLOPs: on tiny-mobile a plain convolution with fewer FLOPs outweighs the hard-swish ones."""
    from tvmc_transfer import MeasureOptions, TuneOptions, load_model, parse_target, tune_model
    from tvmc_transfer.build.tasks import costliest_first, heaviest_first

    model, target = load_model(models["tiny-mobile"]), parse_target("llvm -num-cores=2")
    measure, records = MeasureOptions(number=2, min_repeat_ms=5), str(tmp_path / "records")
    seeded = tune_model(model, target, records, TuneOptions(trials=8, measure=measure, population=32), progress=False)
    assert all(t.best_seconds is not None for t in seeded.tasks)
    seconds = {t.index: t.best_seconds for t in seeded.tasks}
    order = costliest_first(seeded.tasks, seconds)
    assert [t.weighted_seconds for t in order] == sorted((t.weighted_seconds for t in seeded.tasks), reverse=True)
    assert [t.index for t in costliest_first(seeded.tasks, {})] == [t.index for t in heaviest_first(seeded.tasks)]
    unknown = costliest_first(seeded.tasks, {order[-1].index: 1.0})  # the known first, then by FLOPs
    assert unknown[0].index == order[-1].index and len(unknown) == len(order)
    more = tune_model(model, target, records, TuneOptions(trials=12, trials_per_iter=4, measure=measure, population=32), progress=False)
    assert [t.index for t in more.tasks if t.trials > 1] == [order[0].index]


def test_search_starts_from_each_kernels_default_schedule(models, tmp_path):
    """Each kernel's first record is the checked default schedule an untuned compile would give it, measured
    here; the search then mutates it, so the best record is never worse than no tuning. The package compiled
    from the defaults alone matches ONNX Runtime. ``default_start=False`` starts from random samples."""
    import numpy as np

    from conftest import assert_matches_onnxruntime
    from tvmc_transfer import MeasureOptions, TuneOptions, add_default_schedules, compile_model, load_model, parse_target, tune_model
    from tvmc_transfer.defaults.schedules import DefaultOptions
    from tvmc_transfer.records.database import records_of
    from tvmc_transfer.run.module import run_module
    from tvmc_transfer.target import tuning_target
    from tvmc_transfer.build.tasks import extract_tasks

    model = load_model(models["tiny-cnn"])
    target = parse_target("llvm -num-cores=2")
    tasks = extract_tasks(model, tuning_target(target))
    measure = MeasureOptions(number=2, min_repeat_ms=5)
    seeded = str(tmp_path / "seeded")
    report = tune_model(model, target, seeded, TuneOptions(trials=len(tasks), measure=measure, population=32), progress=False)
    memory = ms.database.MemoryDatabase()
    given = [k for k in add_default_schedules(tasks, tuning_target(target), memory).kernels if k.kind in ("library", "model")]
    assert report.seeds is not None and report.seeds.seeded == len(given) >= 4 and report.seeds.failed == 0
    assert "started from default schedules" in report.summary()
    database = ms.database.JSONDatabase(work_dir=seeded)
    for kernel in given:
        task = tasks[kernel.index]
        expected = str(memory.get_top_k(memory.commit_workload(task.mod), 1)[0].trace)
        seed = [r for r in records_of(database, task.mod) if str(r.trace) == expected]
        assert len(seed) == 1 and all(0 < float(s) < 1 for s in seed[0].run_secs)  # measured here, not the library's time
    package = str(tmp_path / "seeded.tar")
    compile_model(model, target, package, records=seeded, default_schedules=False)
    inputs = {i.name: np.random.default_rng(0).standard_normal(i.shape).astype(i.dtype) for i in model.inputs}
    assert_matches_onnxruntime(models["tiny-cnn"], inputs, list(run_module(package, inputs).outputs.values()))
    plain = tune_model(model, target, str(tmp_path / "plain"), TuneOptions(trials=8, measure=measure, population=32, default_start=False), progress=False)
    assert plain.seeds is None and "started from default schedules" not in plain.summary() and plain.new_trials == 8
    # The defaults follow DefaultOptions: without the library, every seed is the cost model's pick.
    modelled = tune_model(model, target, str(tmp_path / "modelled"), TuneOptions(
        trials=len(tasks), measure=measure, population=32, defaults=DefaultOptions(use_library=False)), progress=False)
    assert set(modelled.seeds.kinds) == {"model"} and modelled.seeds.seeded >= 4
