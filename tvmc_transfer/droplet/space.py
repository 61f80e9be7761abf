"""Droplet search's coordinates: the sampling decisions of a MetaSchedule trace, one ordered axis each.

A trace's random decisions are the knobs of its schedule. Every ``SamplePerfectTile`` is an axis over the
ordered list of the valid factorizations of its loop (``max_innermost_factor`` respected), every
``SampleCategorical`` an axis over its candidates (unroll steps, vectorize choices), every
``SampleComputeLocation`` an axis over the locations where its block may be computed. A point is one decision
per axis; ``DecisionSpace.realize`` replays the trace with those decisions and runs the postprocessors, which
is also how invalid points are told apart.

The valid locations of a compute-at are not known before the instructions above it have run, so the axes are
read while the trace replays (``Trace.apply_to_schedule``'s decision provider), and again around every new
incumbent: a tile change can make a loop a unit loop, and unit loops are no compute-at location.

Points are told apart by their scheduled module (its structural hash), which is also how ``recorded_points``
recognizes a point the database has measured already, whatever run or search measured it.
"""

import attrs
from tvm import s_tir
from tvm_ffi import structural_equal

from ..records.database import run_samples
from ..tune.search import stored_hash

TILE, CATEGORICAL, COMPUTE_LOCATION = "tile", "categorical", "compute-location"
_KINDS = {"SamplePerfectTile": TILE, "SampleCategorical": CATEGORICAL, "SampleComputeLocation": COMPUTE_LOCATION}


@attrs.frozen
class Axis:
    """One knob: the instruction's position in the trace, its kind, and its valid decisions in order."""

    position: int
    kind: str
    values: tuple


def factorizations(extent: int, parts: int, max_innermost: int = -1) -> list:
    """Every ordered way to write ``extent`` as a product of ``parts`` factors, in lexicographic order,
    keeping only those whose innermost factor is at most ``max_innermost`` (-1: no limit).

    >>> factorizations(4, 2)
    [(1, 4), (2, 2), (4, 1)]
    >>> factorizations(8, 2, max_innermost=2)
    [(4, 2), (8, 1)]
    """
    if parts == 1:
        return [(extent,)] if max_innermost < 0 or extent <= max_innermost else []
    result = []
    for first in range(1, extent + 1):
        if extent % first == 0:
            result += [(first, *rest) for rest in factorizations(extent // first, parts - 1, max_innermost)]
    return result


def decision_value(decision):
    """A decision as plain Python: a tuple of ints for a tile, an int otherwise."""
    if isinstance(decision, int):
        return decision
    return tuple(int(x) for x in decision)


def new_schedule(mod):
    return s_tir.Schedule(mod, seed=1, debug_mask=0, error_render_level="none")


class DecisionSpace:
    """The axes of one task's trace, and how a point (one decision per axis) becomes a schedule.

    >>> space = DecisionSpace(task_mod, record.trace, context.space_generator.postprocs)   # doctest: +SKIP
    >>> point = space.start                                                                 # doctest: +SKIP
    >>> [(a.kind, len(a.values)) for a in space.axes(point)]                                # doctest: +SKIP
    >>> sch, realized = space.realize(space.neighbours(point, 1)[0])                       # doctest: +SKIP
    """

    def __init__(self, mod, trace, postprocs):
        self.mod = mod
        self.postprocs = list(postprocs)
        self.trace = trace
        insts = list(trace.insts)
        end = next((i for i, inst in enumerate(insts) if inst.kind.name == "EnterPostproc"), len(insts))
        decisions = trace.decisions
        self.positions = tuple(i for i in range(end) if insts[i].kind.name in _KINDS and insts[i] in decisions)
        self._index = {insts[i]: k for k, i in enumerate(self.positions)}
        self.start = tuple(decision_value(decisions[insts[i]]) for i in self.positions)
        self._axes = {}

    def _replay(self, point, on_sample=None):
        """Apply the trace to a fresh schedule with ``point``'s decisions; ``on_sample(sch, k, inputs, attrs)``
        sees each axis's instruction before it runs."""
        sch = new_schedule(self.mod)

        def provider(inst, inputs, attrs, decision):
            k = self._index.get(inst)
            if k is None:
                return decision
            if on_sample is not None:
                on_sample(sch, k, inst.kind.name, inputs, attrs)
            value = point[k]
            return list(value) if isinstance(value, tuple) else value

        self.trace.apply_to_schedule(sch, remove_postproc=True, decision_provider=provider)
        return sch

    def _read_point(self, sch) -> tuple:
        insts, decisions = list(sch.trace.insts), sch.trace.decisions
        return tuple(decision_value(decisions[insts[i]]) for i in self.positions)

    def realize(self, point):
        """``(schedule, realized point)`` for ``point``, postprocessed and ready to build; ``(None, None)`` when
        the trace does not replay or a postprocessor rejects it. MetaSchedule snaps a compute location that
        is not valid to the one before it, so the realized point can differ from the one asked for."""
        try:
            sch = self._replay(point)
            sch.enter_postproc()
            for postproc in self.postprocs:
                if not postproc.apply(sch):
                    return None, None
            return sch, self._read_point(sch)
        except Exception:  # pylint: disable=broad-except  # a ScheduleError: the point is not a schedule
            return None, None

    def axes(self, point) -> tuple:
        """The axes around ``point``: each instruction's valid decisions, given the decisions before it."""
        if point not in self._axes:
            found = {}

            def on_sample(sch, k, kind, inputs, attrs):
                found[k] = Axis(self.positions[k], _KINDS[kind], _domain(sch, kind, inputs, attrs, point[k]))

            try:
                self._replay(point, on_sample)
            except Exception:  # pylint: disable=broad-except
                pass  # axes after the failing instruction stay unknown: they do not move
            self._axes[point] = tuple(found.get(k, Axis(p, "fixed", (point[k],))) for k, p in enumerate(self.positions))
        return self._axes[point]

    def widest(self, point, cap: int | None = None) -> int:
        """The widest step of the neighbourhood: the longest axis (as DropletTuner), or ``cap``."""
        longest = max((len(a.values) - 1 for a in self.axes(point)), default=0)
        return max(1, min(longest, cap) if cap else longest)

    def neighbours(self, point, step: int) -> list:
        """The points ``step`` positions away from ``point`` along one axis, axis by axis, + before -."""
        result = []
        for k, axis in enumerate(self.axes(point)):
            if point[k] not in axis.values:
                continue
            i = axis.values.index(point[k])
            for j in (i + step, i - step):
                if 0 <= j < len(axis.values):
                    result.append(point[:k] + (axis.values[j],) + point[k + 1 :])
        return result

    @staticmethod
    def module_hash(sch) -> int:
        return stored_hash(sch.mod)  # as recorded: a prepacked kernel's rewrite annotation hashes as read back


def _domain(sch, kind, inputs, attrs, current) -> tuple:
    if kind == "SamplePerfectTile":
        extent = sch.get(inputs[0]).extent
        if not hasattr(extent, "value"):  # a symbolic loop has a single (trivial) decision
            return (current,)
        return tuple(factorizations(int(extent.value), int(attrs[0]), int(attrs[1])))
    if kind == "SampleCategorical":
        return tuple(i for i, p in enumerate(attrs[1]) if float(p) > 0) or (current,)
    return _compute_locations(sch, inputs[0])


def _compute_locations(sch, block) -> tuple:
    """The valid compute-at locations of ``block``: MetaSchedule snaps an invalid decision to the valid one
    before it, so probing every index from the inline mark (-2) up to the deepest valid one lists them all."""

    def probe(decision):
        copy = sch.copy()  # sampling is traced: probe on a copy, the replay goes on unchanged
        copy.sample_compute_location(block, decision=decision)
        last = list(copy.trace.insts)[-1]
        return int(copy.trace.decisions[last])

    deepest = probe(1 << 20)
    return tuple(sorted({probe(d) for d in range(-2, deepest + 1)}))


def recorded_points(database, mod, controls=frozenset()) -> dict:
    """Structural hash of each scheduled module the database holds for ``mod`` -> (samples or None, trace).

    ``controls`` are samples of re-measurements (droplet's controls): such a record is not what a point was
    measured at, and would otherwise stand in for it when faster, so a replayed walk would test other numbers."""
    if database is None or not database.has_workload(mod):
        return {}
    workload, points, ours = database.commit_workload(mod), {}, {}
    for record in database.get_all_tuning_records():
        if record.workload not in ours:  # one workload object per workload in MetaSchedule's databases
            ours[record.workload] = record.workload.same_as(workload) or structural_equal(record.workload.mod, mod)
        if not ours[record.workload]:
            continue
        samples = run_samples(record.run_secs)
        if samples in controls:
            continue
        sch = new_schedule(mod)
        try:
            record.trace.apply_to_schedule(sch, remove_postproc=False)
        except Exception:  # pylint: disable=broad-except  # a record that no longer replays
            continue
        key = stored_hash(sch.mod)
        if key not in points or (samples and not points[key][0]):
            points[key] = (samples, record.trace)
    return points
