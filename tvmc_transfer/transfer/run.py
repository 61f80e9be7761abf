"""``transfer_tune``: replay other models' tuned schedules on this model's kernels and keep the fastest.

Transfer-tuning (Gibson and Cano, PACT 2022): most kernels of a model are of a kind (a *kernel class*,
``classes.py``) that other models already tuned at other shapes. For every kernel of the target model, the
tuning records of its class in the source records folders are replayed on its workload with decisions remapped
to fit (``replay.py``), post-processed, built, checked numerically against the unscheduled kernel on random
inputs, and measured with the same builder, runner and ``MeasureOptions`` as ``tvmc tune``. Candidates that
fail anywhere are counted and dropped. The survivors are written as ordinary MetaSchedule tuning records, so
``tvmc compile --tuning-records`` (or plain TVM) applies the fastest.

A second run with the same output folder resumes: finished kernels are read back from the folder's
``transfer_journal.jsonl`` and not measured again.

Later phases (``TransferPlan``; ``tvmc transfer --droplet`` adds droplet search) then refine the kernels that
have records, with the same database and measurement protocol, before the end-to-end timing.

>>> from tvmc_transfer import load_model, parse_target, transfer_tune, TransferOptions      # doctest: +SKIP
>>> report = transfer_tune(load_model("b.onnx"), parse_target("llvm"), ["a-records"], "b-records",
...                        TransferOptions(max_candidates=2))                              # doctest: +SKIP
>>> print(report.table())                                                                  # doctest: +SKIP
"""

import json
import logging
import math
import os
import shutil
import sys
import tempfile
import time

import attrs
import numpy as np

from ..errors import TVMCException
from ..measure import MeasureOptions
from ..records import is_measured, mean_seconds, open_database, records_of

log = logging.getLogger("tvmc")

JOURNAL = "transfer_journal.jsonl"
SOURCE_MODES = ("auto", "all")


def _positive_or_none(name):
    def check(_instance, _attribute, value):
        if value is not None and value < 1:
            raise TVMCException(f"--{name} must be at least 1 (or left out for no limit), got {value}")

    return check


@attrs.frozen
class TransferOptions:
    """How transfer-tuning picks and checks candidates.

    ``max_candidates``: the best k records of every matching source workload are tried (None: every record).
    ``max_per_kernel``: at most this many candidates per target kernel, source workloads of the nearest shapes
    first (None: no cap). ``sources``: ``"auto"`` uses the best-ranked sources until the class coverage of the
    target stops growing, ``"all"`` every source. ``tune_rest``: trials of ``tvmc tune`` for the kernels no
    source matches. ``rtol``: largest error, relative to the largest reference value, a candidate may have.
    ``exact_classes``: a kernel takes only schedules of its own class; by default a kernel whose class no source
    holds takes those of kernels with the same anchor and another epilogue (``classes.py``), the two epilogues
    fitted to each other (``replay.py``).
    """

    max_candidates: int | None = attrs.field(default=1, validator=_positive_or_none("max-candidates"))
    max_per_kernel: int | None = attrs.field(default=None, validator=_positive_or_none("max-per-kernel"))
    sources: str = "all"
    tune_rest: int = 0
    population: int = 512  # evolutionary search population for --tune-rest
    seed: int = 0
    rtol: float = 1e-3
    e2e: bool = True
    e2e_repeat: int = 10
    time_limit: float | None = None  # seconds; no new kernel is started after it (the next run goes on)
    exact_classes: bool = False
    measure: MeasureOptions = attrs.field(factory=MeasureOptions)

    def __attrs_post_init__(self):
        if self.sources not in SOURCE_MODES:
            raise TVMCException(f"--sources must be one of {', '.join(SOURCE_MODES)}, got '{self.sources}'")
        if self.tune_rest < 0 or self.population < 2:
            raise TVMCException("--tune-rest must be >= 0 and --population >= 2")
        if not 0 < self.rtol < 1 or self.e2e_repeat < 1:
            raise TVMCException("--rtol must be in (0, 1) and the end-to-end repeat at least 1")
        if self.time_limit is not None and self.time_limit <= 0:
            raise TVMCException("--time-limit must be a positive number of seconds")


@attrs.define
class TransferPlan:
    """What ``transfer_tune`` does after the transfer, open to plugins (as ``TunePlan`` is for ``tune``):
    ``phases`` run in order once every kernel is done, ``--tune-rest`` included, each as
    ``phase(session) -> report`` with a ``TransferSession``. A ``tune`` phase such as ``droplet_phase`` works
    here unchanged.

    >>> plan = TransferPlan([droplet_phase(DropletOptions(trials=16))])                # doctest: +SKIP
    """

    phases: list = attrs.field(factory=list)


@attrs.frozen
class TransferSession:
    """What a later phase works on: the output folder and the kernels that have a measured record in it
    (transferred, reused, kept default or tuned by ``--tune-rest``); unmatched kernels are left alone. The same
    fields as ``TuneSession``; ``options`` are the ``TransferOptions`` (``options.measure`` the protocol)."""

    model: object
    target: object
    tasks: list
    database: object
    options: TransferOptions
    records: str


@attrs.frozen
class SourceRank:
    """How much of the target one source folder covers: weighted FLOPs of kernels whose class it holds."""

    path: str
    workloads: int
    records: int
    other_target: int
    classes: int
    coverage: float  # fraction of the target's weighted FLOPs
    kernels: int  # target kernels whose class it holds
    chosen: bool


@attrs.frozen
class KernelTransfer:
    """What transfer did for one kernel of the target model."""

    index: int
    task: str
    kernel_class: str
    weight: int
    flops: float
    status: str  # transferred | reused | default (unscheduled was faster) | failed | unmatched | pending
    candidates: int = 0  # tried (after deduplication of identical schedules)
    valid: int = 0  # replayed, post-processed, built, ran and correct
    wrong: int = 0  # built and ran, but the numbers differ from the unscheduled kernel
    invalid: int = 0  # did not replay, failed a postprocessor, or failed to build or run
    remapped: int = 0  # decisions changed to fit, over all candidates tried
    match: str | None = None  # "class" (same class) or "epilogue" (same anchor, other epilogue); None: unmatched
    best_source: str | None = None  # records folder and source workload of the fastest candidate
    seconds: float | None = None  # fastest correct candidate (mean of the runner's samples)
    default_seconds: float | None = None  # the unscheduled kernel, measured the same way
    search_seconds: float = 0.0

    @property
    def speedup(self) -> float | None:
        if self.seconds and self.default_seconds:
            return self.default_seconds / self.seconds
        return None


@attrs.frozen
class TransferReport:
    """Everything ``transfer_tune`` did: ranking, per-kernel results and totals."""

    model: str
    target: dict
    output: str
    sources: tuple  # SourceRank, best first
    kernels: tuple  # KernelTransfer, in the model's task order
    search_seconds: float  # wall clock of every session on this output (ranking, replay, checks, measurement, tune-rest, phases)
    e2e_ms: float | None = None  # median end-to-end latency of the compiled result, later phases included
    tune_rest: object = None  # TuneReport of --tune-rest, if any
    phases: tuple = ()  # reports of the plan's phases (droplet search, ...), in order
    # per kernel, in task order, the best measured time in the output once the phases ran (None: no record);
    # empty when none ran. A phase's own report may start from a schedule that the default beats.
    final_seconds: tuple = ()

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

    def table(self) -> str:
        rows = ["sources (by weighted-FLOP coverage of the target):"]
        for s in self.sources:
            mark = "*" if s.chosen else " "
            rows.append(f" {mark} {s.coverage * 100:5.1f}%  {s.kernels:>3} kernels  {s.classes:>3} classes  {s.records:>5} records  {s.path}")
        rows.append("")
        rows.append(f"{'#':>3}  {'task':<26} {'class':<40} {'w':>2} {'cand':>4} {'ok':>3} {'wrong':>5} {'inv':>3}  {'best (us)':>10} {'default':>10} {'x':>6}  {'status':<11} best source")
        for k in self.kernels:
            best = f"{k.seconds * 1e6:10.2f}" if k.seconds is not None else f"{'-':>10}"
            default = f"{k.default_seconds * 1e6:10.2f}" if k.default_seconds is not None else f"{'-':>10}"
            speed = f"{k.speedup:6.2f}" if k.speedup else f"{'-':>6}"
            rows.append(
                f"{k.index:>3}  {k.task[:26]:<26} {k.kernel_class[:40]:<40} {k.weight:>2} {k.candidates:>4} {k.valid:>3} {k.wrong:>5} {k.invalid:>3}"
                f"  {best} {default} {speed}  {k.status:<11} {k.best_source or ''}"
            )
        t = self.totals()
        rows.append(
            f"coverage: {t['coverage'] * 100:.1f}% of weighted FLOPs transferred ({t['class_coverage'] * 100:.1f}% matched a class);"
            f" {t['transferred']} of {t['kernels']} kernels; {t['candidates']} candidates: {t['valid']} valid, {t['wrong']} wrong,"
            f" {t['invalid']} invalid; {t['remapped_decisions']} decisions remapped"
        )
        if t["weighted_default_seconds"] and t["weighted_result_seconds"]:
            rows.append(
                f"matched kernels, weighted sum of times: {t['weighted_result_seconds'] * 1e3:.3f} ms (default schedules {t['weighted_default_seconds'] * 1e3:.3f} ms)"
            )
        if self.unmatched:
            rows.append("no class match: " + ", ".join(f"#{k.index} {k.task} ({k.kernel_class})" for k in self.unmatched))
        rows += [phase.summary() if hasattr(phase, "summary") else str(phase) for phase in self.phases]
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
        def plain(obj):
            return {k: v for k, v in attrs.asdict(obj, recurse=False).items()}

        data = {
            "model": self.model,
            "target": self.target,
            "output": self.output,
            "sources": [plain(s) for s in self.sources],
            "kernels": [{**plain(k), "speedup": k.speedup, **self._final(i)} for i, k in enumerate(self.kernels)],
            "totals": self.totals(),
        }
        if self.tune_rest is not None:
            data["tune_rest"] = {"new_trials": self.tune_rest.new_trials, "wall_seconds": self.tune_rest.wall_seconds}
        if self.phases:
            data["phases"] = [phase.to_json() if hasattr(phase, "to_json") else {"summary": str(phase)} for phase in self.phases]
        return data

    def _final(self, i: int) -> dict:
        return {"final_seconds": self.final_seconds[i]} if self.final_seconds else {}

    def write_json(self, path: str) -> None:
        """Write the report as JSON atomically: a reader never sees half a file."""
        folder = os.path.dirname(os.path.abspath(path))
        if not os.path.isdir(folder):
            raise TVMCException(f"cannot write report '{path}': folder '{folder}' does not exist")
        fd, partial = tempfile.mkstemp(dir=folder, prefix=".tvmc-partial-", suffix=".json")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(self.to_json(), f, indent=1)
                f.write("\n")
            os.replace(partial, path)
        finally:
            if os.path.exists(partial):
                os.remove(partial)


# -- choosing sources -------------------------------------------------------------------------------------------


def rank_sources(tasks: list, classes: list, sources: list, mode: str = "all", epilogues: bool = True) -> list:
    """Rank ``sources`` by the weighted FLOPs of the target's kernels whose class they hold (or, with
    ``epilogues``, a class whose schedules replay on them: see ``matches``); mark the chosen.

    ``auto`` takes the best source, then every next one that covers kernels the chosen ones do not, best
    first, until no source adds coverage. ``all`` takes every source that covers anything."""
    total = sum(t.flops * t.weight for t in tasks) or 1.0
    cost = [t.flops * t.weight for t in tasks]

    keys = [s.classes() for s in sources]
    covers = [{j for j, c in enumerate(classes) if any(matches(c, h, epilogues) for h in held)} for held in keys]
    order = sorted(range(len(sources)), key=lambda i: (-sum(cost[j] for j in covers[i]), i))
    chosen, have = set(), set()
    for i in order:
        gain = covers[i] - have
        if mode == "all" or (gain and (sum(cost[j] for j in gain) > 0 or not have)):
            chosen.add(i)
            have |= gain
    ranks = []
    for i in order:
        s = sources[i]
        kernels = covers[i]
        ranks.append(
            SourceRank(
                s.path,
                len(s.workloads),
                sum(len(w.records) for w in s.workloads),
                s.other_target,
                len(keys[i]),
                sum(cost[j] for j in kernels) / total,
                len(kernels),
                i in chosen,
            )
        )
    return ranks


def format_ranking(ranks: list) -> str:
    rows = ["sources (by weighted-FLOP coverage of the target; * = used):"]
    for s in ranks:
        rows.append(f" {'*' if s.chosen else ' '} {s.coverage * 100:5.1f}%  {s.kernels:>3} kernels  {s.classes:>3} classes  {s.records:>5} records  {s.path}")
    return "\n".join(rows)


# -- candidates -------------------------------------------------------------------------------------------------


@attrs.frozen
class Candidate:
    source: object  # records_tools.Source
    workload: object  # records_tools.SourceWorkload
    record: object  # TuningRecord
    distance: float  # log-distance of the source workload's loop extents to the target's
    match: str = "class"  # how its schedules apply: ``matches``

    def describe(self) -> str:
        return f"{self.source.name} {self.workload.describe()} {self.workload.kernel_class.name}"


def _extent_distance(a, b) -> float:
    return sum(abs(math.log(max(x, 1)) - math.log(max(y, 1))) for xa, ya in zip(a, b) for x, y in zip(xa, ya))


def matches(task_class, source_class, epilogues: bool = True) -> str | None:
    """How a source kernel's schedules apply to a target kernel: ``"class"`` (the same class), ``"epilogue"``
    (the same anchor, the epilogues fitted to each other; only with ``epilogues``) or None."""
    if task_class.key == source_class.key:
        return "class"
    return "epilogue" if epilogues and task_class.takes_epilogue_of(source_class) else None


def candidates_for(task_class, task_extents, sources: list, options: TransferOptions) -> list:
    """The source records tried on one kernel: best ``max_candidates`` per source workload of its class,
    nearest shapes first, at most ``max_per_kernel``. Only when no source holds its class, those of the
    source workloads whose schedules replay once the epilogues are fitted (``matches``)."""
    from .classes import iter_extents  # pylint: disable=import-outside-toplevel

    held = [(w, source) for source in sources for w in source.workloads]
    how = {id(w): matches(task_class, w.kernel_class, not options.exact_classes) for w, _ in held}
    exact = any(how[id(w)] == "class" for w, _ in held)
    found = []
    for workload, source in held:
        if how[id(workload)] is None or (exact and how[id(workload)] != "class"):
            continue
        distance = _extent_distance(iter_extents(workload.mod), task_extents)
        records = workload.records if options.max_candidates is None else workload.records[: options.max_candidates]
        found += [(distance, rank, mean_seconds(r), Candidate(source, workload, r, distance, how[id(workload)])) for rank, r in enumerate(records)]
    found.sort(key=lambda item: item[:3])
    chosen = [c for *_, c in found]
    return chosen if options.max_per_kernel is None else chosen[: options.max_per_kernel]


# -- numerical check --------------------------------------------------------------------------------------------


class KernelCheck:
    """The unscheduled kernel's outputs on random inputs, to compare every candidate with."""

    def __init__(self, mod, target, rtol: float, seed: int = 0):
        import tvm  # pylint: disable=import-outside-toplevel

        self.tvm, self.target, self.rtol = tvm, target, rtol
        params = list(mod["main"].params)
        self.shapes = [(tuple(int(d) for d in p.shape), str(p.dtype)) for p in params]
        reference = tvm.compile(mod, target)
        self.inputs = self._inputs(np.random.default_rng(seed), positive=False)
        self.reference = self._run(reference)
        if not all(np.all(np.isfinite(r)) for r in self.reference if r.dtype.kind == "f"):
            # e.g. sqrt of a random "variance": positive inputs keep every value finite
            self.inputs = self._inputs(np.random.default_rng(seed), positive=True)
            self.reference = self._run(reference)

    def _inputs(self, rng, positive: bool) -> list:
        arrays = []
        for shape, dtype in self.shapes:
            if np.dtype(dtype).kind == "f":
                values = rng.uniform(0.5, 1.5, shape) if positive else rng.standard_normal(shape)
                arrays.append(values.astype(dtype))
            else:  # indices and flags: zeros are valid for any gather
                arrays.append(np.zeros(shape, dtype))
        return arrays

    def _run(self, lib) -> list:
        device = self.tvm.cpu()
        tensors = [self.tvm.runtime.tensor(a, device) for a in self.inputs]
        lib["main"](*tensors)
        return [t.numpy() for t in tensors]

    def error(self, scheduled_mod) -> float:
        """Largest error of the scheduled kernel, relative to the largest reference value (inf when it fails)."""
        try:
            outputs = self._run(self.tvm.compile(scheduled_mod, self.target))
        except Exception:  # pylint: disable=broad-except
            return float("inf")
        worst = 0.0
        for ours, reference in zip(outputs, self.reference):
            if ours.dtype.kind != "f":
                worst = max(worst, 0.0 if np.array_equal(ours, reference) else float("inf"))
                continue
            ours64, ref64 = ours.astype(np.float64), reference.astype(np.float64)
            same_nan = np.array_equal(np.isnan(ours64), np.isnan(ref64))
            finite = np.isfinite(ref64)
            if not same_nan or not np.array_equal(ours64[~finite & ~np.isnan(ref64)], ref64[~finite & ~np.isnan(ref64)]):
                return float("inf")
            if not finite.any():
                continue
            scale = max(float(np.max(np.abs(ref64[finite]))), np.finfo(np.float32).tiny)
            worst = max(worst, float(np.max(np.abs(ours64[finite] - ref64[finite]))) / scale)
        return worst

    def is_correct(self, scheduled_mod) -> bool:
        return self.error(scheduled_mod) <= self.rtol


# -- measurement ------------------------------------------------------------------------------------------------


def _device_type(target) -> str:
    kind = target.kind.name
    return "cpu" if kind in ("llvm", "c") else kind


def measure_modules(builder, runner, target, mods: list, retries: int = 1) -> list:
    """Build and run ``mods`` with MetaSchedule's builder and runner: per module ``(run_secs, args_info)``,
    ``run_secs`` None when the build or run failed. Failures are tried again ``retries`` times: on a loaded
    machine a worker can time out on a module that is fine."""
    from tvm.s_tir import meta_schedule as ms  # pylint: disable=import-outside-toplevel

    args = [ms.arg_info.ArgInfo.from_entry_func(mod, remove_preproc=True) for mod in mods]
    results = [(None, a) for a in args]
    todo = list(range(len(mods)))
    for _ in range(retries + 1):
        if not todo:
            break
        built = builder.build([ms.builder.BuilderInput(mods[i], target) for i in todo])
        runnable = [(i, b) for i, b in zip(todo, built) if b.error_msg is None]
        for i, b in zip(todo, built):
            if b.error_msg is not None:
                log.debug("module %d failed to build: %s", i, str(b.error_msg)[-1500:])
        futures = runner.run([ms.runner.RunnerInput(b.artifact_path, _device_type(target), args[i]) for i, b in runnable])
        for (i, _), future in zip(runnable, futures):
            result = future.result()
            secs = [float(s) for s in result.run_secs] if result.error_msg is None and result.run_secs else []
            if secs and all(s < 1e9 for s in secs):
                results[i] = (secs, args[i])
            else:
                log.debug("module %d failed to run: %s", i, str(result.error_msg)[-1500:])
        todo = [i for i in todo if results[i][0] is None]
    return results


# -- the journal of finished kernels (resuming) -----------------------------------------------------------------


class Journal:
    """One JSON line per finished kernel in the output folder; a rerun reads them instead of measuring again."""

    def __init__(self, folder: str, fingerprint: str):
        self.path = os.path.join(folder, JOURNAL)
        self.fingerprint = fingerprint
        self.done = {}
        self.sessions = 0.0
        if os.path.exists(self.path):
            with open(self.path, encoding="utf-8") as f:
                for line in f:
                    try:
                        entry = json.loads(line)
                    except ValueError:
                        continue  # a line cut short by a kill
                    if entry.get("fingerprint") == fingerprint and "kernel" in entry:
                        self.done[entry["workload"]] = entry["kernel"]
                    if entry.get("fingerprint") == fingerprint and "session_seconds" in entry:
                        self.sessions += float(entry["session_seconds"])

    def _append(self, entry: dict) -> None:
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(entry) + "\n")
            f.flush()
            os.fsync(f.fileno())

    def finished(self, workload: str, kernel: KernelTransfer) -> None:
        self._append({"fingerprint": self.fingerprint, "workload": workload, "kernel": attrs.asdict(kernel)})

    def session(self, seconds: float) -> None:
        self._append({"fingerprint": self.fingerprint, "session_seconds": seconds})


# -- the transfer -----------------------------------------------------------------------------------------------


def _kernel_line(k: KernelTransfer) -> str:
    best = f"{k.seconds * 1e6:.1f} us" if k.seconds is not None else "-"
    default = f"{k.default_seconds * 1e6:.1f} us" if k.default_seconds is not None else "-"
    return f"#{k.index} {k.task}: {k.candidates} candidates, {k.valid} valid, {k.wrong} wrong; best {best}, default {default} ({k.status})"


def _progress(enabled: bool, text: str) -> None:
    if enabled:
        sys.stderr.write(f"transfer: {text}\n")
        sys.stderr.flush()


def transfer_tune(model, target, sources, output: str, options: TransferOptions = TransferOptions(), progress: bool = True, plan: TransferPlan | None = None) -> TransferReport:
    """Transfer-tune ``model`` for ``target`` from the records folders ``sources`` into the folder ``output``.

    Returns a ``TransferReport``; the records in ``output`` are ordinary MetaSchedule tuning records. The
    phases of ``plan`` run afterwards on ``output`` (what ``tvmc transfer --droplet`` does):

    >>> report = transfer_tune(load_model("tiny-cnn-b.onnx"), parse_target("llvm"), ["cnn-records"],
    ...                        "cnn-b-records", TransferOptions(e2e=False))              # doctest: +SKIP
    >>> report.totals()["coverage"]                                                    # doctest: +SKIP
    >>> from tvmc_transfer import DropletOptions, droplet_phase                        # doctest: +SKIP
    >>> report = transfer_tune(model, target, ["cnn-records"], "cnn-b-records",
    ...                        plan=TransferPlan([droplet_phase(DropletOptions(trials=16))]))  # doctest: +SKIP
    >>> print(report.phases[0].summary())                                              # doctest: +SKIP
    """
    from .classes import iter_extents, kernel_class  # pylint: disable=import-outside-toplevel
    from ..intrinsics import load_tensor_intrinsics
    from ..records import target_label
    from ..records.tools import read_source, workload_hash
    from ..target import target_json, tuning_target
    from ..tasks import extract_tasks

    start = time.time()
    sources = [sources] if isinstance(sources, str) else list(sources)
    if not sources:
        raise TVMCException("give at least one records folder to transfer from (--from RECORDS)")
    out = os.path.abspath(output)
    if any(os.path.abspath(s) == out for s in sources):
        raise TVMCException(f"the output '{output}' is also a source; write the transferred records to a new folder")
    target = tuning_target(target)
    read = [read_source(path, target) for path in sources]  # fail on a bad source before writing anything
    for source in read:
        if source.other_target:
            log.warning("%s: %d records are for another target and were ignored", source.path, source.other_target)
        if not source.workloads:
            log.warning("%s: no measured records for this target", source.path)
    if not any(source.workloads for source in read) and any(source.other_targets for source in read):
        theirs = sorted({label for source in read for label in source.other_targets})
        raise TVMCException(
            f"no source has records for {target_label(target)}: they are for {', '.join(theirs)}; "
            f"pass --target '{theirs[0]}' to transfer for that processor, or tune the sources for this one"
        )
    tasks = extract_tasks(model, target)
    if not tasks:
        raise TVMCException(f"{model.path} has no kernels to tune")
    classes = [kernel_class(t.mod) for t in tasks]
    ranks = rank_sources(tasks, classes, read, options.sources, not options.exact_classes)
    _progress(progress, format_ranking(ranks).replace("\n", "\ntransfer: "))
    chosen_paths = {r.path for r in ranks if r.chosen}
    chosen = [s for s in read if s.path in chosen_paths]

    database = open_database(output, create=True)
    # (journals written before epilogue matching existed hold exact-class results: --exact-classes resumes them)
    fingerprint = json.dumps([sorted(chosen_paths), options.max_candidates, options.max_per_kernel, target_json(target)] + ([] if options.exact_classes else ["epilogues"]))
    journal = Journal(output, fingerprint)
    load_tensor_intrinsics(target)  # before TuneContext, which would import every backend's (20 s)
    builder = options.measure.make_builder(target)
    runner = options.measure.make_runner()
    kernels = []
    try:
        order = sorted(range(len(tasks)), key=lambda i: -tasks[i].flops * tasks[i].weight)
        results = {}
        for n, i in enumerate(order):
            task, klass = tasks[i], classes[i]
            key = workload_hash(task.mod)
            if key in journal.done:
                results[i] = attrs.evolve(KernelTransfer(**journal.done[key]), index=task.index, task=task.name, weight=task.weight)
                continue
            candidates = candidates_for(klass, iter_extents(task.mod), chosen, options)
            row = KernelTransfer(task.index, task.name, str(klass), task.weight, task.flops, "unmatched")
            if candidates and options.time_limit is not None and time.time() - start > options.time_limit:
                results[i] = attrs.evolve(row, status="pending")  # out of time: the next run goes on here
                continue
            if candidates:
                kernel_start = time.time()
                row = _transfer_kernel(task, klass, candidates, target, database, builder, runner, options)
                row = attrs.evolve(row, search_seconds=time.time() - kernel_start, match=candidates[0].match)
                _progress(progress, f"[{n + 1}/{len(tasks)}] {_kernel_line(row)}")
            results[i] = row
            journal.finished(key, row)
        kernels = [results[i] for i in range(len(tasks))]
    finally:
        builder.shutdown()
        journal.session(time.time() - start)

    tune_report = None
    complete = all(k.status != "pending" for k in kernels)
    unmatched = [k.index for k in kernels if k.status in ("unmatched", "failed")]
    if options.tune_rest and unmatched and complete:
        from ..tune import TuneOptions, tune_model  # pylint: disable=import-outside-toplevel

        tune_start = time.time()
        tune_report = tune_model(
            model,
            target,
            output,
            TuneOptions(
                trials=options.tune_rest,
                tasks=",".join(map(str, unmatched)),
                seed=options.seed,
                population=options.population,
                measure=options.measure,
            ),
            progress=progress,
        )
        journal.session(time.time() - tune_start)
    phases, final = (), ()
    if plan is not None and plan.phases and complete:
        phase_start = time.time()
        database = open_database(output)  # read again: --tune-rest wrote through a database of its own
        with_records = [t for t in tasks if any(is_measured(r) for r in records_of(database, t.mod))]
        session = TransferSession(model, target, with_records, database, options, output)
        phases = tuple(phase(session) for phase in plan.phases)
        final = tuple(_best_seconds(database, t.mod) for t in tasks)
        journal.session(time.time() - phase_start)
    search_seconds = Journal(output, fingerprint).sessions  # this session's and earlier ones' on this output
    e2e = end_to_end_ms(model, target, output, options.e2e_repeat) if options.e2e and complete else None
    return TransferReport(
        getattr(model, "path", str(model)),
        target_json(target),
        out,
        tuple(ranks),
        tuple(kernels),
        search_seconds,
        e2e,
        tune_report,
        phases,
        final,
    )


def _best_seconds(database, mod) -> float | None:
    """The best mean time among the measured records of a workload: what compiling with them applies."""
    return min((mean_seconds(r) for r in records_of(database, mod) if is_measured(r)), default=None)


def _transfer_kernel(task, klass, candidates, target, database, builder, runner, options) -> KernelTransfer:
    """Replay, post-process, check and measure the candidates of one kernel; commit the correct ones."""
    from tvm.s_tir import meta_schedule as ms  # pylint: disable=import-outside-toplevel

    from ..records.tools import workload_hash

    row = KernelTransfer(task.index, task.name, str(klass), task.weight, task.flops, "failed")
    try:
        check = KernelCheck(task.mod, target, options.rtol, options.seed)
    except Exception as err:  # pylint: disable=broad-except
        # without a reference nothing can be checked, so nothing is used
        log.warning("%s: the unscheduled kernel does not build or run here (%s); no candidate can be checked", task.name, str(err).strip().splitlines()[-1][:200] if str(err).strip() else type(err).__name__)
        return row
    key = workload_hash(task.mod)
    identical = [c for c in candidates if workload_hash(c.workload.mod) == key]
    if identical:
        row, reused = _reuse(task, identical, check, target, database, row)
        if reused:
            return _against_default(task, row, target, database, builder, runner, reused)
        candidates = [c for c in candidates if workload_hash(c.workload.mod) != key]

    valid, row = _replay_all(task, klass, candidates, target, check, row)
    measured = measure_modules(builder, runner, target, [task.mod] + [sch.mod for sch, _ in valid])
    default_secs, default_args = measured[0]
    best = None
    ran = 0
    for (sch, candidate), (secs, args_info) in zip(valid, measured[1:]):
        if secs is None:
            continue  # built or ran badly: counted as invalid below
        ran += 1
        commit(database, task.mod, sch.trace, secs, target, args_info)
        mean = sum(secs) / len(secs)
        if best is None or mean < best[0]:
            best = (mean, candidate)
    row = attrs.evolve(
        row,
        valid=ran,
        invalid=row.invalid + len(valid) - ran,
        status="transferred" if best else "failed",
        best_source=best[1].describe() if best else None,
        seconds=best[0] if best else None,
        default_seconds=sum(default_secs) / len(default_secs) if default_secs else None,
    )
    return _keep_default_if_faster(row, task.mod, default_secs, default_args, target, database)


def _reuse(task, identical, check, target, database, row):
    """An identical workload in a source: its record applies as it is; still check it before copying it."""
    from tvm import s_tir  # pylint: disable=import-outside-toplevel
    from tvm.s_tir import meta_schedule as ms

    for candidate in identical:
        row = attrs.evolve(row, candidates=row.candidates + 1)
        sch = s_tir.Schedule(task.mod)
        try:
            candidate.record.trace.apply_to_schedule(sch, remove_postproc=False)
        except Exception:  # pylint: disable=broad-except
            row = attrs.evolve(row, invalid=row.invalid + 1)
            continue
        if not check.is_correct(sch.mod):
            row = attrs.evolve(row, wrong=row.wrong + 1)
            continue
        record = candidate.record
        commit(database, task.mod, record.trace, [float(x) for x in record.run_secs], target, record.args_info)
        row = attrs.evolve(row, valid=row.valid + 1, status="reused", best_source=candidate.describe(), seconds=mean_seconds(record))
        return row, candidate
    return row, None


def _against_default(task, row, target, database, builder, runner, reused):
    (default_secs, default_args), = measure_modules(builder, runner, target, [task.mod])
    row = attrs.evolve(row, default_seconds=sum(default_secs) / len(default_secs) if default_secs else None)
    return _keep_default_if_faster(row, task.mod, default_secs, default_args, target, database)


def commit(database, mod, trace, run_secs, target, args_info) -> bool:
    """Add a tuning record unless the database already holds this trace for this workload (a resumed run)."""
    from tvm.s_tir import meta_schedule as ms  # pylint: disable=import-outside-toplevel

    workload = database.commit_workload(mod)
    if str(trace) in {str(r.trace) for r in database.get_top_k(workload, 1 << 30)}:
        return False
    database.commit_tuning_record(ms.database.TuningRecord(trace, workload, run_secs, target, args_info))
    return True


def _keep_default_if_faster(row, mod, default_secs, default_args, target, database):
    """When the unscheduled kernel beats every transferred schedule, record it too (an empty trace), so that
    compiling with these records never makes a kernel slower than not tuning it."""
    from tvm.s_tir import meta_schedule as ms  # pylint: disable=import-outside-toplevel
    from tvm.s_tir.schedule import Trace

    if row.seconds is None or row.default_seconds is None or row.default_seconds >= row.seconds:
        return row
    commit(database, mod, Trace([], {}), default_secs, target, default_args)
    return attrs.evolve(row, status="default")


def _replay_all(task, klass, candidates, target, check, row):
    """Replay and post-process every candidate, drop duplicates, check the numbers: the correct schedules."""
    from tvm.s_tir import meta_schedule as ms  # pylint: disable=import-outside-toplevel
    from tvm_ffi import structural_hash

    from .replay import ReplayError, replay

    context = ms.TuneContext(mod=task.mod, target=target, space_generator="post-order-apply", task_name=task.name)
    postprocs = list(context.space_generator.postprocs)
    seen = set()
    valid = []
    tried, invalid, wrong, remapped = row.candidates, row.invalid, row.wrong, row.remapped
    for candidate in candidates:
        source = candidate.workload.kernel_class
        inline, drop = klass.epilogue_plan(source)  # nothing to fit within a class
        names = dict(zip([b for b in source.blocks if b not in drop], [b for b in klass.blocks if b not in inline]))
        try:
            replayed = replay(candidate.record.trace, task.mod, names, inline, drop)
        except ReplayError as err:
            tried, invalid = tried + 1, invalid + 1
            log.debug("%s: %s does not replay: %s", task.name, candidate.describe(), err)
            continue
        sch = replayed.schedule
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
        remapped += replayed.remapped
        if not check.is_correct(sch.mod):
            wrong += 1
            log.info("%s: %s computes wrong results; dropped", task.name, candidate.describe())
            continue
        valid.append((sch, candidate))
    return valid, attrs.evolve(row, candidates=tried, invalid=invalid, wrong=wrong, remapped=remapped)


def _apply(postproc, sch) -> bool:
    try:
        return bool(postproc.apply(sch))
    except Exception:  # pylint: disable=broad-except
        return False


def end_to_end_ms(model, target, records: str, repeat: int = 10) -> float:
    """Compile ``model`` with ``records`` (if any) and return the median latency over ``repeat`` runs, in ms."""
    from ..compiler import compile_model  # pylint: disable=import-outside-toplevel
    from ..runner import run_module

    has_records = bool(open_database(records).get_all_tuning_records())
    folder = tempfile.mkdtemp(prefix="tvmc-transfer-e2e-")
    try:
        package = os.path.join(folder, "model.tar")
        compile_model(model, target, package, records=records if has_records else None)
        result = run_module(package, repeat=repeat, number=1)
        return float(np.median(result.times)) * 1e3
    finally:
        shutil.rmtree(folder, ignore_errors=True)
