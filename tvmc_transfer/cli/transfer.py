"""``tvmc transfer``: transfer-tune a model from other models' tuning records."""

import argparse

from ..errors import lowering_hint, tvm_errors
from ..tune.option_defaults import E2E_REPEAT, MAX_CANDIDATES, MEASURE_TOP, PASSES, POPULATION, POPULATION_HELP, RTOL, SEED, SOURCE_MODES, SOURCES, TUNE_REST
from .build import add_lowering_arguments, lowering_from_args
from .common import add_model_arguments, check_output_folder, load_model_from_args, plan_from_args, shown
from .measure import add_measure_arguments, measure_options_from_args
from .registry import register_parser
from .target import add_target_arguments, target_from_args


@register_parser
def add_transfer_parser(subparsers, main_parser, json_config):
    parser = subparsers.add_parser(
        "transfer",
        help="transfer-tune a model with the tuning records of other models",
        description="For every kernel of MODEL, replay the tuned schedules of kernels of the same class (same "
        "computation, other shapes) from the sources, check each one numerically, measure it, and write "
        "the correct ones as ordinary tuning records for 'tvmc compile --tuning-records'. The sources are the "
        "schedule library shipped for the target's CPU family (the zoo's tuned records) and the --from records "
        "folders. Running the same command again resumes.",
    )
    add_model_arguments(parser)
    parser.add_argument("--from", dest="sources", action="append", default=[], metavar="RECORDS",
                        help="records folder to transfer from, besides the schedule library (repeatable)")
    parser.add_argument("--no-library", action="store_true",
                        help="leave out the schedule library shipped for the target's CPU family: transfer from the --from folders only (a held-out experiment)")
    parser.add_argument("-o", "--output", required=True, metavar="RECORDS", help="records folder to write (and resume)")
    parser.add_argument("--sources", dest="source_mode", choices=tuple(SOURCE_MODES), default=SOURCES,
                        help="; ".join(f"'{mode}'{' (default)' if mode == SOURCES else ''}: {what}" for mode, what in SOURCE_MODES.items()))
    parser.add_argument("--max-candidates", type=int, default=MAX_CANDIDATES, metavar="K", help=f"best K records of each matching source kernel (default {MAX_CANDIDATES}; 0: every record)")
    parser.add_argument("--max-per-kernel", type=int, metavar="N", help="at most N candidates per kernel, nearest shapes first (default: no limit)")
    parser.add_argument(
        "--measure-top",
        type=_measure_top,
        default=MEASURE_TOP,
        metavar="K|all",
        help="rank each kernel's candidates with the shipped cost model and measure the best K, then the next K only while"
        f" the last batch beat everything measured before it (default {MEASURE_TOP}; 0 or 'all': measure every candidate)",
    )
    parser.add_argument(
        "--exact-classes",
        action="store_true",
        help="a kernel takes only schedules of its own class (by default one whose class no source holds also takes those of a kernel with another epilogue: conv2d+bias+relu for conv2d+bias+add+relu or conv2d+bias; and a pool with padding for one without, and back)",
    )
    parser.add_argument("--tune-rest", type=int, default=TUNE_REST, metavar="N", help="tune the kernels no source matches with N trials of 'tvmc tune'")
    parser.add_argument("--population", type=int, default=POPULATION, help=f"evolutionary search population for --tune-rest ({POPULATION_HELP})")
    parser.add_argument("--seed", type=int, default=SEED, help=f"seed of the random check inputs and of --tune-rest (default {SEED})")
    parser.add_argument("--rtol", type=float, default=RTOL, help=f"largest error a candidate may have, relative to the largest reference value (default {shown(RTOL)})")
    parser.add_argument("--time-limit", "--time-budget", dest="time_limit", type=float, metavar="SECONDS", help="start no new kernel (nor a kernel's next batch, nor a --droplet or --tune-rest batch: those go to the costliest kernels first) after this long; run the same command again to go on; --time-budget is the same")
    parser.add_argument("--report", metavar="FILE.json", help="also write the report as JSON")
    parser.add_argument("--no-e2e", action="store_true", help="skip compiling and timing the whole model at the end")
    parser.add_argument("--e2e-repeat", type=int, default=E2E_REPEAT, metavar="N", help=f"end-to-end runs timed (default {E2E_REPEAT})")
    add_target_arguments(parser)
    add_lowering_arguments(parser)
    add_measure_arguments(parser, passes=PASSES)
    parser.set_defaults(func=drive_transfer)


def _measure_top(text: str) -> int | None:
    """``--measure-top``: a count, or ``all`` (or 0) for every candidate: None."""
    if text.strip().lower() == "all":
        return None
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"give a number of candidates or 'all', not '{text}'") from None
    return None if value == 0 else value


def drive_transfer(args) -> int:
    from ..transfer import transfer_tune

    check_output_folder(args.output, "records")
    if args.report:
        check_output_folder(args.report, "report")
    options = transfer_options_from_args(args)
    plan = plan_from_args("transfer", args)
    target = target_from_args(args)
    with tvm_errors("transfer", lowering_hint(target, options.lowering)):
        report = transfer_tune(load_model_from_args(args), target, args.sources, args.output, options, plan=plan)
    print(report.summary())
    if report.tune_rest is not None:
        print(report.tune_rest.summary())
    if args.report:
        report.write_json(args.report)
    print(f"records: {report.output}")
    return 0


def transfer_options_from_args(args):
    """The ``TransferOptions`` a ``transfer`` command line describes (measurement and lowering included)."""
    from ..transfer import TransferOptions  # pylint: disable=import-outside-toplevel

    return TransferOptions(
        max_candidates=None if args.max_candidates == 0 else args.max_candidates,
        max_per_kernel=args.max_per_kernel,
        measure_top=args.measure_top,
        sources=args.source_mode,
        use_library=not args.no_library,
        tune_rest=args.tune_rest,
        population=args.population,
        seed=args.seed,
        rtol=args.rtol,
        e2e=not args.no_e2e,
        e2e_repeat=args.e2e_repeat,
        time_limit=args.time_limit,
        exact_classes=args.exact_classes,
        measure=measure_options_from_args(args),
        lowering=lowering_from_args(args),
    )
