"""A gradient task scheduler that commits every batch as soon as the next one starts.

MetaSchedule's ``GradientBased`` scheduler joins a task's measurements (which is when the database commits them)
only when it comes back to that task, and during its first round it comes back to none: on ResNet-50 that is
many minutes with no record written (BENCHMARKS, "Figures moved out of the code"), all lost if the run stops. This scheduler picks tasks with the
same rule (round robin first, then the largest weighted latency gradient, ``alpha`` and ``window`` as in TVM)
but joins every running task except the one just sent, so at most one batch is ever uncommitted and a remote
runner still overlaps with the next search: through a tracker (``measure_alone=False``), the batch just sent is
measured on every server of the fleet at once (``fleet_runner.py``) while the next batch is searched and built.

With a local runner (``measure_alone``) it joins the one just sent too: MetaSchedule's runner measures in a
worker process while the next batch's evolutionary search runs on the same cores, and on a 2-core machine that
search slowed the measurements it overlapped (BENCHMARKS, "Figures moved out of the code"), so the search learned from, and kept, the
wrong schedules. Measuring alone costs the overlap and buys records that time what the kernels cost.
"""

import random
import time

from tvm.ir.utils import derived_object
from tvm.s_tir.meta_schedule.task_scheduler import PyTaskScheduler

from ..records.database import FAILED_SECONDS


@derived_object
class CommittingGradientScheduler(PyTaskScheduler):
    """Drop-in for ``TaskScheduler.create("gradient")``; pass it as ``task_scheduler=`` to ``ms.tune_tasks``."""

    def __init__(self, alpha: float = 0.2, window: int = 3, seed: int = 0, patience: int | None = None, deadline: float | None = None, measure_alone: bool = True):
        super().__init__()
        self.measure_alone = measure_alone  # join the batch just sent before the next search (local runner)
        self.alpha, self.window = alpha, window
        self.patience = patience  # stop choosing a task whose best has not moved in this many of its batches
        self.deadline = deadline  # time.monotonic() after which no batch starts
        self.out_of_time = False
        self.rng = random.Random(seed)
        self.round_robin = 0
        self.last = None
        self.history = {}  # task id -> best latency (s) after each of its batches

    def _join(self, scheduler, task_id: int) -> None:
        results = scheduler.join_running_task(task_id)
        times = [sum(map(float, r.run_secs)) / len(r.run_secs) for r in results if r.run_secs and not r.error_msg]
        best = min([*times, *self.history.get(task_id, [])[-1:]], default=1e10)
        self.history.setdefault(task_id, []).append(best)

    def _gradient(self, task_id: int, weight: float) -> float:
        history = self.history.get(task_id, [])
        if not history or history[-1] >= FAILED_SECONDS:
            return -1e9  # no valid measurement yet: nothing to extrapolate from
        n, best = len(history), history[-1]
        backward = (history[n - 1 - self.window] - best) / self.window if n >= 1 + self.window else 0.0
        return weight * (self.alpha * backward + (1 - self.alpha) * best / n)

    def stalled(self) -> set:
        """Tasks (by tune context) whose best has not moved in ``patience`` of their batches: their trials go
        to the others."""
        if not self.patience:
            return set()
        return {i for i, h in self.history.items() if not improved(h, self.patience)}

    def next_task_id(self) -> int:
        scheduler = self._outer()  # pylint: disable=no-member
        tasks = scheduler.tasks_
        for task_id, task in enumerate(tasks):
            if (self.measure_alone or task_id != self.last) and task.runner_futures is not None and not task.is_terminated:
                self._join(scheduler, task_id)
        if self.deadline is not None and time.monotonic() >= self.deadline:
            self.out_of_time = True
            return -1  # MetaSchedule joins the batches still running: every measured trial is committed
        if self.round_robin < len(tasks):
            self.last = self.round_robin
            self.round_robin += 1
            return self.last
        alive = [i for i, t in enumerate(tasks) if not t.is_terminated and i not in self.stalled()]
        if not alive:
            return -1
        grads = {i: self._gradient(i, tasks[i].task_weight) for i in alive}
        top = max(grads.values())
        chosen = self.rng.choice(alive) if top == min(grads.values()) else max(alive, key=grads.get)
        if tasks[chosen].runner_futures is not None:
            self._join(scheduler, chosen)
        self.last = chosen
        return chosen


def improved(history: list, patience: int) -> bool:
    """Whether the best latency after each batch (``history``) moved in the last ``patience`` batches; a task
    with fewer batches than that has not had its chance yet."""
    return len(history) <= patience or history[-1] < history[-1 - patience]
