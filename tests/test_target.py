"""Target translation: what tvmc users type becomes a TVM 0.27 target."""

import json

import pytest
import tvm

from tvmc_transfer.errors import TVMCException
from tvmc_transfer.cli.target import TARGET_OPTION_FLAGS
from tvmc_transfer.target import parse_target, target_json


def exported(target):
    return target_json(target)


def test_cli_string_form_is_translated_with_typed_options():
    t = exported(parse_target("llvm -mcpu=znver3 -num-cores=2 -mattr=+avx2,+fma"))
    assert t["kind"] == "llvm" and t["mcpu"] == "znver3" and t["num-cores"] == 2 and t["mattr"] == ["+avx2", "+fma"]


def test_bare_kind_tag_json_string_and_json_file(tmp_path):
    assert exported(parse_target("llvm"))["kind"] == "llvm"
    assert exported(parse_target("nvidia/nvidia-h100"))["arch"] == "sm_90a"
    assert exported(parse_target('{"kind": "llvm", "mcpu": "znver3"}'))["mcpu"] == "znver3"
    path = tmp_path / "target.json"
    path.write_text(json.dumps({"kind": "llvm", "mcpu": "skylake", "num-cores": 4}))
    t = exported(parse_target(str(path)))
    assert t["mcpu"] == "skylake" and t["num-cores"] == 4


def test_cuda_arch_and_host():
    t = parse_target("cuda -arch=sm_90", host="llvm -mcpu=znver3")
    assert exported(t)["arch"] == "sm_90"
    assert exported(t.host)["mcpu"] == "znver3"


def test_native_is_this_machine():
    t = exported(parse_target("native"))
    assert t["mcpu"] == str(tvm.target.codegen.llvm_get_system_cpu())
    assert t["num-cores"] >= 1


def test_native_with_options_is_this_machine_changed():
    from tvm.target import codegen

    t = exported(parse_target("native -mattr=-avx512f -num-cores=1"))
    assert t["mcpu"] == str(codegen.llvm_get_system_cpu()) and t["mattr"] == ["-avx512f"] and t["num-cores"] == 1


def test_per_option_flags_override():
    t = exported(parse_target("llvm", overrides={"llvm": {"mcpu": "znver3", "num-cores": "2"}}))
    assert t["mcpu"] == "znver3" and t["num-cores"] == 2
    with pytest.raises(TVMCException, match="cuda"):
        parse_target("llvm", overrides={"cuda": {"arch": "sm_80"}})


def test_every_offered_flag_is_an_option_tvm_knows():
    for kind, options in TARGET_OPTION_FLAGS.items():
        schema = dict(tvm.target.TargetKind.options_from_name(kind))
        assert set(options) <= set(schema), kind


@pytest.mark.parametrize(
    "text, message",
    [
        ("", "target is empty"),
        ("foo", "invalid target 'foo'"),
        ("llvm -bogus=1", "has no option 'bogus'"),
        ("llvm -num-cores=two", "expects int, got 'two'"),
        ("llvm mcpu", "is not an option"),
        ('{"mcpu": "x"}', "must be an object with a 'kind'"),
        ("{oops", "not valid JSON"),
        ("missing.json", "cannot read target file"),
    ],
)
def test_bad_targets_are_user_errors(text, message):
    with pytest.raises(TVMCException, match=message):
        parse_target(text)


def test_bad_target_on_the_command_line_is_one_line(tvmc, models):
    result = tvmc("compile", models["tiny-mlp"], "--target", "llvm -mcpu", "-o", "unused.tar")
    assert result.code == 4
    assert result.err.count("\n") == 1 and result.err.startswith("Error: ")


def _an_instruction_set_this_cpu_lacks() -> str:
    from tvm.target import codegen

    here = set(codegen.llvm_get_cpu_features(tvm.target.Target({"kind": "llvm", "mcpu": str(codegen.llvm_get_system_cpu())})))
    return next(f for f in ("amx-tile", "avx512fp16", "avx10.1-512", "avx512f", "avx2", "sse4.2") if f not in here)


def test_without_target_tvmc_compiles_for_this_cpu_and_run_refuses_a_package_for_a_cpu_it_lacks(tvmc, models, tmp_path):
    from tvm.target import codegen

    from tvmc_transfer.build.package import read_package

    here = tmp_path / "here.tar"
    result = tvmc("compile", models["tiny-mlp"], "-o", here, "--no-default-schedules")
    assert result.code == 0
    target = read_package(str(here)).metadata.target
    assert target["mcpu"] == str(codegen.llvm_get_system_cpu()) and target["num-cores"] >= 1
    ran = tvmc("run", here, "--fill-mode", "ones")
    assert ran.code == 0, ran.err

    feature = _an_instruction_set_this_cpu_lacks()
    other = tmp_path / "other.tar"
    result = tvmc("compile", models["tiny-mlp"], "-o", other, "--no-default-schedules", "--target", f"llvm -mcpu=x86-64 -mattr=+{feature}")
    assert result.code == 0, result.err
    refused = tvmc("run", other, "--fill-mode", "ones")
    assert refused.code != 0
    (line,) = [l for l in refused.err.splitlines() if l.strip()]
    assert line.startswith("Error: ") and feature in line and "--target llvm" in line
