"""Weight prepacking: on by default for CPU targets, folded into the package, and records matched only under the
lowering they were tuned under (with a message naming the flag that matches them)."""

import os
import tarfile

import numpy as np
import pytest
import tvm
from tvm import relax
from tvm.s_tir import meta_schedule as ms
from tvm_ffi import structural_hash

from conftest import FAST_TUNE, assert_matches_onnxruntime, run_cli
from tvmc_transfer import compile_model, load_model, parse_target
from tvmc_transfer.compiler import _records_for
from tvmc_transfer.build.lowering import Lowering, apply_records
from tvmc_transfer.build.tasks import extract_tasks

TARGET = ["--target", "llvm -num-cores=2"]


def run_plain_tvm(package, inputs):
    """Load the package's library with plain TVM (no tvmc_transfer) and call main(inputs) only."""
    folder = os.path.dirname(package)
    with tarfile.open(package) as tar:
        tar.extract("mod.so", folder, filter="data")
    vm = relax.VirtualMachine(tvm.runtime.load_module(os.path.join(folder, "mod.so")), tvm.cpu())
    result = vm["main"](*[tvm.runtime.tensor(v) for v in inputs.values()])
    return [result.numpy()]


def cnn_input(seed=0):
    return {"input": np.random.default_rng(seed).standard_normal((1, 3, 16, 16)).astype("float32")}


def test_prepacking_is_the_cpu_default_and_changes_the_workloads(models):
    model, target = load_model(models["tiny-cnn"]), parse_target("llvm -num-cores=2")
    assert Lowering().prepacks(target) and not Lowering(weight_prepack=False).prepacks(target)
    packed, plain = extract_tasks(model, target), extract_tasks(model, target, Lowering(weight_prepack=False))
    conv = next(t for t in packed if t.name.startswith("fused_conv2d_add_relu"))
    assert len(conv.mod["main"].attrs["layout_free_buffers"]) == 2  # the weight and the bias
    assert not {structural_hash(t.mod) for t in packed} & {structural_hash(t.mod) for t in plain}


def test_prepacked_package_folds_its_weights_matches_onnxruntime_and_loads_with_plain_tvm(tuned_cnn, tvmc, tmp_path):
    model_path, records = tuned_cnn  # tuned with the default lowering: prepacked
    package = str(tmp_path / "packed.tar")
    result = tvmc("compile", model_path, "-o", package, "--tuning-records", records, *TARGET)
    assert result.code == 0, result.err
    assert "kernels tuned" in result.out and "another lowering" not in result.err
    inputs = cnn_input()
    assert_matches_onnxruntime(model_path, inputs, run_plain_tvm(package, inputs))
    # The build's Relax module: tuned kernels take weights already rewritten, folded into constants at compile
    # time; no layout rewrite is left to run at inference.
    target = parse_target("llvm -num-cores=2")
    database, _ = _records_for(records, target)
    main = apply_records(database, load_model(model_path).mod, target, Lowering())["main"]
    assert len(main.params) == 1  # main(inputs): the weights are not parameters
    assert "_prepacked" in main.script() and "_weight_prepack" not in main.script()
    plain = apply_records(database, load_model(model_path).mod, target, Lowering(weight_prepack=False))["main"]
    assert "_prepacked" not in plain.script()


def test_weight_layouts_are_folded_in_numpy_as_tvm_folds_them(tuned_cnn):
    """The build's weight rewrites (split out of the tuned kernels) are computed in NumPy, not compiled: every
    call is gone before FoldConstant runs, and the packed weights are exactly those TVM's FoldConstant makes."""
    from tvmc_transfer.build.lowering import fuse
    from tvmc_transfer.kernels.weight_layouts import fold_weight_layouts

    model_path, records = tuned_cnn
    target = parse_target("llvm -num-cores=2")
    database, _ = _records_for(records, target)
    with target, database, tvm.transform.PassContext(opt_level=3):
        split = relax.transform.SplitLayoutRewritePreproc()(relax.transform.MetaScheduleApplyDatabase()(fuse(load_model(model_path).mod, target)))
        ours, theirs = fold_weight_layouts()(split), relax.transform.FoldConstant()(split)
    assert "_weight_prepack" in split["main"].script() and "_weight_prepack" not in ours["main"].script()
    assert _prepacked_constants(ours) and len(_prepacked_constants(ours)) == len(_prepacked_constants(theirs))
    for mine, tvms in zip(_prepacked_constants(ours), _prepacked_constants(theirs)):
        assert mine.shape == tvms.shape and np.array_equal(mine, tvms)


def _prepacked_constants(mod) -> list:
    """The constants the prepacked kernels take, in call order."""
    found = []

    def visit(expr):
        if isinstance(expr, relax.Call) and isinstance(expr.op, tvm.ir.Op) and expr.op.name == "relax.call_tir" and "_prepacked" in expr.args[0].name_hint:
            found.extend(a.value.numpy() for a in expr.args[1].fields if isinstance(a, tvm.ir.Constant))

    relax.analysis.post_order_visit(relax.transform.CanonicalizeBindings()(mod)["main"], visit)
    return found


def test_records_of_another_lowering_are_counted_and_the_matching_flag_named(tuned_cnn, models, tvmc, tmp_path):
    model_path, records = tuned_cnn  # tuned with prepacking
    result = run_cli("compile", model_path, "-o", tmp_path / "plain.tar", "--tuning-records", records, "--no-weight-prepack", *TARGET)
    assert result.code == 0 and "(0 of 6 kernels tuned)" in result.out
    matching = compile_model(load_model(model_path), parse_target("llvm -num-cores=2"), str(tmp_path / "packed.tar"), records=records).tuned_kernels
    assert "match 0 of the model's 6 kernels" in result.err and f"compile with --weight-prepack and they match {matching} kernels" in result.err
    assert matching >= 3
    # tuned without prepacking: compiled the same way they all match, compiled by default they do not
    plain = str(tmp_path / "plain-records")
    assert tvmc("tune", models["tiny-mlp"], "-o", plain, "--trials", "8", "--no-weight-prepack", *FAST_TUNE).code == 0
    model, target = load_model(models["tiny-mlp"]), parse_target("llvm -num-cores=2")
    same = compile_model(model, target, str(tmp_path / "mlp.tar"), records=plain, lowering=Lowering(weight_prepack=False))
    assert same.tuned_kernels >= 1 and same.hint is None
    default = compile_model(model, target, str(tmp_path / "mlp2.tar"), records=plain)
    assert default.tuned_kernels == 0
    assert default.hint == f"the records were tuned under another lowering: compile with --no-weight-prepack and they match {same.tuned_kernels} kernels"
    inputs = {"input": np.random.default_rng(1).standard_normal((1, 64)).astype("float32")}
    assert_matches_onnxruntime(models["tiny-mlp"], inputs, run_plain_tvm(str(tmp_path / "mlp.tar"), inputs))


def test_records_of_another_layout_name_the_desired_layout_that_matches_them(models, tvmc, tmp_path):
    """A kernel's workload includes its layout: records tuned with ``--desired-layout NHWC`` match a compile with
    it, and a compile without it says so instead of leaving the user with a silently untuned package."""
    records = str(tmp_path / "nhwc-records")
    assert tvmc("tune", models["tiny-cnn"], "-o", records, "--trials", "8", "--desired-layout", "NHWC", *FAST_TUNE).code == 0
    model, target = load_model(models["tiny-cnn"]), parse_target("llvm -num-cores=2")
    same = compile_model(model, target, str(tmp_path / "nhwc.tar"), records=records, lowering=Lowering(layout="NHWC"))
    assert same.tuned_kernels >= 1 and same.hint is None
    result = run_cli("compile", models["tiny-cnn"], "-o", tmp_path / "nchw.tar", "--tuning-records", records, *TARGET)
    assert result.code == 0 and "kernels tuned)" in result.out
    assert f"compile with --desired-layout NHWC and they match {same.tuned_kernels} kernels" in result.err
    # both differ: the hint names both flags
    plain = run_cli("compile", models["tiny-cnn"], "-o", tmp_path / "plain.tar", "--tuning-records", records, "--no-weight-prepack", *TARGET)
    assert f"compile with --weight-prepack --desired-layout NHWC and they match {same.tuned_kernels} kernels" in plain.err
    inputs = {"input": np.random.default_rng(2).standard_normal((1, 3, 16, 16)).astype("float32")}
    assert_matches_onnxruntime(models["tiny-cnn"], inputs, run_plain_tvm(str(tmp_path / "nhwc.tar"), inputs))


@pytest.mark.parametrize(
    "target, layout",
    [
        ("llvm -mcpu=skylake-avx512 -num-cores=2", "NHWC"),  # AVX-512: NHWC, measured 2.1x better (BENCHMARKS)
        ("llvm -mcpu=znver4", "NHWC"),
        ("llvm -mcpu=znver3", "NHWC"),  # AVX2: measured better too
        ("llvm -mcpu=skylake-avx512 -mattr=-avx512f", "NHWC"),  # AVX-512 off, AVX2 left
        ("llvm -mcpu=sandybridge", None),  # AVX without AVX2: the model's own layout where not measured
        ("llvm -num-cores=2", None),  # generic x86-64: what the tests compile for
        ("llvm -mtriple=aarch64-linux-gnu -mcpu=neoverse-n1", None),
        ("cuda", None),
    ],
)
def test_the_default_layout_is_nhwc_on_avx2_and_avx512_cpus(target, layout, models):
    assert Lowering().layout_for(parse_target(target)) == layout
    assert Lowering(layout="NCHW").layout_for(parse_target(target)) == "NCHW"
    if layout:  # the default converts the convolutions; the kernels are those of --desired-layout NHWC
        model = load_model(models["tiny-cnn"])
        default, nhwc = (extract_tasks(model, parse_target(target), lowering) for lowering in (Lowering(), Lowering(layout="NHWC")))
        assert [structural_hash(t.mod) for t in default] == [structural_hash(t.mod) for t in nhwc]
        nchw = extract_tasks(model, parse_target(target), Lowering(layout="NCHW"))
        assert {structural_hash(t.mod) for t in default} != {structural_hash(t.mod) for t in nchw}


def test_a_layout_rewrite_read_back_from_the_database_is_known_to_resume(models, tmp_path):
    """The JSON database stores the rewrite's bool annotation as an integer, so the scheduled module read back
    hashes differently from the search's own; ``stored_hash`` keys both the way the database gives them back."""
    from tvmc_transfer.build.intrinsics import load_tensor_intrinsics
    from tvmc_transfer.records import open_database
    from tvmc_transfer.tune.search import measured_hashes, stored_hash

    target = parse_target("llvm -num-cores=2")
    load_tensor_intrinsics(target)
    task = next(t for t in extract_tasks(load_model(models["tiny-cnn"]), target) if t.name.startswith("fused_conv2d_add_relu"))
    context = ms.TuneContext(mod=task.mod, target=target, space_generator="post-order-apply", task_name=task.name, num_threads=1)
    candidates = []
    for space in context.space_generator.generate_design_space(task.mod):
        sch = space.copy()
        sch.enter_postproc()
        if all(p.apply(sch) for p in context.space_generator.postprocs):
            candidates.append(ms.MeasureCandidate(sch, ms.arg_info.ArgInfo.from_entry_func(sch.mod, remove_preproc=True)))
    assert candidates and any("layout_rewrite_preproc" in c.sch.mod.script() for c in candidates)
    folder = str(tmp_path / "records")
    database = open_database(folder, create=True)
    workload = database.commit_workload(task.mod)
    for c in candidates:
        database.commit_tuning_record(ms.database.TuningRecord(c.sch.trace, workload, [1e-5], target, c.args_info))
    stored = measured_hashes(open_database(folder), task.mod)  # read back from the files, as a resumed run does
    assert {stored_hash(c.sch.mod) for c in candidates} <= stored
    assert not {structural_hash(c.sch.mod) for c in candidates} & stored  # the bug: the search's own hashes


@pytest.mark.parametrize("flag", ["--weight-prepack", "--no-weight-prepack"])
def test_task_list_follows_the_lowering(models, tvmc, flag):
    listed = tvmc("tune", models["tiny-cnn"], "--tasks", "list", flag, *TARGET)
    assert listed.code == 0 and len(listed.out.splitlines()) == 7


def test_clamps_keep_the_nhwc_layout_and_fuse_into_their_convolutions(tmp_path):
    """ONNX's Clip (ReLU6) and HardSwish reach Relax in forms ``ConvertLayout`` cannot see through; rewritten as
    ``R.maximum``/``R.minimum`` they take the new layout and fuse into the convolution before them, instead of
    each becoming a kernel of its own between two transposes. The numbers stay ONNX Runtime's."""
    from tvmc_transfer.frontends.onnx_graph import Graph

    g = Graph(3)
    x = g.relu6(g.batch_norm(g.conv("input", "stem", 3, 8, 3, pad=1, bias=False), "stem.bn", 8))
    x = g.relu6(g.batch_norm(g.conv(x, "dw", 8, 8, 3, pad=1, bias=False, group=8), "dw.bn", 8))
    x = g.hard_swish(g.batch_norm(g.conv(x, "pw", 8, 16, 1, bias=False), "pw.bn", 16))
    g.linear(g.global_avg_pool_flatten(x, "pool"), "fc", 16, 4, output="output")
    path = str(tmp_path / "clamps.onnx")
    with open(path, "wb") as f:
        f.write(g.to_model("clamps", "ReLU6 and hard-swish after convolutions", (1, 3, 16, 16), (1, 4), False).SerializeToString())
    model, target = load_model(path), parse_target("llvm -num-cores=2")
    names = [t.name for t in extract_tasks(model, target, Lowering(layout="NHWC"))]
    convolutions = [n for n in names if "conv2d" in n]
    assert len(convolutions) == 3 and all("maximum" in n and "minimum" in n for n in convolutions), names
    assert not any(("maximum" in n or "clip" in n) and "conv2d" not in n for n in names), names
    assert sum("transpose" in n for n in names) <= 2, names  # the input's, and the one before the classifier
    compile_model(model, target, str(tmp_path / "nhwc.tar"), lowering=Lowering(layout="NHWC"))
    inputs = {"input": np.random.default_rng(4).standard_normal((1, 3, 16, 16)).astype("float32") * 4}
    assert_matches_onnxruntime(path, inputs, run_plain_tvm(str(tmp_path / "nhwc.tar"), inputs))
