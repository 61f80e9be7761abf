"""``tvmc records retime``: measure the best records of each workload again, here and now, into a new folder.

A record's time compares only with times measured the same way: same processor, same thread count
(``threads.py``), same load. Records measured otherwise (on one thread, before tvmc-transfer sized TVM's pool;
on another machine with the same processor; on a loaded day) mix badly with new ones: a resumed ``tvmc tune``,
a transfer or a compile prefers whichever record was *measured* faster, not whichever is. ``retime_records``
measures the ``top_k`` best measured records of each workload for the target again, with the tuner's builder
and runner, and writes them with their new times to a new folder (atomically; the input is never changed). A
record that no longer builds or runs is left out and counted.

With ``from_target``, the records read are those tuned for that target (another processor of the same
architecture, say an AVX-512 machine's records on an AVX2 one) and they are written as records for ``target``
with the times measured here: a record's trace is a schedule, not machine code, so it builds for any CPU of its
architecture, and once measured here it competes fairly with this machine's own records.
"""

import os
import statistics

import attrs

from ..errors import TVMCException
from ..records.database import commit_record, copy_records, mean_seconds, replayed, target_label
from ..records.listing import workload_hash
from ..records.merge import check_output, open_nonempty, write_folder_atomically
from .engine import measuring
from .measure import MeasureOptions, measure_modules


@attrs.frozen
class RetimeReport:
    """What ``retime_records`` did: how many records it measured again, how many failed, and the time ratios."""

    output: str
    workloads: int
    retimed: int
    failed: int  # records that did not build or run this time
    other_target: int  # records for another target, left out
    ratios: tuple  # new time / old time, per retimed record

    def summary(self) -> str:
        """One line: what ``tvmc records retime`` prints."""
        median = f"; new/old time: median {statistics.median(self.ratios):.2f}, {min(self.ratios):.2f}-{max(self.ratios):.2f}" if self.ratios else ""
        return (f"retimed {self.retimed} records of {self.workloads} workloads into {self.output}{median}; "
                f"{self.failed} failed to build or run, {self.other_target} for another target left out")

    def to_json(self) -> dict:
        return attrs.asdict(self)


def retime_records(source_folder: str, target, output: str, top_k: int = 1, measure=None, from_target=None) -> RetimeReport:
    """Measure the ``top_k`` best measured records of each workload of ``source_folder`` for ``target`` (or, given,
    for ``from_target``) again for ``target``, with ``measure`` (``MeasureOptions``), and write them with the new
    times as records for ``target`` to the new folder ``output``."""
    from tvm.s_tir import meta_schedule as ms  # pylint: disable=import-outside-toplevel


    if top_k < 1:
        raise TVMCException("--top-k must be at least 1")
    source = open_nonempty(source_folder)
    check_output(output)  # the input holds records, so it cannot be the output
    memory = ms.database.MemoryDatabase()
    read_for = from_target if from_target is not None else target
    _, other = copy_records(source, memory, read_for, measured_only=True)
    workloads = {workload_hash(r.workload.mod): r.workload.mod for r in memory.get_all_tuning_records()}
    if not workloads:
        hint = "" if from_target is not None else ", or --from-target to measure records of another processor for this one"
        raise TVMCException(f"'{source_folder}' holds no measured records for {target_label(read_for)}; give the target they were tuned for (--target{hint})")
    picked, mods, failed = [], [], 0  # the records to measure and their scheduled modules
    for mod in workloads.values():
        for record in memory.get_top_k(memory.commit_workload(mod), top_k):
            scheduled = replayed(mod, record.trace)
            if scheduled is None:
                failed += 1  # no longer applies to its own workload (another TVM)
                continue
            picked.append(record)
            mods.append(scheduled)
    with measuring(target, measure or MeasureOptions()) as (builder, runner):  # (tensor intrinsics loaded: traces may tensorize)
        results = measure_modules(builder, runner, target, mods)
    retimed = [(record, secs, args) for record, (secs, args) in zip(picked, results) if secs is not None]
    failed += len(picked) - len(retimed)

    def fill(database):
        for record, secs, args in retimed:
            commit_record(database, record.workload.mod, record.trace, secs, record.target if from_target is None else target, args)

    write_folder_atomically(output, fill)
    ratios = tuple(sum(secs) / len(secs) / mean_seconds(record) for record, secs, _ in retimed)
    return RetimeReport(os.path.abspath(output), len(workloads), len(retimed), failed, other, ratios)
