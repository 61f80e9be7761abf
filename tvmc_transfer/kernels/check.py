"""``KernelCheck``: is a scheduled kernel correct? Its outputs against the unscheduled kernel's on random inputs.

A candidate can be checked in two ways: by compiling its scheduled module here (``is_correct``), or by running
the library the builder already made of it (``library_is_correct``). The builder's library takes prepacked
weights (``RemoveWeightLayoutRewriteBlock``), so the check packs the random weights first, in NumPy, as the
schedule's layout-rewrite blocks say (``weight_packing``). That saves a second compile of every candidate:
a third of a transfer's search time on two cores."""

import time

import numpy as np

from .classes import main_func, sblocks
from .weight_layouts import relayout_plan

PREPROC = "meta_schedule.layout_rewrite_preproc"


class KernelCheck:
    """The unscheduled kernel's outputs on random inputs, to compare every candidate with; ``seconds``: how long
    one more run took, after the reference run (which warms up: a process's first kernel starts the thread
    pool, 0.1 s here). One run, no repeats: an estimate, good for kernels that take milliseconds."""

    def __init__(self, mod, target, rtol: float, seed: int = 0):
        import tvm  # pylint: disable=import-outside-toplevel

        self.tvm, self.target, self.rtol = tvm, target, rtol
        params = list(mod["main"].params)
        self.shapes = [(tuple(int(d) for d in p.shape), str(p.dtype)) for p in params]
        reference = tvm.compile(mod, target)
        self.inputs = self._inputs(np.random.default_rng(seed), positive=False)
        self.reference = self._run(reference, timed=True)
        if not all(np.all(np.isfinite(r)) for r in self.reference if r.dtype.kind == "f"):
            # e.g. sqrt of a random "variance": positive inputs keep every value finite
            self.inputs = self._inputs(np.random.default_rng(seed), positive=True)
            self.reference = self._run(reference, timed=True)

    def _inputs(self, rng, positive: bool) -> list:
        return [random_array(rng, shape, dtype, positive) for shape, dtype in self.shapes]

    def _run(self, lib, timed: bool = False, inputs=None) -> list:
        device = self.tvm.cpu()
        tensors = [self.tvm.runtime.tensor(a, device) for a in (self.inputs if inputs is None else inputs)]
        lib["main"](*tensors)
        outputs = [t.numpy() for t in tensors]
        if timed:  # once more, warm, on the same inputs (the outputs are kept above)
            start = time.perf_counter()
            lib["main"](*tensors)
            self.seconds = time.perf_counter() - start
        return outputs

    def error(self, scheduled_mod) -> float:
        """Largest error of the scheduled kernel, relative to the largest reference value (inf when it fails)."""
        try:
            outputs = self._run(self.tvm.compile(scheduled_mod, self.target))
        except Exception:  # pylint: disable=broad-except
            return float("inf")
        return self._worst(outputs, ())

    def library_error(self, path: str, packing: dict) -> float:
        """``error`` of the library the builder made at ``path`` of a scheduled kernel whose weights it takes
        packed as ``packing`` (``weight_packing``) says."""
        try:
            inputs = [packing[i](a) if i in packing else a for i, a in enumerate(self.inputs)]
            outputs = self._run(self.tvm.runtime.load_module(path), inputs=inputs)
        except Exception:  # pylint: disable=broad-except
            return float("inf")
        return self._worst(outputs, packing)

    def library_is_correct(self, path: str, packing: dict) -> bool:
        return self.library_error(path, packing) <= self.rtol

    def _worst(self, outputs, skip) -> float:
        """Largest relative error of ``outputs`` (every parameter after a run) against the reference run's,
        leaving out the parameters in ``skip`` (weights passed packed: inputs, not results)."""
        worst = 0.0
        for i, (ours, reference) in enumerate(zip(outputs, self.reference)):
            if i in skip:
                continue
            if ours.dtype.kind != "f":
                worst = max(worst, 0.0 if np.array_equal(ours, reference) else float("inf"))
                continue
            ours64, ref64 = ours.astype(np.float64), reference.astype(np.float64)
            same_nan = np.array_equal(np.isnan(ours64), np.isnan(ref64))
            finite = np.isfinite(ref64)
            if not same_nan or not np.array_equal(ours64[~finite & ~np.isnan(ref64)], ref64[~finite & ~np.isnan(ref64)]):
                return float("inf")
            if not finite.any():
                continue
            scale = max(float(np.max(np.abs(ref64[finite]))), np.finfo(np.float32).tiny)
            worst = max(worst, float(np.max(np.abs(ours64[finite] - ref64[finite]))) / scale)
        return worst

    def is_correct(self, scheduled_mod) -> bool:
        return self.error(scheduled_mod) <= self.rtol



def random_array(rng, shape, dtype, positive: bool = False):
    """A kernel's input: random floats (in [0.5, 1.5) when ``positive``), zeros of any other type (indices and
    flags: zeros are valid for any gather)."""
    if np.dtype(dtype).kind == "f":
        return (rng.uniform(0.5, 1.5, shape) if positive else rng.standard_normal(shape)).astype(dtype)
    return np.zeros(shape, dtype)


def weight_packing(scheduled_mod):
    """How the builder's library of ``scheduled_mod`` takes its weights: ``{parameter index: function from the
    weight array to the packed one}``, one per layout-rewrite block (none: the library takes the parameters as
    they are). None when a rewrite block is not a plain relayout of a whole parameter by floor-division,
    modulo, sums and products of its axes: such a candidate is checked by compiling it instead."""

    func = main_func(scheduled_mod)
    params = list(func.params)
    packing = {}
    for block in sblocks(func.body):
        if PREPROC not in block.annotations:
            continue
        plan = relayout_plan(block, params)
        if plan is None:
            return None
        packing[plan[0]] = plan[1]
    return packing
