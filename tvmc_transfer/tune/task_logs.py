"""MetaSchedule tune contexts with their per-task log files, leaving the caller's logging as it was.

MetaSchedule's ``extracted_tasks_to_tune_contexts`` configures its loggers with ``logging.config.dictConfig``:
that lists the *names* of the handlers already on ``tvm.s_tir.meta_schedule`` (an unnamed one, as pytest 9 or a
user's application leaves, makes every tuning run fail) and closes every handler of the process. This builds
the same tune contexts and writes the same log files under ``RECORDS/logs`` with plain handlers, attached for
the duration of the run and removed afterwards.
"""

import contextlib
import logging
import os
import sys

METASCHEDULE = "tvm.s_tir.meta_schedule"
_LOGGERS = METASCHEDULE + ".logging"  # MetaSchedule names its task loggers and files under this prefix
_FORMAT = logging.Formatter("%(asctime)s [%(levelname)s] %(message)s", "%Y-%m-%d %H:%M:%S")


@contextlib.contextmanager
def tune_contexts(extracted_tasks, work_dir: str, strategy, num_threads, seed):
    """``(contexts, weights)`` as ``ms.relax_integration.extracted_tasks_to_tune_contexts`` returns them, valid
    inside the ``with`` block: tune with them there.

    >>> with tune_contexts(tasks, "records", "evolutionary", 2, seed=0) as (contexts, weights):   # doctest: +SKIP
    ...     ms.tune_tasks(tasks=contexts, task_weights=weights, ...)
    """
    from tvm.s_tir import meta_schedule as ms  # pylint: disable=import-outside-toplevel
    from tvm.s_tir.meta_schedule.utils import fork_seed

    log_dir = os.path.join(work_dir, "logs")
    os.makedirs(log_dir, exist_ok=True)
    width = len(str(len(extracted_tasks) - 1))
    names = [f"{_LOGGERS}.task_{i:0{width}d}_{task.task_name[:100]}" for i, task in enumerate(extracted_tasks)]
    with _log_files(log_dir, names) as loggers:
        contexts, weights = [], []
        for task, logger, rand_state in zip(extracted_tasks, loggers, fork_seed(seed, n=len(extracted_tasks))):
            if task.mod.attrs.get("tirx.is_scheduled", False):
                continue  # already scheduled: nothing to tune, as MetaSchedule skips it
            context = ms.TuneContext(
                mod=task.dispatched[0],
                target=task.target,
                space_generator="post-order-apply",
                search_strategy=strategy,
                task_name=task.task_name,
                logger=logger,
                rand_state=rand_state,
                num_threads=num_threads,
            )
            contexts.append(context.clone())
            weights.append(task.weight)
        yield contexts, weights


@contextlib.contextmanager
def _log_files(log_dir: str, task_logger_names: list):
    """Per-task loggers writing ``LOG_DIR/NAME.log``, and MetaSchedule's own logger writing its task scheduler
    file at DEBUG while its console shows warnings (everything it was set to show with ``tvmc -vv``).
    Handlers, levels and propagation are restored on exit."""
    shared = logging.getLogger(METASCHEDULE)
    console_level = shared.level or logging.DEBUG
    if not logging.getLogger("tvmc").isEnabledFor(logging.DEBUG):
        # MetaSchedule prints its task table at INFO; the log files keep it, the console shows it with -vv.
        console_level = max(console_level, logging.WARNING)
    console = logging.StreamHandler(sys.stdout)
    console.setLevel(console_level)
    console.setFormatter(_FORMAT)
    attached = [(shared, _file_handler(log_dir, f"{_LOGGERS}.task_scheduler")), (shared, console)]
    attached += [(logging.getLogger(name), _file_handler(log_dir, name)) for name in task_logger_names]
    saved = {id(lg): (lg, lg.level, lg.propagate) for lg, _ in attached}
    for logger, handler in attached:
        # DEBUG goes to the files; the console handler filters, and nothing propagates to the caller's root.
        logger.setLevel(logging.DEBUG)
        logger.propagate = False
        logger.addHandler(handler)
    try:
        yield [logging.getLogger(name) for name in task_logger_names]
    finally:
        for logger, handler in attached:
            logger.removeHandler(handler)
            handler.close()
        for logger, level, propagate in saved.values():
            logger.setLevel(level)
            logger.propagate = propagate


def _file_handler(log_dir: str, name: str) -> logging.Handler:
    handler = logging.FileHandler(os.path.join(log_dir, f"{name}.log"), mode="a", delay=True)
    handler.setLevel(logging.DEBUG)
    handler.setFormatter(_FORMAT)
    return handler
