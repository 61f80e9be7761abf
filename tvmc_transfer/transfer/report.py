"""``TransferReport``: what transfer did for each kernel and in total, as a table and as JSON."""

import attrs

from ..atomic import write_json
from ..kernels.kernel import Kernel
from ..records.sources import format_ranking

RANKINGS = ("the cost model", "nearest shapes (no cost model)", "nearest shapes (every one measured)")


@attrs.frozen
class KernelTransfer(Kernel):
    """What transfer did for one kernel of the target model."""

    kernel_class: str
    status: str  # transferred | reused | default (unscheduled was faster) | failed | unmatched | pending
    candidates: int = 0  # tried (after deduplication of identical schedules)
    ranked: int = 0  # replayed and post-processed: ordered by the cost model, then checked and measured in order
    measured: int = 0  # checked correct and measured (the ranked ones past them were neither)
    valid: int = 0  # replayed, post-processed, built, ran and correct
    wrong: int = 0  # built and ran, but the numbers differ from the unscheduled kernel
    invalid: int = 0  # did not replay, failed a postprocessor, or failed to build or run
    remapped: int = 0  # decisions changed to fit, over all candidates tried
    match: str | None = None  # "class" (same class), "epilogue" (same anchor, other epilogue) or "padding"; None: unmatched
    best_source: str | None = None  # records folder and source workload of the fastest candidate
    seconds: float | None = None  # fastest correct candidate (mean of the runner's samples)
    default_seconds: float | None = None  # the unscheduled kernel: measured the same way when it could win, else one run (kernel.py)
    search_seconds: float = 0.0

    @property
    def speedup(self) -> float | None:
        if self.seconds and self.default_seconds:
            return self.default_seconds / self.seconds
        return None

    def to_json(self) -> dict:
        """The row as plain data, as the report and transfer's journal hold it (the name under ``task``)."""
        data = attrs.asdict(self, recurse=False)
        return {"index": data.pop("index"), "task": data.pop("name"), "kernel_class": data.pop("kernel_class"), **data}

    @classmethod
    def from_json(cls, data: dict) -> "KernelTransfer":
        """The row ``to_json`` gave (a journal line read back)."""
        data = dict(data)
        return cls(name=data.pop("task"), **data)


@attrs.frozen
class TransferReport:
    """Everything ``transfer_tune`` did: ranking, per-kernel results and totals; ``summary()`` is what ``tvmc
    transfer`` prints, ``to_json()`` what its ``--report`` holds."""

    model: str
    target: dict
    output: str
    sources: tuple  # SourceRank, best first
    kernels: tuple  # KernelTransfer, in the model's task order
    search_seconds: float  # wall clock of every session on this output (ranking, replay, checks, measurement, tune-rest, phases)
    e2e_ms: float | None = None  # median end-to-end latency of the compiled result, later phases included
    tune_rest: object = None  # TuneReport of --tune-rest, if any
    phases: tuple = ()  # the plan's phase reports (``session.PhaseReport``: droplet search, ...), in order
    # per kernel, in task order, the best measured time in the output once the phases ran (None: no record);
    # empty when none ran. A phase's own report may start from a schedule that the default beats.
    final_seconds: tuple = ()
    # how each kernel's candidates were ordered before checking and measuring (--measure-top): RANKINGS
    ranked_by: str = "the cost model"
    # the schedule library used as a source (``Library.describe``), or why none: "left out", "none for ..."
    library: str | None = None
    # the kernels' default schedules measured and recorded beside the transferred ones (``tuning.seeds.Seeds``)
    defaults: object = None

    def _weighted(self, statuses) -> float:
        total = sum(k.flops * k.weight for k in self.kernels)
        part = sum(k.flops * k.weight for k in self.kernels if k.status in statuses)
        return part / total if total else 0.0

    @property
    def class_coverage(self) -> float:
        """Fraction of weighted FLOPs whose class some chosen source holds."""
        return self._weighted({"transferred", "reused", "default", "failed"})

    @property
    def coverage(self) -> float:
        """Fraction of weighted FLOPs that ended with a transferred or reused schedule."""
        return self._weighted({"transferred", "reused"})

    @property
    def complete(self) -> bool:
        """False when ``time_limit`` stopped the run: run it again to go on."""
        return not any(k.status == "pending" for k in self.kernels)

    @property
    def unmatched(self) -> tuple:
        return tuple(k for k in self.kernels if k.status == "unmatched")

    def totals(self) -> dict:
        # kernels measured both ways (matched ones): their weighted sum with the result's and default schedules
        measured = [k for k in self.kernels if k.default_seconds is not None]
        result = [k.seconds if k.status in ("transferred", "reused") and k.seconds is not None else k.default_seconds for k in measured]
        final = None
        if self.final_seconds:  # the same kernels, with the best schedule once the phases ran
            best = dict(zip((k.index for k in self.kernels), self.final_seconds))
            final = sum(min(r, best[k.index] or r) * k.weight for r, k in zip(result, measured))
        return {
            "kernels": len(self.kernels),
            "matched": sum(1 for k in self.kernels if k.status != "unmatched"),
            "transferred": sum(1 for k in self.kernels if k.status in ("transferred", "reused")),
            "candidates": sum(k.candidates for k in self.kernels),
            "ranked": sum(k.ranked for k in self.kernels),
            "measured": sum(k.measured for k in self.kernels),
            "valid": sum(k.valid for k in self.kernels),
            "wrong": sum(k.wrong for k in self.kernels),
            "invalid": sum(k.invalid for k in self.kernels),
            "remapped_decisions": sum(k.remapped for k in self.kernels),
            "class_coverage": self.class_coverage,
            "coverage": self.coverage,
            "weighted_default_seconds": sum(k.default_seconds * k.weight for k in measured),
            "weighted_result_seconds": sum(r * k.weight for r, k in zip(result, measured)),
            "weighted_final_seconds": final,  # None unless phases ran
            "search_seconds": self.search_seconds,
            "e2e_ms": self.e2e_ms,
            "complete": self.complete,
        }

    def summary(self) -> str:
        """The sources, a row per kernel, the totals and the phases' summaries."""
        rows = [f"schedule library: {self.library}"] if self.library else []
        rows += format_ranking(self.sources, "sources (by weighted-FLOP coverage of the target):").split("\n")
        rows.append("")
        rows.append(f"{'#':>3}  {'task':<26} {'class':<40} {'w':>2} {'cand':>4} {'rank':>4} {'meas':>4} {'ok':>3} {'wrong':>5} {'inv':>3}  {'best (us)':>10} {'default':>10} {'x':>6}  {'status':<11} best source")
        for k in self.kernels:
            best = f"{k.seconds * 1e6:10.2f}" if k.seconds is not None else f"{'-':>10}"
            default = f"{k.default_seconds * 1e6:10.2f}" if k.default_seconds is not None else f"{'-':>10}"
            speed = f"{k.speedup:6.2f}" if k.speedup else f"{'-':>6}"
            rows.append(
                f"{k.index:>3}  {k.name[:26]:<26} {k.kernel_class[:40]:<40} {k.weight:>2} {k.candidates:>4} {k.ranked:>4} {k.measured:>4} {k.valid:>3} {k.wrong:>5} {k.invalid:>3}"
                f"  {best} {default} {speed}  {k.status:<11} {k.best_source or ''}"
            )
        t = self.totals()
        rows.append(
            f"coverage: {t['coverage'] * 100:.1f}% of weighted FLOPs transferred ({t['class_coverage'] * 100:.1f}% matched a class);"
            f" {t['transferred']} of {t['kernels']} kernels; {t['candidates']} candidates: {t['ranked']} replayed, ranked by"
            f" {self.ranked_by}, {t['measured']} measured; {t['valid']} valid, {t['wrong']} wrong, {t['invalid']} invalid;"
            f" {t['remapped_decisions']} decisions remapped"
        )
        if t["weighted_default_seconds"] and t["weighted_result_seconds"]:
            rows.append(
                f"matched kernels, weighted sum of times: {t['weighted_result_seconds'] * 1e3:.3f} ms (default schedules {t['weighted_default_seconds'] * 1e3:.3f} ms)"
            )
        if self.unmatched:
            rows.append("no class match: " + ", ".join(f"#{k.index} {k.name} ({k.kernel_class})" for k in self.unmatched))
        rows += [phase.summary() for phase in self.phases]
        if t["weighted_final_seconds"] and t["weighted_result_seconds"]:
            gain = t["weighted_result_seconds"] / t["weighted_final_seconds"]
            rows.append(
                f"matched kernels after the phases above, weighted sum of their best records (what compile applies):"
                f" {t['weighted_final_seconds'] * 1e3:.3f} ms (transfer alone {t['weighted_result_seconds'] * 1e3:.3f} ms, {gain:.2f}x;"
                " a best of many single measurements includes lucky ones: the phases' own tested gains are above)"
            )
        rows.append(f"search time: {self.search_seconds:.1f} s" + (f"; end-to-end latency: {self.e2e_ms:.3f} ms" if self.e2e_ms is not None else ""))
        if not self.complete:
            pending = sum(1 for k in self.kernels if k.status == "pending")
            rows.append(f"stopped by the time limit with {pending} kernels to go: run the same command again to go on")
        return "\n".join(rows)

    def to_json(self) -> dict:
        """The report as plain data: what ``--report FILE.json`` holds."""
        data = {
            "model": self.model,
            "target": self.target,
            "output": self.output,
            "sources": [attrs.asdict(s, recurse=False) for s in self.sources],
            "kernels": [{**k.to_json(), "speedup": k.speedup, **self._final(i)} for i, k in enumerate(self.kernels)],
            "totals": self.totals(),
            "ranked_by": self.ranked_by,
            "library": self.library,
        }
        if self.defaults is not None:
            data["measured_defaults"] = self.defaults.seeded
        if self.tune_rest is not None:
            tuned = self.tune_rest.to_json()
            data["tune_rest"] = {key: tuned[key] for key in ("new_trials", "wall_seconds", "measured_defaults")}
        if self.phases:
            data["phases"] = [phase.to_json() for phase in self.phases]
        return data

    def _final(self, i: int) -> dict:
        return {"final_seconds": self.final_seconds[i]} if self.final_seconds else {}

    def write_json(self, path: str) -> None:
        """Write ``to_json()`` atomically: a reader never sees half a file."""
        write_json(path, self.to_json())
