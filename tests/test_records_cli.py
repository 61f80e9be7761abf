"""``tvmc records``: list, best, merge, filter and retime on real tuning databases."""

import os

from tvm.s_tir import meta_schedule as ms

from tvmc_transfer import load_model, parse_target
from tvmc_transfer.kernels.classes import kernel_class
from tvmc_transfer.records import TUNING_RECORDS, WORKLOADS, is_measured, mean_seconds
from tvmc_transfer.build.tasks import extract_tasks

TARGET = "llvm -num-cores=2"


def database(folder):
    return ms.database.JSONDatabase(work_dir=str(folder))  # plain TVM reads what we write


def test_list_and_best_show_classes_counts_and_times(tuned_cnn, tvmc):
    model, records = tuned_cnn
    all_records = database(records).get_all_tuning_records()
    listed = tvmc("records", "list", records)
    assert listed.code == 0, listed.err
    rows = listed.out.splitlines()[1:-1]
    workloads = {str(r.workload.mod) for r in all_records}
    assert len(rows) == len(workloads)
    assert sum(int(row.split()[-5]) for row in rows) == len(all_records)  # the records column adds up
    classes = {str(kernel_class(t.mod)) for t in extract_tasks(load_model(model), parse_target(TARGET))}
    assert all(any(c in row for c in classes) for row in rows)  # each workload shown with its class
    assert listed.out.splitlines()[-1].endswith(f"{len(all_records)} records")
    best = tvmc("records", "best", records)
    assert best.code == 0
    fastest = sorted(min(mean_seconds(r) for r in all_records if is_measured(r) and str(r.workload.mod) == w) for w in workloads)
    shown = sorted(float(row.split()[1]) for row in best.out.splitlines()[1:])
    assert shown == [round(s * 1e6, 2) for s in fastest]


def test_merge_keeps_every_record_once_and_is_atomic(tuned_cnn, models, tvmc, tmp_path, caplog):
    _, records = tuned_cnn
    other = tmp_path / "mlp"
    # plain "llvm": MetaSchedule needs -num-cores, tune adds this machine's
    tuned = tvmc("tune", models["tiny-mlp"], "-o", other, "--trials", "6", "--target", "llvm", "--trials-per-iter", "4",
                 "--population", "16", "--min-repeat-ms", "5", "--number", "2")
    # 2 tasks: their 2 default schedules measured, then one batch of 4 for the 4 trials left
    assert tuned.code == 0 and "the 1 lightest task(s) may get no trial" in caplog.text
    merged = tmp_path / "merged"
    result = tvmc("records", "merge", records, other, records, "-o", merged)
    assert result.code == 0, result.err
    a, b, m = (len(database(f).get_all_tuning_records()) for f in (records, other, merged))
    assert m == a + b and f"merged {a + b} records" in result.out and f"({a} duplicates left out)" in result.out
    # an existing output is never overwritten, unless it is itself an input (merge into it)
    again = tvmc("records", "merge", other, "-o", merged)
    assert again.code == 4 and "already holds tuning records" in again.err
    into = tvmc("records", "merge", merged, other, "-o", merged)
    assert into.code == 0 and len(database(merged).get_all_tuning_records()) == m
    logs = sorted(os.listdir(other / "logs"))
    assert tvmc("records", "merge", other, records, "-o", other).code == 0  # into an input: its logs stay
    assert sorted(os.listdir(other / "logs")) == logs and len(database(other).get_all_tuning_records()) == m
    assert not [p for p in os.listdir(tmp_path) if ".partial-" in p or ".old-" in p]  # no leftovers


def test_filter_keeps_one_target(tuned_cnn, tvmc, tmp_path):
    _, records = tuned_cnn
    total = len(database(records).get_all_tuning_records())
    same = tvmc("records", "filter", records, "--target", TARGET, "-o", tmp_path / "same")
    assert same.code == 0 and len(database(tmp_path / "same").get_all_tuning_records()) == total
    other = tvmc("records", "filter", records, "--target", "llvm -mcpu=skylake", "-o", tmp_path / "other")
    assert other.code == 0 and f"{total} for another target left out" in other.out
    assert database(tmp_path / "other").get_all_tuning_records() == []
    measured = tvmc("records", "filter", records, "--target", TARGET, "--measured-only", "-o", tmp_path / "measured")
    kept = database(tmp_path / "measured").get_all_tuning_records()
    assert measured.code == 0 and kept and all(is_measured(r) for r in kept)


def test_retime_measures_the_best_records_again_into_a_new_folder(tuned_cnn, tvmc, tmp_path):
    """Each workload's two best records, built and run again here: the same traces with new times, written to a
    new folder that compiles to a package matching ONNX Runtime; the input folder is left as it was."""
    import numpy as np

    from conftest import assert_matches_onnxruntime
    from tvmc_transfer import compile_model
    from tvmc_transfer.run.module import run_module

    model, records = tuned_cnn
    files = {name: open(os.path.join(records, name)).read() for name in (WORKLOADS, TUNING_RECORDS)}
    out = tmp_path / "retimed"
    result = tvmc("records", "retime", records, "-o", out, "--target", TARGET, "--top-k", "2", "--number", "1", "--repeat", "2", "--min-repeat-ms", "1")
    assert result.code == 0, result.err
    old = [r for r in database(records).get_all_tuning_records() if is_measured(r)]
    best = {}  # workload text -> the traces of its two best records
    for workload in {str(r.workload.mod) for r in old}:
        ranked = sorted((r for r in old if str(r.workload.mod) == workload), key=mean_seconds)
        best[workload] = {str(r.trace) for r in ranked[:2]}
    new = database(out).get_all_tuning_records()
    assert f"retimed {len(new)} records of {len(best)} workloads" in result.out
    assert len(new) == sum(len(t) for t in best.values())  # none failed: they all built and ran before
    for record in new:
        assert str(record.trace) in best[str(record.workload.mod)]
        assert len(record.run_secs) == 2 and is_measured(record)  # measured now, with --repeat 2
    assert {name: open(os.path.join(records, name)).read() for name in files} == files
    package = str(tmp_path / "retimed.tar")
    loaded = load_model(model)
    compile_model(loaded, parse_target(TARGET), package, records=str(out), default_schedules=False)
    inputs = {i.name: np.random.default_rng(0).standard_normal(i.shape).astype(i.dtype) for i in loaded.inputs}
    assert_matches_onnxruntime(model, inputs, list(run_module(package, inputs).outputs.values()))


def test_retime_from_another_target_writes_records_for_this_one(tuned_cnn, tvmc, tmp_path):
    """Records tuned for one processor, measured here for another of the same architecture: written as records
    for the new target (which compile then finds), with this machine's times; without --from-target, a one-line
    error that names the flag."""
    import numpy as np

    from conftest import assert_matches_onnxruntime
    from tvmc_transfer import compile_model
    from tvmc_transfer.records.database import same_target
    from tvmc_transfer.run.module import run_module

    model, records = tuned_cnn
    other = "llvm -mcpu=x86-64 -num-cores=2"  # runs on any x86-64, as the tests' own target
    refused = tvmc("records", "retime", records, "-o", tmp_path / "no", "--target", other)
    assert refused.code != 0 and refused.err.startswith("Error: ") and "--from-target" in refused.err
    assert not (tmp_path / "no").exists()
    out = tmp_path / "moved"
    result = tvmc("records", "retime", records, "-o", out, "--target", other, "--from-target", TARGET, "--number", "1", "--repeat", "2", "--min-repeat-ms", "1")
    assert result.code == 0, result.err
    old = {str(r.workload.mod) for r in database(records).get_all_tuning_records() if is_measured(r)}
    new = database(out).get_all_tuning_records()
    assert {str(r.workload.mod) for r in new} == old  # each workload's best, none failed
    assert all(same_target(r.target, parse_target(other)) and len(r.run_secs) == 2 for r in new)
    package = str(tmp_path / "moved.tar")
    loaded = load_model(model)
    report = compile_model(loaded, parse_target(other), package, records=str(out), default_schedules=False)
    assert report.tuned_kernels >= 1  # found under the new target
    inputs = {i.name: np.random.default_rng(1).standard_normal(i.shape).astype(i.dtype) for i in loaded.inputs}
    assert_matches_onnxruntime(model, inputs, list(run_module(package, inputs).outputs.values()))


def test_corrupt_empty_and_missing_inputs_are_one_line_errors(tuned_cnn, tvmc, tmp_path):
    _, records = tuned_cnn
    corrupt, empty = tmp_path / "corrupt", tmp_path / "empty"
    for folder in (corrupt, empty):
        folder.mkdir()
    (corrupt / WORKLOADS).write_text("[[[broken\n")
    (corrupt / TUNING_RECORDS).write_text("x\n")
    (empty / WORKLOADS).write_text("")
    (empty / TUNING_RECORDS).write_text("")
    out = tmp_path / "out"
    for argv, message in [
        (("list", corrupt), "corrupt"),
        (("best", empty), "holds no tuning records"),
        (("list", tmp_path / "none"), "holds no tuning records"),
        (("merge", records, corrupt, "-o", out), "corrupt"),
        (("merge", records, empty, "-o", out), "holds no tuning records"),
        (("filter", corrupt, "--target", TARGET, "-o", out), "corrupt"),
        (("filter", records, "--target", "nonsense-kind", "-o", out), "target"),
        (("merge", records, "-o", tmp_path / "no" / "out"), "does not exist"),
        (("retime", records, "-o", records), "already holds tuning records"),
        (("retime", records, "--target", "llvm -mcpu=skylake", "-o", out), "holds no measured records for llvm -mcpu=skylake"),
        ((), "give a subcommand"),
    ]:
        result = tvmc("records", *argv)
        assert result.code == 4 and message in result.err and result.err.count("\n") == 1, (argv, result.err)
    assert not out.exists() and not [p for p in os.listdir(tmp_path) if ".partial-" in p]
