"""A MetaSchedule builder that is fast on a small machine.

MetaSchedule's ``LocalBuilder`` starts a new process pool for every batch, and its build function imports
``tvm.s_tir.tensor_intrin`` (20-25 s) in every fresh worker, so on 2 cores most builds of a first batch hit its
30 s timeout. ``PersistentBuilder`` keeps its workers alive for the whole tuning session, loads only the
target's own tensor intrinsics once per worker, and links each candidate into a shared library in the worker,
so the runner only has to ``load_module`` it.
"""

import os
import shutil
import tempfile

from tvm.ir.utils import derived_object
from tvm.s_tir.meta_schedule.builder import BuilderInput, BuilderResult, PyBuilder
from tvm.support.popen_pool import PopenPoolExecutor, StatusKind

from ..build.intrinsics import load_tensor_intrinsics
from ..target import target_json


def _worker_init(target_config: dict) -> None:
    # Runs once per worker, not once per batch: the imports are paid here.
    import tvm  # pylint: disable=import-outside-toplevel


    load_tensor_intrinsics(tvm.target.Target(target_config))


def _build_one(mod, target, artifact_dir: str, cross=None) -> str:
    import tvm  # pylint: disable=import-outside-toplevel
    from tvm.s_tir.transform import RemoveWeightLayoutRewriteBlock

    mod = RemoveWeightLayoutRewriteBlock(skip_tensor_rewrite=True)(mod)
    rt_mod = tvm.compile(mod, target=target)
    path = tempfile.mkdtemp(dir=artifact_dir)
    # A shared library, not MetaSchedule's default tar: linking happens here, in parallel workers,
    # instead of serially in the one runner worker.
    artifact = os.path.join(path, "candidate.so")
    rt_mod.export_library(artifact, fcompile=cross.fcompile() if cross else None)  # cross: a CrossCompiler
    return artifact


@derived_object
class PersistentBuilder(PyBuilder):
    """Builds candidates in a pool of worker processes that lives across batches.

    Example
    -------
    >>> builder = PersistentBuilder(target, max_workers=2)          # doctest: +SKIP
    >>> ms.tune_tasks(..., builder=builder)                          # doctest: +SKIP
    >>> builder.shutdown()                                           # doctest: +SKIP
    """

    def __init__(self, target, max_workers: int = 2, timeout_sec: float = 60.0, cross=None):
        super().__init__()
        self.target_config = target_json(target)
        self.max_workers = max_workers
        self.timeout_sec = timeout_sec
        self.cross = cross
        self._pool = None
        self._artifact_dir = tempfile.mkdtemp(prefix="tvmc-build-")

    def _get_pool(self) -> PopenPoolExecutor:
        if self._pool is None:
            self._pool = PopenPoolExecutor(
                max_workers=self.max_workers,
                timeout=self.timeout_sec,
                initializer=_worker_init,
                initargs=(self.target_config,),
            )
        return self._pool

    def build(self, build_inputs: list[BuilderInput]) -> list[BuilderResult]:
        pool = self._get_pool()
        results = []
        jobs = [(inp.mod, inp.target, self._artifact_dir, self.cross) for inp in build_inputs]
        for res in pool.map_with_error_catching(lambda job: _build_one(*job), jobs):
            if res.status == StatusKind.COMPLETE:
                results.append(BuilderResult(res.value, None))
            elif res.status == StatusKind.TIMEOUT:
                results.append(BuilderResult(None, f"PersistentBuilder: timeout after {self.timeout_sec} s"))
            else:
                results.append(BuilderResult(None, f"PersistentBuilder: build failed\n{res.value}"))
        return results

    def shutdown(self) -> None:
        if self._pool is not None:
            pool, self._pool = self._pool, None
            try:
                pool.shutdown()
            except AttributeError:  # TVM's PopenWorker.kill races with its own worker thread on Ctrl-C
                if pool._lock.locked():  # pylint: disable=protected-access
                    pool._lock.release()  # pylint: disable=protected-access
                for worker in list(pool._worker_map.values()):  # pylint: disable=protected-access
                    try:
                        worker.kill()
                    except (AttributeError, ImportError):
                        pass
                pool._threadpool.shutdown(wait=False, cancel_futures=True)  # pylint: disable=protected-access
        shutil.rmtree(self._artifact_dir, ignore_errors=True)
