"""tvmc 0.19's compile-pipeline options on Relax, and the one build pipeline that honours them.

``-O``, ``--pass-config``, ``--disabled-pass``, ``--print-ir-before/after`` and ``--print-pass-times`` become one
``PassContext`` that the whole build runs under (``compile_relax`` would open its own at ``-O3`` and hide the
caller's); ``--mixed-precision`` is Relax's ``ToMixedPrecision``, applied to the model before its kernels are
extracted, so tuning records and the build see the same kernels (``--desired-layout`` is part of the lowering,
``lowering.py``, since tune and transfer must agree with compile on it); ``--dump-code`` writes the Relax module, the scheduled TIR, LLVM IR and assembly beside the package.
"""

import difflib
import json
import logging

import attrs

from ..errors import TVMCException
from .lowering import Lowering, after_database_passes, fusion_passes, lower_passes

log = logging.getLogger("tvmc")

DUMP_FORMATS = ("relax", "tir", "ll", "asm")
MIXED_CALCULATION_TYPES = ("float16",)  # Relax's ToMixedPrecision computes in float16 only
MIXED_ACCUMULATION_TYPES = ("float16", "float32")


@attrs.frozen
class PipelineOptions:
    """How ``compile`` builds a model; the defaults are tvmc 0.19's."""

    opt_level: int = 3
    pass_config: tuple = ()  # ((name, typed value), ...) as read_pass_config returns them
    disabled_passes: tuple = ()
    mixed_precision: bool = False
    mixed_precision_calculation_type: str = "float16"
    mixed_precision_acc_type: str = "float16"
    dump_code: tuple = ()
    print_ir_before: tuple = ()
    print_ir_after: tuple = ()
    print_pass_times: bool = False

    def __attrs_post_init__(self):
        if not 0 <= self.opt_level <= 3:
            raise TVMCException(f"-O must be 0, 1, 2 or 3, got {self.opt_level}")
        if self.mixed_precision_calculation_type not in MIXED_CALCULATION_TYPES:
            raise TVMCException(
                f"--mixed-precision-calculation-type {self.mixed_precision_calculation_type}: Relax's ToMixedPrecision computes in float16 only"
            )
        if self.mixed_precision_acc_type not in MIXED_ACCUMULATION_TYPES:
            raise TVMCException(f"--mixed-precision-acc-type must be one of {', '.join(MIXED_ACCUMULATION_TYPES)}")
        for fmt in self.dump_code:
            if fmt not in DUMP_FORMATS:
                hint = "; Relay is gone in TVM 0.27, its Relax module is 'relax'" if fmt == "relay" else ""
                raise TVMCException(f"--dump-code {fmt}: formats are {', '.join(DUMP_FORMATS)}{hint}")

    def transform_model(self, mod):
        """The model's Relax module in the desired precision (unchanged by default)."""
        from tvm import relax  # pylint: disable=import-outside-toplevel

        if self.mixed_precision:
            mod = relax.transform.ToMixedPrecision(out_dtype=self.mixed_precision_acc_type)(mod)
        return mod

    def pass_context(self):
        """The ``PassContext`` the build runs under; instruments print IR and pass times as asked."""
        import tvm  # pylint: disable=import-outside-toplevel

        instruments = []
        if self.print_ir_before or self.print_ir_after:
            instruments.append(tvm.ir.instrument.PassPrintingInstrument(list(self.print_ir_before), list(self.print_ir_after)))
        if self.print_pass_times:
            instruments.append(tvm.ir.instrument.PassTimingInstrument())
        return tvm.transform.PassContext(
            opt_level=self.opt_level, config=dict(self.pass_config), disabled_pass=list(self.disabled_passes), instruments=instruments
        )


def _typed_config(name: str, value: str, kind: str):
    try:
        if kind == "bool":
            if value.lower() not in ("1", "0", "true", "false"):
                raise ValueError(value)
            return value.lower() in ("1", "true")
        if kind in ("int", "ir.IntImm"):
            return int(value)
        if kind == "ffi.Array":
            return [item.strip() for item in value.split(",") if item.strip()]
        if kind in ("ffi.String", "str"):
            return value
        return json.loads(value)  # a config object: {"auto_max_step": 16}
    except (ValueError, json.JSONDecodeError):
        raise TVMCException(f"--pass-config {name} expects {kind}, got '{value}'") from None


def _current_name(name: str, known: dict) -> str:
    """TVM 0.27's name for a 0.19 one: ``tir.*`` options now live under ``tirx.*`` or ``s_tir.*``."""
    if name in known:
        return name
    if name.startswith("tir."):
        for prefix in ("tirx.", "s_tir."):
            if prefix + name[4:] in known:
                return prefix + name[4:]
    if name.startswith("relay."):
        raise TVMCException(f"--pass-config {name}: Relay is gone in TVM 0.27; its Relax options are: {', '.join(k for k in sorted(known) if k.startswith('relax.'))}")
    near = difflib.get_close_matches(name, list(known), n=3, cutoff=0.5)
    hint = f"did you mean {' or '.join(near)}? " if near else ""
    raise TVMCException(f"--pass-config: TVM 0.27 has no option '{name}'; {hint}see the list with 'tvmc compile --pass-config help'")


def read_pass_config(items) -> tuple:
    """``["tir.disable_vectorize=true", ...]`` into ``((name, typed value), ...)``, typed by TVM's own registry."""
    import tvm  # pylint: disable=import-outside-toplevel

    known = {str(k): str(dict(v)["type"]) for k, v in tvm.ir.transform.PassContext.list_configs().items()}
    result = []
    for item in items or ():
        if item == "help":
            raise TVMCException("pass-config options of TVM 0.27: " + ", ".join(f"{k} ({t})" for k, t in sorted(known.items())))
        name, eq, value = item.partition("=")
        if not eq or not name.strip():
            raise TVMCException(f"--pass-config '{item}' must be NAME=VALUE, e.g. tir.disable_vectorize=true")
        current = _current_name(name.strip(), known)
        result.append((current, _typed_config(current, value.strip(), known[current])))
    return tuple(result)


def build(mod, target, database, options: PipelineOptions, lowering: Lowering = Lowering()) -> tuple:
    """Build ``mod`` with the records in ``database`` under ``options``' PassContext: ``(executable, scheduled)``.

    The passes are ``compile_relax``'s with our ``lowering`` (the fusion tasks are extracted with, so database
    keys match; the database; what follows it, weight prepacking included; then lowering and finalizing);
    ``scheduled`` is the module after the database, for ``--dump-code tir``."""
    import tvm  # pylint: disable=import-outside-toplevel
    from tvm import relax
    from tvm.relax.transform import MetaScheduleApplyDatabase

    scheduled = {}

    @tvm.transform.module_pass(opt_level=0, name="tvmc.BuildPipeline")
    def pipeline(mod, _ctx):
        mod = tvm.transform.Sequential(fusion_passes(target, lowering))(mod)
        mod = MetaScheduleApplyDatabase()(mod)
        mod = tvm.transform.Sequential(after_database_passes(target, lowering))(mod)
        scheduled["mod"] = mod
        return tvm.transform.Sequential(lower_passes(target))(mod)

    with options.pass_context(), target, database:
        executable = relax.build(mod, target=target, relax_pipeline=pipeline)
        if options.print_pass_times:  # the profile lives as long as the context
            print(tvm.ir.instrument.PassTimingInstrument.render())
    return executable, scheduled.get("mod")


def dump_code(options: PipelineOptions, package: str, mod, scheduled, executable) -> list:
    """Write ``PACKAGE.<format>`` for each ``--dump-code`` format; the paths written."""
    import tvm  # pylint: disable=import-outside-toplevel

    written = []
    for fmt in options.dump_code:
        if fmt == "relax":
            text = mod.script()
        elif fmt == "tir":
            text = tvm.IRModule({gv: f for gv, f in scheduled.functions.items() if isinstance(f, tvm.tirx.PrimFunc)}).script()
        else:
            libraries = [m for m in executable.mod.imports if m.kind == "llvm"] or list(executable.mod.imports)
            text = "\n".join(m.inspect_source(fmt) for m in libraries)
        path = f"{package}.{fmt}"
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
        written.append(path)
    return written
