"""``tvmc compile --report`` and ``--strict`` as a CI job uses them; a failing compile's one reason line; no TVM noise.

Every package made here is checked against ONNX Runtime. The target is an AVX2 one (``-mcpu=haswell``), so the
default lowering (NHWC, weight prepacking) does not depend on the processor that runs the tests.
"""

import json
import re

import onnx
import pytest
from onnx import helper, numpy_helper

from conftest import run_cli
from tvmc_transfer.errors import TVMCException, one_line, tvm_errors
from tvmc_transfer.frontends.onnx_graph import Graph

AVX2 = ["--target", "llvm -mcpu=haswell -num-cores=2"]
PHASES = {"load", "tasks", "default_schedules", "build", "write"}


def _save(g: Graph, name: str, folder, output_shape) -> str:
    path = str(folder / f"{name}.onnx")
    onnx.save(g.to_model(name, name, (1, 3, 8, 8), output_shape, dynamic_batch=False), path)
    return path


def _op(g: Graph, op: str, inputs: list, name: str, **attributes) -> str:
    g.nodes.append(helper.make_node(op, inputs, [name], name=name, **attributes))
    return name


def _stacked_model(folder):
    """conv a, conv b -> stack -> sum over the stack, keeping its axis -> squeeze -> conv, built in Relax: a 5-D
    stack Relax's ConvertLayout cannot carry a layout through. No importer writes this one (ONNX's variadic
    ``Sum``, ``Max``, ``Min``, ``Mean`` are rewritten before the conversion, ``simplify.py``), so a graph that
    keeps failing is made here: ``(TVMCModel, NumPy function computing it)``."""
    import hashlib

    import numpy as np
    from tvm import relax

    from tvmc_transfer.frontends.load import TensorInfo, TVMCModel

    rng = np.random.default_rng(5)
    w1, w2, w3 = (rng.normal(0, 0.3, shape).astype("float32") for shape in ((4, 3, 3, 3), (4, 3, 3, 3), (4, 4, 3, 3)))
    builder = relax.BlockBuilder()
    x = relax.Var("input", relax.TensorType((1, 3, 8, 8), "float32"))
    with builder.function("main", [x]):
        with builder.dataflow():
            a = builder.emit(relax.op.nn.conv2d(x, relax.const(w1), padding=1))
            b = builder.emit(relax.op.nn.conv2d(x, relax.const(w2), padding=1))
            total = builder.emit(relax.op.sum(builder.emit(relax.op.stack([a, b], axis=0)), axis=[0], keepdims=True))
            out = builder.emit_output(relax.op.nn.conv2d(builder.emit(relax.op.squeeze(total, axis=[0])), relax.const(w3), padding=1))
        builder.emit_func_output(out)
    mod = builder.get()
    path = str(folder / "stacked.py")
    with open(path, "w", encoding="utf-8") as f:
        f.write(mod.script())
    digest = hashlib.sha256(mod.script().encode()).hexdigest()
    model = TVMCModel(mod, (TensorInfo("input", (1, 3, 8, 8), "float32"),), (TensorInfo("output", (1, 4, 8, 8), "float32"),), path, "relax", digest)

    def reference(data):
        return _conv(_conv(data, w1) + _conv(data, w2), w3)

    return model, reference


def _conv(data, weight):
    """A stride-1, pad-1 NCHW convolution in NumPy."""
    import numpy as np

    padded = np.pad(data.astype(np.float64), ((0, 0), (0, 0), (1, 1), (1, 1)))
    windows = np.lib.stride_tricks.sliding_window_view(padded, weight.shape[2:], axis=(2, 3))  # n c h w kh kw
    return np.einsum("nchwij,ocij->nohw", windows, weight.astype(np.float64))


@pytest.fixture(scope="module")
def fallback_model(tmp_path_factory):
    """A model whose layout conversion falls back: ``(TVMCModel, NumPy reference)``."""
    return _stacked_model(tmp_path_factory.mktemp("fallback"))


@pytest.fixture(scope="module")
def ci_compile(models, tmp_path_factory):
    """tiny-cnn (a max pool among its kernels) compiled ``--strict --report`` in a fresh process, as a CI job
    would: ``(model, package, report, result)``."""
    folder = tmp_path_factory.mktemp("ci")
    package, report = folder / "cnn.tar", folder / "cnn.json"
    result = run_cli("compile", models["tiny-cnn"], "-o", package, "--report", report, "--strict", *AVX2)
    return models["tiny-cnn"], package, report, result


def _verified(tvmc, package, model):
    result = tvmc("run", package, "--verify", model, "--fill-mode", "random")
    assert result.code == 0 and "verify output" in result.out and ": ok" in result.out, result.out + result.err


def test_strict_compile_of_a_clean_model_reports_every_kernel(ci_compile, tvmc):
    from tvmc_transfer.build.package import read_package

    model, package, report, result = ci_compile
    assert result.code == 0, result.err
    data = json.loads(report.read_text())
    assert (data["status"], data["error"], data["package"], data["model"]) == ("ok", None, str(package), model)
    assert data["lowering"] == {"weight_prepack": True, "layout": "NHWC", "winograd": False}
    assert data["target"]["mcpu"] == "haswell" and data["layout_fallbacks"] == [] and data["records"] is None
    kernels = data["kernels"]
    assert len(kernels) == read_package(str(package)).metadata.kernels and [k["index"] for k in kernels] == list(range(len(kernels)))
    assert {k["scheduled"] for k in kernels} <= {"library", "model"}  # nothing unscheduled: --strict let it pass
    assert sum(data["counts"].values()) == len(kernels) and data["counts"]["library"] + data["counts"]["model"] == len(kernels)
    assert all(k["task"] and k["class"] and k["weight"] >= 1 and k["flops"] >= 0 and k["source"] for k in kernels)
    assert any(k["class"].startswith("conv2d+bias+relu NHWC") for k in kernels) and any("pool" in k["task"] for k in kernels)
    assert set(data["phases"]) == PHASES and all(s >= 0 for s in data["phases"].values())
    assert data["seconds"] == pytest.approx(sum(data["phases"].values()), abs=0.01)
    assert not list(report.parent.glob(".tvmc-partial-*"))  # the atomic write left nothing beside it
    _verified(tvmc, package, model)


def test_a_compile_prints_no_unknown_schedule_rule_for_pooling(ci_compile):
    """TVM 0.27 warned ``Unknown schedule rule "meta_schedule.pool_max"`` on every pooling kernel (pool_rules.py)."""
    *_, result = ci_compile
    assert result.code == 0 and "Unknown schedule rule" not in result.err and "pool_max" not in result.err, result.err


def test_pool_kernels_keep_their_workload_and_get_the_same_design_space(models):
    """The annotation stays in the workload (the tuning records of pooling kernels match) and the design space
    removes it as TVM did, in its trace (records replay)."""
    from tvm.s_tir import meta_schedule as ms

    from tvmc_transfer.frontends.load import load_model
    from tvmc_transfer.build.intrinsics import load_tensor_intrinsics
    from tvmc_transfer.target import parse_target, tuning_target
    from tvmc_transfer.build.tasks import extract_tasks

    target = tuning_target(parse_target(AVX2[1]))
    pool = next(t for t in extract_tasks(load_model(models["tiny-cnn"]), target) if "pool" in t.name)
    assert '"schedule_rule": "meta_schedule.pool_max"' in pool.mod.script()
    load_tensor_intrinsics(target)
    spaces = ms.TuneContext(mod=pool.mod, target=target, space_generator="post-order-apply").generate_design_space()
    assert spaces and all('unannotate(block_or_loop=b0, ann_key="schedule_rule")' in str(s.trace) for s in spaces)
    assert all("schedule_rule" not in s.mod.script() for s in spaces)


def test_strict_refuses_a_layout_fallback_and_reports_why(fallback_model, tmp_path):
    from tvmc_transfer.compiler import CompileFailed, compile_model
    from tvmc_transfer.target import parse_target

    model, _ = fallback_model
    package = tmp_path / "strict.tar"
    with pytest.raises(CompileFailed) as failed:
        compile_model(model, parse_target(AVX2[1]), str(package), strict=True)
    assert str(failed.value).startswith("--strict: 1 layout fallback (relax.stack; --desired-layout NCHW")
    assert str(failed.value).endswith("no package written") and "unscheduled" not in str(failed.value)
    assert not package.exists()
    failed.value.report.write_json(str(tmp_path / "strict.json"))  # what tvmc compile --report writes
    data = json.loads((tmp_path / "strict.json").read_text())
    assert data["status"] == "failed" and data["error"] == str(failed.value) and data["package"] is None
    assert [f["operator"] for f in data["layout_fallbacks"]] == ["relax.stack"] and data["layout_fallbacks"][0]["layout"] == "NHWC"
    assert any(line.startswith("layout conversion to NHWC failed at relax.stack") for line in data["warnings"])
    assert data["kernels"] and {"tasks", "default_schedules"} <= set(data["phases"])


def test_without_strict_a_fallback_compiles_correctly_and_is_reported(fallback_model, tmp_path, caplog):
    import logging

    import numpy as np

    from tvmc_transfer.compiler import compile_model
    from tvmc_transfer.run.module import run_module
    from tvmc_transfer.target import parse_target

    model, reference = fallback_model
    package = tmp_path / "fallback.tar"
    with caplog.at_level(logging.WARNING, logger="tvmc"):
        report = compile_model(model, parse_target(AVX2[1]), str(package))
    data = report.to_json()
    assert data["status"] == "ok" and [f["operator"] for f in data["layout_fallbacks"]] == ["relax.stack"]
    assert data["lowering"]["layout"] == "NHWC"  # asked for; the model kept its own where the conversion failed
    assert not any("NHWC" in k["class"] for k in data["kernels"])
    assert len([r for r in caplog.records if "layout conversion" in r.getMessage()]) <= 1  # one line, once a process
    x = np.random.default_rng(0).standard_normal((1, 3, 8, 8)).astype("float32")
    got = run_module(str(package), {"input": x}).outputs["output"]
    expected = reference(x)
    assert np.abs(got - expected).max() <= 1e-4 + 1e-3 * np.abs(expected).max()


def test_strict_refuses_unscheduled_kernels(models, tvmc, tmp_path):
    report = tmp_path / "none.json"
    result = tvmc("compile", models["tiny-mlp"], "-o", tmp_path / "none.tar", "--report", report, "--strict", "--no-default-schedules", *AVX2)
    assert result.code == 4 and not (tmp_path / "none.tar").exists()
    data = json.loads(report.read_text())
    names = [k["task"] for k in data["kernels"]]
    assert names and {k["scheduled"] for k in data["kernels"]} == {"none"} and data["counts"]["none"] == len(names)
    expected = f"Error: --strict: {len(names)} kernel{'s' if len(names) > 1 else ''} unscheduled ({', '.join(names[:5])}"
    assert result.err.strip().splitlines()[-1].startswith(expected)
    assert "build" not in data["phases"]  # refused before building


def test_a_failing_compile_prints_the_reason_not_ir(models, tvmc, tmp_path):
    """With LegalizeOps disabled the build stops in VM code generation, whose error prints the offending call and
    then a line of IR ("# Metadata omitted ..."): what a user once saw as the reason."""
    package, report = tmp_path / "t.tar", tmp_path / "t.json"
    result = tvmc("compile", models["tiny-cnn"], "-o", package, "--report", report, "--disabled-pass", "LegalizeOps", *AVX2)
    assert result.code == 4 and not package.exists()
    error = result.err.strip().splitlines()[-1]
    assert error.startswith("Error: compilation failed: CodeGenVM cannot emit this Relax operator directly")
    assert re.search(r"\(R\.[\w.]+\)", error)  # the operator it stopped at
    assert "Metadata omitted" not in result.err and "metadata[" not in result.err
    data = json.loads(report.read_text())
    assert data["status"] == "failed" and "Error: " + data["error"] == error and "build" in data["phases"]


def test_a_transposed_convolution_compiles_at_the_default_layout(tvmc, tmp_path):
    """TVM 0.27 has a kernel for conv2d_transpose in NCHW only: the NHWC conversion leaves it in NCHW (before, the
    build failed with the offending call printed, as a user's text detector did)."""
    g = Graph(seed=1)
    g.initializers += [numpy_helper.from_array(g.rng.normal(0, 0.3, (4, 4, 2, 2)).astype("float32"), "up.weight")]
    up = _op(g, "ConvTranspose", [g.conv("input", "a", 3, 4, 3, pad=1), "up.weight"], "up", strides=[2, 2])
    g.conv(up, "output", 4, 4, 3, pad=1)
    model = _save(g, "transposed", tmp_path, (1, 4, 16, 16))
    package = tmp_path / "t.tar"
    result = tvmc("compile", model, "-o", package, *AVX2)
    assert result.code == 0, result.err
    _verified(tvmc, package, model)


# TVM 0.27's own error texts (str of the exception), captured from the failures above and from Relax's ConvertLayout.
CODEGEN = (
    "CodeGenVM cannot emit this Relax operator directly. Run the appropriate lowering pass, or route the operator to an "
    "external codegen before VM codegen.\nOffending call:\nR.nn.conv2d_transpose(alloc1, metadata[\"ir.GenericConst\"][0], "
    'strides=[2, 2], padding=[0, 0, 0, 0], output_padding=[0, 0], dilation=[1, 1], groups=1, data_layout="NHWC", '
    'kernel_layout="IOHW", out_layout="NHWC", out_dtype=None)\n# Metadata omitted. Use show_meta=True in script() method to show it.'
)
TUPLE = "Check failed: (msgs[i].IsNested()) is false: Expected nested to match tuple"
STACK = "Check failed: (res != std::string::npos) is false: Invalid SLayout:can't find S in source layoutABCDE"
MODULE = (
    "Traceback (most recent call last):\n  File \"pass.py\", line 3, in transform\nValueError: the block y has no "
    "producer\n# from tvm.script import ir as I\n# from tvm.script import relax as R\n\n@I.ir_module\nclass Module:\n"
    "    @R.function\n    def main(x: R.Tensor((4,), dtype=\"float32\")) -> R.Tensor((4,), dtype=\"float32\"):\n"
    "        with R.dataflow():\n            y: R.Tensor((4,), dtype=\"float32\") = R.add(x, x)\n            R.output(y)\n"
    "        return y\n# Metadata omitted. Use show_meta=True in script() method to show it."
)


@pytest.mark.parametrize(
    "text, reason",
    [
        (CODEGEN, CODEGEN.splitlines()[0] + " (R.nn.conv2d_transpose)"),
        (TUPLE, TUPLE),
        (f"Traceback (most recent call last):\n  0: tvm::relax::ConvertLayout\n{STACK}", STACK),
        (MODULE, "ValueError: the block y has no producer"),  # a module printed after the reason: none of its lines
        ("Traceback (most recent call last):\n  File \"x.py\", line 1\n\nValueError: shape mismatch  \n", "ValueError: shape mismatch"),
    ],
)
def test_one_line_is_the_reason_of_a_tvm_error(text, reason):
    assert one_line(RuntimeError(text)) == reason
    assert one_line(RuntimeError(text), 40) == reason[:40]


def test_tvm_errors_become_one_line_and_our_bugs_keep_their_traceback():
    import tvm

    from tvmc_transfer.build.lowering import most_matched

    with pytest.raises(TVMCException) as caught:
        with tvm_errors("tuning", "try --desired-layout NCHW"):
            tvm.target.Target("llvm -mcpu=znver3")  # TVM 0.27 refuses the CLI string form
    message = str(caught.value)
    assert message.startswith("tuning failed: ") and "; try --desired-layout NCHW" in message and "\n" not in message
    with pytest.raises(TypeError):  # raised in this project's own code: a bug, not the user's
        with tvm_errors("tuning"):
            most_matched(None, 0, len)
