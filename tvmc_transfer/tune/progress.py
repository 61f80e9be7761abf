"""Tuning progress: a bar with ETA on a terminal, one plain line per batch otherwise.

Implemented as a MetaSchedule measure callback, so it sees exactly what the task scheduler measured.
"""

import sys
import time

from tvm.ir.utils import derived_object
from tvm.s_tir.meta_schedule.measure_callback import PyMeasureCallback

from ..records.database import mean_seconds


def _clock(seconds: float) -> str:
    seconds = int(max(seconds, 0))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


@derived_object
class ProgressCallback(PyMeasureCallback):
    """Counts trials and the best time per task, and draws the progress after each batch."""

    def __init__(self, total_trials: int, task_names: list, label: str = "tune", stream=None, done: int = 0,
                 deadline: float | None = None):
        super().__init__()
        self.total = max(total_trials, 1)
        self.names = task_names
        self.label = label
        self.stream = stream or sys.stderr
        self.done = self.first = done  # ``done``: trials of this run measured before the search (its measured defaults)
        self.deadline = deadline  # time.monotonic() of --time-budget's end: the ETA is never later
        self.best = {}
        self.start = time.time()
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()

    def apply(self, task_scheduler, task_id, measure_candidates, builder_results, runner_results) -> None:
        self.done += len(runner_results)
        for result in runner_results:
            if result.run_secs and not result.error_msg:
                seconds = mean_seconds(result)
                self.best[task_id] = min(self.best.get(task_id, float("inf")), seconds)
        self.draw(task_id)

    def draw(self, task_id: int) -> None:
        elapsed = time.time() - self.start
        searched = self.done - self.first
        eta = elapsed / searched * (self.total - self.done) if searched else float("inf")
        if self.deadline is not None:
            eta = min(eta, self.deadline - time.monotonic())
        eta = 0.0 if eta == float("inf") else eta
        name = self.names[task_id] if task_id < len(self.names) else str(task_id)
        best = self.best.get(task_id)
        best_text = f"{best * 1e6:.1f} us" if best is not None else "no valid run yet"
        done = min(self.done, self.total)
        if self.tty:
            width = 24
            filled = int(width * done / self.total)
            self.stream.write(
                f"\r{self.label} [{'#' * filled}{'.' * (width - filled)}] {done}/{self.total} trials"
                f"  {name[:32]}: {best_text}  elapsed {_clock(elapsed)}  ETA {_clock(eta)}\033[K"
            )
        else:
            self.stream.write(
                f"{self.label}: {done}/{self.total} trials; task {name}: best {best_text};"
                f" elapsed {_clock(elapsed)}, ETA {_clock(eta)}\n"
            )
        self.stream.flush()

    def close(self) -> None:
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()
