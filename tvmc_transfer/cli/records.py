"""``tvmc records``: look into, merge and filter tuning-records folders."""

from ..errors import TVMCException
from ..target import parse_target, tuning_target
from .measure import add_measure_arguments, measure_options_from_args
from .registry import register_parser
from .target import DEFAULT_TARGET


@register_parser
def add_records_parser(subparsers, main_parser, json_config):
    parser = subparsers.add_parser(
        "records",
        help="list, merge and filter tuning records",
        description="Work with records folders (MetaSchedule JSON databases) from 'tvmc tune' and 'tvmc transfer'.",
    )
    commands = parser.add_subparsers(title="subcommands", metavar="SUBCOMMAND")

    listing = commands.add_parser("list", help="workloads, their kernel classes and record counts")
    listing.add_argument("records", metavar="RECORDS")
    listing.set_defaults(func=drive_list)

    best = commands.add_parser("best", help="the best measured latency of each workload")
    best.add_argument("records", metavar="RECORDS")
    best.set_defaults(func=drive_best)

    merge = commands.add_parser("merge", help="merge records folders into a new one")
    merge.add_argument("inputs", nargs="+", metavar="RECORDS")
    merge.add_argument("-o", "--output", required=True, metavar="OUT")
    merge.add_argument("--measured-only", action="store_true", help="leave out records of failed builds or runs")
    merge.set_defaults(func=drive_merge)

    filtering = commands.add_parser("filter", help="keep the records of one target")
    filtering.add_argument("input", metavar="RECORDS")
    filtering.add_argument("--target", required=True, help="keep records for this target (kind and processor must agree)")
    filtering.add_argument("-o", "--output", required=True, metavar="OUT")
    filtering.add_argument("--measured-only", action="store_true", help="leave out records of failed builds or runs")
    filtering.set_defaults(func=drive_filter)

    retime = commands.add_parser(
        "retime",
        help="measure the best records of each workload again, here and now, into a new folder",
        description="Measure the --top-k best records of each workload for --target again with this machine and "
        "thread count, and write them with their new times to a new folder. Retime records measured under other "
        "conditions (another machine, another thread count, a loaded day) before resuming from them or comparing them.",
    )
    retime.add_argument("input", metavar="RECORDS")
    retime.add_argument("-o", "--output", required=True, metavar="OUT", help="new records folder")
    retime.add_argument("--target", default=DEFAULT_TARGET, help=f"the records' target, measured here (default {DEFAULT_TARGET})")
    retime.add_argument("--top-k", type=int, default=1, help="records per workload (default 1: the best)")
    retime.add_argument("--from-target", metavar="TARGET", help="read the records tuned for this target instead (another processor "
                        "of the same architecture) and write them as records for --target, measured here")
    add_measure_arguments(retime)
    retime.set_defaults(func=drive_retime)

    parser.set_defaults(func=lambda args: _usage(parser))


def _usage(parser) -> int:
    raise TVMCException("give a subcommand: list, best, merge, filter or retime (see 'tvmc records --help')")


def drive_list(args) -> int:
    from ..records.listing import format_workloads, list_workloads  # pylint: disable=import-outside-toplevel

    print(format_workloads(list_workloads(args.records)))
    return 0


def drive_best(args) -> int:
    from ..records.listing import format_workloads, list_workloads  # pylint: disable=import-outside-toplevel

    print(format_workloads(list_workloads(args.records), best_only=True))
    return 0


def drive_merge(args) -> int:
    from ..records.merge import merge_records  # pylint: disable=import-outside-toplevel

    report = merge_records(args.inputs, args.output, measured_only=args.measured_only)
    print(report.summary())
    return 0


def drive_filter(args) -> int:
    from ..records.merge import filter_records  # pylint: disable=import-outside-toplevel

    report = filter_records(args.input, parse_target(args.target), args.output, measured_only=args.measured_only)
    print(report.summary())
    return 0


def drive_retime(args) -> int:
    from ..tune.retime import retime_records

    target = tuning_target(parse_target(args.target))
    source = tuning_target(parse_target(args.from_target)) if args.from_target else None
    report = retime_records(args.input, target, args.output, top_k=args.top_k, measure=measure_options_from_args(args), from_target=source)
    print(report.summary())
    return 0
