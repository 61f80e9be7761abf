"""Tuning in-process leaves the caller's logging as it found it, whatever handlers the caller attached.

MetaSchedule's own logger setup fails on an unnamed handler (as pytest 9 or an application leaves one) and
closes every handler of the process; tune and droplet must do neither.
"""

import glob
import io
import logging
import os

import numpy as np

from conftest import assert_matches_onnxruntime
from tvmc_transfer import DropletOptions, MeasureOptions, TuneOptions, compile_model, load_model, parse_target, refine_with_droplet, run_module, tune_model

MEASURE = MeasureOptions(number=2, repeat=3, min_repeat_ms=5)


def test_tuning_keeps_the_callers_handlers_and_levels(models, tmp_path):
    metaschedule = logging.getLogger("tvm.s_tir.meta_schedule")
    unnamed = logging.StreamHandler(io.StringIO())  # no name: what broke MetaSchedule's dictConfig
    assert unnamed.get_name() is None
    named_stream = io.StringIO()
    named = logging.StreamHandler(named_stream)
    named.set_name("the-application")
    root = logging.getLogger()
    metaschedule.addHandler(unnamed)
    root.addHandler(named)
    level, propagate = metaschedule.level, metaschedule.propagate
    try:
        model = load_model(models["tiny-cnn"])
        target = parse_target("llvm -num-cores=2")
        records = str(tmp_path / "records")
        report = tune_model(model, target, records, TuneOptions(trials=12, population=16, measure=MEASURE), progress=False)
        assert report.new_trials == 12
        droplet = refine_with_droplet(model, target, records, DropletOptions(trials=4), measure=MEASURE, progress=False)
        assert droplet.tasks and sum(t.trials for t in droplet.tasks) > 0

        # The caller's handlers are still attached, open and working; the levels are as they were.
        assert unnamed in metaschedule.handlers and named in root.handlers
        assert (metaschedule.level, metaschedule.propagate) == (level, propagate)
        root.warning("still here")
        assert "still here" in named_stream.getvalue()
        # Nothing this run attached stays behind on MetaSchedule's loggers.
        assert metaschedule.handlers == [unnamed]
        task_loggers = [logging.getLogger(n) for n in logging.root.manager.loggerDict if n.startswith("tvm.s_tir.meta_schedule.logging.task_")]
        assert task_loggers and all(not lg.handlers for lg in task_loggers)

        # MetaSchedule's per-task log files were written, as its own setup writes them.
        logs = glob.glob(os.path.join(records, "logs", "*.log"))
        assert any(path.endswith("task_scheduler.log") for path in logs)
        for task in report.tasks:  # one file per task and run, named as MetaSchedule names it
            assert any(p.endswith(f"_{task.name}.log") and "logging.task_" in p for p in logs)
        assert all(os.path.getsize(p) > 0 for p in logs if "task_scheduler" not in p)

        package = str(tmp_path / "tuned.tar")
        compile_model(model, target, package, records=records)
        inputs = {info.name: np.random.default_rng(0).standard_normal(info.shape).astype(info.dtype) for info in model.inputs}
        result = run_module(package, inputs)
        assert_matches_onnxruntime(models["tiny-cnn"], inputs, list(result.outputs.values()))
    finally:
        metaschedule.removeHandler(unnamed)
        root.removeHandler(named)
