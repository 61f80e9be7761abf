"""``tvmc transfer``: a user's session. Tune one tiny model, transfer its schedules to another model whose
kernels have the same structure at other shapes, compile the result and check it against ONNX Runtime."""

import contextlib
import io
import json
import logging
import math
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
from tvm.s_tir import meta_schedule as ms

from conftest import FAST_TUNE
from tvmc_transfer import load_model, parse_target
from tvmc_transfer.kernels.classes import kernel_class, normal_form
from tvmc_transfer.records import TUNING_RECORDS, is_measured, open_database, records_of
from tvmc_transfer.records.listing import workload_hash
from tvmc_transfer.kernels.replay import ReplayError, nearest_factors
from tvmc_transfer.build.tasks import extract_tasks

TARGET = "llvm -num-cores=2"
MEASURE = ["--min-repeat-ms", "5", "--number", "2"]
# These tests are about what transfer does with the records folders it is given (--from): the schedule library
# shipped for the CPU family, a source too by default, is left out (tests/test_transfer_library.py has it).
FROM_ONLY = "--no-library"


def record_lines(folder):
    with open(os.path.join(folder, TUNING_RECORDS)) as f:
        return [line for line in f if line.strip()]


def kernels_by_class(report_path):
    """A transfer report's kernels by class name (without the key)."""
    return {k["kernel_class"].split(" [")[0]: k for k in json.load(open(report_path))["kernels"]}


def task_classes(path):
    return [(t.name, kernel_class(t.mod)) for t in extract_tasks(load_model(path), parse_target(TARGET))]


@pytest.fixture(scope="module")
def mlp_records(models, tmp_path_factory):
    """tiny-mlp tuned with 8 trials: a source that holds only matmul kernels."""
    from tvmc_transfer.main import _main

    records = str(tmp_path_factory.mktemp("mlp") / "records")
    assert _main(["tune", models["tiny-mlp"], "-o", records, "--trials", "8", *FAST_TUNE, "--trials-per-iter", "4"]) == 0
    return records


@pytest.fixture(scope="module")
def other_target_records(tuned_cnn, tmp_path_factory):
    """tiny-cnn's records re-labelled for another CPU: a source transfer must ignore with a warning."""
    import tvm

    _, records = tuned_cnn
    folder = str(tmp_path_factory.mktemp("skylake") / "records")
    source, copy = open_database(records), open_database(folder, create=True)
    skylake = tvm.target.Target({"kind": "llvm", "mcpu": "skylake", "num-cores": 2})
    for r in source.get_all_tuning_records():
        copy.commit_tuning_record(ms.database.TuningRecord(r.trace, copy.commit_workload(r.workload.mod), r.run_secs, skylake, r.args_info))
    return folder


@pytest.fixture(scope="module")
def transferred(tuned_cnn, mlp_records, other_target_records, models, tmp_path_factory):
    """tiny-cnn's and tiny-mlp's records (and another target's) transferred to tiny-cnn-b from the command line:
    (argv, output folder, report path, what it printed, what it logged). Run here, so that no test depends on
    another having run it."""
    from tvmc_transfer.main import _main

    _, cnn_records = tuned_cnn
    folder = tmp_path_factory.mktemp("transfer")
    output, report = str(folder / "records"), str(folder / "report.json")
    argv = [
        "transfer", models["tiny-cnn-b"], "--from", cnn_records, "--from", mlp_records, "--from", other_target_records,
        "-o", output, "--sources", "auto", "--max-candidates", "2", "--report", report, "--target", TARGET, *MEASURE, FROM_ONLY,
    ]
    logged = io.StringIO()
    handler = logging.StreamHandler(logged)
    logging.getLogger("tvmc").addHandler(handler)
    try:
        with contextlib.redirect_stdout(io.StringIO()) as printed:
            assert _main(argv) == 0
    finally:
        logging.getLogger("tvmc").removeHandler(handler)
    return argv, output, report, printed.getvalue(), logged.getvalue()


@pytest.fixture(scope="module")
def ranked_transfer(tuned_cnn, models, tmp_path_factory):
    """tiny-cnn's records, every one of them, transferred to tiny-cnn-b measuring the best ranked candidate of
    each kernel (and the next only while the last beat everything before it): (argv, output folder, report)."""
    from tvmc_transfer.main import _main

    folder = tmp_path_factory.mktemp("ranked")
    output, report = str(folder / "records"), str(folder / "report.json")
    argv = ["transfer", models["tiny-cnn-b"], "--from", tuned_cnn[1], "-o", output, "--max-candidates", "0", "--measure-top", "1",
            "--no-e2e", "--report", report, "--target", TARGET, *MEASURE, FROM_ONLY]
    with contextlib.redirect_stdout(io.StringIO()):
        assert _main(argv) == 0
    return argv, output, report


def assert_counts_add_up(k):
    """Every candidate tried is invalid, or replayed and ranked; a ranked one was found wrong, measured (valid,
    or invalid when it did not build or run), or left unchecked behind the measured ones. (A reused workload
    is checked and copied, not ranked or measured.)"""
    assert k["status"] != "reused"
    unchecked = k["ranked"] - k["wrong"] - k["measured"]
    assert unchecked >= 0 and k["valid"] <= k["measured"], k
    assert k["valid"] + k["invalid"] + k["wrong"] + unchecked == k["candidates"], k


def test_kernel_classes_are_structural_and_stable(models):
    cnn, cnn_b, mlp = (task_classes(models[m]) for m in ("tiny-cnn", "tiny-cnn-b", "tiny-mlp"))
    # the same structure at other shapes is one class, in both models, whatever the task is called (MetaSchedule
    # lists the tasks in an order of their own, which need not be the same in both)
    assert sorted(c.key for _, c in cnn) == sorted(c.key for _, c in cnn_b)
    assert len({c for _, c in cnn}) == 5  # two conv2d+bias+relu at different shapes share one
    by_name = {c.name: c for _, c in cnn + mlp}
    assert {"conv2d+bias+relu NCHW fp32", "matmul+bias fp32", "matmul+bias+relu fp32", "max_pool fp32", "mean fp32"} <= set(by_name)
    assert by_name["matmul+bias fp32"].key != by_name["matmul+bias+relu fp32"].key  # another epilogue, another class
    mlp_bias = next(c for n, c in mlp if c.name == "matmul+bias fp32")
    assert mlp_bias == next(c for n, c in cnn if c.name == "matmul+bias fp32")  # 32x10 in tiny-mlp, 16x10 in tiny-cnn
    # shapes are not part of the normal form, buffers' ranks and dtypes are
    conv = next(t for t in extract_tasks(load_model(models["tiny-cnn"]), parse_target(TARGET)) if "conv2d1" in t.name)
    form = normal_form(conv.mod)
    assert "16" not in json.dumps(form) and form["buffers"]["p0"] == ["float32", 4]
    # stable across sessions: a fresh process computes the same keys
    code = f"from tvmc_transfer.kernels.classes import kernel_class\nfrom tvmc_transfer import load_model, parse_target\nfrom tvmc_transfer.build.tasks import extract_tasks\nprint(' '.join(kernel_class(t.mod).key for t in extract_tasks(load_model({models['tiny-cnn-b']!r}), parse_target({TARGET!r}))))"
    fresh = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env={**os.environ, "PYTHONPATH": os.path.dirname(os.path.dirname(__file__))})
    assert fresh.stdout.split() == [c.key for _, c in cnn_b]


def test_kernels_with_the_same_anchor_take_each_others_schedules(models):
    """The anchor (blocks up to the last reduction) ignores the elementwise blocks after it: a residual
    convolution and a plain one, a matmul with ReLU and one without, replay each other's schedules, in both
    directions, and compute the right numbers."""
    target = parse_target(TARGET)
    tasks = {kernel_class(t.mod).name: t for m in ("tiny-resnet", "tiny-mlp", "tiny-cnn") for t in extract_tasks(load_model(models[m]), target)}
    residual, conv = (kernel_class(tasks[n].mod) for n in ("conv2d+bias+add+relu NCHW fp32", "conv2d+bias+relu NCHW fp32"))
    assert residual.key != conv.key and residual.anchor == conv.anchor and (residual.epilogue, conv.epilogue) == (3, 2)
    assert residual.epilogue_plan(conv) == (("T_add1",), ())  # the residual add goes into the ReLU
    assert conv.epilogue_plan(residual) == ((), ("T_add1",))  # or leaves the residual kernel's schedules
    relu, plain = (kernel_class(tasks[n].mod) for n in ("matmul+bias+relu fp32", "matmul+bias fp32"))
    assert relu.epilogue_plan(plain) == (("T_add",), ()) and plain.epilogue_plan(relu) == ((), ("T_add",))
    assert not relu.takes_epilogue_of(conv) and not kernel_class(tasks["max_pool fp32"].mod).takes_epilogue_of(conv)
    for source, dest in [("conv2d+bias+add+relu NCHW fp32", "conv2d+bias+relu NCHW fp32"), ("conv2d+bias+relu NCHW fp32", "conv2d+bias+add+relu NCHW fp32"),
                         ("matmul+bias+relu fp32", "matmul+bias fp32"), ("matmul+bias fp32", "matmul+bias+relu fp32")]:
        _assert_replays_correctly(tasks[source], tasks[dest], target)


def _assert_replays_correctly(source_task, dest_task, target):
    """Every design-space schedule of ``source_task`` replays on ``dest_task`` with the epilogues (or padding) fitted, and
    those the post-processors accept (at least one) compute the right numbers."""
    from tvmc_transfer.kernels.replay import replay
    from tvmc_transfer.kernels.check import KernelCheck

    from tvmc_transfer.records.sources import matches

    mine, theirs = kernel_class(dest_task.mod), kernel_class(source_task.mod)
    assert matches(mine, theirs) in ("epilogue", "padding")
    inline, drop = mine.epilogue_plan(theirs)
    names = dict(zip([b for b in theirs.blocks if b not in drop], [b for b in mine.blocks if b not in inline]))
    context = ms.TuneContext(mod=source_task.mod, target=target, space_generator="post-order-apply", task_name="s")
    postprocs = list(ms.TuneContext(mod=dest_task.mod, target=target, space_generator="post-order-apply", task_name="d").space_generator.postprocs)
    check, correct = KernelCheck(dest_task.mod, target, 1e-3), 0
    for design in context.space_generator.generate_design_space(context.mod):
        sch = replay(design.trace, dest_task.mod, names, inline, drop, mine.consumers_differ(theirs)).schedule
        got = lambda trace: sum(i.kind.name == "GetSBlock" for i in trace.insts)  # noqa: E731
        assert got(sch.trace) == got(design.trace) - len(drop) + len(inline)  # left out, or inlined first
        sch.enter_postproc()
        if all(p.apply(sch) for p in postprocs):
            assert check.is_correct(sch.mod), (str(theirs), str(mine))
            correct += 1
    assert correct >= 1, (str(theirs), str(mine))


def test_a_convolution_without_bias_and_one_with_take_each_others_schedules(models):
    """tiny-mobile's last 1x1 convolution has no bias, no BatchNorm, no epilogue at all: it shares the anchor of
    the convolutions with a bias and hard-swish, takes their schedules with the whole epilogue left out (its
    consumers too), and they take its schedules with their epilogue left to the post-processors."""
    target = parse_target(TARGET)
    tasks = {kernel_class(t.mod).name: t for t in extract_tasks(load_model(models["tiny-mobile"]), target)}
    plain, fused = tasks["conv2d NCHW fp32"], tasks["conv2d+bias+add+relu+divide+multiply NCHW fp32"]
    bare, full = kernel_class(plain.mod), kernel_class(fused.mod)
    assert bare.epilogue == 0 and full.epilogue == 5 and bare.anchor == full.anchor and bare.key != full.key
    assert bare.epilogue_plan(full) == ((), tuple(full.blocks[-5:])) and full.epilogue_plan(bare) == ((), ())
    _assert_replays_correctly(fused, plain, target)
    _assert_replays_correctly(plain, fused, target)


def test_a_pool_with_padding_and_one_without_take_each_others_schedules(models, tmp_path):
    """AlexNet's max-pools pad nothing, ResNet-50's and GoogLeNet's pad their input: without the padding block
    the two are one class (``padless``), so each takes the other's schedules, the padding inlined on the padded
    side or left out of the padded source's schedules, and computes the right numbers. No convolution gains a
    match this way: their padding blocks are there whether they pad or not."""
    import onnx

    from tvmc_transfer.frontends.onnx_graph import Graph
    from tvmc_transfer.records.sources import matches

    g = Graph(0)
    x = g.max_pool(g.relu(g.conv("input", "conv", 3, 8, 3, pad=1)), "pool", 3, stride=2, pad=1)
    g.linear(g.global_avg_pool_flatten(x, "avgpool"), "fc", 8, 10, output="output")
    path = str(tmp_path / "padded-pool.onnx")
    onnx.save(g.to_model("padded-pool", "conv, a 3x3 max-pool with padding 1, a classifier", (1, 3, 16, 16), (1, 10), False), path)
    target = parse_target(TARGET)
    mine = {kernel_class(t.mod).name: t for t in extract_tasks(load_model(path), target)}
    theirs = {kernel_class(t.mod).name: t for t in extract_tasks(load_model(models["tiny-cnn"]), target)}
    padded, bare = mine["pad+max_pool fp32"], theirs["max_pool fp32"]
    a, b = kernel_class(padded.mod), kernel_class(bare.mod)
    assert a.key != b.key and a.padless == b.key and a.pads == ("pad_temp",) and not b.pads
    assert matches(a, b) == matches(b, a) == "padding" and matches(a, b, epilogues=False) is None
    assert a.epilogue_plan(b) == (("pad_temp",), ()) and b.epilogue_plan(a) == ((), ("pad_temp",))
    assert all(matches(kernel_class(t.mod), kernel_class(u.mod)) != "padding" for t in mine.values() for u in theirs.values() if "pool" not in kernel_class(t.mod).name)
    _assert_replays_correctly(padded, bare, target)
    _assert_replays_correctly(bare, padded, target)


def test_epilogue_match_is_verified_compiles_and_matches_onnxruntime(tuned_cnn, models, tvmc, tmp_path):
    """tiny-cnn has no residual convolution; its convolutions' schedules still apply to tiny-resnet's, checked
    like any other candidate. With --exact-classes that kernel stays unmatched."""
    _, records = tuned_cnn
    args = ["--from", records, "--target", TARGET, *MEASURE, FROM_ONLY, "--no-e2e"]
    result = tvmc("transfer", models["tiny-resnet"], "-o", tmp_path / "r", "--report", tmp_path / "r.json", *args)
    assert result.code == 0, result.err
    kernels = kernels_by_class(tmp_path / "r.json")
    residual = kernels["conv2d+bias+add+relu NCHW fp32"]
    assert residual["match"] == "epilogue" and residual["status"] in ("transferred", "default"), residual
    assert residual["valid"] >= 1 and residual["wrong"] == 0 and residual["best_source"].endswith("conv2d+bias+relu NCHW fp32")
    assert kernels["conv2d+bias+relu NCHW fp32"]["match"] == "class"
    # its records are ordinary traces of the residual kernel that start by inlining the residual add
    traces = [r.trace for r in open_database(str(tmp_path / "r")).get_all_tuning_records() if r.trace.insts and "T_add1" in str(r.workload.mod)]
    inlined = [t for t in traces if [i.kind.name for i in t.insts[:2]] == ["GetSBlock", "ComputeInline"] and str(t.insts[0].attrs[0]) == "T_add1"]
    # (and the kernel's default schedule, measured beside them)
    assert len(inlined) >= residual["valid"] >= 1 and len(traces) <= residual["valid"] + 1
    package = tmp_path / "resnet.tar"
    assert tvmc("compile", models["tiny-resnet"], "--tuning-records", tmp_path / "r", "--target", TARGET, "-o", package).code == 0
    run = tvmc("run", package, "--verify", models["tiny-resnet"], "--fill-mode", "random")
    assert run.code == 0 and ": ok" in run.out, run.out + run.err
    exact = tvmc("transfer", models["tiny-resnet"], "-o", tmp_path / "e", "--report", tmp_path / "e.json", "--exact-classes", *args)
    assert exact.code == 0, exact.err
    kernels = kernels_by_class(tmp_path / "e.json")
    assert kernels["conv2d+bias+add+relu NCHW fp32"]["status"] == "unmatched" and kernels["conv2d+bias+add+relu NCHW fp32"]["match"] is None


def test_nearest_factorization_rule():
    assert nearest_factors(28, [1, 56, 1, 2]) == [1, 14, 1, 2]
    assert nearest_factors(24, [2, 8]) == [2, 12]  # a tie with [3, 8]: the smaller factor list wins, every time
    for extent, old, limit in [(12, [1, 4, 4, 4], 64), (7, [1, 4, 4, 4], 64), (1024, [1, 1, 2, 512], 64), (97, [4, 4], 0)]:
        new = nearest_factors(extent, old, limit)
        assert math.prod(new) == extent and len(new) == len(old) and (limit == 0 or new[-1] <= limit)
    assert nearest_factors(256, [256, 1], 16)[-1] <= 16
    with pytest.raises(ReplayError):
        nearest_factors(97, [97], 16)  # one factor larger than the innermost limit: no valid tiling


def test_transfer_to_other_shapes_is_verified_and_matches_onnxruntime(transferred, tuned_cnn, mlp_records, models, tvmc, tmp_path):
    _, output, report_path, printed, logged = transferred
    assert "records are for another target and were ignored" in logged
    report = json.load(open(report_path))
    kernels = {k["task"]: k for k in report["kernels"]}
    # every kernel whose class a used source holds got candidates, and they replayed, built and were correct
    held = {kernel_class(r.workload.mod).key for path in (tuned_cnn[1], mlp_records) for r in open_database(path).get_all_tuning_records() if is_measured(r)}
    for name, klass in task_classes(models["tiny-cnn-b"]):
        k = kernels[name]
        assert k["kernel_class"] == str(klass)
        if klass.key in held:
            assert k["status"] in ("transferred", "default"), k
            assert k["valid"] >= 1 and k["wrong"] == 0 and k["seconds"] > 0 and k["default_seconds"] > 0
            assert k["best_source"]
            assert_counts_add_up(k)
        else:
            assert k["status"] == "unmatched" and k["candidates"] == 0
            assert f"#{k['index']} {name}" in printed  # listed as unmatched
    assert sum(k["remapped"] for k in report["kernels"]) > 0  # other shapes: decisions had to be remapped
    # auto: tiny-cnn's records rank first; the other target's folder covers nothing and is not used
    assert report["sources"][0]["path"] == os.path.abspath(tuned_cnn[1]) and report["sources"][0]["chosen"]
    skylake = next(s for s in report["sources"] if s["other_target"] > 0)
    assert skylake["workloads"] == 0 and skylake["coverage"] == 0 and not skylake["chosen"]
    totals = report["totals"]
    assert 0 < totals["coverage"] <= totals["class_coverage"] <= 1 and totals["search_seconds"] > 0 and totals["e2e_ms"] > 0
    assert totals["weighted_result_seconds"] <= totals["weighted_default_seconds"]  # never slower than untuned
    # the output is ordinary MetaSchedule records: measured, for this target
    records = ms.database.JSONDatabase(work_dir=output).get_all_tuning_records()
    assert records and all(is_measured(r) and str(r.target.kind) == "llvm" for r in records)
    # and the compiled result computes what ONNX Runtime computes
    package = tmp_path / "b.tar"
    assert tvmc("compile", models["tiny-cnn-b"], "--tuning-records", output, "--target", TARGET, "-o", package).code == 0
    run = tvmc("run", package, "--verify", models["tiny-cnn-b"])
    assert run.code == 0 and ": ok" in run.out, run.out + run.err


def test_measure_top_measures_the_cost_models_best_ranked_and_matches_onnxruntime(ranked_transfer, tuned_cnn, models, tvmc, tmp_path):
    """``--measure-top 1``: a kernel's replayed candidates are ranked by the shipped cost model and only the best
    ranked are checked and measured, the next one only while the last beat everything measured before it;
    ``--measure-top all`` checks and measures every candidate, as transfer did before ranking."""
    from tvmc_transfer.defaults.cost_model import load_cost_model
    from tvmc_transfer.build.intrinsics import load_tensor_intrinsics
    from tvmc_transfer.transfer import TransferOptions
    from tvmc_transfer.kernels.classes import iter_extents
    from tvmc_transfer.kernels.replay import replay_candidates
    from tvmc_transfer.records.sources import candidates_for, read_source

    argv, output, report_path = ranked_transfer
    top = json.load(open(report_path))
    every_args = ["--max-candidates", "0", "--measure-top", "all", "--no-e2e", "--target", TARGET, *MEASURE, FROM_ONLY]
    result = tvmc("transfer", models["tiny-cnn-b"], "--from", tuned_cnn[1], "-o", tmp_path / "all", "--report", tmp_path / "all.json", *every_args)
    assert result.code == 0, result.err
    every = json.load(open(tmp_path / "all.json"))
    assert (top["ranked_by"], every["ranked_by"]) == ("the cost model", "nearest shapes (every one measured)")
    matched = [i for i, k in enumerate(every["kernels"]) if k["status"] != "unmatched"]
    assert matched and max(every["kernels"][i]["ranked"] for i in matched) >= 4  # kernels with several candidates
    for i in matched:
        mine, all_of_them = top["kernels"][i], every["kernels"][i]
        assert_counts_add_up(mine)
        assert_counts_add_up(all_of_them)
        assert all_of_them["measured"] + all_of_them["wrong"] == all_of_them["ranked"]  # every one checked, the correct ones measured
        assert mine["ranked"] == all_of_them["ranked"] and mine["valid"] >= 1  # the same candidates, the best ranked measured
    assert top["totals"]["measured"] < every["totals"]["measured"]
    # the candidates measured are the model's best ranked: replay them here and ask the model
    target = parse_target(TARGET)
    load_tensor_intrinsics(target)
    source, model = read_source(tuned_cnn[1], target), load_cost_model()
    records = open_database(output).get_all_tuning_records()
    kernels = {k["task"]: k for k in top["kernels"]}
    compared = 0
    for task in extract_tasks(load_model(models["tiny-cnn-b"]), target):
        k = kernels[task.name]
        if k["ranked"] <= k["measured"]:
            continue  # every candidate measured: nothing for the ranking to decide
        klass = kernel_class(task.mod)
        candidates = candidates_for(klass, iter_extents(task.mod), [source], TransferOptions(max_candidates=None))
        replayed, context, _ = replay_candidates(task, klass, candidates, target)
        args = ms.arg_info.ArgInfo.from_entry_func(task.mod, remove_preproc=True)
        scores = model.predict(context, [ms.MeasureCandidate(sch, args) for sch, _ in replayed])
        predicted = [str(replayed[i][0].trace) for i in np.argsort(-scores, kind="stable")]
        key = workload_hash(task.mod)
        committed = {str(r.trace) for r in records if workload_hash(r.workload.mod) == key and r.trace.insts}  # (not the default's empty trace)
        # (and the kernel's default schedule, measured after the transfer where it is none of the candidates)
        assert len(predicted) == k["ranked"] and k["valid"] <= len(committed) <= k["valid"] + 1
        assert committed & set(predicted) <= set(predicted[: k["measured"] + k["wrong"]])  # checked in ranked order, the wrong ones skipped
        assert k["wrong"] > 0 or predicted[0] in committed  # the model's top pick
        compared += 1
    assert compared >= 1
    # and the result computes what ONNX Runtime computes
    package = tmp_path / "b.tar"
    assert tvmc("compile", models["tiny-cnn-b"], "--tuning-records", output, "--target", TARGET, "-o", package).code == 0
    run = tvmc("run", package, "--verify", models["tiny-cnn-b"])
    assert run.code == 0 and ": ok" in run.out, run.out + run.err


def test_changing_measure_top_transfers_again_and_each_setting_resumes(ranked_transfer, tvmc, tmp_path):
    """The journal's fingerprint holds --measure-top: another value transfers every kernel again into the same
    folder, and a rerun with either value measures nothing."""
    argv, output, report_path = ranked_transfer
    first = json.load(open(report_path))
    shutil.copytree(output, tmp_path / "records")
    argv = [str(tmp_path / "records") if a == output else str(tmp_path / "r.json") if a == report_path else a for a in argv]
    lines = record_lines(tmp_path / "records")
    strip = lambda ks: [{k: v for k, v in row.items() if k != "search_seconds"} for row in ks]  # noqa: E731
    assert tvmc(*argv).code == 0 and record_lines(tmp_path / "records") == lines  # the same value: resumed
    # 'all' measures every candidate: some the first run never reached, whatever the times (with 2, whether the
    # stopping rule went further than the first run's depended on which of two candidates measured faster)
    two = [("all" if argv[i - 1] == "--measure-top" else a) for i, a in enumerate(argv)]
    result = tvmc(*two)
    assert result.code == 0, result.err
    again = record_lines(tmp_path / "records")
    second = json.load(open(tmp_path / "r.json"))
    assert len(again) > len(lines) and again[: len(lines)] == lines  # measured again, appended
    for k in second["kernels"]:
        if k["status"] != "unmatched":
            assert_counts_add_up(k)
            assert k["measured"] >= min(2, k["ranked"] - k["wrong"])
    for command, report in [(two, second), (argv, first)]:  # each value resumes from its own journal lines
        result = tvmc(*command)
        assert result.code == 0 and record_lines(tmp_path / "records") == again, result.err
        assert strip(json.load(open(tmp_path / "r.json"))["kernels"]) == strip(report["kernels"])


def test_rerun_resumes_without_measuring_again(transferred, tvmc):
    argv, output, report_path, _, _ = transferred
    before = json.load(open(report_path))
    lines = record_lines(output)
    again = tvmc(*argv, "--no-e2e")
    assert again.code == 0, again.err
    assert record_lines(output) == lines  # nothing measured or written twice
    after = json.load(open(report_path))
    strip = lambda ks: [{k: v for k, v in row.items() if k != "search_seconds"} for row in ks]  # noqa: E731
    assert strip(after["kernels"]) == strip(before["kernels"])
    assert after["totals"]["search_seconds"] >= before["totals"]["search_seconds"]  # every session counts


def test_a_kernel_an_earlier_run_left_unmatched_is_transferred_on_rerun(transferred, tvmc, tmp_path):
    """A journal written before a kind of match existed (padding, session 19) has such kernels as unmatched: a
    rerun transfers them now, and resumes every other kernel without measuring it again."""
    from tvmc_transfer.records.folder import JOURNAL

    argv, output, report_path, _, _ = transferred
    copy, report = tmp_path / "records", tmp_path / "report.json"
    shutil.copytree(output, copy)
    entries = [json.loads(line) for line in open(copy / JOURNAL)]
    pool = next(e for e in entries if "kernel" in e and e["kernel"]["kernel_class"].startswith("max_pool"))
    pool["kernel"]["status"] = "unmatched"
    with open(copy / JOURNAL, "w") as f:
        f.writelines(json.dumps(e) + "\n" for e in entries)
    lines = record_lines(str(copy))
    argv = [str(copy) if a == output else str(report) if a == report_path else a for a in argv]
    result = tvmc(*argv, "--no-e2e")
    assert result.code == 0, result.err
    before = {k["task"]: k for k in json.load(open(report_path))["kernels"]}
    after = {k["task"]: k for k in json.load(open(report))["kernels"]}
    again = [name for name in after if after[name]["search_seconds"] != before[name]["search_seconds"]]
    assert again == [pool["kernel"]["task"]] and after[again[0]]["status"] != "unmatched" and after[again[0]]["measured"] > 0
    # its candidates are those of the first run: measured again, not stored twice (a trace once per workload)
    stored = [json.loads(line) for line in record_lines(str(copy))]
    assert len(stored) >= len(lines) and len({(r[0], json.dumps(r[1][0])) for r in stored}) == len(stored)


def test_an_identical_workload_is_reused_with_the_time_measured_here(tuned_cnn, tvmc, tmp_path):
    """tiny-cnn's records onto tiny-cnn itself: each kernel's own record is checked and copied, with a time
    measured by this run's protocol (--repeat 2: two samples, where the source's have three), not its source's."""
    model, records = tuned_cnn
    source = {(workload_hash(r.workload.mod), str(r.trace)): r for r in open_database(records).get_all_tuning_records() if is_measured(r)}
    out, report = tmp_path / "self", tmp_path / "self.json"
    result = tvmc("transfer", model, "--from", records, "-o", out, "--report", report, "--target", TARGET, *MEASURE, FROM_ONLY, "--repeat", "2", "--no-e2e")
    assert result.code == 0, result.err
    reused = [k for k in json.load(open(report))["kernels"] if k["status"] == "reused"]
    assert reused, "a kernel with a record of its own workload is reused"
    new = [r for r in open_database(str(out)).get_all_tuning_records() if r.trace.insts]
    assert len(new) >= len(reused) and all((workload_hash(r.workload.mod), str(r.trace)) in source for r in new)  # the source's schedules
    assert all(len(r.run_secs) == 2 for r in new) and all(len(r.run_secs) == 3 for r in source.values())  # measured now, not copied
    means = {round(sum(float(x) for x in r.run_secs) / 2, 12) for r in new}
    assert all(round(k["seconds"], 12) in means for k in reused)  # the report gives the time measured here
    package = tmp_path / "self.tar"
    assert tvmc("compile", model, "--tuning-records", out, "--target", TARGET, "-o", package).code == 0
    run = tvmc("run", package, "--verify", model, "--fill-mode", "random")
    assert run.code == 0 and ": ok" in run.out, run.out + run.err


def test_unmatched_kernels_are_listed_and_tuned_with_tune_rest(mlp_records, models, tvmc, tmp_path):
    output = tmp_path / "records"
    result = tvmc(
        "transfer", models["tiny-cnn"], "--from", mlp_records, "-o", output, "--tune-rest", "8", "--population", "16",
        "--target", TARGET, *MEASURE, FROM_ONLY, "--report", tmp_path / "r.json",
    )
    assert result.code == 0, result.err
    report = json.load(open(tmp_path / "r.json"))
    status = {k["task"]: k["status"] for k in report["kernels"]}
    assert all(s == "unmatched" for t, s in status.items() if "conv2d" in t)  # tiny-mlp has no convolutions
    assert status["fused_matmul_add2"] in ("transferred", "default")
    assert "no class match:" in result.out and "fused_conv2d_add_relu" in result.out.split("no class match:")[1]
    # --tune-rest tuned the unmatched kernels only: 8 trials, 5 of them their defaults, measured by the transfer
    assert report["tune_rest"]["new_trials"] == 3
    recorded = {workload_hash(r.workload.mod) for r in open_database(str(output)).get_all_tuning_records() if is_measured(r)}
    unmatched = [workload_hash(t.mod) for t in extract_tasks(load_model(models["tiny-cnn"]), parse_target(TARGET)) if status[t.name] == "unmatched"]
    # every kernel's default schedule is measured after the transfer (the matched one's too), so --tune-rest's
    # search starts from them and measures none again
    assert len(recorded & set(unmatched)) == len(unmatched) == 5 and report["measured_defaults"] >= 5  # (the dense layer's may be its transferred one)
    assert f"started from default schedules: {report['measured_defaults']} kernels" in result.err and report["tune_rest"]["measured_defaults"] == 0
    package = tmp_path / "cnn.tar"
    assert tvmc("compile", models["tiny-cnn"], "--tuning-records", output, "--target", TARGET, "-o", package).code == 0
    assert tvmc("run", package, "--verify", models["tiny-cnn"]).code == 0
    # --time-limit covers --tune-rest too: past it, a rerun with many more trials starts none (it used to run them all)
    late = tvmc("transfer", models["tiny-cnn"], "--from", mlp_records, "-o", output, "--tune-rest", "1000", "--population", "16",
                "--target", TARGET, *MEASURE, FROM_ONLY, "--time-limit", "0.001", "--report", tmp_path / "late.json")
    assert late.code == 0, late.err
    assert "--tune-rest not run: out of time (--time-limit)" in late.err and "tune_rest" not in json.load(open(tmp_path / "late.json"))


def test_transfer_api_is_exported_without_importing_tvm():
    code = (
        "import sys, tvmc_transfer as t\n"
        "print(t.transfer_tune.__module__, t.TransferOptions().sources, t.Plan().phases, t.TransferReport.__name__)\n"
        "print('TVM_IMPORTED' if 'tvm' in sys.modules else 'NO_TVM')"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120).stdout
    assert out.split() == ["tvmc_transfer.transfer.run", "all", "[]", "TransferReport", "NO_TVM"]


def test_droplet_refines_the_transferred_schedules(tuned_cnn, models, tvmc, tmp_path):
    """``--droplet``: after the transfer, droplet search walks on from each kernel's transferred schedule, in
    the same output folder, and the report says what it gained."""
    _, records = tuned_cnn
    output, report_path = tmp_path / "records", tmp_path / "report.json"
    argv = [
        "transfer", models["tiny-cnn-b"], "--from", records, "-o", output, "--droplet", "--droplet-trials", "4",
        "--no-e2e", "--report", report_path, "--target", TARGET, *MEASURE, FROM_ONLY,
    ]
    result = tvmc(*argv)
    assert result.code == 0, result.err
    report = json.load(open(report_path))
    (droplet,) = report["phases"]
    kernels = {k["index"]: k for k in report["kernels"]}
    # droplet walked every kernel transfer left a record for, within its budget, moving only on a passed test
    assert droplet["phase"] == "droplet" and droplet["measured"] > 0
    assert {t["index"] for t in droplet["tasks"]} == {i for i, k in kernels.items() if k["status"] != "unmatched"}
    tasks = extract_tasks(load_model(models["tiny-cnn-b"]), parse_target(TARGET))
    database = open_database(str(output))
    for t in droplet["tasks"]:  # (start: the transferred schedule, re-measured beside droplet's first batch)
        decisions = max(len(r.trace.decisions) for r in records_of(database, tasks[t["index"]].mod))
        # a schedule without sampled decisions (a reshape's default: parallel and vectorize only) has no neighbour
        assert (1 <= t["trials"] <= 4 if decisions else t["trials"] == 0) and t["start_seconds"] > 0 and t["final_seconds"] > 0
        # Start and final are two re-measurements (the final one did not select the last move), so noise may
        # put the final above the start: what is guaranteed is that each move passed its Holm-corrected test,
        assert len(t["move_gains"]) == t["moves"]
        assert (t["moves"] > 0 and t["p_value"] < 0.05) or (t["moves"] == 0 and t["final_seconds"] == t["start_seconds"])
        # and that both are records of the output, so what compiling applies (its best record) is no slower.
        assert kernels[t["index"]]["final_seconds"] <= min(t["start_seconds"], t["final_seconds"]) * (1 + 1e-6)
    assert any(k["status"] == "transferred" for k in kernels.values())
    assert any(t["trials"] >= 1 for t in droplet["tasks"])
    # its records follow transfer's in the output (one per correct candidate, plus the unscheduled kernel where
    # it won, plus each kernel's default schedule), and all are for tiny-cnn-b's kernels
    by_transfer = sum(k["valid"] + (k["status"] == "default") for k in kernels.values()) + report["measured_defaults"]
    assert len(record_lines(output)) == by_transfer + droplet["measured"]
    workloads = {workload_hash(t.mod) for t in extract_tasks(load_model(models["tiny-cnn-b"]), parse_target(TARGET))}
    assert {workload_hash(r.workload.mod) for r in open_database(str(output)).get_all_tuning_records()} <= workloads
    # the gain, per kernel (the best time in the output now) and in total, in the JSON and the printed report
    for k in kernels.values():
        if k["status"] == "unmatched":
            assert k["final_seconds"] is None
        else:
            assert k["final_seconds"] <= min(k["seconds"], k["default_seconds"]) * (1 + 1e-6)
    totals = report["totals"]
    assert 0 < totals["weighted_final_seconds"] <= totals["weighted_result_seconds"] * (1 + 1e-6)
    assert "droplet search (p < 0.05):" in result.out and f"; {droplet['measured']} new trials in" in result.out
    assert "matched kernels after the phases above" in result.out
    # a rerun measures nothing: transfer's journal and droplet's pinned starts replay from the records
    lines = record_lines(output)
    again = tvmc(*argv)
    assert again.code == 0 and "; 0 new trials in" in again.out and record_lines(output) == lines, again.err
    # and the result computes what ONNX Runtime computes
    package = tmp_path / "b.tar"
    assert tvmc("compile", models["tiny-cnn-b"], "--tuning-records", output, "--target", TARGET, "-o", package).code == 0
    run = tvmc("run", package, "--verify", models["tiny-cnn-b"])
    assert run.code == 0 and ": ok" in run.out, run.out + run.err


def test_time_limit_covers_the_droplet_phase_and_a_rerun_goes_on(tuned_cnn, models, tvmc, tmp_path):
    """``--time-limit`` counts droplet's batches too: past it a ``--droplet`` run starts none (the report says
    the time limit stopped it, and nothing is half-written), and the same command without the limit goes on."""
    _, records = tuned_cnn
    output, report_path = tmp_path / "records", tmp_path / "report.json"
    argv = ["transfer", models["tiny-cnn-b"], "--from", records, "-o", output, "--no-e2e", "--target", TARGET, *MEASURE, FROM_ONLY]
    assert tvmc(*argv).code == 0
    lines = record_lines(output)
    droplet = ["--droplet", "--droplet-trials", "4", "--report", report_path]
    late = tvmc(*argv, *droplet, "--time-limit", "0.001")
    assert late.code == 0, late.err
    (phase,) = json.load(open(report_path))["phases"]
    assert phase["out_of_time"] and phase["measured"] == 0 and record_lines(output) == lines
    assert "the time limit stopped it" in late.out and "time limit" in late.out.split("droplet search (p < 0.05):")[1]
    more = tvmc(*argv, *droplet)
    assert more.code == 0, more.err
    (phase,) = json.load(open(report_path))["phases"]
    assert not phase["out_of_time"] and phase["measured"] > 0 and len(record_lines(output)) == len(lines) + phase["measured"]


def test_time_limit_stops_between_kernels_and_writes_nothing_partial(tuned_cnn, models, tvmc, tmp_path):
    _, records = tuned_cnn
    output = tmp_path / "records"
    result = tvmc("transfer", models["tiny-cnn-b"], "--from", records, "-o", output, "--time-limit", "0.001", "--target", TARGET, *MEASURE, FROM_ONLY)
    assert result.code == 0 and "stopped by the time limit" in result.out
    assert not os.path.exists(output / TUNING_RECORDS) or record_lines(str(output)) == []


def test_wrong_results_are_counted_and_dropped(tuned_cnn, models):
    """A candidate whose numbers differ from the unscheduled kernel's is never measured or recorded."""
    from tvmc_transfer.records.sources import read_source
    from tvmc_transfer.transfer import KernelTransfer, TransferOptions
    from tvmc_transfer.kernels.check import KernelCheck
    from tvmc_transfer.transfer.kernel import replay_all
    from tvmc_transfer.records.sources import candidates_for
    from tvmc_transfer.kernels.classes import iter_extents
    from tvmc_transfer.build.intrinsics import load_tensor_intrinsics

    target = parse_target(TARGET)
    load_tensor_intrinsics(target)
    task = next(t for t in extract_tasks(load_model(models["tiny-cnn-b"]), target) if "conv2d1" in t.name)
    klass = kernel_class(task.mod)
    candidates = candidates_for(klass, iter_extents(task.mod), [read_source(tuned_cnn[1], target)], TransferOptions(max_candidates=2))
    assert candidates
    check = KernelCheck(task.mod, target, rtol=1e-3)
    row = KernelTransfer.of(task, str(klass), "failed")
    valid, counted = replay_all(task, klass, candidates, target, check, row)
    assert valid and counted.wrong == 0 and all(check.error(sch.mod) < 1e-5 for sch, _ in valid)
    check.reference = [r + 1.0 if r.shape == check.reference[-1].shape else r for r in check.reference]  # a wrong reference
    valid, counted = replay_all(task, klass, candidates, target, check, row)
    assert not valid and counted.wrong == counted.candidates - counted.invalid > 0


def test_user_mistakes_are_one_line_errors(tuned_cnn, other_target_records, models, tvmc, tmp_path):
    _, records = tuned_cnn
    corrupt = tmp_path / "corrupt"
    corrupt.mkdir()
    (corrupt / "database_workload.json").write_text("[[[broken\n")
    (corrupt / "database_tuning_record.json").write_text("x\n")
    cases = [
        (["--from", tmp_path / "none", "-o", tmp_path / "o1"], "holds no tuning records"),
        (["--from", corrupt, "-o", tmp_path / "o2"], "corrupt"),
        (["--from", records, "-o", records], "also a source"),
        (["--from", records, "-o", tmp_path / "o3", "--max-candidates", "-2"], "--max-candidates must be at least 1"),
        (["--from", records, "-o", tmp_path / "o4", "--sources", "best"], "invalid choice"),
        (["--from", records, "-o", tmp_path / "o4", "--measure-top", "-3"], "--measure-top must be at least 1 (or 'all' for no limit)"),
        (["--from", records, "-o", tmp_path / "o4", "--measure-top", "best"], "give a number of candidates or 'all', not 'best'"),
        (["--from", records, "-o", tmp_path / "missing" / "o5"], "does not exist"),
        (["-o", tmp_path / "o6", "--no-library"], "--no-library leaves nothing to transfer from: give records folders with --from RECORDS"),
        (["--from", records, "-o", tmp_path / "o7", "--droplet-trials", "4"], "--droplet-trials needs --droplet"),
        (["--from", records, "-o", tmp_path / "o8", "--droplet", "--repeat", "1"], "use --repeat 2 or more"),
        (["--from", other_target_records, "-o", tmp_path / "o9"], "they are for llvm -mcpu=skylake; pass --target 'llvm -mcpu=skylake'"),
    ]
    for args, message in cases:
        result = tvmc("transfer", models["tiny-cnn-b"], *args, "--target", TARGET)
        usage = message == "invalid choice" or message.startswith("give a number")  # argparse's own checks exit 2
        assert result.code == (2 if usage else 4) and message in result.err and result.err.count("\n") == 1, (args, result.err)
    assert not any((tmp_path / f"o{i}").exists() for i in range(1, 10))  # nothing written by a failed command


def test_a_source_read_for_its_best_records_holds_what_the_whole_database_gives(tuned_cnn):
    """``read_source(..., keep=k)`` reads the records file as JSON and builds only each workload's k fastest
    records: the same workloads, classes, counts and best records as MetaSchedule's database read whole."""
    from tvmc_transfer.records.database import mean_seconds
    from tvmc_transfer.records.listing import workload_hash
    from tvmc_transfer.records.sources import read_source

    target = parse_target(TARGET)
    whole, best = read_source(tuned_cnn[1], target), read_source(tuned_cnn[1], target, keep=2)
    assert (whole.other_target, whole.unmeasured) == (best.other_target, best.unmeasured)
    by_hash = {workload_hash(w.mod): w for w in whole.workloads}
    assert len(best.workloads) == len(by_hash) >= 3
    for workload in best.workloads:
        same = by_hash[workload_hash(workload.mod)]
        assert workload.kernel_class == same.kernel_class and 1 <= len(workload.records) <= 2
        assert [mean_seconds(r) for r in workload.records] == [mean_seconds(r) for r in same.records[:2]]
        assert str(workload.records[0].trace) == str(same.records[0].trace)
    other = parse_target("llvm -mcpu=skylake -num-cores=2")  # another processor: every record counted as other
    assert read_source(tuned_cnn[1], other, keep=1).other_target == len(open_database(tuned_cnn[1]).get_all_tuning_records())


def test_a_kernel_past_the_time_limit_measures_only_its_first_batch(tuned_cnn, models, tmp_path):
    """``--time-limit`` also stops a kernel between batches: past it, only the first (best ranked) batch is
    measured, even when that batch beat the unscheduled kernel (which, without a limit, measures the next)."""
    import time

    from tvmc_transfer.build.intrinsics import load_tensor_intrinsics
    from tvmc_transfer.tune.measure import MeasureOptions
    from tvmc_transfer.records.folder import RecordsFolder
    from tvmc_transfer.transfer import TransferOptions
    from tvmc_transfer.kernels.classes import iter_extents
    from tvmc_transfer.transfer.kernel import transfer_kernel
    from tvmc_transfer.records.sources import candidates_for, read_source

    target = parse_target(TARGET)
    load_tensor_intrinsics(target)
    task = next(t for t in extract_tasks(load_model(models["tiny-cnn-b"]), target) if "conv2d1" in t.name)
    klass = kernel_class(task.mod)
    options = TransferOptions(max_candidates=None, measure_top=2, measure=MeasureOptions(number=2, min_repeat_ms=5))
    candidates = candidates_for(klass, iter_extents(task.mod), [read_source(tuned_cnn[1], target)], options)
    builder, runner = options.measure.make_builder(target), options.measure.make_runner()
    try:
        folder = RecordsFolder(str(tmp_path / "records"), create=True)
        row = transfer_kernel(task, klass, candidates, target, folder, builder, runner, options, deadline=time.monotonic() - 1)
    finally:
        builder.shutdown()
    assert row.ranked > 4 and row.measured == 2 and row.valid == 2 and row.status in ("transferred", "default"), row


def _doubling_its_weights(mod):
    """``mod`` with its first layout-rewrite block writing twice the weight: not a plain relayout any more."""
    import tvm

    lines = mod.script().split("\n")
    block = next(n for n, line in enumerate(lines) if "layout_rewrite_preproc" in line)
    lines[block + 1] += " * T.float32(2)"
    return tvm.script.from_source("\n".join(lines))


def test_a_wrong_candidate_is_refused_after_its_build_and_never_run(tuned_cnn, models):
    """A candidate is checked on the library its build made, its random weights packed in NumPy as its schedule's
    layout-rewrite blocks say; one found wrong is not run (no measurement, no record). A rewrite that is not a
    plain relayout has no packing: such a candidate is checked by compiling it here."""
    from tvmc_transfer.build.intrinsics import load_tensor_intrinsics
    from tvmc_transfer.tune.measure import MeasureOptions
    from tvmc_transfer.transfer import TransferOptions
    from tvmc_transfer.kernels.check import KernelCheck, weight_packing
    from tvmc_transfer.kernels.classes import iter_extents
    from tvmc_transfer.kernels.replay import replay_candidates
    from tvmc_transfer.transfer.kernel import WRONG, _measure
    from tvmc_transfer.records.sources import candidates_for, read_source

    target = parse_target(TARGET)
    load_tensor_intrinsics(target)
    task = next(t for t in extract_tasks(load_model(models["tiny-cnn-b"]), target) if "conv2d1" in t.name)
    klass = kernel_class(task.mod)
    candidates = candidates_for(klass, iter_extents(task.mod), [read_source(tuned_cnn[1], target)], TransferOptions(max_candidates=2))
    batch = replay_candidates(task, klass, candidates, target)[0][:3]
    check = KernelCheck(task.mod, target, rtol=1e-3)
    packings = [weight_packing(sch.mod) for sch, _ in batch]
    assert all(packings), "prepacked kernels: every candidate's library takes packed weights"
    doubled = _doubling_its_weights(batch[0][0].mod)
    assert weight_packing(doubled) is None
    measure = MeasureOptions(number=2, min_repeat_ms=5)
    builder, runner = measure.make_builder(target), measure.make_runner()
    try:
        (built,) = builder.build([ms.builder.BuilderInput(batch[0][0].mod, target)])
        library = check.library_error(built.artifact_path, packings[0])
        compiled = check.error(batch[0][0].mod)
        unpacked = check.library_error(built.artifact_path, {})  # the weights as the model has them: refused
        misplaced = {i: (lambda w, pack=pack: np.roll(pack(w), 1)) for i, pack in packings[0].items()}
        right = _measure(batch, check, builder, runner, target)
        doubled_error = check.error(doubled)  # TVM's builders refuse such a rewrite block; a compile here checks it
        rolled = check.library_error(built.artifact_path, misplaced)
        check.reference = [r + 1.0 for r in check.reference]  # now every candidate computes "wrong" numbers
        wrong = _measure(batch, check, builder, runner, target)
    finally:
        builder.shutdown()
    assert library < 1e-5 and abs(library - compiled) < 1e-7, (library, compiled)
    assert unpacked > 1e-3 and rolled > 1e-3
    assert doubled_error > 1e-3
    assert len(batch) >= 2 and len(right) == len(wrong) == len(batch)
    assert all(secs not in (None, WRONG) for secs, _ in right)
    assert all(secs == WRONG for secs, _ in wrong)


def test_the_unscheduled_kernel_is_measured_only_when_it_could_win(tuned_cnn, models):
    """Beside a transferred schedule twice as fast or more, an unscheduled kernel whose one run in the check took
    10 ms or more keeps that run as its time (measuring it again cannot change the outcome); a faster one, or one
    near the best schedule, is measured with the protocol, and recorded when it wins."""
    from tvmc_transfer.build.intrinsics import load_tensor_intrinsics
    from tvmc_transfer.tune.measure import MeasureOptions
    from tvmc_transfer.kernels.check import KernelCheck
    from tvmc_transfer.transfer.kernel import ROUGH_DEFAULT, _default_time

    target = parse_target(TARGET)
    load_tensor_intrinsics(target)
    task = next(t for t in extract_tasks(load_model(models["tiny-cnn-b"]), target) if "conv2d1" in t.name)
    check = KernelCheck(task.mod, target, rtol=1e-3)
    assert 0 < check.seconds < ROUGH_DEFAULT  # a tiny kernel: its one run says little
    measure = MeasureOptions(number=2, min_repeat_ms=5)
    builder, runner = measure.make_builder(target), measure.make_runner()
    try:
        measured, args = _default_time(task, check, 1e-9, builder, runner, target)
        assert len(measured) >= 2 and args is not None  # measured: its one run was too short to tell
        check.seconds = 0.05  # as an unscheduled ResNet-50 convolution's run
        assert _default_time(task, check, 0.001, builder, runner, target) == ([0.05], None)  # 50x the best: kept
        secs, args = _default_time(task, check, 0.03, builder, runner, target)  # within 2x of the best: measured
        assert args is not None and secs != [0.05]
        secs, args = _default_time(task, check, None, builder, runner, target)  # nothing ran: measured
        assert args is not None
    finally:
        builder.shutdown()


def test_a_kernel_with_fewer_candidates_than_a_batch_takes_the_next_records_of_its_source_workloads(tuned_cnn, models):
    """One record per source workload can leave a kernel a single candidate (a model's one classifier matmul):
    the next best records of each workload are added, fastest first, until the first batch is full."""
    from tvmc_transfer.transfer import TransferOptions
    from tvmc_transfer.kernels.classes import iter_extents
    from tvmc_transfer.records.sources import candidates_for, read_source

    target = parse_target(TARGET)
    source = read_source(tuned_cnn[1], target)
    task = next(t for t in extract_tasks(load_model(models["tiny-cnn-b"]), target) if "conv2d1" in t.name)
    klass, extents = kernel_class(task.mod), iter_extents(task.mod)
    held = [w for w in source.workloads if w.kernel_class == klass]
    total = sum(len(w.records) for w in held)
    assert held and total > len(held), "the source should hold more than one record per workload of the class"
    one = candidates_for(klass, extents, [source], TransferOptions(max_candidates=1, measure_top=None))
    assert len(one) == len(held)
    filled = candidates_for(klass, extents, [source], TransferOptions(max_candidates=1, measure_top=total))
    assert len(filled) == total  # every record, since the batch asks for as many
    some = candidates_for(klass, extents, [source], TransferOptions(max_candidates=1, measure_top=len(held) + 1))
    depth = max(sum(c.workload is w for c in some) for w in held)
    assert depth == 2 and len(some) >= len(held) + 1
    for w in held:  # each workload gives its fastest records, in order
        assert [c.record for c in some if c.workload is w] == list(w.records[: min(depth, len(w.records))])
