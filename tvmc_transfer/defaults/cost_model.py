"""Default schedules ranked before anything is measured: design-space samples ranked by a shipped cost model.

For a kernel the schedule library does not cover, MetaSchedule's design space for the target is sampled (each
space's trace replayed with fresh random decisions, post-processed), and the samples are ranked by an XGBModel
trained on the project's tuning records (``tvmc_transfer/data/default_cost_model.ubj``, trained by
``cli/train_cost_model.py``). The model scores a schedule against the fastest one of its workload, so
it only has to rank candidates of one kernel, on any processor: this is what a target the library does not know
gets. The caller checks the pick numerically before using it, and times the best ranked where it can
(``defaults/schedules.py``). ``tvmc transfer`` ranks a kernel's replayed
candidates with the same model (``predicted_order``) to measure the most promising first.
"""

import logging
import os

from ..records.database import open_database
from ..records.sources import records_by_workload

log = logging.getLogger("tvmc")

MODEL = os.path.join(os.path.dirname(os.path.dirname(__file__)), "data", "default_cost_model.ubj")


def _xgb_model(booster=None):
    from tvm.s_tir import meta_schedule as ms  # pylint: disable=import-outside-toplevel

    model = ms.cost_model.XGBModel(num_warmup_samples=0, adaptive_training=False, verbose_eval=0, num_tuning_cores=1)
    model.booster = booster
    return model


def load_cost_model(path: str = MODEL):
    """The shipped cost model, or None when the file or xgboost is missing (then samples are not ranked)."""
    try:
        import xgboost as xgb  # pylint: disable=import-outside-toplevel
    except ImportError:
        return None
    if not os.path.exists(path):
        return None
    return _xgb_model(xgb.Booster(model_file=path))


def train_cost_model(folders: list, output: str) -> tuple:
    """Fit the cost model to every measured record in ``folders``; save its booster to ``output``.

    Returns ``(records, workloads)`` learned from."""
    from tvm.s_tir import meta_schedule as ms  # pylint: disable=import-outside-toplevel


    model = _xgb_model()
    model.num_tuning_cores = None
    records = workloads = 0
    groups = []
    for folder in folders:
        found, *_ = records_by_workload(open_database(folder))
        groups += list(found.values())
    for i, (mod, group) in enumerate(groups):
        context = ms.TuneContext(mod=mod, target=group[0].target, space_generator="post-order-apply")
        candidates = [r.as_measure_candidate() for r in group]
        results = [ms.runner.RunnerResult(run_secs=list(r.run_secs), error_msg=None) for r in group]
        model.adaptive_training = i < len(groups) - 1  # train once, on everything, at the last workload
        model.last_train_size = 1 << 40 if model.adaptive_training else 0
        model.update(context, candidates, results)
        records += len(group)
        workloads += 1
    model.booster.save_model(output)
    return records, workloads


def sample_schedules(mod, target, samples: int, seed: int = 0) -> tuple:
    """Up to ``samples`` post-processed schedules of ``mod``'s design space for ``target``, with random
    decisions, and the ``TuneContext`` they were drawn in."""
    from tvm import s_tir  # pylint: disable=import-outside-toplevel
    from tvm.s_tir import meta_schedule as ms
    from tvm.s_tir.schedule import Trace
    from tvm_ffi import structural_hash

    context = ms.TuneContext(mod=mod, target=target, space_generator="post-order-apply", rand_state=seed or 1)
    spaces = context.generate_design_space()
    postprocs = list(context.space_generator.postprocs)  # initialized with the context
    found, seen = [], set()
    for attempt in range(samples * 3):
        if len(found) >= samples:
            break
        space = spaces[attempt % len(spaces)]
        bare = Trace(space.trace.insts, {})  # no decisions: every sampling instruction draws anew
        sch = s_tir.Schedule(mod, seed=seed * 7919 + attempt + 1)
        try:
            bare.apply_to_schedule(sch, remove_postproc=True)
            sch.enter_postproc()
            if not all(p.apply(sch) for p in postprocs):
                continue
        except Exception:  # pylint: disable=broad-except
            continue  # a draw that does not fit (MetaSchedule's own search drops these too)
        key = structural_hash(sch.mod)
        if key not in seen:
            seen.add(key)
            found.append(sch)
    return found, context


def predicted_order(mod, context, model, schedules: list) -> list:
    """The indices of ``schedules`` (post-processed schedules of ``mod``, drawn in the ``TuneContext``
    ``context``), best predicted by ``model`` first; ties, and every schedule without a model or with fewer
    than two, keep their order."""
    from tvm.s_tir import meta_schedule as ms  # pylint: disable=import-outside-toplevel

    if model is None or len(schedules) < 2:
        return list(range(len(schedules)))
    args = ms.arg_info.ArgInfo.from_entry_func(mod, remove_preproc=True)
    scores = model.predict(context, [ms.MeasureCandidate(s, args) for s in schedules])
    return sorted(range(len(schedules)), key=lambda i: -float(scores[i]))
