"""``KernelCheck``: is a scheduled kernel correct? Its outputs against the unscheduled kernel's on random inputs."""

import time

import numpy as np


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
        arrays = []
        for shape, dtype in self.shapes:
            if np.dtype(dtype).kind == "f":
                values = rng.uniform(0.5, 1.5, shape) if positive else rng.standard_normal(shape)
                arrays.append(values.astype(dtype))
            else:  # indices and flags: zeros are valid for any gather
                arrays.append(np.zeros(shape, dtype))
        return arrays

    def _run(self, lib, timed: bool = False) -> list:
        device = self.tvm.cpu()
        tensors = [self.tvm.runtime.tensor(a, device) for a in self.inputs]
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
        worst = 0.0
        for ours, reference in zip(outputs, self.reference):
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

