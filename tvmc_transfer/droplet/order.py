"""Droplet search's neighbour order: a cost model trained on the task's records ranks a neighbourhood first.

Evolutionary search has already measured many schedules of the task; an ``XGBModel`` (MetaSchedule's own)
trained on them, and on what the walk measures since, predicts which neighbours are fastest, and those fill
the first batches. Points that do not realize go last (they are skipped when their turn comes anyway).

Each order is journaled by the walk that asked for it (as a permutation of the neighbourhood, in
``droplet_orders.json``, a side file of the ``RecordsFolder``), so running the same command again replays the
same walk even though the records, and so the model, have grown since. The model is trained only when an order
is not journaled.
"""

import statistics

from .space import new_schedule

MIN_RECORDS = 8  # fewer measured schedules than this teach a model nothing: keep the axis order
MAX_RECORDS = 256  # at most this many records train it (evenly over their ranking), to bound its cost


class ModelOrder:
    """``order(points)`` for ``Walk``: the points, the ones the model predicts fastest first.

    ``context`` is the task's TuneContext, ``recorded`` the task's records (``recorded_points``), ``journal``
    the orders journaled for this walk so far (a list this object extends), ``save()`` writes the journal,
    and ``realize(point)`` gives ``(schedule, realized point)`` or ``(None, None)``.
    """

    def __init__(self, context, recorded: dict, journal: list, save, realize):
        self.context, self.recorded, self.journal, self.save, self.realize = context, recorded, journal, save, realize
        self.calls, self.model, self.pending = 0, None, []
        self.trained = False

    def add(self, sch, samples) -> None:
        """A schedule the walk measured (``samples``: seconds; None when it failed): data for the next training."""
        if samples:
            self.pending.append((sch, samples))

    def __call__(self, points: list) -> list:
        index, self.calls = self.calls, self.calls + 1
        known = self.journal[index] if index < len(self.journal) else None
        if known is None or sorted(known) != list(range(len(points))):
            known = self.rank(points)
            self.journal[index:] = [known]
            self.save()
        return [points[i] for i in known]

    def rank(self, points: list) -> list:
        """The indexes of ``points``, best predicted first (ties and unscored points in their given order)."""
        scored = []
        for i, point in enumerate(points):
            sch, _ = self.realize(point)
            if sch is not None:
                scored.append((i, sch))
        model = self._model()
        if model is None or not scored:
            return list(range(len(points)))
        scores = model.predict(self.context, [_candidate(sch) for _, sch in scored])
        best_first = [i for _, i in sorted(zip((-float(s) for s in scores), (i for i, _ in scored)))]
        rest = sorted(set(range(len(points))) - set(best_first))
        return best_first + rest

    def _model(self):
        from tvm.s_tir import meta_schedule as ms  # pylint: disable=import-outside-toplevel

        if not self.trained:
            self.trained = True
            data = self._records()
            if len(data) < MIN_RECORDS:
                return None
            self.model = ms.cost_model.XGBModel(num_warmup_samples=0, adaptive_training=False, num_tuning_cores=1)
            self.pending = data + self.pending
        if self.model is not None and self.pending:
            data, self.pending = self.pending, []
            results = [ms.runner.RunnerResult(list(samples), None) for _, samples in data]
            self.model.update(self.context, [_candidate(sch) for sch, _ in data], results)
        return self.model

    def _records(self) -> list:
        """(schedule, samples) of up to MAX_RECORDS of the task's measured records, evenly over their ranking."""

        measured = sorted(((statistics.fmean(s), h) for h, (s, _) in self.recorded.items() if s), key=lambda m: m[0])
        if len(measured) > MAX_RECORDS:
            measured = [measured[i * len(measured) // MAX_RECORDS] for i in range(MAX_RECORDS)]
        data = []
        for _, key in measured:
            samples, trace = self.recorded[key]
            sch = new_schedule(self.context.mod)
            try:
                trace.apply_to_schedule(sch, remove_postproc=False)
            except Exception:  # pylint: disable=broad-except  # a record that no longer replays
                continue
            data.append((sch, samples))
        return data


def _candidate(sch):
    from tvm.s_tir import meta_schedule as ms  # pylint: disable=import-outside-toplevel

    return ms.MeasureCandidate(sch, ms.arg_info.ArgInfo.from_entry_func(sch.mod, remove_preproc=True))
