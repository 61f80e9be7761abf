"""``transfer_tune(..., observer=...)``: a benchmark watching the transfer loop sees each kernel once, and what it
counts is what the report says."""

import collections

from tvmc_transfer import load_model, parse_target
from tvmc_transfer.transfer import TransferObserver, TransferOptions, transfer_tune
from tvmc_transfer.tune.measure import MeasureOptions

TARGET = "llvm -num-cores=2"


class Recording(TransferObserver):
    """Every call, by kernel name."""

    def __init__(self):
        self.started, self.finished = [], {}
        self.calls = collections.defaultdict(list)

    def kernel_started(self, task, candidates):
        assert candidates
        self.started.append(task.name)

    def kernel_finished(self, task, row):
        assert task.name not in self.finished, f"{task.name} finished twice"
        self.finished[task.name] = row

    def reference_ran(self, task, seconds):
        self.calls[task.name].append(("reference", seconds))

    def replayed(self, task, replayed, context, seconds):
        self.calls[task.name].append(("replayed", len(replayed), seconds))

    def ranked(self, task, order, seconds):
        self.calls[task.name].append(("ranked", sorted(order), seconds))

    def checked(self, task, candidate, correct, seconds, on_library):
        self.calls[task.name].append(("checked", correct, seconds))

    def measured(self, task, batch, seconds_each, seconds):
        self.calls[task.name].append(("measured", len(batch), seconds_each, seconds))


def test_an_observer_sees_every_transferred_kernel_once_and_counts_what_the_report_says(tuned_cnn, models, tmp_path):
    observer = Recording()
    options = TransferOptions(max_candidates=2, measure_top=2, e2e=False, use_library=False, measure=MeasureOptions(number=2, min_repeat_ms=5, passes=2))
    report = transfer_tune(load_model(models["tiny-cnn-b"]), parse_target(TARGET), [tuned_cnn[1]], str(tmp_path / "records"), options,
                           progress=False, observer=observer)

    transferred = [k for k in report.kernels if k.status != "unmatched"]
    assert transferred and all(k.status != "pending" for k in report.kernels)
    assert sorted(observer.started) == sorted(observer.finished) == sorted(k.name for k in transferred)
    assert len(set(observer.started)) == len(observer.started)
    heaviest_first = sorted(transferred, key=lambda k: -k.flops * k.weight)
    assert observer.started == [k.name for k in heaviest_first]
    measured_any = False
    for k in transferred:
        assert observer.finished[k.name] == k  # the row the report holds
        calls = observer.calls[k.name]
        assert [c[0] for c in calls][:1] == ["reference"]
        assert all(c[-1] >= 0 for c in calls)
        checks = [c[1] for c in calls if c[0] == "checked"]
        if k.status == "reused":
            assert any(checks)
            continue
        (replayed,) = [c[1] for c in calls if c[0] == "replayed"]
        (order,) = [c[1] for c in calls if c[0] == "ranked"]
        batches = [c for c in calls if c[0] == "measured"]
        assert replayed == k.ranked and order == list(range(k.ranked))
        assert all(size <= 2 for _, size, _, _ in batches)  # --measure-top 2
        assert checks.count(False) == k.wrong
        assert sum(size for _, size, _, _ in batches) - k.wrong == k.measured
        times = [t for _, _, each, _ in batches for t in each if t is not None]
        assert len(times) == k.valid and all(t > 0 for t in times)
        if k.seconds is not None and k.status == "transferred":
            assert min(times) == k.seconds  # the best measured is the row's time
        measured_any |= k.measured > 0
    assert measured_any
