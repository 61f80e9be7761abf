"""Cross-compilation for aarch64 with a real toolchain (zig's clang from PyPI, the 'test' extra): the package
and the tuning builder's candidates are aarch64 shared objects; without a cross compiler, a clear error."""

import sys
import tarfile

import pytest

pytest.importorskip("ziglang", reason="the cross-compile tests link with zig: pip install ziglang (in the 'test' extra)")

AARCH64 = "llvm -mtriple=aarch64-linux-gnu -mcpu=cortex-a72"
ZIG = ["--cross-compiler", f"{sys.executable} -m ziglang cc", "--cross-compiler-options", "-target aarch64-linux-gnu"]
EM_AARCH64 = 183


def elf_machine(data: bytes) -> int:
    assert data[:4] == b"\x7fELF" and data[5] == 1  # little-endian ELF
    return int.from_bytes(data[18:20], "little")


def test_compile_links_an_aarch64_package(models, tvmc, tmp_path):
    out = tmp_path / "arm.tar"
    result = tvmc("compile", models["tiny-cnn"], "--target", AARCH64, *ZIG, "-o", out)
    assert result.code == 0, result.err
    with tarfile.open(out) as tar:
        assert elf_machine(tar.extractfile("mod.so").read()) == EM_AARCH64


def test_tuning_builder_links_candidates_with_the_cross_compiler(models):
    from tvm.s_tir.meta_schedule.builder import BuilderInput

    from tvmc_transfer.tune.builder import PersistentBuilder
    from tvmc_transfer.build.cross import CrossCompiler
    from tvmc_transfer.frontends.load import load_model
    from tvmc_transfer.target import parse_target
    from tvmc_transfer.build.tasks import extract_tasks

    target = parse_target(AARCH64 + " -num-cores=2")
    task = extract_tasks(load_model(models["tiny-mlp"]), target)[0]
    builder = PersistentBuilder(target, max_workers=1, cross=CrossCompiler(f"{sys.executable} -m ziglang cc", "-target aarch64-linux-gnu"))
    try:
        (result,) = builder.build([BuilderInput(task.mod, target)])
        assert result.error_msg is None, result.error_msg
        with open(result.artifact_path, "rb") as f:
            assert elf_machine(f.read()) == EM_AARCH64
    finally:
        builder.shutdown()


def test_foreign_target_without_cross_compiler_is_one_line(models, tvmc, tmp_path):
    result = tvmc("compile", models["tiny-mlp"], "--target", AARCH64, "-o", tmp_path / "x.tar")
    assert result.code == 4 and result.err.count("\n") == 1 and "give --cross-compiler" in result.err
    assert "Traceback" not in result.err and not (tmp_path / "x.tar").exists()
    broken = tvmc("compile", models["tiny-mlp"], "--target", AARCH64, "--cross-compiler", "no-such-cc-xyz", "-o", tmp_path / "x.tar")
    assert broken.code == 4 and broken.err.count("\n") == 1 and "cannot run --cross-compiler 'no-such-cc-xyz'" in broken.err
    tune = tvmc("tune", models["tiny-mlp"], "--target", AARCH64, *ZIG, "-o", tmp_path / "r")
    assert tune.code == 4 and "measure them there with --rpc-tracker" in tune.err
