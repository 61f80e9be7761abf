"""How a default schedule is checked: kernels built together, without LLVM's optimizations, each candidate's
outputs compared with the unscheduled kernel's (transfer's ``KernelCheck``).

A check needs two builds, the unscheduled kernel and the candidate. Built one at a time and JIT-compiled at -O3
as ``KernelCheck`` builds them, they were most of the time DenseNet-121's defaults took, LLVM optimizing each
unscheduled kernel (BENCHMARKS, "Figures moved out of the code"). Here every kernel of a batch goes into one module, is compiled at -O0
(``check_target``; the unscheduled kernels ran as fast from -O0 as from -O2 objects) and linked into one shared
library by the host's compiler, as a package is (an LLVM JIT per module took longer than writing the object
file).
"""

import logging
import os
import tempfile
import time

import numpy as np

from ..errors import one_line
from ..kernels.check import KernelCheck, random_array
from ..kernels.classes import main_func
from ..target import target_arch, target_features, target_json

log = logging.getLogger("tvmc")


def build_together(mods: list, target) -> list:
    """Each of ``mods`` (one-function kernels) built for ``target``, as an object ``lib["main"]`` runs: all in
    one compile, linked as one library (an LLVM JIT per module took longer than writing the object file).
    None for a kernel that does not build; when the whole fails, each is built on its own to find which."""
    import tvm  # pylint: disable=import-outside-toplevel


    if not mods:
        return []
    names = [f"k{i}" for i in range(len(mods))]
    functions = {tvm.ir.GlobalVar(name): main_func(mod).with_attr("global_symbol", name) for name, mod in zip(names, mods)}
    try:
        lib = _linked(tvm, tvm.compile(tvm.IRModule(functions), target))
        return [{"main": lib[name]} for name in names]
    except Exception as err:  # pylint: disable=broad-except
        if len(mods) == 1:
            log.debug("a kernel does not build for the check: %s", one_line(err, 200))
            return [None]
        return [build_together([mod], target)[0] for mod in mods]


def time_together(mods: list, target, workers: int = 1, runs: int = 10, budget: float = 0.05) -> list:
    """The seconds each of ``mods`` (scheduled one-function kernels) takes built for ``target`` (which must run
    here), as a package runs it: weights taken prepacked (``RemoveWeightLayoutRewriteBlock``, as MetaSchedule's
    builder does), built together (``build_together``) in ``workers`` threads (two builds at once took 0.68x
    the time of one on 2 cores), then run one at a time: the fastest of up to ``runs`` runs after a warm one,
    fewer where they pass ``budget`` seconds; inf for a kernel that does not build or run. Only a comparison of
    candidates for one kernel, in one process: nothing else runs meanwhile."""
    from concurrent.futures import ThreadPoolExecutor  # pylint: disable=import-outside-toplevel

    import tvm
    from tvm.s_tir.transform import RemoveWeightLayoutRewriteBlock

    unpacked = [RemoveWeightLayoutRewriteBlock(skip_tensor_rewrite=True)(mod) for mod in mods]
    size = -(-len(unpacked) // max(workers, 1)) or 1
    with ThreadPoolExecutor(max_workers=max(workers, 1)) as pool:
        built = [lib for libs in pool.map(lambda i: build_together(unpacked[i : i + size], target), range(0, len(unpacked), size)) for lib in libs]
    rng = np.random.default_rng(0)
    seconds = []
    for mod, lib in zip(unpacked, built):
        try:
            args = [tvm.runtime.tensor(random_array(rng, tuple(int(d) for d in p.shape), str(p.dtype)), tvm.cpu()) for p in mod["main"].params]
            lib["main"](*args)
            spent, best = time.perf_counter(), float("inf")
            for run in range(runs):
                if run >= 3 and time.perf_counter() - spent > budget:
                    break
                start = time.perf_counter()
                lib["main"](*args)
                best = min(best, time.perf_counter() - start)
        except Exception as err:  # pylint: disable=broad-except
            log.debug("a candidate does not run for its timing: %s", one_line(err, 200))
            best = float("inf")
        seconds.append(best)
    return seconds


class BuiltCheck(KernelCheck):
    """A ``KernelCheck`` of a kernel whose unscheduled form is built already (``build_together``: ``reference``
    is what ``lib["main"]`` runs it on), run once: ``KernelCheck`` compiles it on its own and runs it twice,
    timing the second run for transfer. ``built_error`` checks a candidate built the same way."""

    def __init__(self, mod, reference, rtol: float, seed: int = 0):  # pylint: disable=super-init-not-called
        import tvm  # pylint: disable=import-outside-toplevel

        self.tvm, self.target, self.rtol, self.seconds = tvm, None, rtol, None
        self.shapes = [(tuple(int(d) for d in p.shape), str(p.dtype)) for p in mod["main"].params]
        for positive in (False, True):  # positive inputs keep e.g. the sqrt of a random "variance" finite
            self.inputs = self._inputs(np.random.default_rng(seed), positive=positive)
            self.reference = self._run(reference)
            if all(np.all(np.isfinite(r)) for r in self.reference if r.dtype.kind == "f"):
                break

    def built_error(self, lib) -> float:
        """``error`` of a candidate built already."""
        try:
            outputs = self._run(lib)
        except Exception:  # pylint: disable=broad-except
            return float("inf")
        return self._worst(outputs, ())


def _linked(tvm, executable):
    """``executable`` linked as a shared library by the host's compiler and loaded; JIT-compiled when it cannot be."""
    with tempfile.TemporaryDirectory(prefix="tvmc-check-") as folder:
        path = os.path.join(folder, "kernels.so")
        try:
            executable.export_library(path)
        except Exception:  # pylint: disable=broad-except
            return executable.jit()
        return tvm.runtime.load_module(path)


def check_target(target):
    """The target the numeric check builds for: ``target`` itself when its code runs on this machine, else the
    host's generic ``llvm`` (a schedule computes the same numbers whatever instructions it is compiled to);
    either without LLVM's optimizations (``opt-level`` 0), which cost more than the check's runs
    (BENCHMARKS, "Figures moved out of the code")."""
    import tvm  # pylint: disable=import-outside-toplevel


    chosen = target if runs_here(target) else tvm.target.Target("llvm")
    return tvm.target.Target({**target_json(chosen), "opt-level": 0})


def runs_here(target) -> bool:
    """Whether code built for ``target`` (an llvm target) runs on this machine: its architecture, and no
    instructions this CPU lacks."""
    import tvm  # pylint: disable=import-outside-toplevel


    host = tvm.target.Target("llvm")
    if target.kind.name != "llvm" or target_arch(target) != target_arch(host):
        return False
    native = target_features(tvm.target.Target({"kind": "llvm", "mcpu": str(tvm.target.codegen.llvm_get_system_cpu())}))
    return target_features(target) <= native
