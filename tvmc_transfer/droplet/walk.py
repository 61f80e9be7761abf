"""Droplet search's walk, free of TVM: the t-test and the Holm correction that decide a move, and the
coordinate search itself.

``Walk`` knows points only through ``space.neighbours(point, step)`` and ``space.widest(point, cap)``;
``droplet/search.py`` gives it a ``DecisionSpace`` and the measured times, and turns it into a search strategy.
"""

import itertools
import math
import statistics

import attrs


def _continued_fraction(a: float, b: float, x: float) -> float:
    """The continued fraction of the regularized incomplete beta function (modified Lentz)."""
    tiny, c, d = 1e-300, 1.0, 1.0 - (a + b) * x / (a + 1.0)
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 300):
        for numerator in (m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)), -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1))):
            d = 1.0 + numerator * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + numerator / c
            c = c if abs(c) > tiny else tiny
            h *= d * c
        if abs(d * c - 1.0) < 1e-15:
            break
    return h


def _incomplete_beta(a: float, b: float, x: float) -> float:
    """I_x(a, b), the regularized incomplete beta function."""
    if x <= 0.0 or x >= 1.0:
        return 0.0 if x <= 0.0 else 1.0
    front = math.exp(math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x))
    if x < (a + 1.0) / (a + b + 2.0):
        return front * _continued_fraction(a, b, x) / a
    return 1.0 - front * _continued_fraction(b, a, 1.0 - x) / b


def student_t_cdf(t: float, df: float) -> float:
    """P(T <= t) for Student's t with ``df`` degrees of freedom (any real ``df`` > 0, as Welch's test needs).

    >>> round(student_t_cdf(-2.015048, 5), 6)
    0.05
    """
    tail = 0.5 * _incomplete_beta(df / 2.0, 0.5, df / (df + t * t))
    return tail if t <= 0 else 1.0 - tail


def welch_less(candidate, incumbent) -> float:
    """One-sided Welch t-test p-value of mean(candidate) < mean(incumbent), as SciPy's
    ``ttest_ind(equal_var=False, alternative="less")`` computes it, without SciPy's per-call cost (a walk
    tests thousands of pairs). NaN when both sides have no spread and the same mean."""
    na, nb = len(candidate), len(incumbent)
    ma, mb = statistics.fmean(candidate), statistics.fmean(incumbent)
    va, vb = statistics.variance(candidate, ma) / na, statistics.variance(incumbent, mb) / nb
    if va + vb == 0.0:
        return math.nan if ma == mb else (0.0 if ma < mb else 1.0)
    df = (va + vb) ** 2 / (va * va / (na - 1) + vb * vb / (nb - 1))
    return student_t_cdf((ma - mb) / math.sqrt(va + vb), df)


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
    p = welch_less(candidate, incumbent)
    return faster and p < pvalue, p  # NaN (no evidence either way) refuses


def holm(p_values, level: float) -> list:
    """Holm's step-down procedure: the Holm-adjusted p of each hypothesis, or None where it is not rejected
    at family-wise level ``level``. NaN p-values are not tested (and count in the family).

    >>> holm([0.001, 0.04, 0.01, 0.5], 0.05)
    [0.004, None, 0.03, None]
    """
    order = sorted((p, i) for i, p in enumerate(p_values) if not math.isnan(p))
    adjusted, m, worst = [None] * len(p_values), len(p_values), 0.0
    for rank, (p, i) in enumerate(order):
        if p >= level / (m - rank):
            break
        worst = max(worst, min(1.0, (m - rank) * p))
        adjusted[i] = worst
    return adjusted


@attrs.frozen
class Move:
    """An accepted move at trial ``trial``: the incumbent took ``before`` seconds (mean of its control beside
    the batch), the neighbour that won the batch ``selected``; ``p_value`` is Holm-adjusted over the batch.
    The winner of a noisy batch looks faster than it is, so the gain is reported from ``after``: the new
    incumbent re-measured (its next control), a measurement that did not select it (None: it failed)."""

    before: float
    selected: float
    p_value: float
    trial: int
    after: float | None = None

    @property
    def gain(self) -> float | None:
        return self.before / self.after if self.after else None


class Walk:
    """One task's droplet search, free of TVM: the incumbent, the neighbourhood still to try, the moves.

    ``space`` gives ``neighbours(point, step)`` and ``widest(point, cap)``; ``samples`` are the start's
    measured seconds. The caller takes points with ``propose()``, reports each tried one with
    ``observe(point, samples)`` (``None``: it failed), and calls ``conclude()`` after each batch.

    A caller that re-measures the incumbent beside each batch passes those samples to ``control(samples)``
    before ``conclude()``. A neighbour must then be significantly faster than both measurements of the
    incumbent: the one that made it the incumbent (``samples``) and the control taken beside the batch. Against
    old samples alone, a slowdown of the machine since then passes for a faster neighbour; against the control
    alone, a spike during the control does. The neighbours of a batch are one family: Holm's correction keeps
    the chance of any false move per batch at ``pvalue``. After a move the next control confirms it; a walk
    that ends right after a move wants one more (``unconfirmed``). A walk that moved ends with its start and
    its final incumbent measured side by side (``close``), so its reported gain compares one moment's times.

    ``order(points)``, if given, returns a neighbourhood's points in the order to try them (a cost model's).
    ``diagonal`` K > 1: after a batch without a move, the K fastest neighbours seen around the incumbent that
    beat its mean, each on other axes, are combined (every subset of two or more) and tried next.
    """

    def __init__(self, space, start, samples, budget: int, pvalue: float, max_step: int | None = None, order=None, diagonal: int = 0):
        self.space, self.budget, self.pvalue, self.max_step = space, budget, pvalue, max_step
        self.order, self.diagonal = order, diagonal
        self.start, self.incumbent, self.samples = start, start, tuple(samples)
        self.start_samples = self.samples
        self.closing, self.closed = None, False  # (start, final) measured side by side once the walk ended
        self.trials, self.moves, self.batch = 0, [], []
        self.batches, self.reference = 0, None  # batches concluded; this batch's control samples
        self.confirmed, self.unconfirmed = None, False  # the last move's confirming samples; one is wanted
        self.seen, self._combined = {start}, set()  # tried points; the diagonal ones among them
        self.exhausted = self.converged = False
        self._restart()

    def _restart(self) -> None:
        self.axial = []  # (mean, point) of the valid neighbours along one axis measured around the incumbent
        self._queue = self._proposals()

    def _proposals(self):
        def rings():
            widest, step = self.space.widest(self.incumbent, self.max_step), 1
            while True:
                yield [p for p in self.space.neighbours(self.incumbent, step) if p not in self.seen]
                if step >= widest:
                    return
                step = min(2 * step, widest)

        points = rings() if self.order is None else [self.order(list(dict.fromkeys(itertools.chain.from_iterable(rings()))))]
        for ring in points:
            for point in ring:
                if point not in self.seen:
                    self.seen.add(point)
                    yield point

    def _diagonals(self) -> list:
        """Untried combinations of the K fastest axial neighbours that beat the incumbent, on disjoint axes."""
        base, chosen, used = statistics.fmean(self.samples), [], set()
        for mean, point in sorted(self.axial, key=lambda v: v[0]):
            moved = {k for k, (a, b) in enumerate(zip(self.incumbent, point)) if a != b}
            if mean < base and moved and not moved & used:
                chosen.append((moved, point))
                used |= moved
            if len(chosen) == self.diagonal:
                break
        result = []
        for size in range(2, len(chosen) + 1):
            for subset in itertools.combinations(chosen, size):
                point = list(self.incumbent)
                for moved, neighbour in subset:
                    for k in moved:
                        point[k] = neighbour[k]
                if tuple(point) not in self.seen:
                    result.append(tuple(point))
        return result if self.order is None or not result else self.order(result)

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
        if samples and point not in self._combined:
            self.axial.append((statistics.fmean(samples), point))

    def control(self, samples) -> None:
        """The incumbent re-measured beside the current batch (``None``: that measurement failed). The first
        control is where the walk reports it started: the start's record may be from another moment, or
        another machine. The first control after a move confirms it."""
        self.reference = tuple(samples) if samples else None
        if self.reference and self.batches == 0 and not self.moves:
            self.start_samples = self.reference
        if self.unconfirmed:
            self.unconfirmed = False
            if self.reference:
                self.confirmed = self.reference
                self.moves[-1] = attrs.evolve(self.moves[-1], after=statistics.fmean(self.reference))

    def close(self, start, final) -> None:
        """The start and the final incumbent measured side by side, in one batch after the last move (``None``:
        a measurement failed). The walk then reports both from that batch: the same moment, the same load. A
        walk that ended right after a move takes ``final`` as that move's confirmation."""
        if self.unconfirmed:
            self.control(final)
        self.closed = True
        if start and final:
            self.closing = (tuple(start), tuple(final))
            self.start_samples = self.closing[0]

    @property
    def final_samples(self) -> tuple:
        """Where the walk ended, as measured apart from the test that chose it: beside the start in the closing
        batch; else the last move's confirming control (its winning samples if that failed), or the start's."""
        if not self.moves:
            return self.start_samples
        if self.closing:
            return self.closing[1]
        return self.confirmed if self.moves[-1].after is not None else self.samples

    def conclude(self) -> Move | None:
        """Take the fastest neighbour of the batch that Holm's procedure finds significantly faster than the
        incumbent (than its control too, if the batch has one), if any; converge when there is nothing left.
        A neighbour's p is the larger of its two tests (both must pass), then Holm-adjusted."""
        batch, self.batch = self.batch, []
        bases = [self.samples] + ([self.reference] if self.reference else [])
        self.reference = None
        self.batches += 1
        valid = [(statistics.fmean(s), point, s) for point, s in batch if s]
        tests = [[significantly_faster(s, base, self.pvalue) for base in bases] for _, _, s in valid]
        p_values = [max(p for _, p in t) if not any(math.isnan(p) for _, p in t) else math.nan for t in tests]
        adjusted = holm(p_values, self.pvalue)
        # Fewer than two samples on a side: no test, the means decide (as DropletTuner), uncorrected.
        passed = [(mean, point, s, adjusted[i] if adjusted[i] is not None else math.nan)
                  for i, (mean, point, s) in enumerate(valid)
                  if adjusted[i] is not None or (math.isnan(p_values[i]) and all(ok for ok, _ in tests[i]))]
        if not passed:
            diagonals = self._diagonals() if self.diagonal > 1 else []
            if diagonals:
                self._queue = itertools.chain(self._next_diagonals(diagonals), self._queue)
                self.exhausted = False
            self.converged = self.exhausted
            return None
        mean, point, samples, p_value = min(passed, key=lambda v: v[0])
        move = Move(statistics.fmean(bases[-1]), mean, p_value, self.trials)
        self.incumbent, self.samples = point, samples
        self.exhausted, self.unconfirmed = False, True
        self._restart()
        self.moves.append(move)
        return move

    def _next_diagonals(self, points):
        for point in points:
            if point not in self.seen:
                self.seen.add(point)
                self._combined.add(point)
                yield point
