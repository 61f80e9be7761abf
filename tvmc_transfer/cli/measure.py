"""The measurement options of ``tune``, ``transfer`` and ``records retime``, and the ``MeasureOptions`` they give."""

from ..tune.measure import MeasureOptions
from .build import add_cross_arguments, cross_from_args
from .common import default_of, shown


def add_measure_arguments(parser, passes: int = default_of(MeasureOptions, "passes")) -> None:
    """The measurement options shared by ``tune`` and ``transfer``; ``passes``: the command's default."""
    number, repeat = default_of(MeasureOptions, "number"), default_of(MeasureOptions, "repeat")
    min_repeat_ms, timeout = default_of(MeasureOptions, "min_repeat_ms"), default_of(MeasureOptions, "timeout")
    group = parser.add_argument_group("measurement")
    group.add_argument("--number", type=int, default=number, help=f"runs averaged into one measurement (default {number})")
    group.add_argument("--repeat", type=int, default=repeat, help=f"measurements per candidate (default {repeat})")
    group.add_argument(
        "--passes",
        type=int,
        default=passes,
        help=f"times each batch of candidates is measured, every other time in reverse order; each candidate keeps its fastest (a guard against a host that slows down for seconds; default {passes})",
    )
    group.add_argument("--min-repeat-ms", type=int, default=min_repeat_ms, help=f"minimum time of one measurement, ms (default {min_repeat_ms})")
    group.add_argument("--cache-flush", action="store_true", help="flush the CPU cache before each measurement")
    group.add_argument("--timeout", type=float, default=timeout, help=f"seconds before a run is given up (default {shown(timeout)})")
    # None: MeasureOptions' default, the cores this process may use, read when the command runs
    group.add_argument("--parallel", type=int, default=None, help="build workers (default: the cores this process may use)")
    group.add_argument("--rpc-tracker", metavar="HOST[:PORT]", help="measure on remote devices through an RPC tracker (port 9090 if not given)")
    group.add_argument("--rpc-key", metavar="KEY", help="the device key registered with the tracker")
    add_cross_arguments(group)


def measure_options_from_args(args) -> MeasureOptions:
    """The command's ``MeasureOptions``; with ``--rpc-tracker``, the tracker and a server with ``--rpc-key`` are
    checked here, before tasks are extracted: a missing one is an ``Error:`` within seconds, not minutes later."""
    options = MeasureOptions(
        number=args.number,
        repeat=args.repeat,
        passes=args.passes,
        min_repeat_ms=args.min_repeat_ms,
        cache_flush=args.cache_flush,
        timeout=args.timeout,
        parallel=args.parallel or default_of(MeasureOptions, "parallel"),
        rpc_tracker=args.rpc_tracker,
        rpc_key=args.rpc_key,
        cross_compiler=cross_from_args(args),
    )
    options.fleet_size()
    return options
