"""Where ``tvmc tune``'s wall time goes: search and cost model, database, build, waiting for measurements, other."""

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
