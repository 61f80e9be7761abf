"""What every command shares: a records folder's side files, an atomic write, a TVM error in one line."""

import json
import os

import pytest

from tvmc_transfer.atomic import atomic_write
from tvmc_transfer.errors import one_line
from tvmc_transfer.records import RecordsFolder


def test_atomic_write_leaves_the_old_file_when_writing_fails(tmp_path):
    path = tmp_path / "report.json"
    path.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_write(str(path)) as f:
            f.write("half a rep")
            raise RuntimeError("killed")
    assert path.read_text() == "old" and os.listdir(tmp_path) == ["report.json"]  # no partial file left behind
    with atomic_write(str(path), "wb") as f:
        f.write(b"new")
    assert path.read_text() == "new" and os.listdir(tmp_path) == ["report.json"]


def test_records_folder_side_files_survive_a_kill(tmp_path):
    folder = RecordsFolder(str(tmp_path / "records"), create=True)
    assert not folder.has_records() and folder.read_json("droplet_starts.json") == {} and folder.read_lines("journal.jsonl") == []
    folder.append_line("journal.jsonl", {"kernel": 1})
    with open(folder.file("journal.jsonl"), "a", encoding="utf-8") as f:
        f.write('{"kernel": ')  # killed mid-line
    assert folder.read_lines("journal.jsonl") == [{"kernel": 1}]
    folder.write_json("droplet_starts.json", {"task": "123"})
    assert json.load(open(folder.file("droplet_starts.json"))) == {"task": "123"}
    (tmp_path / "records" / "droplet_controls.json").write_text('{"task": [')  # damaged: read as none yet
    assert folder.read_json("droplet_controls.json") == {}


def test_one_line_is_the_reason_a_tvm_error_ends_with():
    err = RuntimeError("Traceback (most recent call last):\n  File \"x.py\", line 1\n\nValueError: shape mismatch  \n")
    assert one_line(err) == "ValueError: shape mismatch"
    assert one_line(RuntimeError("x" * 500), 200) == "x" * 200
    assert one_line(KeyError()) == "KeyError"
