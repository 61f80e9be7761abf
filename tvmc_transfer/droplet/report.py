"""Droplet search's report: per task where each walk started and ended, its moves, and the weighted totals."""

import attrs

from ..kernels.kernel import Kernel


@attrs.frozen
class DropletTaskResult(Kernel):
    """Where droplet search's walk on one kernel started and ended, and how it got there."""

    start_seconds: float | None  # mean time of the schedule the walk started from, as measured beside its first batch
    final_seconds: float | None  # mean time of where it ended
    moves: tuple  # of Move
    trials: int  # points the walk tried, recorded ones included
    measured: int  # schedules measured in this run (the design spaces' starts included)
    converged: bool

    @property
    def p_value(self) -> float | None:
        return self.moves[-1].p_value if self.moves else None

    @property
    def speedup(self) -> float | None:
        ok = self.start_seconds and self.final_seconds
        return self.start_seconds / self.final_seconds if ok else None

    def to_json(self) -> dict:
        return {
            "index": self.index,
            "task": self.name,
            "weight": self.weight,
            "start_seconds": self.start_seconds,
            "final_seconds": self.final_seconds,
            "speedup": self.speedup,
            "moves": len(self.moves),
            "move_gains": [m.gain for m in self.moves],  # each from the re-measurement after it (None: none)
            "p_value": self.p_value,
            "trials": self.trials,
            "measured": self.measured,
            "converged": self.converged,
        }


@attrs.frozen
class DropletReport:
    """What droplet search did: a ``DropletTaskResult`` per task and the weighted totals."""

    tasks: tuple  # of DropletTaskResult
    pvalue: float
    wall_seconds: float
    trials_per_task: int = 0  # each walk's budget (0: not known)
    out_of_time: bool = False  # the command's time limit stopped the walks that had not ended

    @property
    def measured(self) -> int:
        return sum(t.measured for t in self.tasks)

    def weighted(self, attr: str) -> float:
        return sum(getattr(t, attr) * t.weight for t in self.tasks if t.start_seconds and t.final_seconds)

    def summary(self) -> str:
        rows = [f"droplet search (p < {self.pvalue:g}):", f"{'#':>3}  {'task':<32} {'start (us)':>11} {'final (us)':>11} {'moves':>5} {'p':>8} {'trials':>6}  stop"]
        for t in self.tasks:
            start = f"{t.start_seconds * 1e6:11.2f}" if t.start_seconds else f"{'-':>11}"
            final = f"{t.final_seconds * 1e6:11.2f}" if t.final_seconds else f"{'-':>11}"
            p = f"{t.p_value:8.1e}" if t.p_value is not None else f"{'-':>8}"
            stop = "converged" if t.converged else "time limit" if self.out_of_time and t.trials < self.trials_per_task else "budget"
            rows.append(f"{t.index:>3}  {t.name[:32]:<32} {start} {final} {len(t.moves):>5} {p} {t.trials:>6}  {stop}")
        before, after = self.weighted("start_seconds"), self.weighted("final_seconds")
        gain = f"{before * 1e3:.3f} ms -> {after * 1e3:.3f} ms ({before / after:.2f}x)" if after else "nothing to compare"
        late = "; the time limit stopped it (costliest kernels were visited first; run again to go on)" if self.out_of_time else ""
        rows.append(f"droplet: sum of weighted times {gain}; {self.measured} new trials in {self.wall_seconds:.1f} s{late}")
        return "\n".join(rows)

    def to_json(self) -> dict:
        """The summary as plain data: per task where the walk started and ended, and the weighted totals."""
        before, after = self.weighted("start_seconds"), self.weighted("final_seconds")
        return {
            "phase": "droplet",
            "pvalue": self.pvalue,
            "tasks": [t.to_json() for t in self.tasks],
            "weighted_start_seconds": before,
            "weighted_final_seconds": after,
            "speedup": before / after if after else None,
            "measured": self.measured,
            "wall_seconds": self.wall_seconds,
            "out_of_time": self.out_of_time,
        }
