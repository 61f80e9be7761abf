"""Load only the tensor intrinsics a target can use.

``import tvm.s_tir.tensor_intrin`` registers the intrinsics of every backend and takes 20-25 s (CUDA alone
about 16 s); MetaSchedule's ``TuneContext`` and default builder run it in every process. For a CPU target
only one architecture's intrinsics can ever be tensorized, so we register the package without running its
``__init__`` and import that one submodule. The other submodules stay importable on demand, and a GPU target
still gets everything.
"""

import importlib
import importlib.machinery
import os
import sys
import types

from .pool_rules import register_pool_rules

_PACKAGE = "tvm.s_tir.tensor_intrin"
_ALL = ("cuda", "arm_cpu", "x86", "rocm", "hexagon", "riscv_cpu")


def intrinsic_modules(target) -> tuple[str, ...]:
    """The submodules of ``tvm.s_tir.tensor_intrin`` whose intrinsics ``target`` may tensorize with."""
    if target.kind.name != "llvm":
        return _ALL
    triple = str(target.attrs.get("mtriple", "")) or _host_triple()
    if triple.startswith(("aarch64", "arm")):
        return ("arm_cpu",)
    if triple.startswith("riscv"):
        return ("riscv_cpu",)
    if "hexagon" in triple:
        return ("hexagon",)
    return ("x86",)


def _host_triple() -> str:
    import tvm  # pylint: disable=import-outside-toplevel

    return str(tvm.target.codegen.llvm_get_system_triple())


def _register_lean_package() -> None:
    import tvm.s_tir  # pylint: disable=import-outside-toplevel

    path = os.path.join(os.path.dirname(tvm.s_tir.__file__), "tensor_intrin")
    spec = importlib.machinery.ModuleSpec(_PACKAGE, None, is_package=True)
    spec.submodule_search_locations = [path]
    package = types.ModuleType(_PACKAGE)
    package.__spec__, package.__path__, package.__package__ = spec, [path], _PACKAGE
    sys.modules[_PACKAGE] = package
    tvm.s_tir.tensor_intrin = package


def load_tensor_intrinsics(target) -> None:
    """Make the intrinsics ``target`` needs available, importing as little as possible.

    Call it before creating MetaSchedule tune contexts; afterwards their own ``import
    tvm.s_tir.tensor_intrin`` finds the package already in ``sys.modules`` and costs nothing.
    """

    register_pool_rules()  # also what tune contexts look up: the pooling kernels' schedule rules
    if _PACKAGE not in sys.modules:
        _register_lean_package()
    for name in intrinsic_modules(target):
        importlib.import_module(f"{_PACKAGE}.{name}")
