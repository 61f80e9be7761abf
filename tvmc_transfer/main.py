"""The ``tvmc`` console entry point: parse the command line, run the command, and turn errors into one line.

The parser (the registry of commands, plugins, ``--config`` defaults) is built in ``cli/driver.py``. Plugins
import ``register_parser``, ``register_option_hook`` and ``OptionHook`` from here.
"""

import logging
import os
import sys

from . import __version__
from .cli.driver import build_parser, read_config
from .cli.registry import OPTION_HOOKS, REGISTERED_PARSER, ArgumentParser, OptionHook, UsageError, apply_option_hooks, register_option_hook, register_parser  # noqa: F401 (plugins import them from here)
from .errors import TVMCException


def _set_verbosity(level: int) -> None:
    logging.basicConfig(format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    logging.getLogger("tvmc").setLevel([logging.WARNING, logging.INFO, logging.DEBUG][min(level, 2)])
    if level >= 3:
        logging.getLogger().setLevel(logging.DEBUG)


def _main(argv: list[str]) -> int:
    try:
        config = read_config(argv)
        parser = build_parser(config)
        args = parser.parse_args(argv)
        if args.version:
            print(f"tvmc-transfer {__version__}")
            return 0
        if not hasattr(args, "func"):
            parser.print_help()
            return 0 if not argv else 2
        _set_verbosity(args.verbose + getattr(args, "command_verbose", 0))
        return args.func(args) or 0
    except TVMCException as err:
        sys.stderr.write(f"Error: {err}\n")
        return 2 if isinstance(err, UsageError) else 4
    except KeyboardInterrupt:
        sys.stderr.write("Error: interrupted; what was measured so far is kept, run the same command to resume\n")
        return 130


def main() -> None:
    """Console entry point of ``tvmc``."""
    # TVM's C++ logging goes to stderr; keep it quiet unless -vvv asks for it.
    os.environ.setdefault("TVM_LOG_DEBUG", "0")
    sys.exit(_main(sys.argv[1:]))


if __name__ == "__main__":
    main()
