"""The schedule library shipped with the package: tuned records of common models, one file per CPU family.

A library file (``tvmc_transfer/data/schedules-<family>.json.xz``) holds, for every workload of the records
folders it was built from, its best few measured tuning records: the workload's TIR and each record's trace,
times, target and argument info, in MetaSchedule's own JSON forms, compressed with xz. ``tvmc compile`` without
tuning records transfers these schedules onto the model's kernels (``defaults/schedules.py``), and ``tvmc
transfer`` transfers from it as from a records folder, measuring them here (``transfer/sources.library_source``);
nothing in a library is applied without being replayed and checked on the kernel first.

A family says which processors its schedules are meant for: the target kind and architecture, the LLVM CPU
features every one of them has (``requires``) and the processor it was tuned on. A target whose features include
``requires`` uses the library, the most specific one when several fit; AVX2 schedules run on an AVX-512
processor, tuned for the narrower unit. A target of the same architecture outside every family (plain ``llvm``:
generic x86-64 without AVX2) still uses the library, as "outside its family": its loop nests are still better
there than design-space samples picked by the cost model (ResNet-50 on generic x86-64, measured side by side:
(BENCHMARKS, "Figures moved out of the code")). Another architecture gets no library.

``cli/build_library.py`` rebuilds a library from records folders (``write_library``;
``python -m tvmc_transfer.cli.build_library``).
"""

import collections.abc
import functools
import glob
import json
import lzma
import os

import attrs

from ..errors import TVMCException
from ..kernels.classes import kernel_class
from ..records.database import mean_of_secs, mean_seconds, target_label
from ..records.sources import Source, SourceWorkload, best_records
from ..target import target_arch, target_features

DATA = os.path.join(os.path.dirname(os.path.dirname(__file__)), "data")
FORMAT = 1


@attrs.frozen
class Library:
    """One library file, read: its family and its workloads as a transfer ``Source`` (``records_tools``)."""

    path: str
    family: str  # e.g. "x86-64 AVX2+FMA"
    arch: str  # LLVM's architecture name, e.g. "x86_64"
    tuned_on: str  # targets of its records, e.g. "llvm -mcpu=znver4, llvm -mcpu=znver5"
    requires: tuple  # LLVM CPU features a target must have
    version: str
    source: object  # records_tools.Source

    @property
    def name(self) -> str:
        return os.path.basename(self.path)

    def describe(self, target=None) -> str:
        """``x86-64 AVX2+FMA (schedules-x86-avx2.json.xz 2026.12-5, tuned on llvm -mcpu=znver3)``; for a ``target``
        that lacks features the family requires (a library used outside its family), also what it lacks."""
        label = f"{self.family} ({self.name} {self.version}, tuned on {self.tuned_on})"
        missing = sorted(set(self.requires) - target_features(target)) if target is not None else []
        return label + (f"; outside its family: the target lacks {', '.join(missing)}" if missing else "")


def library_paths() -> list:
    return sorted(glob.glob(os.path.join(DATA, "schedules-*.json.xz")))


def _header(path: str) -> dict:
    with lzma.open(path, "rt", encoding="utf-8") as f:
        return json.loads(f.readline())



def find_library(target, paths: list | None = None) -> tuple:
    """``(library file, in family)`` for ``target``: of the libraries for its kind and architecture, the one
    requiring the most features among those it has (in family), else the one requiring the fewest (outside
    its family); ``(None, False)`` when no library is for its architecture."""
    features, arch = target_features(target), target_arch(target) if target.kind.name == "llvm" else None
    fitting, other = [], []
    for path in library_paths() if paths is None else paths:
        header = _header(path)
        if header.get("format") != FORMAT or header["kind"] != target.kind.name or header["arch"] != arch:
            continue
        (fitting if set(header["requires"]) <= features else other).append((len(header["requires"]), path))
    if fitting:
        return max(fitting)[1], True
    return (min(other)[1], False) if other else (None, False)


def library_for(target) -> Library | None:
    """The library ``find_library`` picks for ``target``, read; None when no library is for its architecture."""
    path, _ = find_library(target)
    return read_library(path) if path else None


def families() -> list:
    """The families of the shipped libraries, e.g. ``["x86-64 AVX-512", "x86-64 AVX2+FMA"]`` (for messages)."""
    return sorted(_header(path)["family"] for path in library_paths())


def read_library(path: str) -> Library:
    """Read a library file: one header line, then one line per workload. Read once per process (per file
    version): a compile, the tuner's default start and transfer share it. A workload's records are parsed when
    first used (``LazyRecords``): a kernel uses a few of the hundreds a library holds."""
    stat = os.stat(path)
    return _read_library(os.path.abspath(path), stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=4)
def _read_library(path: str, mtime_ns: int, size: int) -> Library:  # pylint: disable=unused-argument
    from tvm.s_tir import meta_schedule as ms  # pylint: disable=import-outside-toplevel


    workloads = []
    with lzma.open(path, "rt", encoding="utf-8") as f:
        header = json.loads(f.readline())
        for index, line in enumerate(f):
            entry = json.loads(line)
            workload = ms.database.Workload(_load_mod(entry["mod"]))
            records = LazyRecords(workload, entry["records"])
            workloads.append(SourceWorkload(index, workload.mod, kernel_class(workload.mod), records))
    source = Source(path, tuple(workloads), 0, 0)
    return Library(path, header["family"], header["arch"], header["tuned_on"], tuple(header["requires"]), header["version"], source)


def _load_mod(text: str):
    """A workload's IRModule from its ``save_json`` text. TVM's ``load_json`` first upgrades the text from older
    TVM versions in Python (most of the cost); text written by this very version needs no upgrade."""
    import tvm  # pylint: disable=import-outside-toplevel
    from tvm.ir.base import from_json_graph_str

    if text.endswith(f'"metadata":{{"tvm_version":"{tvm.__version__}"}}}}'):
        return from_json_graph_str(text)
    return tvm.ir.load_json(text)


class LazyRecords(collections.abc.Sequence):
    """A library workload's records, fastest first, each parsed into a ``TuningRecord`` when first read:
    parsing one costs about 8 ms (its trace), and a library holds hundreds. ``seconds(i)`` reads a record's
    mean time without parsing it."""

    def __init__(self, workload, raw: list):
        self._workload = workload
        self._raw = sorted(raw, key=_raw_mean)
        self._parsed = [None] * len(self._raw)

    def __len__(self) -> int:
        return len(self._raw)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return tuple(self[j] for j in range(*i.indices(len(self))))
        if self._parsed[i] is None:
            from tvm.s_tir import meta_schedule as ms  # pylint: disable=import-outside-toplevel

            self._parsed[i] = ms.database.TuningRecord.from_json(self._raw[i], self._workload)
        return self._parsed[i]

    def seconds(self, i: int) -> float:
        return _raw_mean(self._raw[i])


def _raw_mean(raw: list) -> float:
    """The mean of a record's times in its JSON form ``[trace, run_secs, target, args_info]``."""

    return mean_of_secs(raw[1])


def write_library(path: str, folders: list, family: str, arch: str, requires: list, version: str, top_k: int = 3) -> dict:
    """Write the best ``top_k`` measured records of every workload in the records ``folders`` as a library file.

    The records may come from several processors of the family (``tuned_on`` names them all). A workload that
    several folders hold (a model tuned on two processors, a kernel two models share) is written once, with the
    fastest ``top_k`` of all its records. Returns the header written."""
    import tvm  # pylint: disable=import-outside-toplevel


    groups = {}  # workload hash -> (mod, records of every folder), in the order first met
    for folder in folders:
        found, _, _, _, _ = best_records(folder, None, top_k)  # each workload's fastest, read as plain JSON
        for key, (mod, records) in found.items():
            groups.setdefault(key, (mod, []))[1].extend(records)
    entries, targets = [], set()
    for mod, records in groups.values():
        best = sorted(records, key=mean_seconds)[:top_k]
        targets.update(target_label(r.target) for r in best)
        entries.append({"mod": tvm.ir.save_json(mod), "records": [_record_json(r) for r in best]})
    if not targets:
        raise TVMCException(f"the records folders {', '.join(folders)} hold no measured records")
    first = entries[0]["records"][0]
    header = {
        "format": FORMAT,
        "family": family,
        "kind": "llvm",
        "arch": arch,
        "requires": sorted(requires),
        "tuned_on": ", ".join(sorted(targets)),
        "target": first[2],
        "version": version,
        "sources": [os.path.basename(os.path.normpath(f)) for f in folders],
        "workloads": len(entries),
        "top_k": top_k,
    }
    with lzma.open(path, "wt", encoding="utf-8", preset=9 | lzma.PRESET_EXTREME) as f:
        f.write(json.dumps(header) + "\n")
        for entry in entries:
            f.write(json.dumps(entry, separators=(",", ":")) + "\n")
    return header


def _record_json(record) -> list:
    """A record's JSON with its workload index dropped (``[trace, run_secs, target, args_info]``), written as
    the JSON database writes it: ``TuningRecord.as_json`` cannot unpack the IndexMap of a layout rewrite (weight
    prepacking), which the database stores as its ``save_json`` text and reads back from it."""
    from tvm.s_tir.meta_schedule import _ffi_api  # pylint: disable=import-outside-toplevel

    data = _plain(_ffi_api.TuningRecordAsJSON(record))  # pylint: disable=no-member
    return [data[0], [float(s) for s in data[1]], data[2], data[3]]


def _plain(obj):
    """TVM containers and numbers as plain JSON data; any other object as its ``save_json`` text."""
    import tvm  # pylint: disable=import-outside-toplevel
    from tvm.tirx import FloatImm, IntImm
    from tvm_ffi import Array, Map

    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    if isinstance(obj, (IntImm, FloatImm)):
        return obj.value
    if isinstance(obj, Array):
        return [_plain(v) for v in obj]
    if isinstance(obj, Map):
        return {_plain(k): _plain(v) for k, v in obj.items()}
    return tvm.ir.save_json(obj)


def library_source(target, use: bool = True) -> tuple:
    """``(Library or None, label)``: the schedule library shipped for ``target``'s CPU family, a transfer source
    like a records folder (its ``source``), and how a report names it; ``use=False`` leaves it out."""
    if not use:
        return None, "left out"
    library = library_for(target)
    if library is None:
        return None, f"none for {_processor(target)}"
    return library, library.describe(target)


def nothing_to_transfer_from(target, use_library: bool) -> str:
    """The error when no records folder is given and no library is used: what is missing and what to do."""
    if not use_library:
        return "--no-library leaves nothing to transfer from: give records folders with --from RECORDS"
    return (
        f"no schedule library ships for {_processor(target)}: the package has them for {' and '.join(families())} "
        "only; give records to transfer from with --from RECORDS, a folder that 'tvmc tune' wrote for this target"
    )


def _processor(target) -> str:
    """``aarch64 (llvm -mcpu=neoverse-n1)``: the architecture and processor of a target, for messages."""
    arch = target_arch(target) if target.kind.name == "llvm" else target.kind.name
    return f"{arch} ({target_label(target)})"
