"""Records folders under faults: two writers, a writer killed, damaged lines, hostile lines.

Real tuning records (the session's ``tuned_cnn``), real ``tvmc`` processes and real TVM; the damage and the
attacks are what a disk, a kill or a stranger's records folder can bring.
"""

import base64
import collections
import json
import os
import shutil
import subprocess
import sys
import time

import numpy as np
import pytest
import tvm
from tvm.s_tir import meta_schedule as ms

from conftest import FAST_TUNE
from tvmc_transfer.records import TUNING_RECORDS, WORKLOADS
from tvmc_transfer.records.folder import RecordsFolder
from tvmc_transfer.records.listing import workload_hash
from tvmc_transfer.records.lock import LOCK_FILE, holder_of, writes_records

HOLD = "import sys, time; from tvmc_transfer.records.lock import lock_folder; lock_folder(sys.argv[1]); print('held', flush=True); time.sleep(600)"
TRY = "import sys; from tvmc_transfer.records.lock import lock_folder; lock_folder(sys.argv[1])"


def copy_of(records, tmp_path, name="records") -> str:
    copy = str(tmp_path / name)
    shutil.copytree(records, copy, ignore=shutil.ignore_patterns("logs", LOCK_FILE))
    return copy


def lines(folder, name) -> list:
    path = os.path.join(folder, name)
    return open(path, "rb").read().split(b"\n")[:-1] if os.path.exists(path) else []


def write_lines(folder, name, content) -> None:
    with open(os.path.join(folder, name), "wb") as f:
        f.write(b"".join(line + b"\n" for line in content))


def attached(folder) -> dict:
    """Plain TVM's reading of a folder: each record's trace -> the hash of the workload it belongs to."""
    database = ms.database.JSONDatabase(work_dir=folder, allow_missing=False)
    return {str(r.trace): workload_hash(r.workload.mod) for r in database.get_all_tuning_records()}


def is_json(line) -> bool:
    try:
        json.loads(line)
        return True
    except ValueError:
        return False


def other_process_can_lock(folder) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", TRY, folder], capture_output=True, text=True, timeout=60)


def test_a_second_writer_is_refused_and_a_killed_writers_lock_is_taken_over(tuned_cnn, tvmc, tmp_path):
    model, tuned = tuned_cnn
    records = copy_of(tuned, tmp_path)
    log = open(tmp_path / "first.log", "w")
    first = subprocess.Popen([sys.executable, "-m", "tvmc_transfer", "tune", model, "-o", records, "--trials", "1000", *FAST_TUNE],
                             stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 300
        while getattr(holder_of(records, wait=0), "pid", None) != first.pid:
            assert first.poll() is None, (tmp_path / "first.log").read_text()
            assert time.monotonic() < deadline, "the first tune never locked its records folder"
            time.sleep(0.2)
        second = tvmc("tune", model, "-o", records, "--trials", "2000", *FAST_TUNE)
        assert second.code == 4 and second.err.count("\n") == 1, second.err
        assert second.err.startswith(f"Error: records folder '{records}' is being written by pid {first.pid} on ")
        assert "tvmc tune" in second.err and "wait for it or give another -o" in second.err
        assert tvmc("records", "list", records).code == 0  # a reader is never blocked
    finally:
        first.kill()  # SIGKILL: no handler runs, the kernel drops the lock
        first.wait()
        log.close()
    assert holder_of(records).pid == first.pid  # the dead writer's name is still in the file: a stale lock
    kept = [line for line in lines(records, TUNING_RECORDS) if is_json(line)]
    again = tvmc("tune", model, "-o", records, "--trials", str(len(kept) + 8), *FAST_TUNE)
    assert again.code == 0, again.err
    assert "8 new trials" in again.out  # resumed from every record the killed run committed
    traces = [json.dumps(json.loads(line)[:1] + [json.loads(line)[1][0]]) for line in lines(records, TUNING_RECORDS)]
    assert len(traces) == len(kept) + 8 and len(set(traces)) == len(traces)
    assert open(os.path.join(records, LOCK_FILE)).read() == ""  # released when the command ended


def test_one_process_opens_its_folder_twice_and_readers_never_wait(tuned_cnn, tvmc, tmp_path):
    _, tuned = tuned_cnn
    records = copy_of(tuned, tmp_path)
    first, second = RecordsFolder(records), RecordsFolder(records)  # tune then its droplet phase, say: no refusal
    refused = other_process_can_lock(records)
    assert refused.returncode != 0 and f"is being written by pid {os.getpid()} on " in refused.stderr
    first.close()
    first.close()  # closing twice gives up one hold, not two
    assert other_process_can_lock(records).returncode != 0  # the second open still holds it
    second.close()
    assert other_process_can_lock(records).returncode == 0

    still_open = []

    @writes_records
    def command():
        still_open.append(RecordsFolder(records))  # never closed: the command's end releases it

    command()
    assert other_process_can_lock(records).returncode == 0 and still_open
    held = RecordsFolder(records).has_records()  # the object dropped at once: its lock goes with it
    assert held and other_process_can_lock(records).returncode == 0

    holder = subprocess.Popen([sys.executable, "-c", HOLD, records], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        listed = tvmc("records", "list", records)
        assert listed.code == 0 and "24 records" in listed.out  # readers take no lock
        merged = tvmc("records", "merge", records, "-o", records)  # replaces it in place: a writer
        assert merged.code == 4 and f"is being written by pid {holder.pid} " in merged.err and merged.err.count("\n") == 1
        assert tvmc("records", "merge", records, "-o", tmp_path / "merged").code == 0  # into a new folder: reads it
    finally:
        holder.kill()
        holder.wait()
    assert tvmc("records", "merge", records, "-o", records).code == 0  # the stale lock is taken over
    assert LOCK_FILE not in os.listdir(records)  # replaced in place: the lock is no side file to carry over


def test_garbled_lines_anywhere_load_the_rest_and_nothing_is_lost(tuned_cnn, tvmc, tmp_path, caplog):
    model, tuned = tuned_cnn
    records = copy_of(tuned, tmp_path)
    before = attached(records)
    workloads, rows = lines(records, WORKLOADS), lines(records, TUNING_RECORDS)
    assert len(workloads) == 6 and len(rows) == 24
    rows[4] = rows[4][:300] + b"\x00\xff garbage" + rows[4][320:]  # bytes garbled on disk
    rows[8] = b"[99" + rows[8][rows[8].index(b","):]  # JSON, but no such workload
    others = collections.Counter(json.loads(row)[0] for n, row in enumerate(rows, 1) if n not in (5, 9))
    cut, odd = sorted(w for w, _ in others.most_common()[-2:])  # two workloads that few other records name
    workloads[cut] = workloads[cut][: len(workloads[cut]) // 2]  # a workload line cut in the middle of the file
    shash, module = json.loads(workloads[odd])  # JSON as Python reads it, with a type TVM does not know
    module = base64.b64decode(module).replace(b'"tirx.For"', b'"tirx.Fxr"')
    workloads[odd] = json.dumps([shash, base64.b64encode(module).decode()]).encode()
    damaged = {WORKLOADS: list(workloads), TUNING_RECORDS: list(rows)}
    write_lines(records, WORKLOADS, workloads)
    write_lines(records, TUNING_RECORDS, rows)
    orphans = {w + 1: [n for n, row in enumerate(rows, 1) if n not in (5, 9) and json.loads(row)[0] == w] for w in (cut, odd)}
    kept = 24 - 2 - sum(map(len, orphans.values()))

    listed = tvmc("records", "list", records)  # a reader: loads the rest, leaves the files as they are
    assert listed.code == 0 and f"{kept} records" in listed.out, listed.err
    for line in ([f"{WORKLOADS} line {cut + 1} skipped (the file is left as it is): not JSON", f"{TUNING_RECORDS} line 5 skipped",
                  f"{WORKLOADS} line {odd + 1} skipped (the file is left as it is): TVM refused it:",
                  f"{TUNING_RECORDS} line 9 skipped (the file is left as it is): unknown workload index 99 ({WORKLOADS} has 6 lines)"]
                 + [f"{TUNING_RECORDS} line {n} skipped (the file is left as it is): its workload ({WORKLOADS} line {w}) was set aside"
                    for w in orphans for n in orphans[w]]):
        assert line in caplog.text, line
    assert {name: lines(records, name) for name in damaged} == damaged
    assert not os.path.exists(os.path.join(records, TUNING_RECORDS + ".bad"))

    caplog.clear()
    tuned_again = tvmc("tune", model, "-o", records, "--trials", str(kept), *FAST_TUNE)  # a writer: sets them aside
    assert tuned_again.code == 0 and "0 new trials" in tuned_again.out, tuned_again.err
    assert f"{TUNING_RECORDS} line 5 set aside into {TUNING_RECORDS}.bad: not JSON" in caplog.text
    # nothing lost: every line is in the file or set aside, as it was
    aside = lines(records, TUNING_RECORDS + ".bad")
    assert sorted(lines(records, TUNING_RECORDS) + aside) == sorted(rows) and len(aside) == 24 - kept
    assert sorted(lines(records, WORKLOADS + ".bad")) == sorted([workloads[cut], workloads[odd]])
    repaired = lines(records, WORKLOADS)
    assert len(repaired) == 6 and [w for i, w in enumerate(repaired) if i not in (cut, odd)] == [w for i, w in enumerate(workloads) if i not in (cut, odd)]
    # the lines set aside hold placeholders, so the later workloads keep their numbers: plain TVM reads the
    # folder and finds every kept record on the workload it was tuned for
    after = attached(records)
    assert len(after) == kept and all(before[trace] == workload for trace, workload in after.items())
    assert all(b"tvmc.set_aside" in base64.b64decode(json.loads(repaired[i])[1]) for i in (cut, odd))

    caplog.clear()
    assert tvmc("records", "list", records).code == 0 and "skipped" not in caplog.text  # clean now
    assert tvmc("records", "merge", records, "-o", records).code == 0  # replaced in place: the lines set aside stay
    assert lines(records, TUNING_RECORDS + ".bad") == aside


@pytest.fixture
def evil_workload():
    """A workload whose TIR runs ``system(COMMAND)`` when it is built and run, and how to run it."""
    from tvm.script import tirx as T

    def make(command):
        @T.prim_func(s_tir=True)
        def main(A: T.Buffer((4,), "float32"), B: T.Buffer((4,), "float32")):
            T.func_attr({"tirx.noalias": True})
            for i in range(4):
                with T.sblock("B"):
                    vi = T.axis.spatial(4, i)
                    B[vi] = A[vi] + T.Cast("float32", T.call_extern("int32", "system", command))

        return tvm.IRModule({"main": main})

    return make


def test_hostile_records_are_refused_and_nothing_runs(tuned_cnn, tvmc, tmp_path, caplog, evil_workload):
    """Records that would run code: a workload calling ``system`` (``retime`` builds and runs every workload it
    reads), a trace linking LLVM IR into its kernel, an instruction naming a global function. Each is refused
    by name, and the rest of the folder is used."""
    _, tuned = tuned_cnn
    # the attack is real: built and run, the workload runs its command
    proof = tmp_path / "the-payload-runs"
    module = tvm.compile(evil_workload(f"touch {proof}"), target="llvm")
    module["main"](tvm.runtime.tensor(np.zeros(4, "float32")), tvm.runtime.tensor(np.zeros(4, "float32")))
    assert proof.exists()

    ran = tmp_path / "ran"  # every attack below would create it
    tvm.register_global_func("tvmc_test.touch", lambda *args: ran.touch(), override=True)
    records = copy_of(tuned, tmp_path)
    workloads, rows = lines(records, WORKLOADS), lines(records, TUNING_RECORDS)
    workloads = workloads[:1]  # one kernel keeps the retime below short
    rows = [row for row in rows if json.loads(row)[0] == 0]
    workloads.append(json.dumps([str(x) for x in ms.database.Workload(evil_workload(f"touch {ran}")).as_json()]).encode())
    measured = [json.loads(row) for row in rows if max(json.loads(row)[1][1]) < 1e9]
    best = min(measured, key=lambda row: sum(row[1][1]) / len(row[1][1]))  # what retime measures again
    target = best[1][2]
    rows.append(json.dumps([1, [[[["GetSBlock", [], ["B", "main"], ["b0"]]], []], [1e-7], target, None]]).encode())
    linking = json.loads(rows[0])
    linking[1][0][0] += [["GetSBlock", [], ["root", "main"], ["b999"]],  # appended: the decisions keep their places
                         ["Annotate", ["b999", '"; LLVM IR that would run"'], ["pragma_import_llvm"], []]]
    linking[1][1] = [1e-7]
    rows.append(json.dumps(linking).encode())
    naming = json.loads(rows[1])
    naming[1][0][0].insert(0, ["tvmc_test.touch", [], [], []])
    rows.append(json.dumps(naming).encode())
    write_lines(records, WORKLOADS, workloads)
    write_lines(records, TUNING_RECORDS, rows)
    n = len(rows)

    plain = copy_of(records, tmp_path, "plain")  # TVM alone takes the workload and the linking trace
    write_lines(plain, TUNING_RECORDS, rows[-3:-1])
    assert len(ms.database.JSONDatabase(work_dir=plain, allow_missing=False).get_all_tuning_records()) == 2

    out = tmp_path / "retimed"
    result = tvmc("records", "retime", records, "-o", out, "--target", "llvm -num-cores=2", "--number", "1", "--repeat", "2", "--min-repeat-ms", "1")
    assert result.code == 0 and "retimed 1 records of 1 workloads" in result.out, result.err
    assert f"{WORKLOADS} line 2 skipped (the file is left as it is): refused: it calls 'system' by name (tirx.call_extern)" in caplog.text
    assert f"{TUNING_RECORDS} line {n - 2} skipped (the file is left as it is): its workload ({WORKLOADS} line 2) was set aside" in caplog.text
    assert f"{TUNING_RECORDS} line {n - 1} skipped (the file is left as it is): refused: it imports code into the kernel (pragma_import_llvm)" in caplog.text
    assert f"{TUNING_RECORDS} line {n} skipped" in caplog.text and "Instruction kind tvmc_test.touch is not registered" in caplog.text
    assert not ran.exists()
    assert [json.loads(line)[1][0] for line in lines(str(out), TUNING_RECORDS)] == [best[1][0]]

    alone = copy_of(records, tmp_path, "alone")  # nothing but the attack: an Error, and still nothing runs
    write_lines(alone, TUNING_RECORDS, rows[-3:-2])
    refused = tvmc("records", "retime", alone, "-o", tmp_path / "none", "--target", "llvm -num-cores=2")
    assert refused.code == 4 and refused.err.count("\n") == 1
    assert "are corrupt (no record could be read; database_tuning_record.json line 1: its workload" in refused.err
    assert not ran.exists() and not (tmp_path / "none").exists()
