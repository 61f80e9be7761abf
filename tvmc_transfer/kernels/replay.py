"""Replaying a schedule tuned for one workload on another workload of the same kernel class.

A MetaSchedule trace is a program of schedule primitives whose random choices (decisions) were sampled for the
source workload's shapes. Replayed on a workload of other shapes, most of it still applies: the block and loop
structure is the class's. What may no longer fit are the decisions, and they are remapped, not thrown away:

- ``SamplePerfectTile``: the factors must multiply to the loop's new extent. Rule: among all factorizations of
  the new extent into the same number of factors whose innermost factor respects ``max_innermost_factor``, take
  the one nearest to the old factors by log-distance, ``sum_i |log f_i - log g_i|`` (ties: the
  lexicographically smallest factor list, so the result is deterministic).
- ``SampleCategorical``: an index past the candidate list is clamped to its last entry.
- ``SampleComputeLocation``: TVM itself moves a location that no longer exists to the nearest valid one before
  it (and to the root when there is none); we count it as remapped when the decision changed.

Block names that differ only in counters (``lv8_red`` / ``lv330_red``) are renamed in the trace by their position
in the class's normal form. A schedule of a kernel with the same anchor and another epilogue (``classes.py``) is
fitted to the target's epilogue first. A longer target epilogue (``conv2d+bias+relu`` on
``conv2d+bias+add+relu``, ``matmul+bias`` on ``matmul+bias+relu``): the target's extra epilogue blocks are
inlined into the blocks that consume them (``compute_inline``), which leaves it with the source's blocks; those
inlines become the first instructions of the replayed trace. A shorter one (``conv2d+bias+relu`` on
``conv2d+bias``): the instructions on the source's extra epilogue blocks are left out, with every instruction
that uses what they return (MetaSchedule inlines such elementwise blocks anyway, and that is all it does with
them). Either way the first epilogue blocks and the last one correspond. Every replayed schedule must still pass the postprocessors, build and match the
unscheduled kernel numerically before it is used (``check.py``).
"""

import logging
import math

import attrs

from ..errors import one_line

log = logging.getLogger("tvmc")

DECISION_KINDS = ("SamplePerfectTile", "SampleCategorical", "SampleComputeLocation")


class ReplayError(Exception):
    """A trace that cannot be replayed on the target workload (the reason is in the message)."""


@attrs.frozen
class Replayed:
    schedule: object  # tvm.s_tir.Schedule of the target workload, postprocessors not yet applied
    remapped: int  # decisions changed to fit the target


def _divisors(n: int) -> list:
    small = [d for d in range(1, math.isqrt(n) + 1) if n % d == 0]
    return sorted(set(small + [n // d for d in small]))


def nearest_factors(extent: int, old: list, max_innermost: int = 0, limit: int = 200_000) -> list:
    """The factorization of ``extent`` into ``len(old)`` factors nearest to ``old`` by log-distance.

    ``max_innermost`` > 0 bounds the last factor (MetaSchedule's ``max_innermost_factor``).

    >>> nearest_factors(28, [1, 56, 1, 2])
    [1, 14, 1, 2]
    >>> nearest_factors(7, [1, 4, 4, 4], max_innermost=64)
    [1, 1, 1, 7]
    """
    n = len(old)
    extent = int(extent)
    if n == 0 or extent < 1:
        raise ReplayError(f"cannot tile a loop of extent {extent} into {n} factors")
    logs = [math.log(max(int(g), 1)) for g in old]
    divisors = _divisors(extent)
    best = None
    visited = 0

    def walk(position: int, rest: int, chosen: list, cost: float):
        nonlocal best, visited
        visited += 1
        if visited > limit or (best is not None and cost > best[0] + 1e-9):
            return
        if position == n - 1:
            if max_innermost > 0 and rest > max_innermost:
                return
            total = round(cost + abs(math.log(rest) - logs[position]), 9)  # equal distances tie exactly
            candidate = (total, chosen + [rest])
            if best is None or candidate < best:
                best = candidate
            return
        for d in divisors:
            if d > rest:
                break
            if rest % d == 0:
                walk(position + 1, rest // d, chosen + [d], cost + abs(math.log(d) - logs[position]))

    walk(0, extent, [], 0.0)
    if best is None:
        raise ReplayError(f"no factorization of {extent} into {n} factors with innermost <= {max_innermost}")
    return best[1]


def rename_blocks(trace, names: dict, drop: tuple = (), drop_consumers: bool = False):
    """The trace with ``GetSBlock`` names replaced per ``names`` (source name -> target name), and without the
    blocks named in ``drop``: their ``GetSBlock`` and every instruction that uses what a left-out one returned;
    with ``drop_consumers`` (the whole epilogue left out), also without ``GetConsumers`` and what uses it."""
    from tvm.s_tir.schedule import Instruction, Trace  # pylint: disable=import-outside-toplevel

    if not drop and not drop_consumers and (not names or all(k == v for k, v in names.items())):
        return trace
    insts, decisions, gone = [], {}, set()
    for inst in trace.insts:
        new = inst
        dropped = (inst.kind.name == "GetSBlock" and str(inst.attrs[0]) in drop) or (drop_consumers and inst.kind.name == "GetConsumers")
        if dropped or any(_uses(x, gone) for x in inst.inputs):
            gone.update(inst.outputs)
            continue
        if inst.kind.name == "GetSBlock" and str(inst.attrs[0]) in names:
            new = Instruction(inst.kind, list(inst.inputs), [names[str(inst.attrs[0])], *list(inst.attrs)[1:]], list(inst.outputs))
        insts.append(new)
        decision = trace.get_decision(inst)
        if decision is not None:
            decisions[new] = decision
    return Trace(insts, decisions)


def _uses(value, gone: set) -> bool:
    """Whether an instruction input is (or, a list, holds) a random variable in ``gone``."""
    if isinstance(value, (list, tuple)) or type(value).__name__ == "Array":
        return any(_uses(v, gone) for v in value)
    try:
        return value in gone
    except TypeError:
        return False


def _decisions(trace) -> list:
    """``(kind, decision)`` of every sampling instruction, in order (post-processing part excluded)."""
    result = []
    for inst in trace.insts:
        if inst.kind.name == "EnterPostproc":
            break
        if inst.kind.name in DECISION_KINDS:
            result.append((inst.kind.name, _plain(trace.get_decision(inst))))
    return result


def _plain(value):
    if value is None:
        return None
    try:
        return [int(v) for v in value]
    except TypeError:
        return int(value)


def replay(trace, workload_mod, block_names: dict | None = None, inline: tuple = (), drop: tuple = (), drop_consumers: bool = False) -> Replayed:
    """Apply ``trace`` (post-processing removed) to a fresh schedule of ``workload_mod``, remapping decisions,
    after inlining the target's blocks named in ``inline`` into their consumers and leaving out the source's
    blocks named in ``drop`` (``rename_blocks``; ``drop_consumers`` when the target has no epilogue at all).

    Raises ``ReplayError`` when a primitive fails on the target (a block or loop the trace needs is missing,
    an illegal compute-at, a block that cannot be inlined, ...).
    """
    from tvm import s_tir  # pylint: disable=import-outside-toplevel

    trace = rename_blocks(trace, block_names or {}, drop, drop_consumers)
    sch = s_tir.Schedule(workload_mod)
    try:
        for name in inline:
            sch.compute_inline(sch.get_sblock(name))
    except Exception as err:  # pylint: disable=broad-except
        raise ReplayError(f"cannot inline the epilogue block {name}: {one_line(err)}") from None
    changed = 0

    def provider(inst, inputs, attrs, decision):
        nonlocal changed
        kind = inst.kind.name
        if decision is None:
            return decision
        if kind == "SamplePerfectTile":
            extent = sch.get(inputs[0]).extent
            if not hasattr(extent, "value"):
                raise ReplayError("a tiled loop has a symbolic extent")
            old = [int(f) for f in decision]
            max_innermost = int(attrs[1]) if len(attrs) > 1 else 0
            fits = math.prod(old) == int(extent.value) and (max_innermost <= 0 or old[-1] <= max_innermost)
            if fits:
                return decision
            changed += 1
            return nearest_factors(int(extent.value), old, max_innermost)
        if kind == "SampleCategorical":
            count = len(attrs[0])
            if not 0 <= int(decision) < count:
                changed += 1
                return min(max(int(decision), 0), count - 1)
        return decision

    try:
        trace.apply_to_schedule(sch, remove_postproc=True, decision_provider=provider)
    except ReplayError:
        raise
    except Exception as err:  # TVM's ScheduleError and friends: the trace does not fit this workload
        raise ReplayError(one_line(err)) from None
    # TVM remaps compute locations itself; count those too.
    before = _decisions(trace)
    after = _decisions(sch.trace)
    located = sum(1 for (kind, a), (_, b) in zip(before, after) if kind == "SampleComputeLocation" and a != b)
    return Replayed(sch, changed + located)


@attrs.frozen
class ReplayCounts:
    """What replaying a kernel's candidates came to: candidates tried (duplicates not counted), those that did
    not replay or failed a postprocessor, and the sampling decisions remapped to the kernel's shapes."""

    tried: int = 0
    invalid: int = 0
    remapped: int = 0


def replay_candidates(task, klass, candidates, target) -> tuple:
    """Replay and post-process every candidate and drop duplicates: ``[(schedule, candidate)]`` in the
    candidates' order, the ``TuneContext`` of the kernel they were post-processed in, and ``ReplayCounts``."""
    from tvm.s_tir import meta_schedule as ms  # pylint: disable=import-outside-toplevel
    from tvm_ffi import structural_hash

    context = ms.TuneContext(mod=task.mod, target=target, space_generator="post-order-apply", task_name=task.name)
    postprocs = list(context.space_generator.postprocs)
    seen = set()
    replayed = []
    tried = invalid = remapped = 0
    for candidate in candidates:
        source = candidate.workload.kernel_class
        inline, drop = klass.epilogue_plan(source)  # nothing to fit within a class
        names = dict(zip([b for b in source.blocks if b not in drop], [b for b in klass.blocks if b not in inline]))
        try:
            fitted = replay(candidate.record.trace, task.mod, names, inline, drop, klass.consumers_differ(source))
        except ReplayError as err:
            tried, invalid = tried + 1, invalid + 1
            log.debug("%s: %s does not replay: %s", task.name, candidate.describe(), err)
            continue
        sch = fitted.schedule
        sch.enter_postproc()
        if not all(_apply(p, sch) for p in postprocs):
            tried, invalid = tried + 1, invalid + 1
            log.debug("%s: %s fails a postprocessor", task.name, candidate.describe())
            continue
        key = structural_hash(sch.mod)
        if key in seen:
            continue  # another source record led to the same schedule here: measured once
        seen.add(key)
        tried += 1
        remapped += fitted.remapped
        replayed.append((sch, candidate))
    return replayed, context, ReplayCounts(tried, invalid, remapped)


def _apply(postproc, sch) -> bool:
    try:
        return bool(postproc.apply(sch))
    except Exception:  # pylint: disable=broad-except
        return False
