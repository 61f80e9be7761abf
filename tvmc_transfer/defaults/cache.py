"""The default schedules a compile chose, remembered on disk: the next compile of the model, or of another model
that shares kernels with it, takes them without building or checking anything.

One small JSON file per kernel (workload), ``<cache>/defaults/<context>/<workload hash>.json``: the default's
kind (library, model or none), where it came from and its tuning record (trace, times, target, argument
info, as the JSON database writes them). ``<context>`` is a digest of everything a choice depends on besides
the kernel: the target, this machine's CPU (the numeric check runs here), the schedule library's name, version
and digest, the cost model's digest, the tvmc-transfer and TVM versions and the ``DefaultOptions``; a change of
any of them starts a new folder (``context.json`` in it says which was which), so a stale choice is never
read. ``<cache>`` is ``$TVMC_TRANSFER_CACHE`` when set (``off`` turns the cache off), else
``$XDG_CACHE_HOME/tvmc-transfer`` or ``~/.cache/tvmc-transfer``. Deleting the folder clears it.

A cache never fails a compile: a file that does not parse, or whose record no longer replays on its kernel, is
ignored (and rewritten), and a folder that cannot be written is left alone.

>>> cache = DefaultsCache.open({"target": {"kind": "llvm"}})        # doctest: +SKIP
>>> cache.get(task.mod)                                             # doctest: +SKIP
"""

import hashlib
import json
import logging
import os

import attrs

from ..atomic import atomic_write
from ..records.database import replayed
from ..records.listing import workload_hash
from .library import _record_json

log = logging.getLogger("tvmc")

ENV = "TVMC_TRANSFER_CACHE"
OFF = ("", "0", "off", "no", "none", "false")
FORMAT = 2  # bump when what a file holds, or how a default is chosen, changes meaning


def cache_root() -> str | None:
    """The cache folder, or None when ``$TVMC_TRANSFER_CACHE`` turns the cache off."""
    value = os.environ.get(ENV)
    if value is not None:
        return None if value.strip().lower() in OFF else os.path.abspath(os.path.expanduser(value))
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "tvmc-transfer")


def digest(data) -> str:
    """16 hex digits of sha256 over ``data`` as canonical JSON."""
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()[:16]


def file_digest(path: str) -> str:
    """16 hex digits of sha256 over a file's bytes (a library or cost model a choice was made with)."""
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()[:16]


@attrs.frozen
class Cached:
    """One kernel's remembered default: ``record`` (a ``TuningRecord`` of the kernel; None for kind none)."""

    kind: str
    source: str | None
    record: object


class DefaultsCache:
    """The cached defaults of one context (``open``): ``get`` a kernel's, ``put`` one chosen now."""

    def __init__(self, folder: str, context: dict):
        self.folder, self.context = folder, context
        self.writable = True

    @classmethod
    def open(cls, context: dict, root: str | None = None):
        """The cache of ``context`` (JSON data: what a choice depends on), or None when the cache is off."""
        root = root or cache_root()
        if root is None:
            return None
        return cls(os.path.join(root, "defaults", f"{FORMAT}-{digest(context)}"), context)

    def _path(self, mod) -> str:
        return os.path.join(self.folder, f"{workload_hash(mod)}.json")

    def get(self, mod) -> Cached | None:
        """The default remembered for the kernel ``mod``, None when there is none or its file is damaged."""
        path = self._path(mod)
        if not os.path.exists(path):
            return None
        try:
            with open(path, encoding="utf-8") as f:
                entry = json.load(f)
            record = _record(entry["record"], mod)
            if entry["kind"] not in ("library", "model", "none") or (entry["kind"] == "none") != (record is None):
                raise ValueError(f"kind {entry['kind']!r} with{'out' if record is None else ''} a record")
            return Cached(entry["kind"], entry.get("source"), record)
        except Exception as err:  # pylint: disable=broad-except
            # a cache is never worth a failed compile: the kernel is chosen again and the file rewritten
            log.debug("%s: damaged default-schedule cache file ignored (%s)", path, str(err)[:200])
            return None

    def put(self, mod, kind: str, source: str | None, record) -> None:
        """Remember the default of the kernel ``mod``: its kind, source and ``TuningRecord`` (None: none)."""
        if not self.writable:
            return

        entry = {"kind": kind, "source": source, "record": _record_json(record) if record is not None else None}
        try:
            if not os.path.isdir(self.folder):
                os.makedirs(self.folder, exist_ok=True)
                with atomic_write(os.path.join(self.folder, "context.json")) as f:
                    json.dump(self.context, f, indent=1, default=str)
            with atomic_write(self._path(mod)) as f:
                json.dump(entry, f, separators=(",", ":"))
        except OSError as err:
            self.writable = False  # read-only home, full disk: compile on without remembering
            log.info("default schedules are not cached: %s", err)


def _record(raw, mod):
    """The ``TuningRecord`` of a cache file's ``record`` on the kernel ``mod``; it must replay there."""
    if raw is None:
        return None
    from tvm.s_tir import meta_schedule as ms  # pylint: disable=import-outside-toplevel


    record = ms.database.TuningRecord.from_json(raw, ms.database.Workload(mod))
    if replayed(mod, record.trace) is None:
        raise ValueError("its schedule does not replay on the kernel")
    return record
