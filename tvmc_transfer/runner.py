"""``run_module``: run a package on inputs, time it, and check it against ONNX Runtime."""

import os
import statistics

import attrs
import numpy as np

from .errors import TVMCException
from .package import read_package
from .target import device_type

FILL_MODES = ("zeros", "ones", "random")


@attrs.frozen
class RunResult:
    outputs: dict  # name -> np.ndarray
    times: tuple  # seconds, one per repeat; empty when not timed

    def time_summary(self) -> dict:
        ms = [t * 1e3 for t in self.times]
        return {
            "mean": statistics.fmean(ms),
            "median": statistics.median(ms),
            "std": statistics.pstdev(ms) if len(ms) > 1 else 0.0,
            "min": min(ms),
            "max": max(ms),
        }


def load_inputs(path: str) -> dict:
    if not os.path.isfile(path):
        raise TVMCException(f"inputs file '{path}' not found")
    try:
        with np.load(path) as data:
            return {name: data[name] for name in data.files}
    except Exception as err:
        raise TVMCException(f"cannot read inputs '{path}' as .npz: {err}") from None


def make_inputs(infos, given: dict | None, fill_mode: str = "random", seed: int = 0) -> dict:
    """Check ``given`` against the package's inputs and fill the ones not given."""
    if fill_mode not in FILL_MODES:
        raise TVMCException(f"--fill-mode must be one of {', '.join(FILL_MODES)}, got '{fill_mode}'")
    given = dict(given or {})
    names = [i.name for i in infos]
    unknown = sorted(set(given) - set(names))
    if unknown:
        raise TVMCException(f"inputs name unknown tensor(s) {', '.join(unknown)}; the model's inputs are: {', '.join(names)}")
    rng = np.random.default_rng(seed)
    result = {}
    for info in infos:
        if info.name in given:
            value = np.asarray(given[info.name])
            if tuple(value.shape) != tuple(info.shape):
                raise TVMCException(f"input '{info.name}' has shape {list(value.shape)}, the model expects {list(info.shape)}")
            if not np.can_cast(value.dtype, info.dtype, casting="same_kind"):
                raise TVMCException(f"input '{info.name}' has dtype {value.dtype}, the model expects {info.dtype}")
            result[info.name] = value.astype(info.dtype)
        elif fill_mode == "zeros":
            result[info.name] = np.zeros(info.shape, info.dtype)
        elif fill_mode == "ones":
            result[info.name] = np.ones(info.shape, info.dtype)
        else:
            result[info.name] = rng.standard_normal(info.shape).astype(info.dtype)
    return result


def _device(target: dict):
    import tvm  # pylint: disable=import-outside-toplevel

    kind = target.get("kind", "llvm")
    device = tvm.device(device_type(kind), 0)
    if not device.exist:
        raise TVMCException(f"the package was compiled for '{kind}', but this machine has no such device")
    return device


def run_module(package_path: str, inputs: dict | None = None, fill_mode: str = "random", number: int = 1, repeat: int = 0, seed: int = 0) -> RunResult:
    """Run a package once for its outputs, then ``repeat`` timed measurements of ``number`` runs each.

    >>> result = run_module("net.tar", fill_mode="random", repeat=10)   # doctest: +SKIP
    >>> result.time_summary()["median"]                                  # doctest: +SKIP
    """
    import tvm  # pylint: disable=import-outside-toplevel
    from tvm import relax

    package = read_package(package_path)
    values = make_inputs(package.metadata.inputs, inputs, fill_mode, seed)
    device = _device(package.metadata.target)
    vm = relax.VirtualMachine(package.load(), device)
    args = [tvm.runtime.tensor(values[i.name], device) for i in package.metadata.inputs]
    result = vm["main"](*args)
    fields = list(result) if isinstance(result, (list, tuple)) or type(result).__name__ == "Array" else [result]
    outputs = {info.name: field.numpy() for info, field in zip(package.metadata.outputs, fields)}
    times = ()
    if repeat > 0:
        vm.set_input("main", *args)
        timer = vm.time_evaluator("invoke_stateful", device, number=number, repeat=repeat)
        times = tuple(float(t) for t in timer("main").results)
    return RunResult(outputs, times)


@attrs.frozen
class Verification:
    name: str
    max_abs_error: float
    relative_error: float  # max |ours - reference| / max |reference|
    ok: bool


def verify_with_onnxruntime(model_path: str, inputs: dict, outputs: dict, rtol: float = 1e-4) -> list:
    """Run ONNX Runtime on the same inputs and compare every output."""
    import onnxruntime as ort  # pylint: disable=import-outside-toplevel

    if not os.path.isfile(model_path):
        raise TVMCException(f"--verify model '{model_path}' not found")
    try:
        session = ort.InferenceSession(model_path, providers=["CPUExecutionProvider"])
    except Exception as err:
        raise TVMCException(f"ONNX Runtime cannot load '{model_path}': {str(err).splitlines()[0][:200]}") from None
    names = [i.name for i in session.get_inputs()]
    if sorted(names) != sorted(inputs):
        raise TVMCException(f"--verify model's inputs ({', '.join(names)}) differ from the package's ({', '.join(inputs)})")
    for info in session.get_inputs():
        expected = [d if isinstance(d, int) else None for d in info.shape]
        given = list(inputs[info.name].shape)
        if len(expected) != len(given) or any(e is not None and e != g for e, g in zip(expected, given)):
            raise TVMCException(f"--verify model expects input '{info.name}' of shape {info.shape}, the package takes {given}")
    try:
        references = session.run(None, {n: inputs[n] for n in names})
    except Exception as err:
        raise TVMCException(f"ONNX Runtime failed on '{model_path}': {str(err).splitlines()[0][:200]}") from None
    checks = []
    for (name, ours), reference in zip(outputs.items(), references):
        if ours.shape != reference.shape:
            checks.append(Verification(name, float("inf"), float("inf"), False))
            continue
        diff = np.abs(ours.astype(np.float64) - reference.astype(np.float64))
        scale = max(float(np.max(np.abs(reference))), np.finfo(np.float32).tiny)
        relative = float(diff.max()) / scale if diff.size else 0.0
        checks.append(Verification(name, float(diff.max()) if diff.size else 0.0, relative, relative <= rtol))
    return checks


def top_n(values: np.ndarray, n: int) -> list:
    """The ``n`` largest entries of a (batch 0) output as ``(index, value)``, largest first."""
    flat = np.asarray(values).reshape(values.shape[0], -1)[0] if values.ndim > 1 else np.asarray(values)
    order = np.argsort(flat)[::-1][:n]
    return [(int(i), float(flat[i])) for i in order]
