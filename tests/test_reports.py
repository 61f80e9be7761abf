"""One row type per kernel, one report protocol, one way to write a report: read from the source and checked on
the rows and reports themselves (the commands' outputs are checked in each command's tests)."""

import ast
import json
import os

import pytest

from tvmc_transfer.atomic import write_json
from tvmc_transfer.build.tasks import Task, format_task_table
from tvmc_transfer.defaults.schedules import KernelDefault
from tvmc_transfer.droplet.report import DropletTaskResult
from tvmc_transfer.errors import TVMCException
from tvmc_transfer.kernels.kernel import Kernel
from tvmc_transfer.transfer.report import KernelTransfer
from tvmc_transfer.tune.model import TaskResult

PACKAGE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tvmc_transfer")

# A kernel transfer journaled before rows shared ``Kernel`` (transfer_journal.jsonl): a rerun must read it back.
JOURNALED = (
    '{"index": 2, "task": "fused_conv2d1_add1_relu1", "kernel_class": "conv2d+bias+relu NHWC fp32 [f65d0f08e1]", "weight": 1,'
    ' "flops": 149504.0, "status": "transferred", "candidates": 67, "ranked": 67, "measured": 16, "valid": 16, "wrong": 0,'
    ' "invalid": 0, "remapped": 359, "match": "class", "best_source": "schedules-x86-avx512.json.xz #100 1x13x13x192,3x3x192x384,'
    '1x1x1x384->1x13x13x384 conv2d+bias+relu NHWC fp32", "seconds": 1.3891510310646958e-06, "default_seconds":'
    ' 3.7910164786967425e-05, "search_seconds": 7.811554193496704}'
)


def _classes():
    """``(module path, ast.ClassDef)`` of every class in the package."""
    for folder, _, files in os.walk(PACKAGE):
        for name in files:
            if name.endswith(".py"):
                path = os.path.join(folder, name)
                for node in ast.walk(ast.parse(open(path, encoding="utf-8").read())):
                    if isinstance(node, ast.ClassDef):
                        yield os.path.relpath(path, PACKAGE), node


def _fields(node) -> set:
    return {s.target.id for s in node.body if isinstance(s, ast.AnnAssign) and isinstance(s.target, ast.Name)}


def test_a_kernels_identity_is_declared_in_one_class():
    """Index, task name, weight and FLOPs are declared by ``Kernel`` alone; a row that has them extends it."""
    declaring = [f"{path}:{node.name}" for path, node in _classes() if "index" in _fields(node) and _fields(node) & {"name", "task", "weight", "flops"}]
    assert declaring == ["kernels/kernel.py:Kernel"], declaring
    for row in (Task, TaskResult, KernelDefault, KernelTransfer, DropletTaskResult):
        assert issubclass(row, Kernel), row


def test_every_report_has_a_summary_and_plain_data():
    """Each ``*Report`` keeps ``session.PhaseReport``: ``summary()`` for the terminal, ``to_json()`` for JSON."""
    reports = {f"{path}:{node.name}": {f.name for f in node.body if isinstance(f, ast.FunctionDef)} for path, node in _classes() if node.name.endswith("Report")}
    assert len(reports) >= 8, reports  # tune, transfer, compile, defaults, droplet, retime, copy; the protocol itself
    missing = {name: {"summary", "to_json"} - methods for name, methods in reports.items() if {"summary", "to_json"} - methods}
    assert not missing, missing


def test_a_row_for_a_kernel_takes_its_identity_and_keeps_the_names_reports_show():
    task = Task(3, "fused_conv2d_add_relu", 2, 1.5e8, extracted=None)
    row = KernelDefault.of(task, "conv2d+bias+relu NHWC fp32 [f65d0f08e1]", "library", source="lib #3", how="picked", timed=2)
    assert (row.index, row.name, row.weight, row.flops, row.kind) == (3, "fused_conv2d_add_relu", 2, 1.5e8, "library")
    assert list(row.to_json().items()) == [
        ("index", 3), ("task", "fused_conv2d_add_relu"), ("class", "conv2d+bias+relu NHWC fp32 [f65d0f08e1]"), ("weight", 2),
        ("flops", 1.5e8), ("scheduled", "library"), ("source", "lib #3"), ("how", "picked"), ("timed", 2),
    ]
    result = TaskResult.of(task, 8, 2.0e-6)
    assert result.weighted_seconds == 4.0e-6 and list(result.to_json()) == ["index", "task", "weight", "flops", "trials", "best_seconds"]
    assert format_task_table([task, result]).splitlines()[1:] == [f"  3  {'fused_conv2d_add_relu':<40}      2     150.00"] * 2


def test_a_journaled_kernel_transfer_reads_back_and_is_written_the_same_way():
    """A rerun resumes from journal lines written before: the row reads them and writes the same keys in order."""
    data = json.loads(JOURNALED)
    row = KernelTransfer.from_json(data)
    assert (row.index, row.name, row.kernel_class, row.weight, row.flops, row.status) == (2, "fused_conv2d1_add1_relu1", data["kernel_class"], 1, 149504.0, "transferred")
    assert json.dumps(row.to_json()) == JOURNALED
    assert abs(row.speedup - data["default_seconds"] / data["seconds"]) < 1e-9


def test_a_report_is_written_whole_and_a_missing_folder_is_an_error(tmp_path):
    path = tmp_path / "report.json"
    write_json(str(path), {"kernels": [{"index": 0, "task": "mean"}], "e2e_ms": None})
    assert path.read_text() == '{\n "kernels": [\n  {\n   "index": 0,\n   "task": "mean"\n  }\n ],\n "e2e_ms": null\n}\n'
    assert os.listdir(tmp_path) == ["report.json"]
    with pytest.raises(TVMCException, match="cannot write report .*: folder .* does not exist"):
        write_json(str(tmp_path / "missing" / "report.json"), {})
