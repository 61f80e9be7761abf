"""The build's options: the lowering (``tune``, ``transfer`` and ``compile`` must agree on it), ``compile``'s
pipeline as tvmc 0.19 had it, and the cross compiler; each with the value object it becomes."""

import argparse

from ..build.cross import CrossCompiler
from ..build.lowering import LAYOUTS, Lowering
from ..build.pipeline import DUMP_FORMATS, MIXED_ACCUMULATION_TYPES, PipelineOptions, read_pass_config
from ..errors import TVMCException
from .common import default_of


def add_lowering_arguments(parser) -> None:
    """``--weight-prepack`` / ``--no-weight-prepack``, ``--desired-layout`` and ``--winograd`` / ``--no-winograd``
    for every command that extracts tasks or compiles: records match only under the lowering they were tuned
    under."""
    parser.add_argument(
        "--desired-layout",
        choices=tuple(LAYOUTS),
        default=default_of(Lowering, "layout"),
        help="convert convolutions to this data layout first (Relax ConvertLayout; default: NHWC on x86 CPUs with AVX2 or AVX-512, "
        "where it tunes about 2x faster, else the model's own); tune, transfer and compile must agree",
    )
    parser.add_argument(
        "--winograd",
        action=argparse.BooleanOptionalAction,
        default=default_of(Lowering, "winograd"),
        help="compute stride-1 3x3 NHWC convolutions on a CPU as Winograd F(4x4, 3x3): 4x fewer multiplications, "
        "1.2-1.9x faster kernels in isolation after the same trials (none end to end on ResNet-50), "
        "but 2-4x slower builds while tuning (default: off)",
    )
    parser.add_argument(
        "--weight-prepack",
        action=argparse.BooleanOptionalAction,
        default=default_of(Lowering, "weight_prepack"),
        help="rewrite weight layouts for the tuned kernels at compile time (default: on for CPU targets); "
        "records tuned with it only match with it, and without it only without it",
    )


def lowering_from_args(args) -> Lowering:
    """The ``Lowering`` a command's parsed arguments describe."""
    return Lowering(weight_prepack=args.weight_prepack, layout=args.desired_layout, winograd=args.winograd)


def add_pipeline_arguments(parser) -> None:
    """The build's options of ``compile``, as tvmc 0.19 had them."""
    opt_level, acc_type = default_of(PipelineOptions, "opt_level"), default_of(PipelineOptions, "mixed_precision_acc_type")
    group = parser.add_argument_group("compile pipeline (as tvmc 0.19)")
    group.add_argument("-O", "--opt-level", type=int, default=opt_level, choices=range(4), metavar="{0,1,2,3}", help=f"optimization level of the build (default {opt_level})")
    group.add_argument("--pass-config", action="append", default=[], metavar="NAME=VALUE", help="PassContext option, e.g. tir.disable_vectorize=true (repeatable; 'help' lists them)")
    group.add_argument("--disabled-pass", action="append", default=[], metavar="PASS", help="passes not to run, comma-separated (repeatable)")
    group.add_argument("--mixed-precision", action="store_true", help="compute convolutions and matmuls in float16 (Relax ToMixedPrecision)")
    group.add_argument("--mixed-precision-calculation-type", default=default_of(PipelineOptions, "mixed_precision_calculation_type"), help="computation type (float16, the only one Relax has)")
    group.add_argument("--mixed-precision-acc-type", default=acc_type, choices=MIXED_ACCUMULATION_TYPES, help=f"accumulation type (default {acc_type})")
    group.add_argument("--dump-code", metavar="FORMATS", help=f"write PACKAGE.<format> for each of {','.join(DUMP_FORMATS)}")
    group.add_argument("--print-ir-before", action="append", default=[], metavar="PASS", help="print the IR before these passes (comma-separated, repeatable)")
    group.add_argument("--print-ir-after", action="append", default=[], metavar="PASS", help="print the IR after these passes (comma-separated, repeatable)")
    group.add_argument("--print-pass-times", action="store_true", help="print the time each pass took")


def pipeline_options_from_args(args) -> PipelineOptions:
    """The ``PipelineOptions`` ``compile``'s parsed arguments describe."""
    return PipelineOptions(
        opt_level=args.opt_level,
        pass_config=read_pass_config(args.pass_config),
        disabled_passes=_names(args.disabled_pass),
        mixed_precision=args.mixed_precision,
        mixed_precision_calculation_type=args.mixed_precision_calculation_type,
        mixed_precision_acc_type=args.mixed_precision_acc_type,
        dump_code=_names(args.dump_code),
        print_ir_before=_names(args.print_ir_before),
        print_ir_after=_names(args.print_ir_after),
        print_pass_times=args.print_pass_times,
    )


def _names(text) -> tuple:
    """Comma-separated names, from one string or a repeated option's list: ``["a,b", "c"]`` -> ``("a", "b", "c")``."""
    items = text if isinstance(text, (list, tuple)) else [text] if text else []
    return tuple(name.strip() for item in items for name in str(item).split(",") if name.strip())


def add_cross_arguments(parser) -> None:
    """``--cross-compiler`` and its options: ``compile`` links the package with it, ``tune`` and ``transfer`` their
    candidates for the device behind ``--rpc-tracker``."""
    parser.add_argument("--cross-compiler", metavar="CC", help="link with this compiler for another machine, e.g. aarch64-linux-gnu-gcc or 'python -m ziglang cc'")
    parser.add_argument("--cross-compiler-options", default=default_of(CrossCompiler, "options"), metavar="OPTIONS", help="options for --cross-compiler, e.g. '-target aarch64-linux-gnu'")


def cross_from_args(args) -> CrossCompiler | None:
    """The ``CrossCompiler`` given, or None to link with this machine's."""
    if args.cross_compiler_options and not args.cross_compiler:
        raise TVMCException("--cross-compiler-options needs --cross-compiler")
    return CrossCompiler(args.cross_compiler, args.cross_compiler_options) if args.cross_compiler else None
