"""The ``tvmc`` driver: a registry of commands, plugins, ``--config`` defaults and one place for errors.

The driver never names its commands. Each module under ``tvmc_transfer/cli/`` registers a parser with
``@register_parser``; other installed packages do the same from a module named in the
``tvmc_transfer.plugins`` entry-point group. A plugin can also add options to an existing command with
``register_option_hook`` (that is how ``tune --droplet`` and ``transfer --droplet`` arrive).
"""

import argparse
import importlib
import json
import logging
import os
import pkgutil
import sys
from importlib.metadata import entry_points
from typing import Any, Callable

import attrs

from .errors import TVMCException
from .legacy_config import apply_flat, checked_defaults, is_flat

PLUGIN_GROUP = "tvmc_transfer.plugins"
REGISTERED_PARSER: list[Callable] = []
OPTION_HOOKS: dict[str, list["OptionHook"]] = {}


def register_parser(make_parser: Callable) -> Callable:
    """Register ``make_parser(subparsers, main_parser, json_config)``, which adds one command."""
    REGISTERED_PARSER.append(make_parser)
    return make_parser


@attrs.frozen
class OptionHook:
    """Options a plugin adds to another command, and how it turns them into work.

    The driver calls ``add_arguments(parser)`` on the command's parser; the command calls ``apply(args, plan)``
    before it runs, with its own extension object (for ``tune`` a ``TunePlan``, for ``transfer`` a
    ``TransferPlan``, whose phases it may extend).
    """

    add_arguments: Callable[[argparse.ArgumentParser], None]
    apply: Callable[[argparse.Namespace, Any], None] | None = None


def register_option_hook(command: str, hook: OptionHook) -> OptionHook:
    """Attach ``hook`` to ``command``; the command's parser and driver will call it."""
    OPTION_HOOKS.setdefault(command, []).append(hook)
    return hook


def apply_option_hooks(command: str, args: argparse.Namespace, plan: Any) -> None:
    """Called by a command's driver before it runs: lets plugins extend ``plan``."""
    for hook in OPTION_HOOKS.get(command, []):
        if hook.apply is not None:
            hook.apply(args, plan)


class UsageError(TVMCException):
    """A command line argparse cannot read: one ``Error: ...`` line and exit code 2, as argparse and tvmc 0.19."""


class ArgumentParser(argparse.ArgumentParser):
    """Usage mistakes become the driver's one-line ``Error: ...`` like every other user error."""

    def error(self, message):
        raise UsageError(f"{message} (see '{self.prog} --help')")


def _load_commands() -> None:
    if REGISTERED_PARSER:
        return
    from . import cli  # pylint: disable=import-outside-toplevel

    for info in sorted(pkgutil.iter_modules(cli.__path__), key=lambda m: m.name):
        importlib.import_module(f"{cli.__name__}.{info.name}")
    for entry in entry_points(group=PLUGIN_GROUP):
        try:
            entry.load()
        except Exception as err:  # a broken plugin must not take the driver down
            logging.getLogger("tvmc").warning("plugin %s failed to load: %s", entry.name, err)


def _read_config(argv: list[str]) -> dict:
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--config")
    known, _ = pre.parse_known_args(argv)
    if not known.config:
        return {}
    try:
        with open(known.config, encoding="utf-8") as f:
            config = json.load(f)
    except OSError as err:
        raise TVMCException(f"cannot read --config {known.config}: {err.strerror}") from None
    except (ValueError, RecursionError) as err:  # not JSON, not UTF-8 (or a NUL in the name), nested too deep
        raise TVMCException(f"--config {known.config!r} is not valid JSON: {err}") from None
    if not isinstance(config, dict):
        raise TVMCException(f"--config {known.config} must hold a JSON object of command names to options")
    return config


def _apply_config(subparsers: argparse._SubParsersAction, config: dict) -> None:
    # {"tune": {"trials": 200, "target": "llvm"}} sets defaults, so the command line still wins.
    if is_flat(config, subparsers.choices):
        apply_flat(subparsers, config)
        return
    for command, defaults in config.items():
        parser = subparsers.choices[command]
        if not isinstance(defaults, dict):
            raise TVMCException(f"--config entry '{command}' must be an object of option names to values")
        known = {action.dest for action in parser._actions}
        normalized = {key.lstrip("-").replace("-", "_"): value for key, value in defaults.items()}
        unknown = sorted(set(normalized) - known)
        if unknown:
            raise TVMCException(f"--config sets unknown option(s) of '{command}': {', '.join(unknown)}")
        parser.set_defaults(**checked_defaults(parser, normalized, command))


def build_parser(config: dict | None = None) -> argparse.ArgumentParser:
    """The full argument parser: every registered command, with ``config`` applied as defaults."""
    _load_commands()
    parser = ArgumentParser(
        prog="tvmc",
        description="TVM compiler driver for the Relax era: tune, transfer, compile and run ONNX models.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--config", help="JSON file of default options per command, e.g. {\"tune\": {\"trials\": 200}}, or a tvmc 0.19 flat file")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more output (-vv, -vvv for more)")
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    subparsers = parser.add_subparsers(title="commands", metavar="COMMAND")
    for make_parser in REGISTERED_PARSER:
        make_parser(subparsers, parser, config or {})
    for command_parser in subparsers.choices.values():  # tvmc 0.19 also took -v after the command
        if "-v" not in command_parser._option_string_actions:  # pylint: disable=protected-access
            command_parser.add_argument("-v", "--verbose", dest="command_verbose", action="count", default=0, help="more output (-vv, -vvv for more)")
    for command, hooks in OPTION_HOOKS.items():
        if command in subparsers.choices:
            for hook in hooks:
                hook.add_arguments(subparsers.choices[command])
    _apply_config(subparsers, config or {})
    return parser


def _set_verbosity(level: int) -> None:
    logging.basicConfig(format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    logging.getLogger("tvmc").setLevel([logging.WARNING, logging.INFO, logging.DEBUG][min(level, 2)])
    if level >= 3:
        logging.getLogger().setLevel(logging.DEBUG)


def _main(argv: list[str]) -> int:
    try:
        config = _read_config(argv)
        parser = build_parser(config)
        args = parser.parse_args(argv)
        if args.version:
            from . import __version__  # pylint: disable=import-outside-toplevel

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
