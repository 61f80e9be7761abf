"""``tvmc compile`` without tuning records: default schedules from the shipped library or the cost model."""

import os

import numpy as np
import pytest

from conftest import FAST_TUNE, assert_matches_onnxruntime
from tvmc_transfer import DefaultOptions, compile_model, load_model, parse_target
from tvmc_transfer.run.module import run_module
from tvmc_transfer.defaults.library import find_library, read_library, write_library

# A processor of the shipped library's family (AVX2+FMA); its code runs on any x86-64 with AVX2.
AVX2 = "llvm -mcpu=znver3 -num-cores=2"
# Generic x86-64: of the library's architecture, outside its family.
GENERIC = "llvm -num-cores=2"


def _outputs_match(model_path, package, shape, seed=3):
    x = np.random.default_rng(seed).standard_normal(shape).astype("float32")
    result = run_module(package, {"input": x})
    assert_matches_onnxruntime(model_path, {"input": x}, [result.outputs["output"]])


def test_library_schedules_transfer_to_a_model_of_other_shapes(models, tvmc, tmp_path):
    """tiny-cnn-b has no kernel of the library's shapes: its convolutions and dense layer take zoo schedules."""
    package = tmp_path / "b.tar"
    result = tvmc("compile", models["tiny-cnn-b"], "-o", package, "--target", AVX2)
    assert result.code == 0, result.err
    line = next(l for l in result.out.splitlines() if l.startswith("default schedules:"))
    assert "library (x86-64 AVX2+FMA" in line and "0 kernels had records" in line
    d = compile_model(load_model(models["tiny-cnn-b"]), parse_target(AVX2), str(tmp_path / "b2.tar")).defaults
    assert f"{d.count('library')} library" in line and d.count("library") + d.count("model") == len(d.kernels)
    # at other shapes the library's schedules are ranked with design-space samples by the cost model
    for k in d.kernels:
        assert k.kind == "library" or "from the library)" in k.source
    assert any(k.kind == "model" and not k.source.endswith("(0 from the library)") for k in d.kernels if k.kernel_class.startswith("conv2d"))
    # without samples, only the library's: the convolutions and the dense layer take zoo schedules
    only = compile_model(load_model(models["tiny-cnn-b"]), parse_target(AVX2), str(tmp_path / "b3.tar"), default_schedules=DefaultOptions(samples=0)).defaults
    kinds = {k.kernel_class.split(" ")[0]: k.kind for k in only.kernels}
    assert kinds["conv2d+bias+relu"] == "library" and kinds["matmul+bias"] == "library" and only.count("library") >= 3
    _outputs_match(models["tiny-cnn-b"], str(package), (1, 3, 24, 24))
    _outputs_match(models["tiny-cnn-b"], str(tmp_path / "b3.tar"), (1, 3, 24, 24))


def test_no_default_schedules_keeps_the_unscheduled_loops(models, tvmc, tmp_path):
    package = tmp_path / "plain.tar"
    result = tvmc("compile", models["tiny-cnn-b"], "-o", package, "--target", AVX2, "--no-default-schedules")
    assert result.code == 0, result.err
    assert "default schedules" not in result.out and "(0 of 7 kernels tuned)" in result.out  # NHWC: the input transposed too
    report = compile_model(load_model(models["tiny-cnn-b"]), parse_target(AVX2), str(tmp_path / "p2.tar"), default_schedules=False)
    assert report.defaults is None
    _outputs_match(models["tiny-cnn-b"], str(package), (1, 3, 24, 24))


def test_generic_x86_gets_the_library_outside_its_family(models, tmp_path):
    """Plain ``llvm`` (x86-64 without AVX2) is outside the library's family but of its architecture."""
    assert find_library(parse_target(GENERIC)) == (find_library(parse_target(AVX2))[0], False)
    package = str(tmp_path / "generic.tar")
    report = compile_model(load_model(models["tiny-resnet"]), parse_target(GENERIC), package, default_schedules=DefaultOptions(samples=0))
    assert "outside its family: the target lacks avx2, fma" in report.defaults.summary()
    assert [k.kind for k in report.defaults.kernels if k.kernel_class.startswith("conv2d")] == ["library"] * 2
    _outputs_match(models["tiny-resnet"], package, (1, 3, 16, 16))


def test_without_a_library_kernels_get_model_picked_schedules(models, tmp_path):
    """What a processor of an architecture no library is for gets: design-space samples ranked by the cost model."""
    package = str(tmp_path / "model.tar")
    report = compile_model(load_model(models["tiny-resnet"]), parse_target(AVX2), package, default_schedules=DefaultOptions(use_library=False))
    d = report.defaults
    assert "library left out" in d.summary() and d.count("library") == 0
    assert [k.kind for k in d.kernels if k.kernel_class.startswith("conv2d")] == ["model"] * 2
    assert d.count("model") + d.count("none") == report.kernels
    _outputs_match(models["tiny-resnet"], package, (1, 3, 16, 16))


def test_tuning_records_win_over_defaults(tuned_cnn, tmp_path):
    model_path, records = tuned_cnn
    package = str(tmp_path / "tuned.tar")
    report = compile_model(load_model(model_path), parse_target(FAST_TUNE[1]), package, records=records)
    d = report.defaults
    assert d.count("tuned") == report.tuned_kernels >= 1
    assert d.count("tuned") + d.count("library") + d.count("model") + d.count("none") == report.kernels
    _outputs_match(model_path, package, (1, 3, 16, 16))


def test_shipped_libraries_cover_avx2_and_avx512_processors_and_rebuild(tuned_cnn, tmp_path):
    shipped, in_family = find_library(parse_target(AVX2))
    assert in_family and os.path.basename(shipped) == "schedules-x86-avx2.json.xz"
    avx512, in_family = find_library(parse_target("llvm -mcpu=znver5"))
    assert in_family and os.path.basename(avx512) == "schedules-x86-avx512.json.xz"
    assert find_library(parse_target("llvm -mcpu=skylake-avx512")) == (avx512, True)  # Intel's AVX-512 too
    assert find_library(parse_target("llvm -mcpu=znver5 -mattr=-avx512f")) == (shipped, True)  # AVX-512 turned off
    assert find_library(parse_target("llvm -mtriple=aarch64-linux-gnu -mcpu=neoverse-n1")) == (None, False)
    library = read_library(shipped)
    assert library.tuned_on == "llvm -mcpu=znver3" and len(library.source.workloads) == 252  # the zoo in NCHW and (MobileNetV2 too) in NHWC
    wide = read_library(avx512)
    assert wide.tuned_on == "llvm -mcpu=znver4, llvm -mcpu=znver5" and {"avx512f", "avx512bw", "avx512dq", "avx512vl"} <= set(wide.requires)
    assert len(wide.source.workloads) == 179  # the zoo's four models in NHWC, the default layout there, and two in NCHW
    for lib in (library, wide):
        assert all(1 <= len(w.records) <= 3 for w in lib.source.workloads)
    assert os.path.getsize(shipped) < 2_000_000 and os.path.getsize(avx512) < 2_000_000
    # the builder: best 2 records per workload of a records folder, read back fastest first
    _, records = tuned_cnn
    path = str(tmp_path / "schedules-test.json.xz")
    header = write_library(path, [records], "test family", "x86_64", ["avx2"], "t1", top_k=2)
    rebuilt = read_library(path)
    assert rebuilt.family == "test family" and rebuilt.arch == "x86_64" and len(rebuilt.source.workloads) == header["workloads"] >= 1
    for workload in rebuilt.source.workloads:
        times = [float(np.mean([float(s) for s in r.run_secs])) for r in workload.records]
        assert 1 <= len(times) <= 2 and times == sorted(times)


@pytest.mark.parametrize("name", ["tiny-mlp"])
def test_defaults_match_onnxruntime_on_the_default_target(models, tvmc, tmp_path, name):
    """``tvmc compile model.onnx`` as a new user types it (target native); the package says which defaults it got."""
    from tvmc_transfer import __version__
    from tvmc_transfer.build.package import read_package

    package = tmp_path / "m.tar"
    result = tvmc("compile", models[name], "-o", package)
    assert result.code == 0, result.err
    assert "default schedules:" in result.out
    meta = read_package(str(package)).metadata
    counts = meta.default_schedules["counts"]
    assert sum(counts.values()) == meta.kernels and meta.tuned_kernels == 0 and meta.tvmc_transfer_version == __version__
    assert f"{counts['library']} library" in result.out and f"{counts['model']} model-picked" in result.out
    _outputs_match(models[name], str(package), (1, 64))


def test_library_applies_to_prepacked_kernels(models):
    """With weight prepacking (layout-free weights, TVM's CPU recipe) the kernels are other workloads than the
    library's, of the same classes: its schedules still replay, check out and gain a weight layout rewrite."""
    import tvm
    from tvm import relax
    from tvm.s_tir import meta_schedule as ms

    from tvmc_transfer.defaults.schedules import add_default_schedules
    from tvmc_transfer.build.tasks import Task, fusion_passes

    target = parse_target(AVX2)
    with target:
        fused = tvm.transform.Sequential([*fusion_passes(target), relax.transform.AttachAttrLayoutFreeBuffers()])(load_model(models["tiny-cnn-b"]).mod)
    tasks = [Task(i, t.task_name, int(t.weight), 0.0, t) for i, t in enumerate(ms.relax_integration.extract_tasks(fused, target))]
    database = ms.database.MemoryDatabase()
    report = add_default_schedules(tasks, target, database, DefaultOptions(samples=0))  # the library's only
    assert report.count("library") == len(tasks) == 7  # NHWC: the input transposed too
    convolutions = [t for t in tasks if "conv2d" in t.name]
    for task in convolutions:
        (record,) = database.get_top_k(database.commit_workload(task.mod), 1)
        assert "transform_layout" in str(record.trace)  # the weight is rewritten to the schedule's layout
    with target, database:
        packed = relax.transform.MetaScheduleApplyDatabase(enable_warning=False)(fused)
    packed = relax.transform.SplitLayoutRewritePreproc()(packed)
    assert sum(1 for gv in packed.functions if gv.name_hint.endswith("_weight_prepack")) == len(convolutions) + 1  # + dense


def test_native_compile_takes_the_layout_and_library_of_this_cpu(models, tmp_path):
    """``tvmc compile`` as a new user runs it, on the machine the tests run on: on an x86 CPU with AVX2 or AVX-512
    the convolutions are converted to NHWC and take the NHWC schedules of the library of the family the CPU has
    the features of; elsewhere they keep NCHW. Either way the package matches ONNX Runtime."""
    from tvm_ffi import structural_hash

    from tvmc_transfer.build.lowering import Lowering
    from tvmc_transfer.target import target_features
    from tvmc_transfer.build.tasks import extract_tasks

    target, model = parse_target("native"), load_model(models["tiny-resnet"])
    wide = "avx2" in target_features(target)
    layout = "NHWC" if wide else "NCHW"
    assert [structural_hash(t.mod) for t in extract_tasks(model, target)] == [structural_hash(t.mod) for t in extract_tasks(model, target, Lowering(layout=layout))]
    package = str(tmp_path / "native.tar")
    d = compile_model(model, target, package).defaults
    library, _ = find_library(target)
    if library:
        assert os.path.basename(library) in d.summary()
    if wide:  # the library holds NHWC classes: without samples to rank them against, its schedules are used
        assert ("schedules-x86-avx512" if "avx512f" in target_features(target) else "schedules-x86-avx2") in d.summary()
        only = compile_model(model, target, str(tmp_path / "library.tar"), default_schedules=DefaultOptions(samples=0)).defaults
        assert [k.kind for k in only.kernels if k.kernel_class.startswith("conv2d")] == ["library"] * 2
        _outputs_match(models["tiny-resnet"], str(tmp_path / "library.tar"), (1, 3, 16, 16))
    _outputs_match(models["tiny-resnet"], package, (1, 3, 16, 16))


def _kernels_by_how(report) -> dict:
    found = {}
    for k in report.defaults.kernels:
        found.setdefault(k.how, []).append(k)
    return found


def test_the_costliest_kernels_take_the_fastest_of_their_candidates_timed_here(models, tmp_path):
    """Where the target runs here (AVX2: any x86-64 the suite runs on), each family's pick is timed, and the
    costliest families get more correct candidates timed; the package stays correct. ``timed=1`` times none."""
    from tvmc_transfer.defaults.checks import runs_here

    model, target = load_model(models["tiny-cnn-b"]), parse_target(AVX2)
    assert runs_here(target) and not runs_here(parse_target("llvm -mtriple=aarch64-linux-gnu"))
    report = compile_model(model, target, str(tmp_path / "timed.tar"), default_schedules=DefaultOptions(cache=False, timed=4))
    timed = [k for k in report.defaults.kernels if k.timed]
    assert timed and all(2 <= k.timed <= 4 and k.how == "picked" for k in timed)
    assert any(k.kernel_class.startswith("conv2d") for k in timed)  # the convolutions cost the most
    assert f"({len(timed)} of them timed)" in report.defaults.summary()
    assert sorted(k["index"] for k in report.to_json()["kernels"] if k["timed"]) == sorted(k.index for k in timed)
    _outputs_match(models["tiny-cnn-b"], str(tmp_path / "timed.tar"), (1, 3, 24, 24))
    untimed = compile_model(model, target, str(tmp_path / "untimed.tar"), default_schedules=DefaultOptions(cache=False, timed=1)).defaults
    assert not any(k.timed for k in untimed.kernels)


def test_the_timed_share_picks_the_costliest_families():
    from tvmc_transfer.defaults.schedules import _costliest

    assert _costliest({"a": 1.0, "b": 8.0, "c": 1.0}, 0.8) == ["b"]
    assert _costliest({"a": 1.0, "b": 8.0, "c": 1.0}, 0.85) == ["b", "a"]
    assert _costliest({"a": 1.0, "b": float("inf")}, 0.5) == ["b", "a"]  # one that did not build is timed again


def test_a_second_compile_takes_every_default_from_the_cache(models, tmp_path, defaults_cache):
    """The first compile chooses and remembers; the second builds and checks nothing, and gets the same."""
    model, target = load_model(models["tiny-cnn-b"]), parse_target(AVX2)
    first = compile_model(model, target, str(tmp_path / "first.tar")).defaults
    assert first.cache.startswith(defaults_cache) and first.count_how("cached") == 0
    chosen = [k for k in first.kernels if k.kind != "tuned"]
    assert all(k.builds >= 2 for k in chosen if k.how == "picked")  # the unscheduled kernel and a candidate
    assert len([f for f in os.listdir(first.cache) if f != "context.json"]) == len(chosen)
    second = compile_model(model, target, str(tmp_path / "second.tar")).defaults
    assert [k.how for k in second.kernels] == ["cached"] * len(chosen)
    assert sum(k.builds + k.tried for k in second.kernels) == 0
    assert [(k.kind, k.source) for k in second.kernels] == [(k.kind, k.source) for k in first.kernels]
    assert f"0 chosen (0 of them timed), 0 shared in their shape family, {len(chosen)} from the cache" in second.summary()
    _outputs_match(models["tiny-cnn-b"], str(tmp_path / "second.tar"), (1, 3, 24, 24))
    # another target (or library, cost model, options, TVM) is another cache: nothing of this one is read
    other = compile_model(model, parse_target(GENERIC), str(tmp_path / "generic.tar"), default_schedules=DefaultOptions(samples=0)).defaults
    assert other.count_how("cached") == 0 and other.cache != first.cache


def test_a_damaged_cache_file_is_chosen_again(models, tmp_path):
    """A file that does not parse, or holds a schedule that does not replay on its kernel, is ignored and rewritten."""
    model, target = load_model(models["tiny-cnn-b"]), parse_target(AVX2)
    first = compile_model(model, target, str(tmp_path / "first.tar")).defaults
    conv = next(k for k in first.kernels if k.kernel_class.startswith("conv2d"))
    dense = next(k for k in first.kernels if k.kernel_class.startswith("matmul"))
    files = _cache_files(first, model, target)
    with open(files[conv.index], encoding="utf-8") as f:
        conv_entry = f.read()
    with open(files[conv.index], "w", encoding="utf-8") as f:
        f.write(conv_entry[:20])  # cut short
    with open(files[dense.index], "w", encoding="utf-8") as f:
        f.write(conv_entry)  # a convolution's schedule for the dense layer
    second = compile_model(model, target, str(tmp_path / "second.tar")).defaults
    again = {k.index for k in second.kernels if k.how != "cached"}
    assert again == {conv.index, dense.index} and all(second.kernels[i].builds >= 2 for i in again)
    _outputs_match(models["tiny-cnn-b"], str(tmp_path / "second.tar"), (1, 3, 24, 24))
    third = compile_model(model, target, str(tmp_path / "third.tar")).defaults
    assert third.count_how("cached") == len(third.kernels)  # rewritten by the second compile


def _cache_files(report, model, target) -> dict:
    """Task index -> its cache file."""
    from tvmc_transfer.records.listing import workload_hash
    from tvmc_transfer.build.tasks import extract_tasks

    return {t.index: os.path.join(report.cache, f"{workload_hash(t.mod)}.json") for t in extract_tasks(model, target)}


def test_kernels_of_one_shape_family_share_a_checked_choice(tmp_path, monkeypatch):
    """Two convolutions whose loops are alike (16 -> 16 channels onto 16x16 outputs, one with stride 1, one with
    stride 2 from a 32x32 input): the first is chosen for, the other takes its schedule replayed and checked,
    and the package matches ONNX Runtime. Without the cache (``TVMC_TRANSFER_CACHE=off``) nothing is written."""
    import onnx

    from tvmc_transfer.frontends.onnx_graph import Graph

    g = Graph(seed=5)
    x = g.relu(g.conv("input", "stem", 3, 16, 3, pad=1))
    x = g.relu(g.conv(x, "down", 16, 16, 3, stride=2, pad=1))
    x = g.relu(g.conv(x, "conv", 16, 16, 3, pad=1))
    g.linear(g.global_avg_pool_flatten(x, "pool"), "fc", 16, 10, output="output")
    path = str(tmp_path / "family.onnx")
    onnx.save(g.to_model("family", "two convolutions of one shape family", (1, 3, 32, 32), (1, 10), False), path)
    monkeypatch.setenv("TVMC_TRANSFER_CACHE", "off")
    package = str(tmp_path / "family.tar")
    d = compile_model(load_model(path), parse_target(AVX2), package).defaults
    assert d.cache is None
    convs = [k for k in d.kernels if k.kernel_class.startswith("conv2d+bias+relu")]
    (shared,) = [k for k in convs if k.how == "shared"]
    picked = next(k for k in convs if shared.source.startswith(f"shared with #{k.index}: "))
    assert shared.source == f"shared with #{picked.index}: {picked.source}" and (picked.how, picked.kind) == ("picked", shared.kind)
    assert shared.flops == picked.flops and shared.builds == 2  # one check: its unscheduled kernel and the schedule
    _outputs_match(path, package, (1, 3, 32, 32))
    # chosen for on its own, each kernel is built and checked as often as any
    alone = compile_model(load_model(path), parse_target(AVX2), str(tmp_path / "alone.tar"), default_schedules=DefaultOptions(share=False)).defaults
    assert alone.count_how("shared") == 0 and alone.count_how("picked") == len(alone.kernels)
