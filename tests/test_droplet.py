"""``tvmc tune --droplet``: droplet search as a MetaSchedule search strategy, on real TVM tasks.

The decision rule is checked on samples built here (a t-test is only as good as its inputs); the search is
checked on a real task with measurements we feed it, then on real measurements, then from the command line.
"""

import json
import math
import os
import shutil
import statistics

import numpy as np
import pytest
from scipy import stats
from tvm.s_tir import meta_schedule as ms

from conftest import FAST_TUNE, assert_matches_onnxruntime, run_cli
from tvmc_transfer import load_model, parse_target
from tvmc_transfer.droplet.phase import DropletOptions, refine_with_droplet
from tvmc_transfer.records.folder import CONTROLS, STARTS
from tvmc_transfer.droplet.search import CLOSE_FINAL, CLOSE_START, DropletSearch
from tvmc_transfer.droplet.space import COMPUTE_LOCATION, CATEGORICAL, TILE, DecisionSpace, factorizations
from tvmc_transfer.droplet.walk import Walk, significantly_faster, welch_less
from tvmc_transfer.build.intrinsics import load_tensor_intrinsics
from tvmc_transfer.tune.measure import MeasureOptions
from tvmc_transfer.records import TUNING_RECORDS
from tvmc_transfer.tune.task_logs import tune_contexts
from tvmc_transfer.build.tasks import extract_tasks

TARGET = "llvm -num-cores=2"
MEASURE = MeasureOptions(number=2, repeat=3, min_repeat_ms=5)
US = 1e-6


def record_lines(folder):
    with open(os.path.join(folder, TUNING_RECORDS)) as f:
        return [line for line in f if line.strip()]


def welch_p(a, b):
    """One-sided Welch p-value of mean(a) < mean(b), from the textbook formulas (not ttest_ind)."""
    va, vb = np.var(a, ddof=1) / len(a), np.var(b, ddof=1) / len(b)
    t = (np.mean(a) - np.mean(b)) / math.sqrt(va + vb)
    df = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))
    return float(stats.t.cdf(t, df))


# ---- the decision rule -------------------------------------------------------------------------------------


def test_factorizations_are_the_valid_tilings():
    tiles = factorizations(16, 4, 64)
    assert len(tiles) == math.comb(4 + 3, 3) == 35  # 2^4 over 4 factors: stars and bars
    assert tiles == sorted(set(tiles)) and all(math.prod(t) == 16 for t in tiles)
    limited = factorizations(12, 2, 4)
    assert limited == [(3, 4), (4, 3), (6, 2), (12, 1)]
    assert factorizations(7, 3) == [(1, 1, 7), (1, 7, 1), (7, 1, 1)]


def test_acceptance_rule_on_controlled_samples():
    incumbent = [10.0, 10.2, 9.8]
    faster = [8.0, 8.1, 7.9]
    ok, p = significantly_faster(faster, incumbent, 0.05)
    assert ok and p == pytest.approx(welch_p(faster, incumbent), rel=1e-9) and p < 1e-3
    noisy = [6.0, 12.0, 9.0]  # faster by its mean (9 < 10) but not beyond the noise
    ok, p = significantly_faster(noisy, incumbent, 0.05)
    assert not ok and p == pytest.approx(welch_p(noisy, incumbent), rel=1e-9) and 0.05 < p < 0.5
    assert significantly_faster(noisy, incumbent, 0.4)[0]  # ... which a lax level lets through
    slower = [12.0, 12.1, 11.9]
    ok, p = significantly_faster(slower, incumbent, 0.05)
    assert not ok and p == pytest.approx(welch_p(slower, incumbent), rel=1e-9) and p > 0.99
    ok, p = significantly_faster([5.0, 5.0], [5.0, 5.0], 0.05)  # identical: no evidence
    assert not ok and math.isnan(p)
    ok, p = significantly_faster([5.0, 5.0, 5.0], [6.0, 6.0, 6.0], 0.05)  # no noise at all: certain
    assert ok and p == 0.0
    ok, p = significantly_faster([9.0], incumbent, 0.05)  # one sample: no test, the means decide
    assert ok and math.isnan(p)


class Grid:
    """A space of integer points, ``sizes[k]`` values per axis: what ``Walk`` needs from a space."""

    def __init__(self, *sizes):
        self.sizes = sizes

    def widest(self, point, cap=None):
        longest = max(s - 1 for s in self.sizes)
        return min(longest, cap) if cap else longest

    def neighbours(self, point, step):
        result = []
        for k, size in enumerate(self.sizes):
            for j in (point[k] + step, point[k] - step):
                if 0 <= j < size:
                    result.append(point[:k] + (j,) + point[k + 1 :])
        return result


def run_walk(walk, times, batch=4, controls=False):
    """Drive ``walk`` with ``times(point) -> samples`` until it stops; return the points in the order tried.
    With ``controls``, the incumbent is measured again beside each batch."""
    tried = []
    while not walk.done:
        for _ in range(min(batch, walk.left)):
            point = walk.propose()
            if point is None:
                break
            tried.append(point)
            walk.observe(point, times(point))
        if not walk.batch and walk.exhausted:
            walk.converged = True
            break
        if controls:
            walk.control(times(walk.incumbent))
        walk.conclude()
    return tried


def test_walk_widens_the_step_moves_only_on_significant_gains_and_converges():
    planted, decoy = (4, 0), (0, 1)

    def times(point):
        if point == planted:
            return [5.0, 5.1, 4.9]
        if point == decoy:
            return [3.0, 15.0, 9.0]  # the lowest mean of its batch, but only noise
        return [10.0 + sum(point), 10.1 + sum(point), 9.9 + sum(point)]

    walk = Walk(Grid(8, 3), (0, 0), [10.0, 10.1, 9.9], budget=40, pvalue=0.05)
    tried = run_walk(walk, times)
    # Steps 1 and 2 bring nothing significant (the decoy is refused), so the step widens to 4 and finds it.
    assert tried[:6] == [(1, 0), (0, 1), (2, 0), (0, 2), (4, 0), (7, 0)]
    assert walk.incumbent == planted and len(walk.moves) == 1
    move = walk.moves[0]
    assert move.before == pytest.approx(10.0) and move.selected == pytest.approx(5.0)
    assert move.after is None  # no control re-measured it: the gain is not confirmed
    # Holm over the batch's two valid neighbours: the planted one's p, doubled
    assert move.p_value == pytest.approx(2 * welch_p(times(planted), [10.0, 10.1, 9.9]), rel=1e-9)
    assert move.trial == 6  # planted was in the second batch, cut short when the widest step was done
    # Around (4, 0) every other point of both axes is slower: it converges with budget to spare.
    assert walk.converged and walk.trials == len(tried) < 40
    assert set(tried) == walk.seen - {(0, 0)}
    assert len(set(tried)) == len(tried)  # nothing tried twice


def test_walk_stops_at_its_budget():
    walk = Walk(Grid(64, 64), (0, 0), [100.0, 100.1, 99.9], budget=10, pvalue=0.05)
    tried = run_walk(walk, lambda p: [100.0 - sum(p), 100.1 - sum(p), 99.9 - sum(p)], controls=True)
    assert len(tried) == walk.trials == 10 and not walk.converged and len(walk.moves) > 1
    assert all(b.selected < a.selected for a, b in zip(walk.moves, walk.moves[1:]))
    # each move but the last was confirmed by the next batch's control; the last one wants one more
    assert all(m.after == m.selected for m in walk.moves[:-1]) and walk.moves[-1].after is None and walk.unconfirmed


def test_welch_test_matches_scipy():
    rng = np.random.default_rng(0)
    for _ in range(300):
        a = rng.normal(1.0, rng.uniform(0.01, 1.0), rng.integers(2, 9))
        b = rng.normal(1.0 + rng.uniform(-1.0, 1.0), rng.uniform(0.01, 1.0), rng.integers(2, 9))
        expected = stats.ttest_ind(a, b, equal_var=False, alternative="less").pvalue
        assert welch_less(list(a), list(b)) == pytest.approx(expected, rel=1e-9, abs=1e-300)


def noisy_batch(seed: int, repeats: int, planted: int | None = None, spread: float = 0.2):
    """One batch of 16 neighbours (8 axes of 3 values, from the middle), all taking 10 time units plus normal
    noise (``spread``, per sample) except ``planted``, 10% faster: the walk's move, the old rule's choice
    (the fastest neighbour significantly faster than both the record and the control, uncorrected), and the
    planted point."""
    rng = np.random.default_rng(seed)
    walk = Walk(Grid(*[3] * 8), (1,) * 8, list(rng.normal(10.0, spread, repeats)), budget=16, pvalue=0.05)
    points = [walk.propose() for _ in range(16)]
    assert None not in points and walk.propose() is None
    measured = []
    for i, point in enumerate(points):
        samples = list(rng.normal(9.0 if i == planted else 10.0, spread, repeats))
        measured.append((point, samples))
        walk.observe(point, samples)
    control = list(rng.normal(10.0, spread, repeats))
    walk.control(control)
    bases = (walk.samples, control)
    walk.conclude()
    by_mean = sorted(measured, key=lambda m: statistics.fmean(m[1]))
    old = next((p for p, s in by_mean if all(significantly_faster(s, base, 0.05)[0] for base in bases)), None)
    return (walk.incumbent if walk.moves else None), old, (points[planted] if planted is not None else None)


def test_pure_noise_over_16_neighbours_moves_at_most_at_the_stated_rate():
    """--droplet-pvalue 0.05 is the chance of a false move per batch: 2000 seeded batches of pure noise, 3
    repeats. The old rule (the fastest neighbour passing its own t-tests) moved in about 9% of them."""
    outcomes = [noisy_batch(seed, repeats=3) for seed in range(2000)]
    new = sum(move is not None for move, _, _ in outcomes) / len(outcomes)
    old = sum(choice is not None for _, choice, _ in outcomes) / len(outcomes)
    assert new <= 0.05 < old
    assert new < old / 10  # Holm over 16 tests that share their bases is conservative


def test_a_planted_ten_percent_faster_neighbour_is_taken_with_five_repeats():
    """Among 15 noisy neighbours (2% spread per sample), one 10% faster, measured 5 times each: the walk moves
    to it in nearly every batch, and to no other neighbour."""
    outcomes = [noisy_batch(seed, repeats=5, planted=seed % 16) for seed in range(200)]
    taken = sum(move == planted for move, _, planted in outcomes)
    wrong = sum(move is not None and move != planted for move, _, planted in outcomes)
    assert taken >= 190 and wrong == 0


def test_diagonal_moves_combine_the_fastest_directions():
    """After a batch without a move, the K fastest neighbours that beat the incumbent's mean (on other axes)
    are combined, every subset of two or more, before the walk gives up."""
    noisy = {(1, 0, 0): [9.0, 11.0, 7.0], (0, 1, 0): [9.2, 11.2, 7.2], (0, 0, 1): [9.4, 11.4, 7.4]}  # faster, not significantly

    def times(point):
        return [5.0, 5.1, 4.9] if point == (1, 1, 1) else noisy.get(point, [12.0, 12.1, 11.9])

    def walk(diagonal):
        w = Walk(Grid(3, 3, 3), (0, 0, 0), [10.0, 10.1, 9.9], budget=20, pvalue=0.05, max_step=1, diagonal=diagonal)
        return w, run_walk(w, times, batch=4)

    axial = [(1, 0, 0), (0, 1, 0), (0, 0, 1)]
    plain, tried = walk(0)
    assert tried == axial and plain.converged and not plain.moves
    three, tried = walk(3)
    assert tried[:3] == axial and tried[3:7] == [(1, 1, 0), (1, 0, 1), (0, 1, 1), (1, 1, 1)]
    assert three.incumbent == (1, 1, 1) and three.moves[0].selected == pytest.approx(5.0)
    two, tried = walk(2)  # the two fastest directions only: one combination, which is slow
    assert tried[:4] == axial + [(1, 1, 0)] and two.converged and not two.moves


# ---- a real task, measurements fed by the test -------------------------------------------------------------


@pytest.fixture(scope="module")
def matmul_task(models, tmp_path_factory):
    """tiny-cnn's dense layer (tile, unroll and compute-location decisions) as a MetaSchedule TuneContext."""
    target = parse_target(TARGET)
    load_tensor_intrinsics(target)
    task = next(t for t in extract_tasks(load_model(models["tiny-cnn"]), target) if t.name == "fused_matmul_add2")
    with tune_contexts([task.extracted], str(tmp_path_factory.mktemp("logs")), "replay-trace", num_threads=1, seed=0) as (contexts, _):
        return contexts[0]


def changed_axis(space, start, point):
    """The axis a neighbour moved. A compute location that moves can make a later one snap to its nearest
    valid location, so more than one decision may differ, but the later ones are compute locations."""
    changed = [k for k, (a, b) in enumerate(zip(start, point)) if a != b]
    assert changed and all(space.axes(start)[k].kind == COMPUTE_LOCATION for k in changed[1:])
    return changed[0], space.axes(start)[changed[0]]


def test_neighbourhood_is_valid_and_moves_every_kind_of_decision(matmul_task):
    ctx = matmul_task
    design = ctx.space_generator.generate_design_space(ctx.mod)[0]  # rfactor: all three kinds of decision
    strategy = DropletSearch(DropletOptions(trials=50, batch=64))
    strategy._initialize_with_tune_context(ctx)  # pylint: disable=protected-access
    strategy.pre_tuning(50, 64, [design], ms.database.MemoryDatabase(), ms.cost_model.RandomModel())
    (first,) = strategy.generate_measure_candidates()  # with no record, the design space's start is measured first
    strategy.notify_runner_results([first], [ms.runner.RunnerResult([10 * US, 10.1 * US, 9.9 * US], None)])
    space, start = strategy.space, strategy.walk.incumbent
    assert DecisionSpace(ctx.mod, first.sch.trace, space.postprocs).start == start
    assert [a.kind for a in space.axes(start)] == [TILE, CATEGORICAL, COMPUTE_LOCATION, COMPUTE_LOCATION]
    tile = space.axes(start)[0]
    assert tile.values == tuple(factorizations(16, 2, 64)) and start[0] in tile.values
    assert space.axes(start)[1].values == (0, 1, 2, 3)  # unroll steps 0, 16, 64, 512

    candidates = strategy.generate_measure_candidates()
    *points, control = [entry[0] for entry in strategy.pending]
    # The batch ends with the incumbent itself, re-measured as the control the neighbours are tested against.
    assert control is None and DecisionSpace.module_hash(candidates[-1].sch) == DecisionSpace.module_hash(first.sch)
    candidates = candidates[:-1]
    assert len(candidates) == len(points) >= 6 and len(set(points)) == len(points)
    assert len({DecisionSpace.module_hash(c.sch) for c in candidates + [first]}) == len(candidates) + 1  # no module twice
    kinds = set()
    for candidate, point in zip(candidates, points):
        k, axis = changed_axis(space, start, point)
        assert point[k] in axis.values and point[k] != start[k]
        kinds.add(axis.kind)
        again = DecisionSpace(ctx.mod, candidate.sch.trace, space.postprocs)  # the candidate's own trace
        assert again.start == point
        if axis.kind == TILE:
            assert math.prod(point[k]) == 16 and point[k][-1] <= 64
    assert kinds == {TILE, CATEGORICAL, COMPUTE_LOCATION}
    import tvm  # pylint: disable=import-outside-toplevel

    for candidate in candidates:  # every neighbour is a schedule that builds
        tvm.compile(candidate.sch.mod, target=ctx.target)


def test_planted_faster_neighbour_is_accepted_and_noise_is_refused(matmul_task):
    ctx = matmul_task
    design = ctx.space_generator.generate_design_space(ctx.mod)[0]
    strategy = DropletSearch(DropletOptions(trials=50, batch=64))
    strategy._initialize_with_tune_context(ctx)  # pylint: disable=protected-access
    strategy.pre_tuning(50, 64, [design], ms.database.MemoryDatabase(), ms.cost_model.RandomModel())
    start_samples = [10 * US, 10.1 * US, 9.9 * US]
    (first,) = strategy.generate_measure_candidates()
    strategy.notify_runner_results([first], [ms.runner.RunnerResult(start_samples, None)])

    closing = ([9 * US, 9.05 * US, 8.95 * US], [6.6 * US, 6.65 * US, 6.55 * US])

    def feed(samples_of, control):
        """One batch: ``samples_of(i, point)`` for the neighbours, ``control`` for the incumbent's control."""
        candidates = strategy.generate_measure_candidates()
        if candidates is None:
            return None
        points = [entry[0] for entry in strategy.pending]
        if points == [CLOSE_START, CLOSE_FINAL]:  # the walk ended: its start and its end, side by side
            assert DecisionSpace.module_hash(candidates[0].sch) == DecisionSpace.module_hash(first.sch)
            strategy.notify_runner_results(candidates, [ms.runner.RunnerResult(s, None) for s in closing])
            return None
        assert points[-1] is None and None not in points[:-1]  # one control per batch, last
        samples = [samples_of(i, p) for i, p in enumerate(points[:-1])] + [control]
        strategy.notify_runner_results(candidates, [ms.runner.RunnerResult(s, None) for s in samples])
        return points[:-1]

    planted = [6 * US, 6.05 * US, 5.95 * US]
    noisy = [2 * US, 14 * US, 8 * US]  # mean 8 us: faster than the start, but not significantly
    first_batch = feed(lambda i, p: planted if i == 1 else noisy if i == 0 else [12 * US, 12.1 * US, 11.9 * US], start_samples)
    walk = strategy.walk
    assert walk.incumbent == first_batch[1] and len(walk.moves) == 1
    move = walk.moves[0]
    assert move.selected == pytest.approx(6 * US, rel=1e-6) and move.before == pytest.approx(10 * US, rel=1e-6)
    # Holm-adjusted over the batch: the planted neighbour has the smallest p of the family
    family = len(first_batch)
    assert move.p_value == pytest.approx(family * welch_p(planted, start_samples), rel=1e-4) and move.p_value < 0.05
    # Around the new incumbent, a neighbour with a lower mean but wide noise is refused; all else is slower.
    # The new incumbent's controls (6.5 us) are what its move is reported from, not the 6 us that won.
    confirm = [6.5 * US, 6.55 * US, 6.45 * US]
    batches = 1
    while feed(lambda i, p: [1 * US, 9 * US, 5 * US] if i == 0 else [7 * US, 7.05 * US, 6.95 * US], confirm) is not None:
        batches += 1
    assert strategy.generate_measure_candidates() is None
    outcome = strategy.shared.results[strategy.key]
    first_samples, last, moves, trials, measured, converged = outcome
    assert len(moves) == 1 and moves[0].after == pytest.approx(6.5 * US, rel=1e-6) and moves[0].gain == pytest.approx(10 / 6.5, rel=1e-6)
    # The walk reports its start and its end as measured side by side in the closing batch.
    assert tuple(first_samples) + tuple(last) == pytest.approx(tuple(closing[0]) + tuple(closing[1]), rel=1e-6)
    # The start, each batch's control and the closing batch were measured but are not trials.
    assert converged and trials == measured - 1 - batches - 2 < 50


def start_strategy(ctx, options, database=None, shared=None):
    """A DropletSearch on ``ctx``'s first design space, past ``pre_tuning``."""
    design = ctx.space_generator.generate_design_space(ctx.mod)[0]
    strategy = DropletSearch(options, shared)
    strategy._initialize_with_tune_context(ctx)  # pylint: disable=protected-access
    database = database if database is not None else ms.database.MemoryDatabase()
    strategy.pre_tuning(options.trials, options.batch, [design], database, ms.cost_model.RandomModel())
    return strategy


def results(*samples):
    return [ms.runner.RunnerResult(list(s), None) for s in samples]


def test_a_walk_that_moved_ends_with_its_start_and_end_measured_side_by_side(matmul_task):
    """A walk that ends right after a move measures its start and the new incumbent in one closing batch: the
    incumbent's time confirms the move, and the walk's start and final times are that batch's (one moment);
    a rerun replays the batch from the journal."""
    start = [10 * US, 10.1 * US, 9.9 * US]
    strategy = start_strategy(matmul_task, DropletOptions(trials=4, batch=64, model_order=False))
    (first,) = strategy.generate_measure_candidates()
    strategy.notify_runner_results([first], results(start))
    candidates = strategy.generate_measure_candidates()
    assert len(candidates) == 5  # the whole budget, and the control
    strategy.notify_runner_results(candidates, results([6 * US, 6.05 * US, 5.95 * US], *[[12 * US, 12.1 * US, 11.9 * US]] * 3, start))
    assert strategy.walk.left == 0 and strategy.walk.unconfirmed
    closing = strategy.generate_measure_candidates()  # no trials: the start and the new incumbent
    assert [entry[0] for entry in strategy.pending] == [CLOSE_START, CLOSE_FINAL]
    assert [DecisionSpace.module_hash(c.sch) for c in closing] == [DecisionSpace.module_hash(c.sch) for c in (first, candidates[0])]
    strategy.notify_runner_results(closing, results([11 * US, 11.05 * US, 10.95 * US], [7 * US, 7.05 * US, 6.95 * US]))
    assert strategy.generate_measure_candidates() is None
    first_samples, last, moves, trials, measured, converged = strategy.shared.results[strategy.key]
    assert (trials, measured, converged, len(moves)) == (4, 1 + 5 + 2, False, 1)
    assert moves[0].selected == pytest.approx(6 * US) and moves[0].after == pytest.approx(7 * US)
    assert tuple(last) == pytest.approx((7 * US, 7.05 * US, 6.95 * US))  # where it ended, beside its start
    assert tuple(first_samples) == pytest.approx((11 * US, 11.05 * US, 10.95 * US))
    # journaled, so a rerun replays it and measures nothing
    assert strategy.shared.closing(strategy.walk_key) == [pytest.approx([11 * US, 11.05 * US, 10.95 * US]), pytest.approx([7 * US, 7.05 * US, 6.95 * US])]
    assert len(strategy.shared.controls[strategy.walk_key]) == 1  # the one batch's control


def test_diagonal_moves_on_a_real_kernel(matmul_task):
    """Two neighbours on different axes (a tile and an unroll decision) are faster, not significantly: the
    next batch tries both changes at once, a schedule that builds, and moves there when it is faster."""
    ctx = matmul_task
    start = [10 * US, 10.1 * US, 9.9 * US]
    strategy = start_strategy(ctx, DropletOptions(trials=50, batch=64, diagonal=2, model_order=False))
    (first,) = strategy.generate_measure_candidates()
    strategy.notify_runner_results([first], results(start))
    origin, space = strategy.walk.incumbent, strategy.space
    candidates = strategy.generate_measure_candidates()
    points = [entry[0] for entry in strategy.pending][:-1]
    kinds = [changed_axis(space, origin, p)[1].kind for p in points]
    tile, unroll = kinds.index(TILE), kinds.index(CATEGORICAL)
    noisy = {tile: [6 * US, 14 * US, 8 * US], unroll: [7 * US, 13 * US, 9 * US]}  # means 9.3 and 9.7 us
    slow = [12 * US, 12.1 * US, 11.9 * US]
    strategy.notify_runner_results(candidates, results(*[noisy.get(i, slow) for i in range(len(points))], start))
    assert not strategy.walk.moves
    candidates = strategy.generate_measure_candidates()
    (diagonal, control) = [entry[0] for entry in strategy.pending]
    expected = list(origin)
    for k in (changed_axis(space, origin, points[tile])[0], changed_axis(space, origin, points[unroll])[0]):
        expected[k] = points[tile][k] if points[tile][k] != origin[k] else points[unroll][k]
    assert control is None and diagonal == tuple(expected) and DecisionSpace(ctx.mod, candidates[0].sch.trace, space.postprocs).start == diagonal
    import tvm  # pylint: disable=import-outside-toplevel

    tvm.compile(candidates[0].sch.mod, target=ctx.target)
    strategy.notify_runner_results(candidates, results([5 * US, 5.05 * US, 4.95 * US], start))
    assert strategy.walk.incumbent == diagonal and len(strategy.walk.moves) == 1


def test_neighbours_are_measured_in_the_cost_models_order_and_replayed(matmul_task):
    """Records of the task (times fed by the test: more unrolling and a larger inner tile are faster) train
    an XGBModel; the first batch holds the neighbours it predicts fastest, the order is journaled and replayed
    without a model, and --droplet-axis-order keeps the axis order."""
    ctx = matmul_task
    design = ctx.space_generator.generate_design_space(ctx.mod)[0]
    space = DecisionSpace(ctx.mod, design.trace, list(ctx.space_generator.postprocs))
    origin = space.start
    tiles = space.axes(origin)[0].values

    def seconds(point):
        return 10 * US / (1 + point[1]) / (1 + tiles.index(point[0]) / 4)

    steps, widest = [1], space.widest(origin)
    while steps[-1] < widest:
        steps.append(min(2 * steps[-1], widest))
    neighbourhood = list(dict.fromkeys(q for s in steps for q in space.neighbours(origin, s)))  # as the walk lists it
    around = set(neighbourhood)
    farther = {r for q in around for s in steps for r in space.neighbours(q, s)} - around - {origin}
    database = ms.database.MemoryDatabase()
    workload = database.commit_workload(ctx.mod)
    for point in sorted(farther, key=str) + [origin]:
        sch, _ = space.realize(point)
        if sch is not None:
            t = seconds(point) if point != origin else 0.5 * US  # the start is the best record
            args = ms.arg_info.ArgInfo.from_entry_func(sch.mod, remove_preproc=True)
            database.commit_tuning_record(ms.database.TuningRecord(sch.trace, workload, [t, t, t], ctx.target, args))
    assert len(farther) >= 8

    def first_batch(options, shared=None):
        strategy = start_strategy(ctx, options, database, shared)
        assert strategy.walk.incumbent == origin
        strategy.generate_measure_candidates()
        return strategy, [entry[0] for entry in strategy.pending][:-1]

    ordered, points = first_batch(DropletOptions(trials=50, batch=4))
    model = ordered.order.model
    assert model is not None and points
    (journaled,) = ordered.shared.orders[ordered.walk_key]  # one neighbourhood ordered so far
    order = [neighbourhood[i] for i in journaled]
    valid = [(q, sch) for q in order for sch, _ in [space.realize(q)] if sch is not None]
    scores = model.predict(ctx, [ms.MeasureCandidate(sch, ms.arg_info.ArgInfo.from_entry_func(sch.mod, remove_preproc=True)) for _, sch in valid])
    assert [q for q, _ in valid] == order[: len(valid)]  # invalid points last
    assert list(scores) == sorted(scores, reverse=True)  # best predicted first
    fastest = min((q for q, _ in valid), key=seconds)
    assert fastest in order[:4]  # the model learned what the records say
    plain, axis_points = first_batch(DropletOptions(trials=50, batch=4, model_order=False))
    assert plain.order is None and plain.walk_key not in plain.shared.orders and axis_points != points
    assert axis_points == sorted(axis_points, key=lambda p: neighbourhood.index(p) if p in around else len(around))
    again, replayed = first_batch(DropletOptions(trials=50, batch=4), ordered.shared)
    assert replayed == points and again.order.model is None  # from the journal, no model trained


def test_a_neighbour_is_tested_against_the_incumbent_measured_beside_it(matmul_task):
    """The start's record says 10 us, but measured beside the batch (the machine's load changed) it takes 5:
    a neighbour at 6 us, much faster than the record, is no move; beside a 10 us control it is. And a control
    that spiked (20 us) does not make a neighbour at 12 us, slower than the record, pass either."""
    ctx = matmul_task
    design = ctx.space_generator.generate_design_space(ctx.mod)[0]

    def first_batch(control, neighbour=(6 * US, 6.05 * US, 5.95 * US)):
        strategy = DropletSearch(DropletOptions(trials=50, batch=64))
        strategy._initialize_with_tune_context(ctx)  # pylint: disable=protected-access
        strategy.pre_tuning(50, 64, [design], ms.database.MemoryDatabase(), ms.cost_model.RandomModel())
        (first,) = strategy.generate_measure_candidates()
        strategy.notify_runner_results([first], [ms.runner.RunnerResult([10 * US, 10.1 * US, 9.9 * US], None)])
        candidates = strategy.generate_measure_candidates()
        samples = [list(neighbour)] + [[30 * US, 30.1 * US, 29.9 * US]] * (len(candidates) - 2) + [control]
        strategy.notify_runner_results(candidates, [ms.runner.RunnerResult(s, None) for s in samples])
        return strategy.walk

    stale = first_batch([5 * US, 5.05 * US, 4.95 * US])
    assert not stale.moves and stale.samples == pytest.approx((10 * US, 10.1 * US, 9.9 * US))
    # it reports the start, and its end, as measured beside its batches
    assert stale.start_samples == stale.final_samples == pytest.approx((5 * US, 5.05 * US, 4.95 * US))
    fresh = first_batch([10 * US, 10.1 * US, 9.9 * US])
    assert len(fresh.moves) == 1 and fresh.moves[0].selected == pytest.approx(6 * US, rel=1e-6)
    spiked = first_batch([20 * US, 20.1 * US, 19.9 * US], neighbour=[12 * US, 12.1 * US, 11.9 * US])
    assert not spiked.moves


def test_a_faster_record_found_later_restarts_the_walk(matmul_task):
    """The pinned start is kept across runs, unless the records gained a significantly faster schedule the
    walk never saw (a later evolutionary run, say): then droplet walks again from there."""
    ctx = matmul_task
    designs = ctx.space_generator.generate_design_space(ctx.mod)
    database = ms.database.MemoryDatabase()
    workload = database.commit_workload(ctx.mod)

    def commit(design, seconds):
        space = DecisionSpace(ctx.mod, design.trace, list(ctx.space_generator.postprocs))
        sch, _ = space.realize(space.start)
        args = ms.arg_info.ArgInfo.from_entry_func(sch.mod, remove_preproc=True)
        database.commit_tuning_record(ms.database.TuningRecord(sch.trace, workload, seconds, ctx.target, args))
        return DecisionSpace.module_hash(sch)

    slow = commit(designs[0], [10 * US, 10.1 * US, 9.9 * US])
    first = DropletSearch(DropletOptions(trials=8, batch=4))
    first._initialize_with_tune_context(ctx)  # pylint: disable=protected-access
    first.pre_tuning(8, 4, designs, database, ms.cost_model.RandomModel())
    assert first.shared.starts[first.key] == str(slow) and first.walk.samples == pytest.approx((10 * US, 10.1 * US, 9.9 * US))
    fast = commit(designs[-1], [2 * US, 2.01 * US, 1.99 * US])
    again = DropletSearch(DropletOptions(trials=8, batch=4), first.shared)  # the same pinned starts
    again._initialize_with_tune_context(ctx)  # pylint: disable=protected-access
    again.pre_tuning(8, 4, designs, database, ms.cost_model.RandomModel())
    assert again.walk.samples == pytest.approx((10 * US, 10.1 * US, 9.9 * US))  # the pinned start first
    candidates = again.generate_measure_candidates()
    assert candidates and again.restarted and again.shared.starts[again.key] == str(fast)
    assert again.walk.samples == pytest.approx((2 * US, 2.01 * US, 1.99 * US))


def test_a_replayed_walk_tests_the_numbers_it_first_tested(matmul_task, tmp_path):
    """The records also hold each control (the incumbent re-measured). A control faster than the record it
    re-measured must not stand in for it when the walk is replayed: the replay takes the same move, at the
    same p, as the first run did."""
    ctx = matmul_task
    design = ctx.space_generator.generate_design_space(ctx.mod)[0]
    database = ms.database.JSONDatabase(work_dir=str(tmp_path))  # keeps records fastest first, as tune does
    workload = database.commit_workload(ctx.mod)

    def commit(sch, seconds):
        args = ms.arg_info.ArgInfo.from_entry_func(sch.mod, remove_preproc=True)
        database.commit_tuning_record(ms.database.TuningRecord(sch.trace, workload, seconds, ctx.target, args))

    space = DecisionSpace(ctx.mod, design.trace, list(ctx.space_generator.postprocs))
    start, _ = space.realize(space.start)
    commit(start, [9.5 * US, 11.5 * US, 10.5 * US])  # noisier than its control below, and slower

    def walk(shared=None):
        strategy = DropletSearch(DropletOptions(trials=8, batch=4), shared)
        strategy._initialize_with_tune_context(ctx)  # pylint: disable=protected-access
        strategy.pre_tuning(8, 4, [design], database, ms.cost_model.RandomModel())
        return strategy, strategy.generate_measure_candidates()

    first, candidates = walk()
    samples = [[6 * US, 6.1 * US, 5.9 * US]] + [[30 * US, 30.1 * US, 29.9 * US]] * (len(candidates) - 2) + [[10 * US, 10.2 * US, 9.9 * US]]
    first.notify_runner_results(candidates, [ms.runner.RunnerResult(s, None) for s in samples])
    for candidate, seconds in zip(candidates, samples):  # as MetaSchedule's AddToDatabase does, control included
        commit(candidate.sch, seconds)
    assert len(first.walk.moves) == 1 and first.walk.moves[0].p_value > 1e-3  # p against the noisy record
    again, _ = walk(first.shared)  # the same journal of starts and controls
    assert again.walk.start_samples == pytest.approx((10 * US, 10.2 * US, 9.9 * US))  # the first control
    assert again.walk.moves == first.walk.moves  # the same move at the same p


# ---- real measurements -------------------------------------------------------------------------------------


def pinned_walk(records) -> str:
    """The key of the one walk pinned in ``records`` (task:start), as droplet's journals name it."""
    ((task, start),) = json.load(open(os.path.join(records, STARTS))).items()
    return f"{task}:{start}"


def test_real_run_converges_records_and_resumes(tuned_cnn, tmp_path):
    model_path, tuned = tuned_cnn
    records = str(tmp_path / "records")
    shutil.copytree(tuned, records)
    model, target = load_model(model_path), parse_target(TARGET)
    index = next(t.index for t in extract_tasks(model, target) if t.name == "fused_matmul_add2")
    before = len(record_lines(records))
    options = DropletOptions(trials=40, max_step=2)
    report = refine_with_droplet(model, target, records, options, measure=MEASURE, tasks=str(index), progress=False)
    (task,) = report.tasks
    assert task.name == "fused_matmul_add2" and task.converged and task.trials < 40
    assert len(record_lines(records)) - before == task.measured == report.measured > 0
    # A walk that moved measured its start and its end side by side at the end (the closing batch), and
    # reports both from there; one that did not move reports its first control as both.
    assert len(task.moves) <= task.trials
    closing = json.load(open(os.path.join(records, CONTROLS))).get(f"{pinned_walk(records)}:closing")
    if task.moves:
        assert [statistics.fmean(s) for s in closing] == pytest.approx([task.start_seconds, task.final_seconds], rel=1e-9)
    else:
        assert closing is None and task.final_seconds == task.start_seconds
    database = ms.database.JSONDatabase(work_dir=records)  # plain TVM reads droplet's records
    workload = database.commit_workload(extract_tasks(model, target)[index].mod)
    means = [statistics.fmean(float(s) for s in r.run_secs) for r in database.get_top_k(workload, 1000)]
    assert any(m == pytest.approx(task.final_seconds, rel=1e-6) for m in means)
    assert any(m == pytest.approx(task.start_seconds, rel=1e-6) for m in means)
    assert min(means) <= task.final_seconds  # compile_relax takes the best record
    for move in task.moves:  # each confirmed by a re-measurement that did not select it
        assert move.p_value < 0.05 and move.selected < move.before and move.after is not None
    assert report.to_json()["tasks"][0]["move_gains"] == [m.before / m.after for m in task.moves]
    pinned = json.load(open(os.path.join(records, STARTS)))
    assert len(pinned) == 1
    again = refine_with_droplet(model, target, records, options, measure=MEASURE, tasks=str(index), progress=False)
    (task2,) = again.tasks
    assert len(record_lines(records)) - before == task.measured  # nothing measured twice
    assert task2.measured == 0 and again.measured == 0
    assert (task2.trials, task2.converged, task2.moves) == (task.trials, task.converged, task.moves)
    assert (task2.start_seconds, task2.final_seconds) == (task.start_seconds, task.final_seconds)


# ---- the command line --------------------------------------------------------------------------------------


def summary_rows(out):
    lines = out.splitlines()
    start = lines.index(next(line for line in lines if line.startswith("droplet search"))) + 2
    rows = []
    for line in lines[start:]:
        if line.startswith("droplet:"):
            return rows, line
        rows.append(line.split())
    raise AssertionError(out)


def test_cli_tune_droplet_compiles_and_matches_onnxruntime(models, tvmc, tmp_path):
    model = models["tiny-cnn"]
    records, package = str(tmp_path / "records"), str(tmp_path / "tuned.tar")
    result = tvmc("tune", model, "-o", records, "--trials", "8", "--droplet", "--droplet-trials", "6", *FAST_TUNE)
    assert result.code == 0, result.err
    rows, total = summary_rows(result.out)
    assert len(rows) == 6 and all(0 <= int(r[-2]) <= 6 for r in rows)
    assert all(r[-1] in ("converged", "budget") for r in rows)
    new = int(total.split("; ")[1].split()[0])
    assert len(record_lines(records)) == 8 + new  # evolutionary trials, then droplet's
    assert "move" in result.err or "converged" in result.err  # progress per task on stderr
    assert tvmc("compile", model, "--tuning-records", records, "-o", package, "--target", TARGET).code == 0
    x = np.random.default_rng(3).standard_normal((1, 3, 16, 16)).astype("float32")
    np.savez(tmp_path / "x.npz", input=x)
    run = tvmc("run", package, "--inputs", tmp_path / "x.npz", "--outputs", tmp_path / "y.npz", "--verify", model)
    assert run.code == 0 and ": ok" in run.out
    with np.load(tmp_path / "y.npz") as y:
        assert_matches_onnxruntime(model, {"input": x}, [y["output"]])


def test_cli_refines_existing_records_only_and_resumes(tuned_cnn, tvmc, tmp_path):
    model, prior = tuned_cnn
    records = str(tmp_path / "refined")
    args = ["tune", model, "-o", records, "--tuning-records", prior, "--trials", "0", "--droplet", "--droplet-trials", "3", *FAST_TUNE]
    late = tvmc(*args, "--time-budget", "0.001")  # --time-budget covers droplet's batches: past it, none starts
    assert late.code == 0 and "; 0 new trials in" in summary_rows(late.out)[1] and "the time limit stopped it" in late.out, late.out + late.err
    assert len(record_lines(records)) == len(record_lines(prior))
    first = tvmc(*args)
    assert first.code == 0, first.err
    assert "; 0 new trials in" in first.out  # no evolutionary trial
    rows, total = summary_rows(first.out)
    new = int(total.split("; ")[1].split()[0])
    assert len(record_lines(records)) == len(record_lines(prior)) + new and new > 0
    second = tvmc(*args)
    assert second.code == 0 and " 0 new trials" in summary_rows(second.out)[1]
    assert summary_rows(second.out)[0] == rows  # the same walk, replayed from the records
    assert len(record_lines(records)) == len(record_lines(prior)) + new


def test_droplet_options_are_checked(models, tvmc, tmp_path):
    for args, message in [
        (["--droplet-trials", "5"], "--droplet-trials needs --droplet"),
        (["--droplet", "--repeat", "1"], "use --repeat 2 or more"),
        (["--droplet", "--droplet-pvalue", "1.5"], "--droplet-pvalue between 0 and 1"),
        (["--droplet", "--droplet-trials", "0"], "--droplet-trials must be >= 1"),
        (["--droplet", "--droplet-diagonal", "1"], "--droplet-diagonal must be 0 (off) or 2 or more"),
        (["--droplet-axis-order"], "--droplet-axis-order needs --droplet"),
    ]:
        result = tvmc("tune", models["tiny-mlp"], "-o", tmp_path / "r", *args)
        assert result.code == 4 and message in result.err, result.err
    assert not os.path.exists(tmp_path / "r")  # refused before anything was written
    flags = ("", "-trials", "-pvalue", "-max-step", "-diagonal", "-axis-order")
    assert all(f"--droplet{o}" in run_cli("tune", "--help").out for o in flags)
