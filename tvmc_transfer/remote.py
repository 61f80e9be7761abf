"""Where a package runs: this machine or a device behind an RPC tracker (``--rpc-tracker``, ``--rpc-key``),
and on which device (``--device``)."""

import os
import socket
import time

import attrs

from .errors import TVMCException
from .target import device_type, missing_cpu_features

DEFAULT_TRACKER_PORT = 9090  # tvmc 0.19's default when --rpc-tracker names only a host
DEVICES = ("cpu", "cuda", "cl", "metal", "vulkan", "rocm")


def parse_tracker(text: str) -> tuple:
    """``"host:port"`` or ``"host"`` (port 9090, as tvmc 0.19) into ``(host, port)``."""
    host, colon, port = text.strip().rpartition(":")
    if not colon:
        host, port = text.strip(), str(DEFAULT_TRACKER_PORT)
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise TVMCException(f"--rpc-tracker '{text}' must be HOST or HOST:PORT (port 1-65535)")
    return host, int(port)


@attrs.frozen
class Remote:
    """A device behind an RPC tracker: ``tvmc run --rpc-tracker HOST[:PORT] --rpc-key KEY``."""

    tracker: str
    key: str
    timeout: int = 120  # seconds the tracker session may live
    wait: float = 10.0  # seconds a refused connection is retried (a tracker restarting); TVM alone waits 60

    def __attrs_post_init__(self):
        parse_tracker(self.tracker)
        if not self.key:
            raise TVMCException("--rpc-tracker needs --rpc-key: the key the device registered with the tracker")

    def connect(self):
        """An RPC session on a free device with this key."""
        from tvm import rpc  # pylint: disable=import-outside-toplevel

        host, port = parse_tracker(self.tracker)
        try:
            _wait_for_listener(host, port, self.wait)
            tracker = rpc.connect_tracker(host, port)
            return tracker.request(self.key, priority=1, session_timeout=self.timeout)
        except Exception as err:  # TVM raises RuntimeError/TVMError with multi-line text
            last = [line for line in str(err).splitlines() if line.strip()]
            raise TVMCException(
                f"cannot get a '{self.key}' device from the tracker at {host}:{port}: {(last[-1] if last else type(err).__name__)[:200]}"
            ) from None


def _wait_for_listener(host: str, port: int, wait: float) -> None:
    """Return once something listens at ``host:port``; retry a refused connection for ``wait`` seconds.
    Other socket errors (an unknown host, an unreachable network) raise at once."""
    deadline = time.monotonic() + wait
    while True:
        try:
            socket.create_connection((host, port), timeout=max(1.0, wait)).close()
            return
        except ConnectionRefusedError:
            if time.monotonic() >= deadline:
                raise ConnectionRefusedError(f"connection refused for {wait:g} s: is the tracker running?") from None
            time.sleep(1.0)


def open_device(package, device: str | None = None, remote: Remote | None = None) -> tuple:
    """Load ``package``'s library on the chosen device: ``(module, device)``.

    The device kind is ``device`` when given, else the package target's (``llvm`` and ``c`` run on ``cpu``)."""
    import tvm  # pylint: disable=import-outside-toplevel

    kind = package.metadata.target.get("kind", "llvm")
    name = device or device_type(kind)
    if name not in DEVICES and name != kind:
        raise TVMCException(f"--device '{name}' is not one of {', '.join(DEVICES)}")
    if remote is None:
        dev = tvm.device(name, 0)
        if not dev.exist:
            raise TVMCException(f"this machine has no '{name}' device (the package was compiled for '{kind}')")
        missing = missing_cpu_features(package.metadata.target) if name == "cpu" else []
        if missing:
            cpu = package.metadata.target.get("mcpu") or "its -mattr"
            raise TVMCException(
                f"'{package.path}' was compiled for {cpu}, whose instructions this CPU lacks ({', '.join(missing[:6])}"
                f"{', ...' if len(missing) > 6 else ''}): compile it again on this machine, or with --target llvm for any x86-64"
            )
        return package.load(), dev
    session = remote.connect()
    dev = session.device(name, 0)
    if not dev.exist:
        raise TVMCException(f"the '{remote.key}' device at {remote.tracker} has no '{name}' device")
    session.upload(package.library_path)
    return session.load_module(os.path.basename(package.library_path)), dev
