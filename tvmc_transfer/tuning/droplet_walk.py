"""Droplet search's walk, free of TVM: the t-test that decides a move, and the coordinate search itself.

``Walk`` knows points only through ``space.neighbours(point, step)`` and ``space.widest(point, cap)``;
``droplet.py`` gives it a ``DecisionSpace`` and the measured times, and turns it into a search strategy.
"""

import math
import statistics
import warnings

import attrs


def significantly_faster(candidate, incumbent, pvalue: float) -> tuple:
    """``(accept, p)``: is ``candidate`` (seconds, one per repeat) faster than ``incumbent``, by a one-sided
    Welch t-test at level ``pvalue``? With fewer than two samples on a side no test is possible: the means
    decide and ``p`` is NaN (DropletTuner does the same).

    >>> significantly_faster([1.0, 1.1, 0.9], [2.0, 2.1, 1.9], 0.05)[0]
    True
    >>> significantly_faster([1.0, 1.5, 0.5], [1.1, 1.6, 0.6], 0.05)[0]
    False
    """
    faster = statistics.fmean(candidate) < statistics.fmean(incumbent)
    if len(candidate) < 2 or len(incumbent) < 2:
        return faster, math.nan
    from scipy import stats  # pylint: disable=import-outside-toplevel

    with warnings.catch_warnings():  # identical samples: SciPy warns and returns NaN, which refuses
        warnings.simplefilter("ignore", RuntimeWarning)
        p = float(stats.ttest_ind(candidate, incumbent, equal_var=False, alternative="less").pvalue)
    return faster and p < pvalue, p


@attrs.frozen
class Move:
    """An accepted move: the walk went from ``before`` to ``after`` seconds (means) at trial ``trial``."""

    before: float
    after: float
    p_value: float
    trial: int


class Walk:
    """One task's droplet search, free of TVM: the incumbent, the neighbourhood still to try, the moves.

    ``space`` gives ``neighbours(point, step)`` and ``widest(point, cap)``; ``samples`` are the start's
    measured seconds. The caller takes points with ``propose()``, reports each tried one with
    ``observe(point, samples)`` (``None``: it failed), and calls ``conclude()`` after each batch.

    A caller that re-measures the incumbent beside each batch passes those samples to ``control(samples)``
    before ``conclude()``. A neighbour must then be significantly faster than both measurements of the
    incumbent: the one that made it the incumbent (``samples``) and the control taken beside the batch. Against
    old samples alone, a slowdown of the machine since then passes for a faster neighbour; against the control
    alone, a spike during the control does.
    """

    def __init__(self, space, start, samples, budget: int, pvalue: float, max_step: int | None = None):
        self.space, self.budget, self.pvalue, self.max_step = space, budget, pvalue, max_step
        self.incumbent, self.samples = start, tuple(samples)
        self.start_samples = self.samples
        self.trials, self.moves, self.batch = 0, [], []
        self.batches, self.reference = 0, None  # batches concluded; this batch's control samples
        self.seen = {start}
        self.exhausted = self.converged = False
        self._queue = self._proposals()

    def _proposals(self):
        widest, step = self.space.widest(self.incumbent, self.max_step), 1
        while True:
            for point in self.space.neighbours(self.incumbent, step):
                if point not in self.seen:
                    self.seen.add(point)
                    yield point
            if step >= widest:
                return
            step = min(2 * step, widest)

    @property
    def left(self) -> int:
        return self.budget - self.trials

    @property
    def done(self) -> bool:
        return self.converged or self.left <= 0

    def propose(self):
        """The next untried point of the neighbourhood; ``None`` once the widest step is exhausted."""
        point = next(self._queue, None)
        self.exhausted = point is None
        return point

    def observe(self, point, samples) -> None:
        self.trials += 1
        self.seen.add(point)
        self.batch.append((point, tuple(samples) if samples else None))

    def control(self, samples) -> None:
        """The incumbent re-measured beside the current batch (``None``: that measurement failed). The first
        control is where the walk reports it started: the start's record may be from another moment, or
        another machine."""
        self.reference = tuple(samples) if samples else None
        if self.reference and self.batches == 0 and not self.moves:
            self.start_samples = self.reference

    @property
    def final_samples(self) -> tuple:
        """Where the walk ended, as measured: the last move's samples, or the start's."""
        return self.samples if self.moves else self.start_samples

    def conclude(self) -> Move | None:
        """Take the batch's fastest significant improvement over the incumbent (over its control too, if the
        batch has one), if any; converge when there is nothing left. The move's p is the larger of the two."""
        batch, self.batch = self.batch, []
        bases = [self.samples] + ([self.reference] if self.reference else [])
        self.reference = None
        self.batches += 1
        valid = sorted(((statistics.fmean(s), point, s) for point, s in batch if s), key=lambda v: v[0])
        for mean, point, samples in valid:
            tests = [significantly_faster(samples, base, self.pvalue) for base in bases]
            if all(ok for ok, _ in tests):
                p_values = [p for _, p in tests]
                p_value = math.nan if any(math.isnan(p) for p in p_values) else max(p_values)
                break
        else:
            self.converged = self.exhausted
            return None
        move = Move(statistics.fmean(bases[-1]), mean, p_value, self.trials)
        self.incumbent, self.samples = point, samples
        self.exhausted = False
        self._queue = self._proposals()
        self.moves.append(move)
        return move
