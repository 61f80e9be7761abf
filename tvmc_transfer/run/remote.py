"""Where a package runs: this machine or a device behind an RPC tracker (``--rpc-tracker``, ``--rpc-key``),
and on which device (``--device``); and the check that a tracker and servers are there (``fleet_servers``)
before ``tvmc run``, ``tune`` or ``transfer`` relies on them."""

import os
import socket
import struct
import time

import attrs

from ..errors import TVMCException
from ..target import device_type, missing_cpu_features

DEFAULT_TRACKER_PORT = 9090  # tvmc 0.19's default when --rpc-tracker names only a host
TRACKER_WAIT = 10.0  # seconds a refused connection to the tracker is retried (a tracker restarting); TVM alone retries forever
REGISTER_WAIT = 5.0  # seconds to wait for a server to register with the tracker (one just started takes a few)
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
    wait: float = TRACKER_WAIT

    def __attrs_post_init__(self):
        parse_tracker(self.tracker)
        if not self.key:
            raise TVMCException("--rpc-tracker needs --rpc-key: the key the device registered with the tracker")

    def connect(self):
        """An RPC session on a free device with this key."""
        from tvm import rpc  # pylint: disable=import-outside-toplevel

        host, port = parse_tracker(self.tracker)
        fleet_servers(self.tracker, self.key, self.wait)  # TVM's request would wait forever for a key no server has
        try:
            tracker = rpc.connect_tracker(host, port)
            return tracker.request(self.key, priority=1, session_timeout=self.timeout)
        except Exception as err:  # TVM raises RuntimeError/TVMError with multi-line text
            last = [line for line in str(err).splitlines() if line.strip()]
            raise TVMCException(
                f"cannot get a '{self.key}' device from the tracker at {host}:{port}: {(last[-1] if last else type(err).__name__)[:200]}"
            ) from None


def fleet_servers(tracker: str, key: str, wait: float = TRACKER_WAIT, register_wait: float = REGISTER_WAIT) -> int:
    """How many RPC servers are registered under ``key`` with the tracker at ``tracker`` (``HOST[:PORT]``), busy
    ones included. An ``Error:`` saying what to start when no tracker answers within ``wait`` seconds, or when no
    server with ``key`` has registered after ``register_wait`` seconds (it names the keys the tracker has).

    >>> fleet_servers("127.0.0.1:9190", "my-board")   # doctest: +SKIP
    2
    """
    host, port = parse_tracker(tracker)
    deadline = time.monotonic() + register_wait
    while True:
        keys = server_keys(tracker_summary(host, port, wait))
        if key in keys or time.monotonic() >= deadline:
            break
        time.sleep(0.5)
    if key not in keys:
        has = f"its servers' keys: {', '.join(sorted(set(keys)))}" if keys else "no server has registered with it"
        raise TVMCException(
            f"no RPC server is registered under the key '{key}' with the tracker at {host}:{port} ({has}): start one on "
            f"each device with `python -m tvm.exec.rpc_server --tracker {host}:{port} --key {key}`, or correct --rpc-key"
        )
    return keys.count(key)


def server_keys(summary: dict) -> list:
    """The key of each server in a tracker's summary (``"server:KEY"`` entries), one per server."""
    return [item["key"].partition(":")[2] for item in summary.get("server_info", ()) if item.get("key", "").startswith("server:")]


def tracker_summary(host: str, port: int, wait: float = TRACKER_WAIT) -> dict:
    """The tracker's summary (its servers and queues), as ``TrackerSession.summary`` gives it, but every step
    bounded by ``wait`` seconds: TVM's session retries a refused connection for 60 s and would wait forever on
    something that listens there and never answers."""
    from tvm.rpc import base  # pylint: disable=import-outside-toplevel

    start = f"start one there with `python -m tvm.exec.rpc_tracker --host 0.0.0.0 --port {port}`, or correct --rpc-tracker"
    listens = False
    try:
        _wait_for_listener(host, port, wait)
        with socket.create_connection((host, port), timeout=wait) as sock:
            listens = True
            sock.sendall(struct.pack("<i", base.RPC_TRACKER_MAGIC))
            if struct.unpack("<i", base.recvall(sock, 4))[0] != base.RPC_TRACKER_MAGIC:
                raise ValueError("not a tracker's answer")
            base.sendjson(sock, [base.TrackerCode.SUMMARY])
            code, summary = base.recvjson(sock)
    except (OSError, struct.error, ValueError) as err:  # refused, timed out, unknown host, closed, not a tracker
        reason = (str(err).splitlines() or [type(err).__name__])[0] + ("; something else listens there" if listens else "")
        raise TVMCException(f"no RPC tracker answers at {host}:{port} ({reason}): {start}") from None
    if code != base.TrackerCode.SUCCESS:
        raise TVMCException(f"the RPC tracker at {host}:{port} refused to list its servers: {start}")
    return summary


def fleet_session(config):
    """A session on a free server with ``config``'s key (an ``RPCConfig``): how the fleet runner's worker
    processes get one (``tune/fleet_runner.py``). A tracker that refuses connections is given up after
    ``TRACKER_WAIT`` seconds, where TVM would retry for 60 s, a warning every 5."""
    _wait_for_listener(config.tracker_host, config.tracker_port, TRACKER_WAIT)
    return config.connect_server()


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
                raise ConnectionRefusedError(f"connection refused for {wait:g} s") from None
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
