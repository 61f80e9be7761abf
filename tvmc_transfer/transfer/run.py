"""``transfer_tune``: the transfer run, kernel by kernel, then ``--tune-rest``, the plan's phases and the timing.

Transfer-tuning (Gibson and Cano, PACT 2022): most kernels of a model are of a kind (a *kernel class*,
``kernels/classes.py``) that other models already tuned at other shapes. For every kernel of the target model, the
tuning records of its class in the source records folders are replayed on its workload with decisions remapped
to fit (``kernels/replay.py``), post-processed, built, checked numerically against the unscheduled kernel on random
inputs (``kernels/check.py``), and measured with the same builder, runner and ``MeasureOptions`` as ``tvmc tune``. Candidates that
fail anywhere are counted and dropped. Before any is checked, a kernel's replayed candidates are ranked by the
shipped cost model, and only the best ranked are checked and measured (``--measure-top``, ``kernel.py``). The survivors are written as ordinary MetaSchedule tuning records, so
``tvmc compile --tuning-records`` (or plain TVM) applies the fastest.

The sources are the schedule library shipped for the target's CPU family (``defaults/library.py``: the zoo's
tuned records; ``TransferOptions.use_library=False`` leaves it out) and the records folders given, all read
and ranked alike in ``records/sources.py``; one kernel is transferred in ``kernel.py``. A second run with
the same output folder resumes: finished kernels are read back from the folder's journal (``journal.py``) and not
measured again.

Later phases (a ``session.Plan``; ``tvmc transfer --droplet`` adds droplet search) then refine the kernels that
have records, in the same open records folder and with the same measurement protocol, before the end-to-end timing.

>>> from tvmc_transfer import load_model, parse_target, transfer_tune, TransferOptions      # doctest: +SKIP
>>> report = transfer_tune(load_model("b.onnx"), parse_target("llvm"), ["a-records"], "b-records",
...                        TransferOptions(max_candidates=2))                              # doctest: +SKIP
>>> print(report.summary())                                                                  # doctest: +SKIP
>>> report = transfer_tune(load_model("b.onnx"), parse_target("native"), [], "b-records")  # doctest: +SKIP
>>> report.library                         # the library alone                              # doctest: +SKIP
'x86-64 AVX-512 (schedules-x86-avx512.json.xz 2026.12-4, tuned on llvm -mcpu=znver4, llvm -mcpu=znver5)'
"""

import json
import logging
import os
import shutil
import sys
import tempfile
import time

import attrs
import numpy as np

from ..build.lowering import Lowering
from ..build.tasks import extract_tasks, select_tasks
from ..compiler import compile_model
from ..defaults.cost_model import load_cost_model
from ..defaults.library import library_source, nothing_to_transfer_from
from ..errors import TVMCException
from ..kernels.classes import iter_extents, kernel_class
from ..records.database import target_label
from ..records.folder import RecordsFolder
from ..records.listing import workload_hash
from ..records.lock import claim, writes_records
from ..records.sources import candidates_for, format_ranking, rank_sources, read_source, records_to_read
from ..run.module import run_module
from ..session import Plan, Session
from ..target import target_json, tuning_target
from ..tune.engine import deadline, measuring
from ..tune.model import TuneOptions, tune_tasks
from ..tune.seeds import seed_with_defaults
from .journal import Journal
from .kernel import transfer_kernel
from .observer import TransferObserver
from .options import TransferOptions
from .report import RANKINGS, KernelTransfer, TransferReport

log = logging.getLogger("tvmc")


def _kernel_line(k: KernelTransfer) -> str:
    best = f"{k.seconds * 1e6:.1f} us" if k.seconds is not None else "-"
    default = f"{k.default_seconds * 1e6:.1f} us" if k.default_seconds is not None else "-"
    return f"#{k.index} {k.name}: {k.candidates} candidates, {k.ranked} ranked, {k.measured} measured, {k.valid} valid, {k.wrong} wrong; best {best}, default {default} ({k.status})"


def _progress(enabled: bool, text: str) -> None:
    if enabled:
        sys.stderr.write(f"transfer: {text}\n")
        sys.stderr.flush()


@writes_records
def transfer_tune(model, target, sources, output: str, options: TransferOptions = TransferOptions(), progress: bool = True, plan: Plan | None = None,
                  observer: TransferObserver | None = None) -> TransferReport:
    """Transfer-tune ``model`` for ``target`` from the schedule library of its CPU family and the records folders
    ``sources`` (may be empty) into the folder ``output``.

    Returns a ``TransferReport``; the records in ``output`` are ordinary MetaSchedule tuning records. The
    phases of ``plan`` run afterwards on ``output`` (what ``tvmc transfer --droplet`` does):

    >>> report = transfer_tune(load_model("tiny-cnn-b.onnx"), parse_target("llvm"), ["cnn-records"],
    ...                        "cnn-b-records", TransferOptions(e2e=False))              # doctest: +SKIP
    >>> report.totals()["coverage"]                                                    # doctest: +SKIP
    >>> from tvmc_transfer import DropletOptions, droplet_phase                        # doctest: +SKIP
    >>> report = transfer_tune(model, target, ["cnn-records"], "cnn-b-records",
    ...                        plan=Plan([droplet_phase(DropletOptions(trials=16))]))  # doctest: +SKIP
    >>> print(report.phases[0].summary())                                              # doctest: +SKIP

    ``observer``, a ``TransferObserver`` (``observer.py``), is told of each kernel's steps as they happen.
    """

    start = time.time()
    observer = TransferObserver() if observer is None else observer
    sources = [sources] if isinstance(sources, str) else list(sources or ())
    out = os.path.abspath(output)
    if any(os.path.abspath(s) == out for s in sources):
        raise TVMCException(f"the output '{output}' is also a source; write the transferred records to a new folder")
    claim(output)  # another process writing this folder: an error now, before any work
    target = tuning_target(target)
    library, library_label = library_source(target, options.use_library)
    if not sources and library is None:
        raise TVMCException(nothing_to_transfer_from(target, options.use_library))
    read = [read_source(path, target, records_to_read(options)) for path in sources]  # fail on a bad source before writing anything
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
    read += [library.source] if library is not None else []
    _progress(progress, f"schedule library: {library_label}")  # (after the checks: an error is one line)
    tasks = extract_tasks(model, target, options.lowering)
    if not tasks:
        raise TVMCException(f"{model.path} has no kernels to tune")
    classes = [kernel_class(t.mod) for t in tasks]
    ranks = rank_sources(tasks, classes, read, options.sources, not options.exact_classes)
    _progress(progress, format_ranking(ranks).replace("\n", "\ntransfer: "))
    chosen_paths = {r.path for r in ranks if r.chosen}
    chosen = [s for s in read if s.path in chosen_paths]
    if library is not None and library.source.path not in chosen_paths:
        library_label += " (not used: it holds no class of this model's kernels)"
    # the library by name and version, not by where the package is installed: a rerun resumes wherever it is
    identity = {library.source.path: f"library {library.name} {library.version}"} if library is not None else {}

    folder = RecordsFolder(output, create=True)
    # (journals written before epilogue matching existed hold exact-class results: --exact-classes resumes them)
    # (and those written before --measure-top existed measured every candidate: --measure-top all resumes them)
    top = [] if options.measure_top is None else [f"measure-top {options.measure_top}"]
    fingerprint = json.dumps([sorted(identity.get(p, p) for p in chosen_paths), options.max_candidates, options.max_per_kernel, target_json(target)] + ([] if options.exact_classes else ["epilogues"]) + top)
    journal = Journal(folder, fingerprint)
    cost_model, ranked_by = _ranking_model(options)
    kernels, defaults = [], None
    until = deadline(options.time_limit, start)  # --time-limit counts from the start of the command
    try:
        with measuring(target, options.measure) as (builder, runner):
            order = sorted(range(len(tasks)), key=lambda i: -tasks[i].flops * tasks[i].weight)
            results = {}
            for n, i in enumerate(order):
                task, klass = tasks[i], classes[i]
                key = workload_hash(task.mod)
                done = journal.done.get(key)
                # a kernel an earlier run left unmatched is tried again when this version matches it (padding)
                candidates = [] if done and done["status"] != "unmatched" else candidates_for(klass, iter_extents(task.mod), chosen, options)
                if done and not candidates:
                    results[i] = attrs.evolve(KernelTransfer.from_json(done), index=task.index, name=task.name, weight=task.weight)
                    continue
                row = KernelTransfer.of(task, str(klass), "unmatched")
                if candidates and until is not None and time.monotonic() > until:
                    results[i] = attrs.evolve(row, status="pending")  # out of time: the next run goes on here
                    continue
                if candidates:
                    kernel_start = time.time()
                    observer.kernel_started(task, candidates)
                    row = transfer_kernel(task, klass, candidates, target, folder, builder, runner, options, cost_model, until, observer)
                    row = attrs.evolve(row, search_seconds=time.time() - kernel_start, match=candidates[0].match)
                    observer.kernel_finished(task, row)
                    _progress(progress, f"[{n + 1}/{len(tasks)}] {_kernel_line(row)}")
                results[i] = row
                journal.finished(key, row)
            kernels = [results[i] for i in range(len(tasks))]
            if all(k.status != "pending" for k in kernels):
                defaults = _measure_defaults(tasks, target, folder, builder, runner, until, progress)
    finally:
        journal.session(time.time() - start)

    tune_report = None
    complete = all(k.status != "pending" for k in kernels)
    unmatched = [k.index for k in kernels if k.status in ("unmatched", "failed")]
    left = None if until is None else until - time.monotonic()  # of --time-limit, for what follows
    if options.tune_rest and unmatched and complete and left is not None and left <= 0:
        _progress(progress, "--tune-rest not run: out of time (--time-limit); run the same command again to go on")
    elif options.tune_rest and unmatched and complete:
        tune_start = time.time()
        rest = TuneOptions(trials=options.tune_rest, tasks=",".join(map(str, unmatched)), seed=options.seed, population=options.population, measure=options.measure, lowering=options.lowering, time_budget=left)
        # the same open folder and the tasks extracted above: the tuned records land in this database
        tune_report = tune_tasks(Session(model, target, select_tasks(tasks, rest.tasks), folder, rest), progress=progress, start=tune_start)
        journal.session(time.time() - tune_start)
    phases, final = (), ()
    if plan is not None and plan.phases and complete:
        phase_start = time.time()
        with_records = [t for t in tasks if folder.best_seconds(t.mod) is not None]
        phases = Session(model, target, with_records, folder, options, until).run(plan)  # --time-limit covers the phases
        final = tuple(folder.best_seconds(t.mod) for t in tasks)
        journal.session(time.time() - phase_start)
    search_seconds = journal.sessions  # this session's and earlier ones' on this output
    e2e = end_to_end_ms(model, target, folder, options.e2e_repeat, options.lowering) if options.e2e and complete else None
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
        ranked_by,
        library_label,
        defaults,
    )


def _measure_defaults(tasks, target, folder, builder, runner, deadline, progress):
    """Every kernel's default schedule (what ``tvmc compile`` gives it without records) measured beside what was
    transferred, and recorded: compiling with the transferred records is then never slower than not tuning
    (the best record wins), and droplet search starts from the better of the two."""

    if deadline is not None and time.monotonic() > deadline:
        _progress(progress, "default schedules not measured: out of time (--time-limit)")
        return None
    seeds = seed_with_defaults(tasks, target, folder, builder, runner, every=True)
    _progress(progress, seeds.line())
    return seeds


def _ranking_model(options) -> tuple:
    """The cost model that ranks each kernel's candidates (None when every one is measured or there is no
    model), and how the report names the order."""

    if options.measure_top is None:
        return None, RANKINGS[2]
    model = load_cost_model()
    if model is None:
        log.warning("no cost model (xgboost or %s missing): candidates are measured nearest shapes first", "tvmc_transfer/data/default_cost_model.ubj")
        return None, RANKINGS[1]
    return model, RANKINGS[0]


def end_to_end_ms(model, target, folder, repeat: int = 10, lowering: Lowering = Lowering()) -> float:
    """Compile ``model`` with the records of ``folder`` (a ``RecordsFolder``; none when it is empty) and return
    the median latency over ``repeat`` runs, in ms."""

    work = tempfile.mkdtemp(prefix="tvmc-transfer-e2e-")
    try:
        package = os.path.join(work, "model.tar")
        # the records alone: kernels they leave out stay unscheduled, so the latency is what transfer produced
        compile_model(model, target, package, records=folder.path if folder.has_records() else None, lowering=lowering, default_schedules=False)
        result = run_module(package, repeat=repeat, number=1)
        return float(np.median(result.times)) * 1e3
    finally:
        shutil.rmtree(work, ignore_errors=True)
