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
    "load_model": "frontends",
    "TVMCModel": "frontends",
    "parse_target": "target",
    "extract_tasks": "tasks",
    "Lowering": "lowering",
    "MeasureOptions": "measure",
    "TuneOptions": "tune",
    "TunePlan": "tune",
    "tune_model": "tune",
    "compile_model": "compiler",
    "DefaultOptions": "default_schedules",
    "add_default_schedules": "default_schedules",
    "run_module": "runner",
    "RunPlace": "runner",
    "Remote": "remote",
    "PipelineOptions": "pipeline_options",
    "CrossCompiler": "cross",
    "verify_with_onnxruntime": "runner",
    "read_package": "package",
    "open_database": "records",
    "refine_with_droplet": "droplet",
    "DropletOptions": "droplet",
    "DropletReport": "droplet_report",
    "droplet_phase": "droplet",
    "transfer_tune": "transfer",
    "TransferOptions": "transfer",
    "TransferPlan": "transfer",
    "TransferReport": "transfer",
    "zoo": None,
}

__all__ = sorted(_API) + ["__version__"]


def __getattr__(name):
    if name in _API:
        module = importlib.import_module(f".{_API[name] or name}", __name__)
        return module if _API[name] is None else getattr(module, name)
    raise AttributeError(f"module 'tvmc_transfer' has no attribute '{name}'")
