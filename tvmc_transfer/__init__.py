"""tvmc-transfer: the tvmc compiler driver for Apache TVM's Relax era.

The Python API mirrors the commands: ``load_model`` -> ``tune_model`` (or ``transfer_tune``) -> ``compile_model``
-> ``run_module``.

>>> from tvmc_transfer import load_model, parse_target, tune_model, compile_model, run_module, TuneOptions
>>> model = load_model("tiny-cnn.onnx")                                  # doctest: +SKIP
>>> target = parse_target("llvm -num-cores=2")                           # doctest: +SKIP
>>> tune_model(model, target, "records", TuneOptions(trials=64))        # doctest: +SKIP
>>> compile_model(model, target, "tiny.tar", records="records")         # doctest: +SKIP
>>> run_module("tiny.tar", repeat=10).time_summary()                     # doctest: +SKIP

Names are imported lazily, so ``import tvmc_transfer`` (and ``tvmc --help``) does not import TVM.
"""

import importlib

from .threads import size_thread_pool

size_thread_pool()  # before any TVM kernel runs in this process: TVM alone would use half the cores (threads.py)

__version__ = "0.1.0"

_API = {
    "TVMCException": "errors",
    "load_model": "frontends.load",
    "TVMCModel": "frontends.load",
    "parse_target": "target",
    "extract_tasks": "build.tasks",
    "Lowering": "build.lowering",
    "MeasureOptions": "tune.measure",
    "TuneOptions": "tune.model",
    "tune_model": "tune.model",
    "Plan": "session",
    "Session": "session",
    "PhaseReport": "session",
    "compile_model": "compiler",
    "DefaultOptions": "defaults.schedules",
    "add_default_schedules": "defaults.schedules",
    "run_module": "run.module",
    "RunPlace": "run.module",
    "Remote": "run.remote",
    "PipelineOptions": "build.pipeline",
    "CrossCompiler": "build.cross",
    "verify_with_onnxruntime": "run.module",
    "read_package": "build.package",
    "open_database": "records",
    "refine_with_droplet": "droplet.phase",
    "DropletOptions": "droplet.phase",
    "DropletReport": "droplet.report",
    "droplet_phase": "droplet.phase",
    "transfer_tune": "transfer",
    "TransferOptions": "transfer",
    "TransferReport": "transfer",
    "zoo": "frontends.zoo",
}

__all__ = sorted(_API) + ["__version__"]


def __getattr__(name):
    if name in _API:
        module = importlib.import_module(f".{_API[name]}", __name__)
        return module if module.__name__.endswith(f".{name}") else getattr(module, name)
    raise AttributeError(f"module 'tvmc_transfer' has no attribute '{name}'")
