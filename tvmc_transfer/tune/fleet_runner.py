"""A runner that measures on every server behind an RPC tracker at once, and outlives the ones that die.

MetaSchedule's ``RPCRunner`` measures one candidate per worker through the tracker; this runner keeps its
measuring code (``rpc_runner._worker_func``) and adds what a fleet of devices needs:

- one worker per server registered with the key (``MeasureOptions.fleet_size``), so every server measures at once;
- a bound on each candidate (``seconds``): ``RPCRunner``'s pool has none, so one server that stops answering
  (a hung board, a stopped process) hung the whole run; here its candidate fails with the reason after that long
  and the tracker hands it no more work;
- a candidate whose server was lost mid-measurement (killed, rebooted, unplugged) is measured once more, on
  another server, rather than recorded as failed: a failed record is never measured again when a run resumes;
- when the tracker, or every server with the key, is gone, the run ends with one ``Error:`` line (``FleetLost``)
  and keeps the records committed so far, where it would otherwise record every later candidate as failed.
"""

import logging
import re

import tvm_ffi
from tvm.ir.utils import derived_object
from tvm.s_tir.meta_schedule.runner import PyRunner, PyRunnerFuture, RunnerResult
from tvm.s_tir.meta_schedule.runner.rpc_runner import RPCRunnerFuture, _worker_func
from tvm.support.popen_pool import PopenPoolExecutor

from ..errors import TVMCException, one_line
from ..run.remote import fleet_servers, fleet_session

log = logging.getLogger("tvmc")

# How a session that broke reads, as opposed to a candidate that failed on a working server: TVM's RPC endpoint
# ("Check failed: (code == RPCCode::kReturn) is false: code=kShutdown" when the server died mid-call), a socket
# error, or no session to be had from the tracker (``fleet_session``, ``TrackerSession.request``).
_LOST = re.compile(r"RPCCode|kShutdown|[Cc]onnection (reset|refused|closed|aborted)|Broken pipe|[Ss]ocket|Cannot request|tracker")


@tvm_ffi.register_error
class FleetLost(TVMCException):
    """The tracker, or every server with the key, is gone. Registered with tvm_ffi, so that raised from a runner
    future it crosses MetaSchedule's C++ task scheduler as itself and the command prints it as an ``Error:``."""


@derived_object
class FleetRunner(PyRunner):
    """Measures through the tracker of ``rpc_config`` (an ``RPCConfig``) with ``servers`` workers, each candidate
    given up after ``seconds``."""

    def __init__(self, rpc_config, evaluator_config, servers: int, seconds: float):
        super().__init__()
        self.rpc_config, self.evaluator_config, self.seconds = rpc_config, evaluator_config, seconds
        self.servers = max(servers, 1)
        self.pool = PopenPoolExecutor(max_workers=self.servers, timeout=seconds)
        self.submitted = []  # concurrent futures, cancelled when the fleet is gone (else run at exit, each failing)
        self.timeouts = 0  # candidates in a row that got no result in ``seconds``
        log.info("measuring on %d server(s) with key '%s' at once", servers, rpc_config.tracker_key)

    def run(self, runner_inputs):
        return [FleetFuture(self, runner_input) for runner_input in runner_inputs]

    def submit(self, runner_input):
        """Start measuring ``runner_input`` on the next free server: a future of its ``RunnerResult``."""
        args = (fleet_session, None, None, None, None, self.rpc_config, self.evaluator_config, 1)  # TVM's defaults for the rest
        args += (str(runner_input.artifact_path), str(runner_input.device_type), tuple(a.as_json() for a in runner_input.args_info))
        future = self.pool.submit(_worker_func, *args)
        self.submitted = [f for f in self.submitted if not f.done()] + [future]
        return RPCRunnerFuture(future=future, timeout_sec=self.seconds)

    def check_fleet(self) -> None:
        """Raise ``FleetLost`` (and stop measuring) when the tracker or every server with the key is gone."""
        config = self.rpc_config
        try:
            fleet_servers(f"{config.tracker_host}:{config.tracker_port}", config.tracker_key)
        except TVMCException as err:
            self.stop(f"lost the fleet while measuring: {err}")

    def count_timeout(self, timed_out: bool) -> None:
        """Count candidates in a row that got no result in ``seconds``. One hung server costs one (the tracker
        gives it no more work), so twice as many as there are servers means none answers: end the run rather
        than fail every later candidate that slowly (a hung server stays registered with the tracker)."""
        self.timeouts = self.timeouts + 1 if timed_out else 0
        if self.timeouts >= 2 * self.servers:
            self.stop(f"{self.timeouts} candidates in a row got no result from the '{self.rpc_config.tracker_key}' servers in {self.seconds:g} s: "
                      "they stopped answering (restart them), or the candidates run longer than --timeout (raise it)")

    def stop(self, why: str) -> None:
        """Cancel the candidates not yet measured, end the workers, and raise ``FleetLost`` saying ``why``."""
        for future in self.submitted:
            future.cancel()
        self.pool.shutdown(wait=False)
        raise FleetLost(f"{why}; the records committed so far are kept: run the same command again to go on")


@derived_object
class FleetFuture(PyRunnerFuture):
    """One candidate's measurement; a lost server's is measured again on another when its result is asked for."""

    def __init__(self, runner, runner_input):
        super().__init__()
        self.runner, self.runner_input = runner, runner_input
        self.future = runner.submit(runner_input)

    def done(self) -> bool:
        return self.future.done()

    def result(self) -> RunnerResult:
        result = self.future.result()
        self.runner.count_timeout(result.error_msg is not None and "Timeout" in str(result.error_msg))
        if result.error_msg is None:
            return result
        self.runner.check_fleet()  # a failure may mean the fleet is gone: then end the run, not fail every candidate
        error = str(result.error_msg)
        if _LOST.search(error):
            log.warning("a server was lost while measuring a candidate (%s): measuring it again on another", reason_of(error))
            again = self.runner.submit(self.runner_input).result()
            if again.error_msg is not None:
                return RunnerResult(None, error_msg=f"lost its server twice; last: {reason_of(str(again.error_msg))}\n{again.error_msg}")
            return again
        if "Timeout" in error:  # measuring it again could cost as long once more
            log.warning("a candidate got no result in %d s (a server that stopped answering, or a run longer than --timeout): it failed", self.runner.seconds)
        return result


def reason_of(error: str) -> str:
    """The line of a runner's error that says what happened (TVM's is the last ``Check failed`` or error line)."""
    return one_line(RuntimeError(error), limit=200)
