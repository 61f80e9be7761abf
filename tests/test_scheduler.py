"""The task scheduler: with a local runner no search overlaps a measurement."""

import pytest
from tvm.ir.utils import derived_object
from tvm.s_tir import meta_schedule as ms
from tvm.s_tir.meta_schedule.runner import PyRunner, PyRunnerFuture
from tvm.s_tir.meta_schedule.search_strategy import PySearchStrategy

from tvmc_transfer import MeasureOptions, load_model, parse_target
from tvmc_transfer.build.lowering import Lowering
from tvmc_transfer.target import tuning_target
from tvmc_transfer.build.tasks import extract_tasks
from tvmc_transfer.tune.scheduler import CommittingGradientScheduler
from tvmc_transfer.tune.task_logs import tune_contexts


@derived_object
class _Search(PySearchStrategy):
    def __init__(self, inner, events):
        super().__init__()
        self.inner, self.events = inner, events

    def _initialize_with_tune_context(self, context):
        self.inner._initialize_with_tune_context(context)  # pylint: disable=protected-access

    def pre_tuning(self, max_trials, num_trials_per_iter, design_spaces, database=None, cost_model=None):
        self.inner.pre_tuning(max_trials, num_trials_per_iter, design_spaces, database, cost_model)

    def post_tuning(self):
        self.inner.post_tuning()

    def generate_measure_candidates(self):
        self.events.append("search")
        return self.inner.generate_measure_candidates()

    def notify_runner_results(self, measure_candidates, results):
        self.inner.notify_runner_results(measure_candidates, results)

    def clone(self):
        return _Search(self.inner.clone(), self.events)


@derived_object
class _Future(PyRunnerFuture):
    def __init__(self, inner, events, batch):
        super().__init__()
        self.inner, self.events, self.batch = inner, events, batch

    def done(self):
        return self.inner.done()

    def result(self):
        self.events.append(("joined", self.batch))
        return self.inner.result()


@derived_object
class _Runner(PyRunner):
    def __init__(self, inner, events):
        super().__init__()
        self.inner, self.events, self.batches = inner, events, 0

    def run(self, runner_inputs):
        if not runner_inputs:  # a search that found nothing new sends an empty batch: nothing to collect
            return []
        self.batches += 1
        self.events.append(("sent", self.batches))
        return [_Future(f, self.events, self.batches) for f in self.inner.run(runner_inputs)]


def _events_of_a_tune(model_path, records, measure_alone):
    """What the scheduler did, in order: each search, each batch sent to the runner, each result collected."""
    target = tuning_target(parse_target("llvm -num-cores=2"))
    tasks = extract_tasks(load_model(model_path), target, Lowering(weight_prepack=False))
    measure = MeasureOptions(number=1, repeat=1, min_repeat_ms=5)
    events = []
    search = _Search(ms.search_strategy.EvolutionarySearch(population_size=16), events)
    with tune_contexts([t.extracted for t in tasks], records, search, 2, seed=0) as (contexts, weights):
        builder = measure.make_builder(target)
        try:
            ms.tune_tasks(
                tasks=contexts,
                task_weights=weights,
                work_dir=records,
                max_trials_global=4 * len(contexts),
                max_trials_per_task=4,
                num_trials_per_iter=2,
                builder=builder,
                runner=_Runner(measure.make_runner(), events),
                database=ms.database.MemoryDatabase(),
                cost_model=ms.cost_model.RandomModel(),
                task_scheduler=CommittingGradientScheduler(seed=0, measure_alone=measure_alone),
            )
        finally:
            builder.shutdown()
    return len(contexts), events


def _searches_during_measurement(events) -> int:
    """How many searches ran while a batch sent to the runner had not been collected."""
    pending, overlapped = set(), 0
    for event in events:
        if event == "search":
            overlapped += bool(pending)
        elif event[0] == "sent":
            pending.add(event[1])
        else:
            pending.discard(event[1])
    return overlapped


@pytest.mark.parametrize("measure_alone", [True, False])
def test_a_local_runner_measures_while_no_search_runs(models, tmp_path, measure_alone):
    n_tasks, events = _events_of_a_tune(models["tiny-cnn"], str(tmp_path / "records"), measure_alone)
    sent = [e for e in events if e != "search" and e[0] == "sent"]
    assert n_tasks >= 2 and len(sent) > n_tasks  # more batches than tasks: the scheduler came back to some
    # every batch sent was collected by the end
    assert {e[1] for e in sent} == {e[1] for e in events if e != "search" and e[0] == "joined"}
    if measure_alone:
        assert _searches_during_measurement(events) == 0
    else:  # the remote-runner mode: in the first round at least, each next search overlaps the batch just sent
        assert _searches_during_measurement(events) >= n_tasks - 1
