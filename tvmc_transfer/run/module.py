"""``run_module``: run a package on inputs, time it, and check it against ONNX Runtime."""

import os
import statistics
import time

import attrs
import numpy as np

from ..build.package import read_package
from ..errors import TVMCException
from .profiling import profile_vm
from .remote import Remote, open_device

FILL_MODES = ("zeros", "ones", "random")


@attrs.frozen
class RunResult:
    outputs: dict  # name -> np.ndarray
    times: tuple  # seconds, one per repeat; empty when not timed
    profile: tuple = ()  # of profiling.ProfileRow, slowest first; empty unless profiled

    def time_summary(self) -> dict:
        ms = [t * 1e3 for t in self.times]
        return {
            "mean": statistics.fmean(ms),
            "median": statistics.median(ms),
            "std": statistics.pstdev(ms) if len(ms) > 1 else 0.0,
            "min": min(ms),
            "max": max(ms),
        }

    def time_table(self) -> str:
        """tvmc 0.19's ``--print-time`` table (TVM's ``BenchmarkResult``), which scripts parse."""
        s = self.time_summary()
        return (
            "Execution time summary:\n"
            f"{'mean (ms)':^12} {'median (ms)':^12} {'max (ms)':^12} {'min (ms)':^12} {'std (ms)':^12}\n"
            f"{s['mean']:^12.4f} {s['median']:^12.4f} {s['max']:^12.4f} {s['min']:^12.4f} {s['std']:^12.4f}"
            "               "
        )


@attrs.frozen
class RunPlace:
    """Where and how a package runs: device kind (default: the package's), a remote device, end-to-end timing
    (host arrays in and out, copies included), and how many profiled runs (0: none)."""

    device: str | None = None
    remote: Remote | None = None
    end_to_end: bool = False
    profile: int = 0

    def __attrs_post_init__(self):
        if self.profile and self.remote is not None:
            raise TVMCException("--profile runs on this machine: the VM's instrument hook cannot cross RPC; drop --rpc-tracker")


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


def run_module(
    package_path: str,
    inputs: dict | None = None,
    fill_mode: str = "random",
    number: int = 1,
    repeat: int = 0,
    seed: int = 0,
    place: RunPlace | None = None,
) -> RunResult:
    """Run a package once for its outputs, then ``repeat`` timed measurements of ``number`` runs each.

    ``place`` chooses the device, a remote one through an RPC tracker, end-to-end timing and profiling.

    >>> result = run_module("net.tar", fill_mode="random", repeat=10)   # doctest: +SKIP
    >>> result.time_summary()["median"]                                  # doctest: +SKIP
    """
    import tvm  # pylint: disable=import-outside-toplevel
    from tvm import relax

    place = place or RunPlace()
    package = read_package(package_path)
    values = make_inputs(package.metadata.inputs, inputs, fill_mode, seed)
    library, device = open_device(package, place.device, place.remote)
    vm = relax.VirtualMachine(library, device)
    names = [i.name for i in package.metadata.inputs]
    args = [tvm.runtime.tensor(values[n], device) for n in names]
    outputs = _outputs(vm["main"](*args), package.metadata.outputs)
    times = ()
    if repeat > 0 and place.end_to_end:
        times = tuple(_end_to_end_seconds(vm, device, [values[n] for n in names], number) for _ in range(repeat))
    elif repeat > 0:
        vm.set_input("main", *args)
        timer = vm.time_evaluator("invoke_stateful", device, number=number, repeat=repeat)
        times = tuple(float(t) for t in timer("main").results)
    profile = ()
    if place.profile:
        profile = profile_vm(relax.VirtualMachine(library, device), device, args, runs=place.profile)
    return RunResult(outputs, times, profile)


def _fields(result) -> list:
    return list(result) if isinstance(result, (list, tuple)) or type(result).__name__ == "Array" else [result]


def _outputs(result, infos) -> dict:
    return {info.name: field.numpy() for info, field in zip(infos, _fields(result))}


def _end_to_end_seconds(vm, device, arrays: list, number: int) -> float:
    """Mean seconds of one inference counted from host arrays to host arrays (copies to the device included)."""
    import tvm  # pylint: disable=import-outside-toplevel

    start = time.perf_counter()
    for _ in range(number):
        result = vm["main"](*[tvm.runtime.tensor(a, device) for a in arrays])
        for field in _fields(result):
            field.numpy()
    return (time.perf_counter() - start) / number


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
