"""Transfer's sources: records folders read by kernel class and ranked, and each kernel's candidate records.

A source ranks by how much of the target (weighted FLOPs) its classes cover; a kernel's candidates are the best
records of every matching source workload, nearest shapes first."""

import math
import os

import attrs

from ..kernels.classes import iter_extents, kernel_class
from .database import corrupt_records, database_paths, is_measured, mean_seconds, open_database, run_samples, same_target, target_label
from .listing import shapes_text, workload_hash
from .screen import screened_paths


@attrs.frozen
class SourceWorkload:
    """One workload of a records folder with its measured records for the target, fastest first."""

    index: int  # position in the folder's workload file (stable, for reports)
    mod: object  # the workload IRModule
    kernel_class: object  # classes.KernelClass
    records: tuple  # TuningRecord, fastest first (a library's: schedule_library.LazyRecords)

    @property
    def best_seconds(self) -> float:
        return self.seconds(0)

    def seconds(self, rank: int) -> float:
        """The mean time of ``records[rank]``, without parsing it when the records can say (a library's)."""
        return self.records.seconds(rank) if hasattr(self.records, "seconds") else mean_seconds(self.records[rank])

    def describe(self) -> str:
        """``#3 1x64x56x56,64x64x3x3->1x64x56x56``: the workload's place in its folder and its buffer shapes."""
        return f"#{self.index} {shapes_text(self.mod)}"


@attrs.frozen
class Source:
    """A records folder read for transfer: its workloads grouped, with their classes."""

    path: str
    workloads: tuple  # SourceWorkload
    other_target: int  # records for another target, ignored
    unmeasured: int  # records of failed builds or runs, ignored
    other_targets: tuple = ()  # target_label of each other target met

    @property
    def name(self) -> str:
        return os.path.basename(os.path.normpath(self.path))

    def classes(self) -> set:
        """The distinct kernel classes of its workloads."""
        return {w.kernel_class for w in self.workloads}


def records_by_workload(database, target=None) -> tuple:
    """``{hash: (first index, mod, [records])}``, the counts of other-target and unmeasured records, and the
    labels of the other targets."""
    groups, order = {}, {}
    other = unmeasured = 0
    labels = set()
    for record in database.get_all_tuning_records():
        if target is not None and record.target is not None and not same_target(record.target, target):
            other += 1
            labels.add(target_label(record.target))
            continue
        if not is_measured(record):
            unmeasured += 1
            continue
        key = workload_hash(record.workload.mod)
        if key not in groups:
            order[key] = len(order)
            groups[key] = (record.workload.mod, [])
        groups[key][1].append(record)
    return groups, order, other, unmeasured, tuple(sorted(labels))


def read_source(path: str, target, keep: int | None = None) -> Source:
    """Read a records folder as a transfer source: measured records for ``target``, grouped by workload.

    With ``keep``, only each workload's ``keep`` fastest records are read (``best_records``): what transfer
    tries with ``--max-candidates``, read in seconds from a folder of thousands of prepacked records."""

    if keep is not None:
        groups, order, other, unmeasured, labels = best_records(path, target, keep)
    else:
        groups, order, other, unmeasured, labels = records_by_workload(open_database(path), target)
    workloads = []
    for key, (mod, records) in groups.items():
        records.sort(key=mean_seconds)
        workloads.append(SourceWorkload(order[key], mod, kernel_class(mod), tuple(records)))
    return Source(os.path.abspath(path), tuple(workloads), other, unmeasured, labels)


def best_records(path: str, target, keep: int, deep: bool = False) -> tuple:
    """``records_by_workload`` of the folder ``path`` with only each workload's ``keep`` fastest measured records
    (for ``target``; every target's when it is None).

    The records file is read as plain JSON and only the records kept become TVM objects; MetaSchedule's
    ``JSONDatabase`` parses every trace, which takes minutes for thousands of prepacked records (15 kB each)."""
    import heapq  # pylint: disable=import-outside-toplevel
    import json

    import tvm
    from tvm.s_tir import meta_schedule as ms


    workloads_path, records_path = database_paths(path)
    if not (os.path.isfile(workloads_path) and os.path.isfile(records_path)):
        open_database(path)  # raises the error that names what is missing
    workloads_path, records_path = screened_paths(path, deep)  # damaged or hostile lines left out and named
    kept, targets = {}, {}  # workload index -> heap of the fastest; target JSON -> (label, same target)
    other = unmeasured = 0
    labels = set()
    try:
        with open(records_path, encoding="utf-8") as f:
            for seq, line in enumerate(f):
                if not line.strip():
                    continue
                index, record = json.loads(line)  # record: [trace, run_secs, target, args_info]
                key = json.dumps(record[2], sort_keys=True)
                if key not in targets:
                    parsed = tvm.target.Target(record[2])
                    targets[key] = (target_label(parsed), target is None or same_target(parsed, target))
                label, same = targets[key]
                if not same:
                    other += 1
                    labels.add(label)
                    continue
                samples = run_samples(record[1])
                if samples is None:
                    unmeasured += 1
                    continue
                heap = kept.setdefault(index, [])
                (heapq.heappush if len(heap) < keep else heapq.heappushpop)(heap, (-sum(samples) / len(samples), -seq, record))
        with open(workloads_path, encoding="utf-8") as f:
            lines = [line for line in f if line.strip()]
        groups, order = {}, {}
        for index in sorted(kept):
            workload = ms.database.Workload.from_json(json.loads(lines[index]))
            key = workload_hash(workload.mod)
            if key not in groups:
                order[key], groups[key] = index, (workload.mod, [])
            groups[key][1].extend(ms.database.TuningRecord.from_json(record, workload) for _, _, record in kept[index])
    except Exception as err:  # pylint: disable=broad-except  # a line TVM refuses: leave out what it refuses, once
        if not deep:
            return best_records(path, target, keep, deep=True)
        raise corrupt_records(path, err) from None
    return groups, order, other, unmeasured, tuple(sorted(labels))



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


def format_ranking(ranks: list, title: str = "sources (by weighted-FLOP coverage of the target; * = used):") -> str:
    rows = [title]
    for s in ranks:
        rows.append(f" {'*' if s.chosen else ' '} {s.coverage * 100:5.1f}%  {s.kernels:>3} kernels  {s.classes:>3} classes  {s.records:>5} records  {s.path}")
    return "\n".join(rows)


@attrs.frozen
class Candidate:
    source: Source
    workload: SourceWorkload
    record: object  # TuningRecord
    distance: float  # log-distance of the source workload's loop extents to the target's
    match: str = "class"  # how its schedules apply: ``matches``

    def describe(self) -> str:
        return f"{self.source.name} {self.workload.describe()} {self.workload.kernel_class.name}"


def _extent_distance(a, b) -> float:
    return sum(abs(math.log(max(x, 1)) - math.log(max(y, 1))) for xa, ya in zip(a, b) for x, y in zip(xa, ya))


def matches(task_class, source_class, epilogues: bool = True) -> str | None:
    """How a source kernel's schedules apply to a target kernel: ``"class"`` (the same class), ``"epilogue"``
    (the same anchor, the epilogues fitted to each other), ``"padding"`` (the same but for a padding block on
    one side; these two only with ``epilogues``) or None."""
    if task_class.key == source_class.key:
        return "class"
    if not epilogues:
        return None
    if task_class.takes_padding_of(source_class):
        return "padding"
    return "epilogue" if task_class.takes_epilogue_of(source_class) else None


@attrs.frozen
class CandidateLimits:
    """How many source records ``candidates_for`` tries on a kernel (``TransferOptions`` has the same fields)."""

    max_candidates: int | None = 1
    max_per_kernel: int | None = None
    measure_top: int | None = None
    exact_classes: bool = False


def records_to_read(options) -> int | None:
    """How many records of each source workload ``candidates_for`` may use: ``max_candidates``, or up to a
    first batch (``measure_top``) when it fills one (None: all)."""
    return None if options.max_candidates is None else max(options.max_candidates, options.measure_top or 0)


def candidates_for(task_class, task_extents, sources: list, options) -> list:
    """The source records tried on one kernel: best ``max_candidates`` per source workload of its class,
    nearest shapes first, at most ``max_per_kernel``. When that gives fewer than a first batch
    (``measure_top``), the next best records of each workload are added until it is full: a class that one
    source workload holds (a model's one classifier matmul, say) would otherwise get one candidate, the
    schedule best for that workload's shape and not necessarily for this one. Only when no source holds its
    class, those of the source workloads whose schedules replay once the epilogues are fitted (``matches``).
    ``options``: a ``CandidateLimits`` (or the ``TransferOptions``, which has its fields)."""

    held = [(w, source) for source in sources for w in source.workloads]
    how = {id(w): matches(task_class, w.kernel_class, not options.exact_classes) for w, _ in held}
    exact = any(how[id(w)] == "class" for w, _ in held)
    used = [(w, source) for w, source in held if how[id(w)] is not None and not (exact and how[id(w)] != "class")]
    depth = options.max_candidates
    if depth is not None and options.measure_top is not None:
        deepest = max((len(w.records) for w, _ in used), default=0)
        while depth < deepest and sum(min(depth, len(w.records)) for w, _ in used) < options.measure_top:
            depth += 1
    found = []  # ranked before any record is read: a library's records are parsed when first read
    for workload, source in used:
        distance = _extent_distance(iter_extents(workload.mod), task_extents)
        count = len(workload.records) if depth is None else min(depth, len(workload.records))
        found += [(distance, rank, workload.seconds(rank), workload, source) for rank in range(count)]
    found.sort(key=lambda item: item[:3])
    chosen = found if options.max_per_kernel is None else found[: options.max_per_kernel]
    return [Candidate(source, w, w.records[rank], distance, how[id(w)]) for distance, rank, _, w, source in chosen]
