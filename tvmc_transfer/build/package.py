"""The deployable package: one tar file with the compiled library and what a caller needs to know.

Layout (readable with plain ``tar`` and plain TVM, without this project installed)::

    mod.so          the compiled Relax executable: tvm.runtime.load_module("mod.so")
    metadata.json   inputs, outputs, target, TVM version, model and records digests, mod.so's sha256

``read_package`` refuses, with one ``Error:`` line, a package that lacks a member, holds any other member (or
one twice, or one that is not a regular file: a link, a device, a directory), whose metadata.json is not what
``write_package`` writes, or whose mod.so does not match the sha256 in its metadata.json.

The digest catches damage and accidental changes (a truncated copy, a library swapped by hand); it is not a
signature: whoever can change mod.so can change metadata.json too. A ``.so`` is code that runs with your
rights when it is loaded: run only packages you trust, from a source you trust.
"""

import hashlib
import io
import json
import logging
import os
import tarfile
import tempfile

import attrs

from ..atomic import atomic_write
from ..errors import TVMCException
from ..frontends.load import TensorInfo

log = logging.getLogger("tvmc")

FORMAT = "tvmc-transfer-package"
# 2: metadata.json holds "library_sha256". Version 1 packages (no digest) are still read, unchecked: refusing
# them would strand every package compiled before, and the digest guards against accidents, not attackers.
VERSION = 2
LIBRARY = "mod.so"
METADATA = "metadata.json"
_MEMBER_KINDS = {
    tarfile.SYMTYPE: "a symbolic link",
    tarfile.LNKTYPE: "a hard link",
    tarfile.DIRTYPE: "a directory",
    tarfile.CHRTYPE: "a device",
    tarfile.BLKTYPE: "a device",
    tarfile.FIFOTYPE: "a FIFO",
}


@attrs.frozen
class PackageMetadata:
    """What metadata.json tells a caller (beside the format, its version and mod.so's sha256)."""

    inputs: tuple  # of TensorInfo
    outputs: tuple
    target: dict
    tvm_version: str
    model: str
    model_digest: str
    records_digest: str | None
    tuned_kernels: int
    kernels: int
    # which defaults the other kernels got: {"library": "<family, file and version>" or None, "counts":
    # {"library": n, "model": n, "none": n}}; None when defaults were off (older packages lack it)
    default_schedules: dict | None = None
    tvmc_transfer_version: str | None = None

    def to_json(self) -> dict:
        data = attrs.asdict(self, recurse=False)
        data["inputs"] = [t.to_json() for t in self.inputs]
        data["outputs"] = [t.to_json() for t in self.outputs]
        return {"format": FORMAT, "version": VERSION, **data}

    @classmethod
    def from_json(cls, data: dict) -> "PackageMetadata":
        """The metadata in ``data`` (a metadata.json); ``TVMCException`` naming the first field that is missing or
        of the wrong type."""
        _check_fields(data)
        fields = {f.name for f in attrs.fields(cls)}
        values = {k: v for k, v in data.items() if k in fields}
        values["inputs"] = tuple(TensorInfo.from_json(t) for t in data["inputs"])
        values["outputs"] = tuple(TensorInfo.from_json(t) for t in data["outputs"])
        return cls(**values)


# metadata.json's fields, each with the JSON types it may have; the last two are absent from older packages.
_FIELD_TYPES = {
    "inputs": list,
    "outputs": list,
    "target": dict,
    "tvm_version": str,
    "model": str,
    "model_digest": str,
    "records_digest": (str, type(None)),
    "tuned_kernels": int,
    "kernels": int,
}
_OPTIONAL_FIELD_TYPES = {"default_schedules": (dict, type(None)), "tvmc_transfer_version": (str, type(None))}


def _check_fields(data: dict) -> None:
    fields = {**_FIELD_TYPES, **{name: types for name, types in _OPTIONAL_FIELD_TYPES.items() if name in data}}
    for name, types in fields.items():
        if name not in data or not isinstance(data[name], types) or isinstance(data[name], bool):
            raise TVMCException(f"metadata.json field '{name}' is missing or not a JSON {_type_name(types)}")
    if not isinstance(data["target"].get("kind"), str):
        raise TVMCException("metadata.json field 'target' has no 'kind'")
    for name in ("inputs", "outputs"):
        if not all(_is_tensor_info(t) for t in data[name]):
            raise TVMCException(f"metadata.json field '{name}' must list objects of a name, a shape of integers and a dtype")


def _type_name(types) -> str:
    names = {list: "array", dict: "object", str: "string", int: "integer", type(None): "null"}
    return " or ".join(names[t] for t in (types if isinstance(types, tuple) else (types,)))


def _is_tensor_info(data) -> bool:
    return (
        isinstance(data, dict)
        and isinstance(data.get("name"), str)
        and isinstance(data.get("dtype"), str)
        and isinstance(data.get("shape"), list)
        and all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in data["shape"])
    )


def _sha256(path: str) -> str:
    """The sha256 of a file's bytes, in hex."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_package(executable, metadata: PackageMetadata, path: str, fcompile=None) -> str:
    """Write the package atomically: a stopped run never leaves a half-written file at ``path``.

    ``fcompile`` links the library (a cross compiler's); by default the host's compiler does. metadata.json
    records the library's sha256, which ``read_package`` checks."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="tvmc-package-") as work:
        library = os.path.join(work, LIBRARY)
        executable.export_library(library, fcompile=fcompile)
        with atomic_write(path, "wb") as f, tarfile.open(fileobj=f, mode="w") as tar:
            tar.add(library, arcname=LIBRARY)
            blob = json.dumps({**metadata.to_json(), "library_sha256": _sha256(library)}, indent=2).encode()
            info = tarfile.TarInfo(METADATA)
            info.size = len(blob)
            tar.addfile(info, io.BytesIO(blob))
    return path


@attrs.frozen
class Package:
    """A package unpacked into ``folder`` (kept alive as long as this object)."""

    path: str
    metadata: PackageMetadata
    library_path: str
    _tmp: object = attrs.field(repr=False)

    def load(self):
        import tvm  # pylint: disable=import-outside-toplevel

        return tvm.runtime.load_module(self.library_path)


def read_package(path: str) -> Package:
    """Unpack and check the package at ``path`` (see the module's docstring for what is refused); its library is
    checked against its digest here, before anything loads it.

    >>> read_package("net.tar").metadata.inputs      # doctest: +SKIP
    (TensorInfo(name='input', shape=(1, 3, 224, 224), dtype='float32'),)
    """
    if not os.path.isfile(path):
        raise TVMCException(f"package '{path}' not found; make one with 'tvmc compile MODEL -o {path}'")
    tmp = tempfile.TemporaryDirectory(prefix="tvmc-run-")
    try:
        return Package(path, _unpack(path, tmp.name), os.path.join(tmp.name, LIBRARY), tmp)
    except TVMCException as err:
        problem = f"is not a valid tvmc package: {err}; refusing it"
    except (tarfile.ReadError, tarfile.CompressionError, EOFError):
        problem = "is not a readable tvmc package: it is not a tar file, or a damaged one"
    except (tarfile.TarError, OSError) as err:
        problem = f"is not a readable tvmc package: {(str(err).strip().splitlines() or [type(err).__name__])[0]}"
    tmp.cleanup()
    raise TVMCException(f"'{path}' {problem}")


def _unpack(path: str, folder: str) -> PackageMetadata:
    """Check the members, read and check metadata.json, extract mod.so into ``folder`` and check its digest."""
    with tarfile.open(path) as tar:
        members = _checked_members(tar)
        try:
            data = json.load(tar.extractfile(members[METADATA]))
        except (ValueError, RecursionError) as err:  # not JSON, not UTF-8, nested too deep
            raise TVMCException(f"its {METADATA} is not JSON ({err})") from None
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise TVMCException(f"its {METADATA} is not a tvmc-transfer package's")
        version = data.get("version")
        if version not in range(1, VERSION + 1) or isinstance(version, bool):
            raise TVMCException(f"{METADATA} has format version {version!r}; this tvmc-transfer reads 1 to {VERSION} (a newer one wrote it?)")
        metadata = PackageMetadata.from_json(data)
        tar.extract(members[LIBRARY], folder, filter="data")
    if version == 1:
        log.info("'%s' was written before packages held their library's sha256: mod.so is not checked", path)
    elif not isinstance(data.get("library_sha256"), str):
        raise TVMCException(f"its {METADATA} lacks the sha256 of {LIBRARY} ('library_sha256')")
    elif data["library_sha256"] != _sha256(os.path.join(folder, LIBRARY)):
        raise TVMCException(f"{LIBRARY} does not match the sha256 in {METADATA}: it was damaged or changed after packaging")
    return metadata


def _checked_members(tar) -> dict:
    """The package's two members by name; ``TVMCException`` for a missing, foreign, repeated or irregular one."""
    members = {}
    for member in tar.getmembers():
        if member.name not in (LIBRARY, METADATA):
            raise TVMCException(f"it holds '{member.name}', which no package has (only {LIBRARY} and {METADATA})")
        if member.name in members:
            raise TVMCException(f"it holds {member.name} twice")
        if not member.isreg():
            raise TVMCException(f"its {member.name} is {_MEMBER_KINDS.get(member.type, 'not a regular file')}")
        members[member.name] = member
    missing = [name for name in (LIBRARY, METADATA) if name not in members]
    if missing:
        raise TVMCException(f"it lacks {' and '.join(missing)}")
    return members
