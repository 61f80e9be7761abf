"""Records folders kept as ``FOLDER.tar.xz``: unpacked beside the archive the first time they are read.

Large records sets (prepacked ones, 15 kB a record) are committed compressed, about 150x smaller. A folder tuned
further is packed again with ``tar -cJf NAME-records.tar.xz --exclude=logs NAME-records`` before committing.
"""

import os
import tarfile

from ..errors import TVMCException
from .database import TUNING_RECORDS


def unpacked(path: str) -> str:
    """``path``, unpacked first from ``path.tar.xz`` when only the archive is there. A folder unpacked earlier is
    used when its records begin with the archive's (it may have been tuned further); when the archive holds
    other records (a commit replaced it), a ``TVMCException`` says so instead of using stale ones."""
    archive = path.rstrip("/") + ".tar.xz"
    if not os.path.exists(archive):
        return path
    with tarfile.open(archive) as tar:
        if not os.path.isdir(path):
            tar.extractall(os.path.dirname(os.path.abspath(path)), filter="data")
            return path
        records = os.path.join(path, TUNING_RECORDS)
        member = next((m for m in tar.getmembers() if m.name.endswith(f"/{TUNING_RECORDS}")), None)
        if member is not None and os.path.exists(records) and not _starts_with(records, tar.extractfile(member), member.size):
            raise TVMCException(f"{archive} holds other records than the folder {path}: delete the folder to unpack "
                                "the archive, or pack the folder again if it holds the records to keep")
    return path


def _starts_with(path: str, packed, size: int, chunk: int = 1 << 20) -> bool:
    """Whether the file ``path`` begins with the ``size`` bytes of the file object ``packed``."""
    if os.path.getsize(path) < size:
        return False
    with open(path, "rb") as f:
        while size > 0:
            n = min(chunk, size)
            if f.read(n) != packed.read(n):
                return False
            size -= n
    return True
