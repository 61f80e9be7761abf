"""Shared fixtures: tiny zoo models, one tuned records folder per session, and a way to run ``tvmc``."""

import os
import subprocess
import sys

import numpy as np
import onnxruntime as ort
import pytest

from tvmc_transfer.frontends import zoo
from tvmc_transfer.main import _main

# Small and quick: a tuning test measures a handful of candidates on 2 cores.
FAST_TUNE = ["--target", "llvm -num-cores=2", "--trials-per-iter", "8", "--population", "32", "--min-repeat-ms", "5", "--number", "2"]


class Result:
    def __init__(self, code, out, err):
        self.code, self.out, self.err = code, out, err


@pytest.fixture
def tvmc(capsys):
    """Run the driver in-process, as the console script would: ``tvmc("tune", ...)``."""

    def run(*argv):
        code = _main([str(a) for a in argv])
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return run


def run_cli(*argv, env=None, cwd=None):
    """Run ``python -m tvmc_transfer`` in a fresh process (exit codes, stderr, imports)."""
    proc = subprocess.run(
        [sys.executable, "-m", "tvmc_transfer", *map(str, argv)],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        cwd=cwd,
        timeout=600,
    )
    return Result(proc.returncode, proc.stdout, proc.stderr)


@pytest.fixture(scope="session", autouse=True)
def _session_defaults_cache(tmp_path_factory):
    """The session's fixtures (a tuning run chooses defaults) cache default schedules here, not in the home."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TVMC_TRANSFER_CACHE", str(tmp_path_factory.mktemp("session-defaults-cache")))
        yield


@pytest.fixture(autouse=True)
def defaults_cache(tmp_path_factory, monkeypatch):
    """Each test its own, empty cache of default schedules (``defaults/cache.py``): no test reads another's
    choices."""
    folder = tmp_path_factory.mktemp("defaults-cache")
    monkeypatch.setenv("TVMC_TRANSFER_CACHE", str(folder))
    return str(folder)


@pytest.fixture(scope="session")
def models(tmp_path_factory):
    """The tiny zoo models as ONNX files, written once per session."""
    folder = tmp_path_factory.mktemp("models")
    return {name: zoo.save(name, str(folder / f"{name}.onnx")) for name in ("tiny-cnn", "tiny-cnn-b", "tiny-resnet", "tiny-mlp", "tiny-mobile")}


@pytest.fixture(scope="session")
def tuned_cnn(models, tmp_path_factory):
    """tiny-cnn tuned with 24 trials once per session: (model path, records folder)."""
    records = str(tmp_path_factory.mktemp("tuned") / "records")
    code = _main(["tune", models["tiny-cnn"], "-o", records, "--trials", "24", *FAST_TUNE])
    assert code == 0
    return models["tiny-cnn"], records


def onnxruntime_outputs(model_path, inputs):
    session = ort.InferenceSession(model_path, providers=["CPUExecutionProvider"])
    return session.run(None, inputs)


def assert_matches_onnxruntime(model_path, inputs, outputs, rtol=1e-4):
    references = onnxruntime_outputs(model_path, inputs)
    for ours, reference in zip(outputs, references):
        np.testing.assert_allclose(ours, reference, rtol=rtol, atol=rtol * float(np.max(np.abs(reference))))
