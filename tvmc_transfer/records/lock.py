"""One writer per records folder: a lock file that names its holder and dies with it.

``tvmc tune``, ``tvmc transfer`` and ``tune --droplet`` append to a records folder for hours; two of them at once
would interleave their lines, and TVM numbers workloads by line. A writer holds ``.tvmc-lock`` in the folder with
``flock``, which the kernel releases when the process ends, however it ends (SIGKILL included): a lock left by a
dead process is taken over without anyone deleting anything. The file names the holder (pid, host, command, since
when) for the one-line error a second writer gets before doing any work. Readers (``compile``, ``records list``,
transfer's sources) never lock and are never blocked: they read whole lines only (``screen.py``).

A process holds each folder once, however often it opens it (``tune`` then its droplet phase, ``transfer
--tune-rest``): ``flock`` belongs to an open file, so a second open in the same process would refuse itself.
A command decorated ``@writes_records`` releases what it took when it returns.

Where Python has no ``fcntl`` (Windows) folders are not locked: keep one writer per folder by hand there.
``flock`` on a network filesystem locks across hosts on NFSv4 but not on every filesystem; a filesystem that
refuses locks gets a warning and no lock.

>>> with locked("records"):                                                        # doctest: +SKIP
...     ...  # another process opening "records" for writing gets "Error: records folder ... is being written by pid ..."
"""

import contextlib
import functools
import json
import logging
import os
import socket
import sys
import threading
import time

import attrs

from ..errors import TVMCException

try:
    import fcntl
except ImportError:  # Windows: not locked (see above)
    fcntl = None

LOCK_FILE = ".tvmc-lock"

log = logging.getLogger("tvmc")


@attrs.frozen
class Holder:
    """Who holds a folder's lock, as its lock file says."""

    pid: int
    host: str
    command: str
    since: str

    @classmethod
    def of_this_process(cls) -> "Holder":
        return cls(os.getpid(), socket.gethostname(), _command(), time.strftime("%Y-%m-%d %H:%M:%S"))


def _command(limit: int = 120) -> str:
    """This process's command line as a user typed it: ``tvmc tune net.onnx -o records ...``."""
    argv = list(sys.argv) or ["python"]
    program = os.path.basename(argv[0]) or "python"
    if program in ("tvmc", "__main__.py"):  # the console script, or python -m tvmc_transfer
        program = "tvmc"
    text = " ".join([program] + argv[1:])
    return text if len(text) <= limit else text[: limit - 3] + "..."


class FolderLock:
    """This process's hold on one folder's lock; ``release`` gives it up (once, however often it is called)."""

    def __init__(self, key: str):
        self.key = key
        self.released = False

    def release(self) -> None:
        with _GUARD:
            if self.released:
                return
            self.released = True
            entry = _HELD[self.key]
            entry[1] -= 1
            if entry[1] == 0:
                del _HELD[self.key]
                if entry[2] == os.getpid():  # a forked child's copy is its parent's lock: left alone
                    _give_up(entry[0])


_HELD: dict = {}  # real path of a folder -> [lock file descriptor or None, FolderLocks not yet released, pid]
_SCOPES: list = []  # per running @writes_records call, the FolderLocks taken in it
_GUARD = threading.RLock()


def lock_folder(folder: str) -> FolderLock:
    """Hold the lock of the existing records ``folder`` for this process; ``TVMCException`` naming the other
    writer when another process holds it."""
    key = os.path.realpath(folder)
    with _GUARD:
        if key in _HELD:
            _HELD[key][1] += 1
        else:
            _HELD[key] = [_acquire(folder), 1, os.getpid()]
        lock = FolderLock(key)
        if _SCOPES:
            _SCOPES[-1].append(lock)
    return lock


def claim(folder: str) -> FolderLock | None:
    """Lock ``folder`` now if it exists, so that a second writer fails before any work (``RecordsFolder`` locks a
    folder it creates itself). Call it inside a ``@writes_records`` command, which releases it."""
    return lock_folder(folder) if os.path.isdir(folder) else None


@contextlib.contextmanager
def locked(folder: str, missing_ok: bool = False):
    """Hold ``folder``'s lock inside the block (with ``missing_ok``, nothing when the folder does not exist)."""
    lock = None if missing_ok and not os.path.isdir(folder) else lock_folder(folder)
    try:
        yield lock
    finally:
        if lock is not None:
            lock.release()


def writes_records(command):
    """Decorate a command that writes records folders: the locks taken while it runs are released when it
    returns or raises (a lock taken before it, by its caller, stays)."""

    @functools.wraps(command)
    def run(*args, **kwargs):
        with _GUARD:
            _SCOPES.append([])
        try:
            return command(*args, **kwargs)
        finally:
            with _GUARD:
                taken = _SCOPES.pop()
            for lock in taken:
                lock.release()

    return run


def _acquire(folder: str):
    """The lock file's descriptor, locked and naming this process; None where nothing can be locked."""
    if fcntl is None:
        log.debug("records folder '%s' is not locked: this platform has no fcntl", folder)
        return None
    path = os.path.join(folder, LOCK_FILE)
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as err:
        raise TVMCException(f"cannot write records folder '{folder}': {err.strerror}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise TVMCException(_refusal(folder)) from None
    except OSError as err:  # a filesystem without locks (some network filesystems)
        log.warning("cannot lock records folder '%s' (%s): make sure no other command writes it meanwhile", folder, err.strerror)
        return fd
    os.ftruncate(fd, 0)  # a dead holder's name goes
    os.write(fd, json.dumps(attrs.asdict(Holder.of_this_process())).encode() + b"\n")
    return fd


def _give_up(fd) -> None:
    if fd is not None:
        os.ftruncate(fd, 0)  # nobody holds it now
        os.close(fd)  # releases the flock


def holder_of(folder: str, wait: float = 1.0) -> Holder | None:
    """Who the lock file of ``folder`` names (None when it names nobody); ``wait`` covers a holder that has the
    lock and is still writing its name."""
    deadline = time.monotonic() + wait
    while True:
        try:
            with open(os.path.join(folder, LOCK_FILE), encoding="utf-8") as f:
                return Holder(**json.load(f))
        except (OSError, ValueError, TypeError):
            if time.monotonic() >= deadline:
                return None
            time.sleep(0.05)


def _refusal(folder: str) -> str:
    holder = holder_of(folder)
    who = f"pid {holder.pid} on {holder.host} ({holder.command}, since {holder.since})" if holder else "another process"
    return f"records folder '{folder}' is being written by {who}; wait for it or give another -o"
