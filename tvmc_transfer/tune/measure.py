"""How candidates are built and measured: one protocol for every phase, so their times compare.

The same ``MeasureOptions`` drive evolutionary search, droplet search and transfer-tuning: number, repeat,
minimum repeat time, cache flush, timeout, and a local or RPC runner.
"""

import logging

import attrs

from ..build.cross import CrossCompiler
from ..errors import TVMCException
from ..run.remote import fleet_servers, parse_tracker
from ..target import device_type
from ..threads import usable_cpus

log = logging.getLogger("tvmc")

RPC_SETUP_SECONDS = 30  # beyond --timeout, for a candidate measured behind a tracker: queue, connect, upload, load


def default_workers() -> int:
    return len(usable_cpus())


@attrs.frozen
class MeasureOptions:
    """Measurement protocol. ``repeat`` gives the samples a droplet t-test compares; ``number`` runs are averaged
    into each sample, and at least ``min_repeat_ms`` is spent per sample. With ``passes`` above 1 a batch is
    measured that many times, every other pass in reverse order, and each candidate keeps the samples of its
    fastest pass (``tune/passes_runner.py``: a guard against the host slowing down for seconds)."""

    number: int = 3
    repeat: int = 3
    passes: int = 1  # measurements of a batch, in alternating order; a candidate keeps its fastest
    min_repeat_ms: int = 20
    cache_flush: bool = False
    timeout: float = 10.0
    parallel: int = attrs.field(factory=default_workers)  # build workers
    rpc_tracker: str | None = None  # host:port
    rpc_key: str | None = None
    cross_compiler: CrossCompiler | None = None  # links candidates for the device behind the tracker

    def __attrs_post_init__(self):
        for name in ("number", "repeat", "passes", "parallel"):
            if getattr(self, name) < 1:
                raise TVMCException(f"--{name} must be at least 1, got {getattr(self, name)}")
        if self.min_repeat_ms < 0 or self.timeout <= 0:
            raise TVMCException("--min-repeat-ms must be >= 0 and --timeout > 0")
        if bool(self.rpc_tracker) != bool(self.rpc_key):
            raise TVMCException("--rpc-tracker and --rpc-key go together: give both, or neither for local runs")
        if self.cross_compiler is not None and not self.rpc_tracker:
            raise TVMCException("--cross-compiler builds candidates for another machine: measure them there with --rpc-tracker and --rpc-key")

    def evaluator_config(self):
        from tvm.s_tir import meta_schedule as ms  # pylint: disable=import-outside-toplevel

        return ms.runner.EvaluatorConfig(
            number=self.number,
            repeat=self.repeat,
            min_repeat_ms=self.min_repeat_ms,
            enable_cpu_cache_flush=self.cache_flush,
        )

    @property
    def rpc_seconds(self) -> int:
        """Most seconds one candidate may take on a device behind the tracker: ``timeout`` to run, and
        ``RPC_SETUP_SECONDS`` to wait for a free server, connect, upload and load it."""
        return int(self.timeout) + RPC_SETUP_SECONDS

    def rpc_config(self):
        """MetaSchedule's ``RPCConfig`` for ``rpc_tracker`` and ``rpc_key``. Its session timeout, enforced by the
        server, is 10 s beyond ``rpc_seconds``: the runner gives up first, and the server then ends a session whose
        client is gone."""
        from tvm.s_tir import meta_schedule as ms  # pylint: disable=import-outside-toplevel


        host, port = parse_tracker(self.rpc_tracker)
        return ms.runner.RPCConfig(tracker_host=host, tracker_port=port, tracker_key=self.rpc_key, session_timeout_sec=self.rpc_seconds + 10)

    def fleet_size(self) -> int:
        """How many servers are registered under ``rpc_key`` with ``rpc_tracker`` (0 for local runs). An
        ``Error:`` within seconds when no tracker answers, or no server with the key registers
        (``remote.fleet_servers``): what ``tune``, ``transfer`` and ``--droplet`` check before any work."""

        return fleet_servers(self.rpc_tracker, self.rpc_key) if self.rpc_tracker else 0

    def make_runner(self):
        """A local runner (one persistent worker), or through a tracker a ``FleetRunner`` measuring on every
        server registered with the key at once; either measuring each batch ``passes`` times."""
        from tvm.s_tir import meta_schedule as ms  # pylint: disable=import-outside-toplevel

        if not self.rpc_tracker:
            runner = ms.runner.LocalRunner(timeout_sec=self.timeout, evaluator_config=self.evaluator_config())
        else:
            from .fleet_runner import FleetRunner  # pylint: disable=import-outside-toplevel

            runner = FleetRunner(self.rpc_config(), self.evaluator_config(), self.fleet_size(), self.rpc_seconds)
        if self.passes == 1:
            return runner
        from .passes_runner import PassesRunner  # pylint: disable=import-outside-toplevel

        return PassesRunner(runner, self.passes)

    def make_builder(self, target):
        from .builder import PersistentBuilder  # pylint: disable=import-outside-toplevel

        return PersistentBuilder(target, max_workers=self.parallel, timeout_sec=max(self.timeout, 60.0), cross=self.cross_compiler)


def measure_modules(builder, runner, target, mods: list, retries: int = 1, accept=None) -> list:
    """Build and run ``mods`` with MetaSchedule's builder and runner: per module ``(run_secs, args_info)``,
    ``run_secs`` None when the build or run failed. Failures are tried again ``retries`` times: on a loaded
    machine a worker can time out on a module that is fine. ``accept(index, artifact_path)``, when given, is
    asked after each build whether to run the module: one it refuses is not run, nor tried again."""
    from tvm.s_tir import meta_schedule as ms  # pylint: disable=import-outside-toplevel

    from ..records.database import run_samples

    args = [ms.arg_info.ArgInfo.from_entry_func(mod, remove_preproc=True) for mod in mods]
    results = [(None, a) for a in args]
    todo = list(range(len(mods)))
    for _ in range(retries + 1):
        if not todo:
            break
        built = builder.build([ms.builder.BuilderInput(mods[i], target) for i in todo])
        for i, b in zip(todo, built):
            if b.error_msg is not None:
                log.debug("module %d failed to build: %s", i, str(b.error_msg)[-1500:])
        runnable = [(i, b) for i, b in zip(todo, built) if b.error_msg is None]
        if accept is not None:
            refused = {i for i, b in runnable if not accept(i, b.artifact_path)}
            runnable = [(i, b) for i, b in runnable if i not in refused]
            todo = [i for i in todo if i not in refused]
        futures = runner.run([ms.runner.RunnerInput(b.artifact_path, device_type(target.kind.name), args[i]) for i, b in runnable])
        for (i, _), future in zip(runnable, futures):
            result = future.result()
            secs = run_samples(result.run_secs) if result.error_msg is None else None
            if secs:
                results[i] = (list(secs), args[i])
            else:
                log.debug("module %d failed to run: %s", i, str(result.error_msg)[-1500:])
        todo = [i for i in todo if results[i][0] is None]
    return results
