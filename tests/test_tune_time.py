"""Where ``tvmc tune``'s wall time goes: search and cost model, database, build, waiting for measurements, other."""

import json

import pytest

from conftest import FAST_TUNE
from tvmc_transfer import MeasureOptions, TuneOptions, load_model, parse_target, tune_model


def test_tune_reports_where_its_wall_time_went(models, tvmc, tmp_path):
    records = str(tmp_path / "records")
    options = TuneOptions(trials=8, trials_per_iter=8, population=32, measure=MeasureOptions(min_repeat_ms=5, number=2))
    report = tune_model(load_model(models["tiny-mlp"]), parse_target("llvm -num-cores=2"), records, options, progress=False)
    spent = report.time
    assert report.new_trials == 8
    assert spent.total == report.wall_seconds
    assert sum(spent.parts().values()) == pytest.approx(spent.total, abs=1e-9)
    # every part that tuning goes through was on the clock, and none took more than the whole
    assert all(0 < s < spent.total for s in (spent.search, spent.database, spent.build, spent.measure))
    assert spent.other >= 0
    line = spent.line()
    assert line.startswith(f"wall time {spent.total:.1f} s: search and cost model {spent.search:.1f} s")
    assert all(f"{name} " in line for name in ("database", "build", "waiting for measurements", "other"))

    again = tvmc("tune", models["tiny-mlp"], "-o", records, "--trials", "8", *FAST_TUNE)  # resumes: nothing to measure
    assert again.code == 0 and "0 new trials" in again.out
    (printed,) = [line for line in again.out.splitlines() if line.startswith("wall time ")]
    assert "search and cost model 0.0 s" in printed and "waiting for measurements 0.0 s" in printed


def test_tune_report_json_splits_the_search_and_charges_each_task(models, tvmc, tmp_path):
    """``tvmc tune --report``: the parts sum to the wall time; the search splits into MetaSchedule's profiler
    scopes (sampling, mutation, the cost model's prediction and training) that fit inside it; the search is
    charged to the tasks tuned, and the tasks' trials are the records written."""
    records, path = str(tmp_path / "records"), str(tmp_path / "report.json")
    result = tvmc("tune", models["tiny-cnn"], "-o", records, "--trials", "16", "--report", path, *FAST_TUNE)
    assert result.code == 0, result.err
    report = json.load(open(path))
    seconds, search = report["time"]["seconds"], report["time"]["search"]
    assert sum(v for k, v in seconds.items() if k != "total") == pytest.approx(seconds["total"], abs=1e-6)
    assert set(search) == {"sampling", "mutation and validity checks", "cost model prediction", "cost model training", "other search"}
    assert all(v >= 0 for v in search.values())
    assert sum(search.values()) == pytest.approx(seconds["search and cost model"], abs=1e-6)  # "other search" is the rest
    assert search["mutation and validity checks"] > 0 and search["sampling"] > 0
    tasks = report["time"]["tasks"]
    assert set(tasks) <= {t["task"] for t in report["tasks"]}
    assert sum(t.get("search", 0) for t in tasks.values()) == pytest.approx(seconds["search and cost model"], abs=0.01 * len(tasks))
    assert 0 < report["time"]["cores_busy"] <= 1.05
    assert sum(t["trials"] for t in report["tasks"]) == report["new_trials"] == 16
    printed = result.out.splitlines()
    assert any(line.startswith("search and cost model: sampling ") and "cores busy" in line for line in printed)


def test_population_is_sized_to_the_batch():
    from tvmc_transfer.tune.option_defaults import population_for

    assert [population_for(b) for b in (1, 9, 32, 64, 200, 1000)] == [64, 64, 64, 64, 200, 512]
    assert TuneOptions().population is None  # tvmc tune passes population_for(its batch)
