"""``tvmc transfer`` with the schedule library shipped for the CPU family: a user with nothing tuned transfers
from it alone, ``--from`` adds records folders to it, and ``--no-library`` leaves it out."""

import json
import os

import pytest

from tvmc_transfer import load_model, parse_target
from tvmc_transfer.records import TUNING_RECORDS, is_measured, open_database
from tvmc_transfer.records.listing import workload_hash
from tvmc_transfer.defaults.library import find_library, read_library
from tvmc_transfer.build.tasks import extract_tasks

MEASURE = ["--min-repeat-ms", "5", "--number", "2"]
# Few candidates per kernel: enough to see the library's schedules replayed, checked and measured, in seconds.
FEW = ["--max-per-kernel", "2", "--measure-top", "2", "--no-e2e", *MEASURE]
GENERIC = "llvm -num-cores=2"  # what tuned_cnn's records are for; x86-64 without AVX2: the AVX2 library, outside its family


def record_lines(folder):
    with open(os.path.join(folder, TUNING_RECORDS)) as f:
        return [line for line in f if line.strip()]


def test_transfer_without_from_takes_this_cpus_library_and_matches_onnxruntime(models, tvmc, tmp_path):
    """``tvmc transfer MODEL -o RECORDS`` on the default target (this machine: AVX2 or AVX-512, whichever the
    day's CI runner has): the library of its family is the one source, its schedules are replayed on the
    model's kernels, checked and measured here, and the package built with the records matches ONNX Runtime."""
    model = models["tiny-cnn-b"]
    target = parse_target("native")
    path, in_family = find_library(target)
    if path is None:
        pytest.skip("no schedule library ships for this machine's architecture")
    library = read_library(path)
    output, report_path = tmp_path / "records", tmp_path / "report.json"
    argv = ["transfer", model, "-o", output, "--report", report_path, *FEW]
    result = tvmc(*argv)
    assert result.code == 0, result.err
    report = json.load(open(report_path))
    assert report["library"] == library.describe(target) and f"schedule library: {library.describe(target)}" in result.out
    assert in_family == ("outside its family" not in report["library"])
    (source,) = report["sources"]
    assert source["path"] == os.path.abspath(path) and source["chosen"] and source["coverage"] > 0.9
    # every kernel found its class in the library; the schedules it kept are the library's, measured here
    kernels = report["kernels"]
    assert all(k["status"] in ("transferred", "reused", "default") for k in kernels), kernels
    assert all(k["valid"] >= 1 and k["best_source"].startswith(library.name) for k in kernels)
    # (which tiny kernels beat their unscheduled loops is noise; a convolution's schedule wins by 3-20x)
    assert any(k["kernel_class"].startswith("conv2d") and k["status"] == "transferred" for k in kernels)
    tasks = {workload_hash(t.mod) for t in extract_tasks(load_model(model), target)}
    records = open_database(str(output)).get_all_tuning_records()
    scheduled = [r for r in records if r.trace.insts]  # (a kernel whose unscheduled loops won has an empty trace)
    # (one per correct candidate, and each kernel's default schedule that is none of them)
    assert len(scheduled) == sum(k["valid"] for k in kernels) + report["measured_defaults"] and all(is_measured(r) for r in records)
    assert {workload_hash(r.workload.mod) for r in records} <= tasks
    # the same command again resumes: the journal knows the library by its name and version
    lines = record_lines(output)
    again = tvmc(*argv)
    assert again.code == 0 and record_lines(output) == lines, again.err
    package = tmp_path / "b.tar"
    compiled = tvmc("compile", model, "--tuning-records", output, "-o", package)
    assert compiled.code == 0, compiled.err
    run = tvmc("run", package, "--verify", model, "--fill-mode", "random")
    assert run.code == 0 and ": ok" in run.out, run.out + run.err


def test_from_adds_folders_to_the_library_and_no_library_leaves_it_out(tuned_cnn, models, tvmc, tmp_path):
    """With --from, the records folder and the library are ranked and used side by side; with --no-library,
    the folder alone (a held-out experiment). The time limit stops both before any kernel is measured."""
    _, records = tuned_cnn
    path, in_family = find_library(parse_target(GENERIC))
    assert path and not in_family
    common = ["--from", records, "--target", GENERIC, "--time-limit", "0.001", *MEASURE]
    both = tvmc("transfer", models["tiny-cnn-b"], "-o", tmp_path / "a", "--report", tmp_path / "a.json", *common)
    assert both.code == 0, both.err
    report = json.load(open(tmp_path / "a.json"))
    assert {s["path"] for s in report["sources"] if s["chosen"]} == {os.path.abspath(records), os.path.abspath(path)}
    assert report["library"].startswith(read_library(path).describe()) and "outside its family: the target lacks avx2, fma" in report["library"]
    alone = tvmc("transfer", models["tiny-cnn-b"], "-o", tmp_path / "b", "--report", tmp_path / "b.json", "--no-library", *common)
    assert alone.code == 0, alone.err
    report = json.load(open(tmp_path / "b.json"))
    assert [s["path"] for s in report["sources"]] == [os.path.abspath(records)] and report["library"] == "left out"
    assert "schedule library: left out" in alone.out


def test_a_target_without_a_library_needs_from(models, tvmc, tmp_path):
    """An architecture no library ships for, and no --from: one line that says so and what to give instead."""
    aarch64 = "llvm -mtriple=aarch64-linux-gnu -mcpu=neoverse-n1"
    result = tvmc("transfer", models["tiny-cnn-b"], "-o", tmp_path / "o", "--target", aarch64)
    assert result.code == 4 and result.err.count("\n") == 1, result.err
    assert result.err.startswith("Error: no schedule library ships for aarch64 (llvm -mcpu=neoverse-n1)") and "--from RECORDS" in result.err
    assert not (tmp_path / "o").exists()

