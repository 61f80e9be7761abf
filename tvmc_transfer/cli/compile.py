"""``tvmc compile``: apply tuning records and write one deployable package file (and, with ``--report``, a JSON
report of the compile for CI)."""

import attrs

from ..errors import TVMCException
from .build import add_cross_arguments, add_lowering_arguments, add_pipeline_arguments, cross_from_args, lowering_from_args, pipeline_options_from_args
from .common import add_model_arguments, check_output_folder, load_model_from_args
from .registry import register_parser
from .target import add_target_arguments, target_from_args


@register_parser
def add_compile_parser(subparsers, main_parser, json_config):
    parser = subparsers.add_parser(
        "compile",
        help="compile a model into a package (library + metadata)",
        description="Compile a model with Relax. Kernels with a tuning record get their best schedule.",
    )
    add_model_arguments(parser)
    parser.add_argument("-o", "--output", default="module.tar", metavar="PACKAGE", help="package file (default module.tar)")
    parser.add_argument("--tuning-records", metavar="RECORDS", help="records folder from 'tvmc tune' or 'tvmc transfer'")
    parser.add_argument(
        "--no-default-schedules",
        action="store_true",
        help="kernels without a tuning record keep the unscheduled loops instead of a default schedule "
        "(from the schedule library shipped for the target's CPU family, or picked by the shipped cost model)",
    )
    parser.add_argument(
        "--report",
        metavar="FILE.json",
        help="also write what a CI job checks as JSON: each kernel and how it was scheduled (records, library, model, "
        "none), the layout fallbacks taken, the warnings, the time of each phase; written also when the compile fails",
    )
    parser.add_argument(
        "--strict",
        action="store_true",
        help="a layout fallback or a kernel left unscheduled is an error (exit 4, no package written)",
    )
    add_target_arguments(parser)
    add_cross_arguments(parser)
    add_pipeline_arguments(parser)
    add_lowering_arguments(parser)
    parser.set_defaults(func=drive_compile)


def drive_compile(args) -> int:
    from ..compiler import CompileFailed, CompileReport, compile_model, timed  # pylint: disable=import-outside-toplevel

    check_output_folder(args.output, "package")
    if args.report:
        check_output_folder(args.report, "report")
    load: dict = {}  # the load phase's time: compile_model times the others
    try:
        target = target_from_args(args)
        pipeline, cross = pipeline_options_from_args(args), cross_from_args(args)
        with timed(load, "load"):
            model = load_model_from_args(args)
        report = compile_model(
            model,
            target,
            args.output,
            records=args.tuning_records,
            pipeline=pipeline,
            cross=cross,
            lowering=lowering_from_args(args),
            default_schedules=not args.no_default_schedules,
            strict=args.strict,
        )
    except TVMCException as err:  # the report says why; then the driver prints the one Error line
        if args.report:
            failed = err.report if isinstance(err, CompileFailed) else CompileReport(None, model=args.model, error=str(err))
            attrs.evolve(failed, phases={**load, **failed.phases}).write_json(args.report)
        raise
    if args.report:
        attrs.evolve(report, phases={**load, **report.phases}).write_json(args.report)
    print(report.summary())
    return 0
