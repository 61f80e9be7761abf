"""The deployable package: one tar file with the compiled library and what a caller needs to know.

Layout (readable with plain ``tar`` and plain TVM, without this project installed)::

    mod.so          the compiled Relax executable: tvm.runtime.load_module("mod.so")
    metadata.json   inputs, outputs, target, TVM version, model and records digests
"""

import io
import json
import os
import tarfile
import tempfile

import attrs

from .atomic import atomic_write
from .errors import TVMCException
from .frontends import TensorInfo

FORMAT = "tvmc-transfer-package"
LIBRARY = "mod.so"
METADATA = "metadata.json"


@attrs.frozen
class PackageMetadata:
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
        return {"format": FORMAT, "version": 1, **data}

    @classmethod
    def from_json(cls, data: dict) -> "PackageMetadata":
        fields = {f.name for f in attrs.fields(cls)}
        values = {k: v for k, v in data.items() if k in fields}
        values["inputs"] = tuple(TensorInfo.from_json(t) for t in data["inputs"])
        values["outputs"] = tuple(TensorInfo.from_json(t) for t in data["outputs"])
        return cls(**values)


def write_package(executable, metadata: PackageMetadata, path: str, fcompile=None) -> str:
    """Write the package atomically: a stopped run never leaves a half-written file at ``path``.

    ``fcompile`` links the library (a cross compiler's); by default the host's compiler does."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="tvmc-package-") as work:
        library = os.path.join(work, LIBRARY)
        executable.export_library(library, fcompile=fcompile)
        with atomic_write(path, "wb") as f, tarfile.open(fileobj=f, mode="w") as tar:
            tar.add(library, arcname=LIBRARY)
            blob = json.dumps(metadata.to_json(), indent=2).encode()
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
    if not os.path.isfile(path):
        raise TVMCException(f"package '{path}' not found; make one with 'tvmc compile MODEL -o {path}'")
    tmp = tempfile.TemporaryDirectory(prefix="tvmc-run-")
    try:
        with tarfile.open(path) as tar:
            names = set(tar.getnames())
            if not {LIBRARY, METADATA} <= names:
                raise TVMCException(f"'{path}' is not a tvmc package (it lacks {LIBRARY} or {METADATA})")
            tar.extract(LIBRARY, tmp.name, filter="data")
            data = json.load(tar.extractfile(METADATA))
    except (tarfile.TarError, json.JSONDecodeError, KeyError, OSError) as err:
        tmp.cleanup()
        raise TVMCException(f"'{path}' is not a readable tvmc package: {err}") from None
    if data.get("format") != FORMAT:
        tmp.cleanup()
        raise TVMCException(f"'{path}' is not a tvmc-transfer package")
    return Package(path, PackageMetadata.from_json(data), os.path.join(tmp.name, LIBRARY), tmp)
