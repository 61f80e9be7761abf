"""Damaged and hostile lines of a records folder: found, named in a warning, left out, never lost.

A records file may hold a line cut short by a kill, a line garbled on disk, or a line crafted to do harm. None of
them stops the rest from loading. The fast path stays TVM's: ``needs_screening`` looks at the raw bytes (a few
hundredths of a second for 40 MB, where TVM takes seconds to parse them) and, when nothing looks wrong, TVM reads
the files as they are. Otherwise, or when TVM refuses a line, ``screen`` checks each line in Python (JSON, shape,
the workload it names, hostile content), then TVM parses what is left, record by record only if it still refuses.

A reader loads a screened copy and leaves the user's files as they are. The writer holding the folder's lock
(``lock.py``) sets the bad lines aside, as they were, into ``FILE.bad`` beside each file, then rewrites the file
atomically without them. A workload line set aside is replaced by a placeholder workload (``placeholder``), not
removed: records name their workload by its line number, and with every line keeping its number the two files
can be rewritten one after the other and stay consistent whenever a kill comes between them.

Hostile lines. Loading records runs no code: TVM builds a workload from a JSON object graph of registered IR
types, a trace's instructions are looked up in TVM's registry of schedule primitives (an instruction naming
anything else, a global function say, is refused by TVM: "Instruction kind ... is not registered"), and nothing
is pickled. What a line can do is carry code into what is built from it later: a workload whose TIR calls a
function by name (``call_extern("system", ...)``, ``call_packed``) runs it when the workload is built and run,
which ``tvmc records retime`` does to every workload it reads; a trace that annotates a loop
``pragma_import_llvm`` links the LLVM IR it carries into the kernel compiled from it; an object graph may hold a
compiled module or a reference to a global function. Such lines are refused like damaged ones
(``graph_problem``, ``trace_problem``). Not covered: TIR is not memory-safe, so a crafted workload that
``retime`` builds can still read or write out of bounds without calling anything, and a trace's unsafe schedule
primitives can make a wrong or crashing kernel; TVM's C++ parser is not hardened against crafted input.
"""

import base64
import json
import logging
import os
import re
import shutil
import tempfile

import attrs

from ..atomic import atomic_write
from ..errors import one_line
from .database import TUNING_RECORDS, WORKLOADS, corrupt_records, database_paths

log = logging.getLogger("tvmc")

# What a hostile line must spell out somewhere in its bytes (a JSON escape such as \u0065 included), so that a
# file without any of them needs no line-by-line look. A marker in a harmless place only costs that look.
MARKERS = (b"pragma_import", b"extern", b"packed", b"ffi_kernel", b"py_func", b"ffi.Module", b"ffi.Function", b"EnvFunc", b"\\u")
CALLS_BY_NAME = re.compile(r"extern|packed|ffi_kernel|py_func")  # TIR ops that call a function the IR names
CODE_TYPES = ("ffi.Module", "ffi.Function", "ir.EnvFunc")  # objects that are, or name, compiled code
# What TVM's own lowering calls by name from a workload: TOPI's CPU sort, argsort and topk.
TVM_CALLEES = frozenset({"tvm.contrib.sort.sort", "tvm.contrib.sort.argsort", "tvm.contrib.sort.argsort_nms", "tvm.contrib.sort.topk"})
# Instructions whose attributes TVM writes with a null (TransformLayout's pad value when there is none).
NULL_ATTRIBUTES = frozenset({"TransformLayout"})
PLACEHOLDER = "tvmc.set_aside"  # the attribute that marks a placeholder workload
SHOWN = 10  # bad lines of a file named one by one; the rest are counted

_WARNED = set()  # (folder, file, line number, set aside) already named in this process


@attrs.frozen
class BadLine:
    """A line left out: which file, its line number (from 1), why, and the line as it was."""

    file: str  # WORKLOADS or TUNING_RECORDS
    number: int
    reason: str
    text: bytes
    cut: bool = False  # the last line, cut short by a kill mid-write: expected, named at info level only


@attrs.frozen
class Screened:
    """What is left of a folder's two files: every workload line (a placeholder where one was set aside), the
    records kept as ``(line number, line)``, and the lines left out."""

    workloads: tuple
    records: tuple
    bad: tuple
    usable: tuple  # per workload line, whether a record may name it
    had_records: bool  # the records file held a line


def load_database(folder: str, allow_missing: bool = False, repair: bool = False):
    """MetaSchedule's ``JSONDatabase`` of ``folder`` with every damaged or hostile line left out and named in a
    warning. With ``repair`` (the writer holding the folder's lock) the lines are set aside into ``FILE.bad`` and
    the files rewritten without them; otherwise the files are left as they are and a screened copy is read."""
    if repair:
        for path in database_paths(folder):
            mend_last_line(path)
    workloads, records = _contents(folder)
    suspect = needs_screening(workloads, records)
    if not suspect:
        try:
            return _open(folder, allow_missing)
        except Exception:  # pylint: disable=broad-except  # a line TVM refuses: found below
            log.debug("TVM refused a line of '%s'; screening it line by line", folder, exc_info=True)
    screened = screen(workloads, records)
    if suspect and _as_they_are(screened, workloads, records):  # a marker in a harmless place
        try:
            return _open(folder, allow_missing)
        except Exception:  # pylint: disable=broad-except
            log.debug("TVM refused a line of '%s'; parsing it record by record", folder, exc_info=True)
    target = folder if repair else tempfile.mkdtemp(prefix="tvmc-screened-")
    try:
        database, screened = _screen_into(folder, target, screened, allow_missing, set_aside=repair)
    finally:
        if target != folder:
            shutil.rmtree(target, ignore_errors=True)
    _warn(folder, screened.bad, repair)
    return database


def screened_paths(folder: str, deep: bool = False) -> tuple:
    """The paths ``(workloads, records)`` to read ``folder``'s records from as plain JSON: its own files when
    nothing looks wrong (``needs_screening``), else a screened copy (kept until the process ends) whose bad lines
    are named in a warning. ``deep`` also leaves out what TVM refuses (TVM parses every line: slow)."""
    import atexit  # pylint: disable=import-outside-toplevel

    workloads, records = _contents(folder)
    if not deep and not needs_screening(workloads, records):
        return database_paths(folder)
    screened = screen(workloads, records)
    if not deep and _as_they_are(screened, workloads, records):  # a marker in a harmless place
        return database_paths(folder)
    copy = tempfile.mkdtemp(prefix="tvmc-screened-")
    atexit.register(shutil.rmtree, copy, True)
    if deep:
        _, screened = _screen_into(folder, copy, screened, False, set_aside=False)
    else:
        _refuse_if_nothing_left(folder, screened)
        _write(copy, screened, ())
    _warn(folder, screened.bad, repair=False)
    return database_paths(copy)


def _as_they_are(screened: Screened, workloads: bytes, records: bytes) -> bool:
    """Whether ``screened`` kept the files exactly as they are (TVM may read them): no line left out, and no
    blank line either (TVM's reader crashes on one)."""
    return (not screened.bad and b"".join(line + b"\n" for line in screened.workloads) == workloads
            and b"".join(line + b"\n" for _, line in screened.records) == records)


def _screen_into(folder: str, target: str, screened: Screened, allow_missing: bool, set_aside: bool) -> tuple:
    """Write what ``screened`` kept of ``folder`` into ``target`` (``folder`` itself when ``set_aside``: the bad
    lines go to ``FILE.bad`` first) and open it; a line TVM still refuses is found record by record and left out
    too. ``(database, screened)``."""
    _refuse_if_nothing_left(folder, screened)
    _write(target, screened, screened.bad if set_aside else ())
    try:
        return _open(target, allow_missing), screened
    except Exception:  # pylint: disable=broad-except  # a line Python found well formed and TVM does not
        log.debug("TVM refused a screened line of '%s'; parsing it record by record", folder, exc_info=True)
    more = refused_by_tvm(screened)
    _refuse_if_nothing_left(folder, more)
    _write(target, more, more.bad[len(screened.bad) :] if set_aside else ())
    try:
        return _open(target, allow_missing), more
    except Exception as err:  # pylint: disable=broad-except
        raise corrupt_records(folder, err) from None


def _open(folder: str, allow_missing: bool):
    from tvm.s_tir import meta_schedule as ms  # pylint: disable=import-outside-toplevel

    workloads, records = database_paths(folder)
    return ms.database.JSONDatabase(path_workload=workloads, path_tuning_record=records, allow_missing=allow_missing)


def _contents(folder: str) -> tuple:
    """``(workloads, records)`` bytes, empty for a missing file. The records are read first: a writer adds a
    workload before the records that name it, so every record read names a workload read after it."""
    workloads_path, records_path = database_paths(folder)
    records = _read(records_path)
    return _read(workloads_path), records


def _read(path: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except FileNotFoundError:
        return b""


def split_lines(data: bytes) -> list:
    lines = data.split(b"\n")
    if lines and not lines[-1]:
        lines.pop()
    return lines


def has_marker(data: bytes) -> bool:
    return any(marker in data for marker in MARKERS)


def module_text(b64: str) -> bytes:
    """The JSON object graph of a workload's module: TVM stores it as base64 of a length-prefixed string."""
    raw = base64.b64decode(b64, validate=True)
    size = int.from_bytes(raw[:8], "little")
    if len(raw) < 8 or size > len(raw) - 8:
        raise ValueError("truncated module")
    return raw[8 : 8 + size]


def needs_screening(workloads: bytes, records: bytes) -> bool:
    """Whether a line may be damaged or hostile; if not, TVM may read the files as they are. Cheap: byte scans,
    and a base64 decode of the workloads (the smaller file). Every line must start with ``[`` (TVM's reader
    crashes on a record line that is JSON but no list) and end with a newline, the files must be UTF-8, and no
    line may hold a ``MARKER`` (nor a record a ``null``: ``record_shape_problem``)."""
    for data in (workloads, records):
        if data and (not data.startswith(b"[") or not data.endswith(b"\n") or data.count(b"\n") != data.count(b"\n[") + 1):
            return True
        try:
            data.decode("utf-8")
        except UnicodeDecodeError:  # TVM reads it, and the record's text then fails to decode
            return True
    if has_marker(records) or b"null" in records:  # a null TVM does not write (record_shape_problem) crashes it
        return True
    try:
        return any(has_marker(module_text(json.loads(line)[1])) for line in split_lines(workloads))
    except Exception:  # pylint: disable=broad-except  # not a workload line: look at it closely
        return True


def screen(workloads: bytes, records: bytes) -> Screened:
    """Check every line in Python: JSON of the right shape, a record's workload among the lines kept, nothing
    hostile (TVM parses what is left)."""
    lines, usable, bad = [], [], []
    for number, line, cut in _numbered(workloads):
        problem, placeholder_already = _workload_problem(line)
        if problem:
            bad.append(_bad(WORKLOADS, number, problem, line, cut))
            line = placeholder(number)
        lines.append(line)
        usable.append(not problem and not placeholder_already)
    kept, had_records = [], False
    for number, line, cut in _numbered(records):
        if not line.strip():
            continue  # an empty line holds nothing
        had_records = True
        problem = _record_problem(line, usable)
        if problem:
            bad.append(_bad(TUNING_RECORDS, number, problem, line, cut))
        else:
            kept.append((number, line))
    return Screened(tuple(lines), tuple(kept), tuple(bad), tuple(usable), had_records)


def _numbered(data: bytes):
    """``(number, line, whether it is a last line without its newline)`` for each line of a file."""
    lines = split_lines(data)
    for number, line in enumerate(lines, 1):
        yield number, line, number == len(lines) and not data.endswith(b"\n")


def _bad(file: str, number: int, problem: str, line: bytes, last_unended: bool) -> BadLine:
    cut = last_unended and problem == "not JSON"  # what a kill mid-write leaves
    return BadLine(file, number, "cut short by a kill mid-write" if cut else problem, line, cut)


def _workload_problem(line: bytes) -> tuple:
    """``(why the line is left out or None, whether it is a placeholder already)``."""
    try:
        value = json.loads(line)
    except ValueError:
        return ("empty line" if not line.strip() else "not JSON"), False
    if not (isinstance(value, list) and len(value) == 2 and all(isinstance(v, str) for v in value)):
        return "not a workload ([structural hash, module])", False
    try:
        text = module_text(value[1])
    except ValueError:
        return "its module is not TVM's base64", False
    problem = graph_problem(text, TVM_CALLEES) if has_marker(text) else None
    return problem, not problem and PLACEHOLDER.encode() in text


def _record_problem(line: bytes, usable: list) -> str | None:
    try:
        value = json.loads(line)
    except ValueError:
        return "not JSON"
    if not (isinstance(value, list) and len(value) == 2 and type(value[0]) is int  # pylint: disable=unidiomatic-typecheck  # not a bool
            and isinstance(value[1], list) and len(value[1]) == 4):
        return "not a tuning record ([workload index, [trace, times, target, arguments]])"
    index = value[0]
    if not 0 <= index < len(usable):
        return f"unknown workload index {index} ({WORKLOADS} has {len(usable)} lines)"
    if not usable[index]:
        return f"its workload ({WORKLOADS} line {index + 1}) was set aside"
    return record_shape_problem(value[1]) or (trace_problem(value[1][0]) if has_marker(line) else None)


def record_shape_problem(record: list) -> str | None:
    """Why a record's ``[trace, times, target, arguments]`` is not of the types TVM's reader expects, or None.
    TVM trusts them: a ``null`` where it expects a value (a time, a shape, a decision, an instruction's input or
    name) crashes the process. TVM writes ``null`` only among the attributes of the instructions in
    ``NULL_ATTRIBUTES``."""
    trace, times, target, arguments = record
    if not (isinstance(trace, list) and len(trace) == 2 and all(isinstance(part, list) for part in trace)):
        return "its trace is not [instructions, decisions]"
    instructions, decisions = trace
    for inst in instructions:
        if not (isinstance(inst, list) and len(inst) == 4 and isinstance(inst[0], str) and all(isinstance(p, list) for p in inst[1:])):
            return "an instruction of its trace is not [kind, inputs, attributes, outputs]"
        kind, inputs, attributes, outputs = inst
        if _holds_null(inputs) or not all(isinstance(name, str) for name in outputs):
            return f"a {kind} instruction of its trace has a null input or an output that is not a name"
        if kind not in NULL_ATTRIBUTES and _holds_null(attributes):
            return f"a {kind} instruction of its trace has a null attribute"
    for decision in decisions:
        if not (isinstance(decision, list) and len(decision) == 2 and type(decision[0]) is int  # pylint: disable=unidiomatic-typecheck
                and 0 <= decision[0] < len(instructions) and not _holds_null(decision[1])):
            return "a decision of its trace is not [instruction index, value]"
    if times is not None and not (isinstance(times, list) and all(_is_number(t) for t in times)):
        return "its times are not numbers"
    if not (isinstance(target, dict) and isinstance(target.get("kind"), str)) or _holds_null(target):
        return "its target is not a target's JSON object"
    if not (isinstance(arguments, list) and all(_is_tensor_info(a) for a in arguments)):
        return 'its arguments are not ["TENSOR", dtype, shape]'
    return None


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_tensor_info(value) -> bool:
    return (isinstance(value, list) and len(value) == 3 and value[0] == "TENSOR" and isinstance(value[1], str)
            and isinstance(value[2], list) and all(type(d) is int for d in value[2]))  # pylint: disable=unidiomatic-typecheck


def _holds_null(value) -> bool:
    stack = [value]
    while stack:
        item = stack.pop()
        if item is None:
            return True
        if isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, dict):
            stack.extend(item.values())
    return False


def graph_problem(text, allowed=frozenset()) -> str | None:
    """Why a JSON object graph (a workload's module, an index map in a trace) must not be loaded, or None:
    not JSON, duplicate keys (a parser other than Python's may keep the other value), a ``pragma_import``, an
    object of compiled code, or a call of a function by name other than ``allowed``."""
    try:
        graph = json.loads(text, object_pairs_hook=_unique_keys)
    except ValueError as err:
        return f"not a JSON object graph ({str(err)[:80]})"
    for string in _strings(graph):
        if string.startswith("pragma_import"):
            return f"refused: it imports code into the kernel ({string})"
        if string in CODE_TYPES:
            return f"refused: it holds an {string}"
    nodes = graph.get("nodes") if isinstance(graph, dict) else None
    nodes = nodes if isinstance(nodes, list) else []
    calling = {i: n["data"] for i, n in enumerate(nodes) if _node(n, "ir.Op") and isinstance(n["data"], str) and CALLS_BY_NAME.search(n["data"])}
    if not calling:
        return None
    calls = [n["data"] for n in nodes if _node(n, "ir.Call") and isinstance(n["data"], dict) and n["data"].get("op") in calling]
    for call in calls or [{}]:
        callee = _callee(nodes, call)
        if callee not in allowed:
            op = calling.get(call.get("op"), next(iter(calling.values())))
            return f"refused: it calls {callee!r} by name ({op})" if callee else f"refused: it calls a function by name ({op})"
    return None


def trace_problem(trace) -> str | None:
    """Why a record's trace (its JSON) must not be loaded, or None: an annotation that imports code, or an
    index map (the only object graph a trace holds) that ``graph_problem`` refuses."""
    for string in _strings(trace):
        plain = string.strip('"')  # a string argument is written in quotes
        if plain.startswith("pragma_import"):
            return f"refused: it imports code into the kernel ({plain})"
        if string.startswith("{"):
            problem = graph_problem(string)
            if problem:
                return problem
    return None


def _node(node, type_key: str) -> bool:
    return isinstance(node, dict) and node.get("type") == type_key and "data" in node


def _callee(nodes: list, call: dict) -> str | None:
    """The function a call by name names: its first argument, a string."""

    def at(index, type_key):
        if type(index) is int and 0 <= index < len(nodes) and _node(nodes[index], type_key):
            return nodes[index]["data"]
        return None

    args = at(call.get("args"), "ffi.Array")
    first = at(args[0], "ir.StringImm") if isinstance(args, list) and args else None
    name = at(first.get("value"), "ffi.String") if isinstance(first, dict) else None
    return name if isinstance(name, str) else None


def _unique_keys(pairs: list) -> dict:
    keys = [key for key, _ in pairs]
    if len(set(keys)) != len(keys):
        raise ValueError("duplicate keys")
    return dict(pairs)


def _strings(value):
    """Every string in a JSON value, keys included."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            yield item
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


def placeholder(number: int) -> bytes:
    """A valid workload line in place of line ``number`` set aside: the lines after it keep their numbers, which
    records name their workloads by. No record can name it (``screen`` knows it by its attribute)."""
    import tvm  # pylint: disable=import-outside-toplevel
    from tvm.s_tir import meta_schedule as ms

    func = tvm.tirx.PrimFunc([], tvm.tirx.Evaluate(0)).with_attr(PLACEHOLDER, f"{WORKLOADS} line {number}")
    shash, module = ms.database.Workload(tvm.IRModule({"main": func})).as_json()
    return json.dumps([str(shash), str(module)]).encode()


def refused_by_tvm(screened: Screened) -> Screened:
    """Parse each line Python let through with TVM, as TVM's reader does, and leave out what it refuses."""
    from tvm.s_tir import meta_schedule as ms  # pylint: disable=import-outside-toplevel

    workloads, usable, more, refused = [], list(screened.usable), [], set()
    for i, line in enumerate(screened.workloads):
        try:
            workloads.append(ms.database.Workload.from_json(json.loads(line)) if usable[i] else None)
        except Exception as err:  # pylint: disable=broad-except
            more.append(BadLine(WORKLOADS, i + 1, f"TVM refused it: {one_line(err, 160)}", line))
            usable[i] = False
            refused.add(i)
            workloads.append(None)
    kept = []
    for number, line in screened.records:
        index, record = json.loads(line)
        if not usable[index]:
            more.append(BadLine(TUNING_RECORDS, number, f"its workload ({WORKLOADS} line {index + 1}) was set aside", line))
            continue
        try:
            ms.database.TuningRecord.from_json(record, workloads[index])
            kept.append((number, line))
        except Exception as err:  # pylint: disable=broad-except
            more.append(BadLine(TUNING_RECORDS, number, f"TVM refused it: {one_line(err, 160)}", line))
    lines = tuple(placeholder(i + 1) if i in refused else line for i, line in enumerate(screened.workloads))
    return attrs.evolve(screened, workloads=lines, records=tuple(kept), bad=screened.bad + tuple(more), usable=tuple(usable))


def mend_last_line(path: str) -> None:
    """A writer's cheap first step: a last line cut short by a kill goes to ``FILE.bad`` and out of the file; a
    whole last line that lacks its newline gets one (TVM would append the next line onto it)."""
    data = _read(path)
    if not data or data.endswith(b"\n"):
        return
    last = data[data.rfind(b"\n") + 1 :]
    try:
        json.loads(last)
    except ValueError:
        _append(path + ".bad", [last])
        os.truncate(path, len(data) - len(last))
        log.info("%s: a last line cut short by a kill mid-write was set aside into %s.bad", path, os.path.basename(path))
        return
    with open(path, "ab") as f:
        f.write(b"\n")


def _append(path: str, lines) -> None:
    with open(path, "ab") as f:
        f.write(b"".join(line + b"\n" for line in lines))
        f.flush()
        os.fsync(f.fileno())


def _write(folder: str, screened: Screened, set_aside: tuple) -> None:
    """Set ``set_aside`` lines into ``FILE.bad``, then write both files of ``screened`` (each atomically)."""
    workloads_path, records_path = database_paths(folder)
    for path, name in ((workloads_path, WORKLOADS), (records_path, TUNING_RECORDS)):
        lines = [b.text for b in set_aside if b.file == name]
        if lines:
            _append(path + ".bad", lines)
    for path, lines in ((workloads_path, screened.workloads), (records_path, [line for _, line in screened.records])):
        with atomic_write(path, "wb") as f:
            f.write(b"".join(line + b"\n" for line in lines))


def _refuse_if_nothing_left(folder: str, screened: Screened) -> None:
    """A records file none of whose records can be read is an error, not an empty folder (a kill that cut the
    only line short excepted): the user gave the wrong folder, or it needs restoring."""
    named = [b for b in screened.bad if not b.cut]
    if screened.records or not screened.had_records or not named:
        return
    first = next((b for b in named if b.file == TUNING_RECORDS), named[0])
    raise corrupt_records(folder, ValueError(f"no record could be read; {first.file} line {first.number}: {first.reason}"))


def _warn(folder: str, bad: tuple, repair: bool) -> None:
    done = "set aside into {}.bad" if repair else "skipped (the file is left as it is)"
    for name in (WORKLOADS, TUNING_RECORDS):
        lines = sorted((b for b in bad if b.file == name and (folder, name, b.number, repair) not in _WARNED), key=lambda b: b.number)
        _WARNED.update((folder, name, b.number, repair) for b in lines)
        for b in lines[:SHOWN]:
            (log.info if b.cut else log.warning)("records '%s': %s line %d %s: %s", folder, name, b.number, done.format(name), b.reason)
        if len(lines) > SHOWN:
            log.warning("records '%s': %d more lines of %s %s", folder, len(lines) - SHOWN, name, done.format(name))
