"""Damaged and foreign packages: ``tvmc run`` refuses a package with a missing, altered or foreign member, or a
metadata.json that is not a package's, with one ``Error:`` line, and never loads a library that does not match
its digest. The packages are real: tiny-mlp compiled by ``tvmc compile``, then taken apart and put together again."""

import hashlib
import io
import json
import subprocess
import tarfile

import numpy as np
import pytest

from conftest import assert_matches_onnxruntime
from tvmc_transfer.errors import TVMCException
from tvmc_transfer.build.package import read_package


@pytest.fixture(scope="module")
def package(models, tmp_path_factory):
    """tiny-mlp compiled for plain x86-64: ``(model, package path, {member name: bytes})``."""
    from tvmc_transfer.main import _main

    path = str(tmp_path_factory.mktemp("package") / "mlp.tar")
    assert _main(["compile", models["tiny-mlp"], "-o", path, "--target", "llvm", "--no-default-schedules"]) == 0
    with tarfile.open(path) as tar:
        members = {m.name: tar.extractfile(m).read() for m in tar.getmembers()}
    return models["tiny-mlp"], path, members


def _pack(path, members) -> str:
    """A tar of ``members``: ``(name, bytes)`` for a regular file, or a ready ``TarInfo`` (links, devices, ...)."""
    with tarfile.open(path, "w") as tar:
        for member in members:
            if isinstance(member, tarfile.TarInfo):
                tar.addfile(member)
            else:
                name, data = member
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    return str(path)


def _special(name, kind, target=""):
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, target
    return info


def _metadata(members, **changes) -> bytes:
    data = json.loads(members["metadata.json"])
    data.update(changes)
    return json.dumps({k: v for k, v in data.items() if v is not _DROP}).encode()


_DROP = object()


def _run(tvmc, package_path, tmp_path):
    x = np.random.default_rng(0).standard_normal((1, 64)).astype("float32")
    np.savez(tmp_path / "x.npz", input=x)
    return x, tvmc("run", package_path, "--inputs", tmp_path / "x.npz", "--outputs", tmp_path / "y.npz")


def test_a_package_records_its_library_digest_and_runs(package, tvmc, tmp_path):
    model, path, members = package
    assert sorted(members) == ["metadata.json", "mod.so"]
    meta = json.loads(members["metadata.json"])
    assert meta["version"] == 2 and meta["library_sha256"] == hashlib.sha256(members["mod.so"]).hexdigest()
    x, result = _run(tvmc, path, tmp_path)
    assert result.code == 0, result.err
    with np.load(tmp_path / "y.npz") as y:
        assert_matches_onnxruntime(model, {"input": x}, [y["output"]])


def _cases(members):
    library, metadata = members["mod.so"], members["metadata.json"]
    flipped = bytearray(library)
    flipped[len(flipped) // 2] ^= 0xFF
    return {
        "no library": ([("metadata.json", metadata)], "it lacks mod.so"),
        "no metadata": ([("mod.so", library)], "it lacks metadata.json"),
        "empty tar": ([], "it lacks mod.so and metadata.json"),
        "one byte changed": ([("mod.so", bytes(flipped)), ("metadata.json", metadata)], "mod.so does not match the sha256"),
        "truncated library": ([("mod.so", library[:4096]), ("metadata.json", metadata)], "mod.so does not match the sha256"),
        "digest removed": ([("mod.so", library), ("metadata.json", _metadata(members, library_sha256=_DROP))], "lacks the sha256 of mod.so"),
        "foreign file": ([("mod.so", library), ("metadata.json", metadata), ("run_me.py", b"print(1)")], "it holds 'run_me.py'"),
        "path outside": ([("mod.so", library), ("metadata.json", metadata), ("../mod.so", library)], "it holds '../mod.so'"),
        "second library": ([("mod.so", library), ("metadata.json", metadata), ("mod.so", bytes(flipped))], "it holds mod.so twice"),
        "library symlink": ([_special("mod.so", tarfile.SYMTYPE, "/usr/lib/x86_64-linux-gnu/libc.so.6"), ("metadata.json", metadata)], "its mod.so is a symbolic link"),
        "metadata hardlink": ([("mod.so", library), _special("metadata.json", tarfile.LNKTYPE, "mod.so")], "its metadata.json is a hard link"),
        "library directory": ([_special("mod.so", tarfile.DIRTYPE), ("metadata.json", metadata)], "its mod.so is a directory"),
        "library device": ([_special("mod.so", tarfile.CHRTYPE), ("metadata.json", metadata)], "its mod.so is a device"),
        "metadata a list": ([("mod.so", library), ("metadata.json", b"[1, 2]")], "its metadata.json is not a tvmc-transfer package's"),
        "metadata not JSON": ([("mod.so", library), ("metadata.json", b'{"format": ')], "its metadata.json is not JSON"),
        "metadata not UTF-8": ([("mod.so", library), ("metadata.json", b'{"format": "\xff\xfe"}')], "its metadata.json is not JSON"),
        "newer version": ([("mod.so", library), ("metadata.json", _metadata(members, version=3))], "format version 3"),
        "inputs missing": ([("mod.so", library), ("metadata.json", _metadata(members, inputs=_DROP))], "field 'inputs' is missing"),
        "inputs a string": ([("mod.so", library), ("metadata.json", _metadata(members, inputs="input"))], "field 'inputs' is missing or not a JSON array"),
        "shape of text": ([("mod.so", library), ("metadata.json", _metadata(members, inputs=[{"name": "input", "shape": ["1", "64"], "dtype": "float32"}]))], "field 'inputs' must list"),
        "kernels a bool": ([("mod.so", library), ("metadata.json", _metadata(members, kernels=True))], "field 'kernels'"),
        "target without kind": ([("mod.so", library), ("metadata.json", _metadata(members, target={"mcpu": "znver3"}))], "field 'target' has no 'kind'"),
    }


CASES = list(_cases({"mod.so": b"x" * 8192, "metadata.json": b"{}"}))  # the names only; the bytes come from the fixture


@pytest.mark.parametrize("case", CASES)
def test_a_damaged_or_foreign_package_is_refused_with_one_line(case, package, tvmc, tmp_path):
    _, _, members = package
    contents, reason = _cases(members)[case]
    path = _pack(tmp_path / "bad.tar", contents)
    _, result = _run(tvmc, path, tmp_path)
    assert result.code == 4, result.out
    assert result.err.splitlines() == [result.err.strip()] and result.err.startswith(f"Error: '{path}' is not a"), result.err
    assert reason in result.err, result.err
    assert not (tmp_path / "y.npz").exists()


def test_files_that_are_no_package_are_refused(package, tvmc, tmp_path):
    _, path, _ = package
    with open(path, "rb") as f:
        whole = f.read()
    (tmp_path / "half.tar").write_bytes(whole[: len(whole) // 2])
    (tmp_path / "text.tar").write_text("not a tar file\n")
    (tmp_path / "empty.tar").write_bytes(b"")
    for name in ("half.tar", "text.tar", "empty.tar"):
        _, result = _run(tvmc, tmp_path / name, tmp_path)
        assert result.code == 4 and result.err.startswith(f"Error: '{tmp_path / name}' is not a"), result.err
        assert len(result.err.strip().splitlines()) == 1, result.err


def test_an_altered_library_is_refused_before_it_is_loaded(package, tmp_path):
    """A library swapped for one whose loading has an effect (a constructor that writes a file): refused, and the
    file is never written, so the check comes before ``load_module``."""
    _, _, members = package
    marker = tmp_path / "loaded"
    source = tmp_path / "evil.c"
    source.write_text(f'#include <stdio.h>\n__attribute__((constructor)) static void run(void) {{ fclose(fopen("{marker}", "w")); }}\n')
    subprocess.run(["cc", "-shared", "-fPIC", "-o", str(tmp_path / "evil.so"), str(source)], check=True)
    evil = (tmp_path / "evil.so").read_bytes()
    path = _pack(tmp_path / "swapped.tar", [("mod.so", evil), ("metadata.json", members["metadata.json"])])
    with pytest.raises(TVMCException, match="mod.so does not match the sha256"):
        read_package(path)
    assert not marker.exists()
    # the check is what stopped it: with the swapped library's own digest the package reads, and loading runs it
    honest = _pack(tmp_path / "signed.tar", [("mod.so", evil), ("metadata.json", _metadata(members, library_sha256=hashlib.sha256(evil).hexdigest()))])
    read_package(honest).load()
    assert marker.exists()


def test_a_target_triple_llvm_does_not_know_does_not_crash_run(package, tvmc, tmp_path):
    """metadata.json's target is checked against this CPU before loading; LLVM segfaulted listing the features of
    a triple it does not know (``x86_64garbage``), taking ``tvmc run`` down with it."""
    model, _, members = package
    target = {"kind": "llvm", "mcpu": "znver3", "mtriple": "x86_64garbage"}
    path = _pack(tmp_path / "odd.tar", [("mod.so", members["mod.so"]), ("metadata.json", _metadata(members, target=target))])
    x, result = _run(tvmc, path, tmp_path)
    assert result.code == 0, result.err
    with np.load(tmp_path / "y.npz") as y:
        assert_matches_onnxruntime(model, {"input": x}, [y["output"]])


def test_a_package_written_before_the_digest_still_runs(package, tvmc, tmp_path):
    """Version 1 (no ``library_sha256``): read without the check, as the docstring of package.py says why."""
    model, _, members = package
    old = _metadata(members, version=1, library_sha256=_DROP)
    path = _pack(tmp_path / "old.tar", [("mod.so", members["mod.so"]), ("metadata.json", old)])
    x, result = _run(tvmc, path, tmp_path)
    assert result.code == 0, result.err
    with np.load(tmp_path / "y.npz") as y:
        assert_matches_onnxruntime(model, {"input": x}, [y["output"]])
