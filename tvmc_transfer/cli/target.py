"""``--target``, ``--target-host`` and the per-option ``--target-<kind>-<option>`` flags of tune, transfer and
compile, and the ``Target`` they describe."""

from ..target import EXAMPLES, parse_target

# Per-option flags offered on the command line (``--target-llvm-mcpu znver3``). Listed here rather than read
# from TVM so that ``tvmc --help`` does not import TVM; a test checks each against TVM's own schema.
TARGET_OPTION_FLAGS = {
    "llvm": ("mcpu", "mtriple", "mattr", "mabi", "num-cores", "opt-level", "vector-width", "fast-math"),
    "cuda": ("arch", "max_num_threads", "thread_warp_size", "max_shared_memory_per_block"),
}
# What tune, transfer and compile target when no --target is given: this machine's CPU, so that the package is
# as fast as this machine allows (generic x86-64, 'llvm', ran ResNet-50 about 9x slower; BENCHMARKS).
DEFAULT_TARGET = "native"


def add_target_arguments(parser) -> None:
    """The target options shared by ``tune``, ``transfer`` and ``compile``."""
    parser.add_argument(
        "--target",
        default=DEFAULT_TARGET,
        help=f"compilation target ({EXAMPLES}); default: {DEFAULT_TARGET}, this machine's CPU (use 'llvm' for a package that runs on any x86-64)",
    )
    parser.add_argument("--target-host", help="host target for a device target (same forms as --target)")
    for kind, options in TARGET_OPTION_FLAGS.items():
        for option in options:
            parser.add_argument(
                f"--target-{kind}-{option}",
                dest=_flag_dest(kind, option),
                metavar="VALUE",
                help=f"set '{option}' of a {kind} target",
            )


def _flag_dest(kind: str, option: str) -> str:
    return f"target_{kind}_{option}".replace("-", "_")


def target_from_args(args):
    """The ``Target`` that the parsed ``--target*`` options of a command describe."""
    overrides = {}
    for kind, options in TARGET_OPTION_FLAGS.items():
        for option in options:
            value = getattr(args, _flag_dest(kind, option), None)
            if value is not None:
                overrides.setdefault(kind, {})[option] = value
    return parse_target(args.target, host=args.target_host, overrides=overrides)
