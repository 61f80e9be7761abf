"""The ``tvmc`` parser: the global options, every registered command, plugins, and ``--config`` defaults.

The driver never names its commands. Each module under ``tvmc_transfer/cli/`` registers a parser with
``@register_parser``; other installed packages do the same from a module named in the
``tvmc_transfer.plugins`` entry-point group. A plugin can also add options to an existing command with
``register_option_hook`` (that is how ``tune --droplet`` and ``transfer --droplet`` arrive).
"""

import argparse
import functools
import importlib
import json
import logging
import os
import pkgutil
from importlib.metadata import entry_points

from ..errors import TVMCException
from .config import apply_flat, checked_defaults, is_flat
from .registry import OPTION_HOOKS, REGISTERED_PARSER, ArgumentParser

PLUGIN_GROUP = "tvmc_transfer.plugins"


@functools.cache  # once: a command module imported earlier (a test's) must not stop the others from loading
def _load_commands() -> None:
    for info in sorted(pkgutil.iter_modules([os.path.dirname(__file__)]), key=lambda m: m.name):
        importlib.import_module(f"{__package__}.{info.name}")
    for entry in entry_points(group=PLUGIN_GROUP):
        try:
            entry.load()
        except Exception as err:  # a broken plugin must not take the driver down
            logging.getLogger("tvmc").warning("plugin %s failed to load: %s", entry.name, err)


def read_config(argv: list[str]) -> dict:
    """The JSON object of the ``--config`` file named in ``argv`` (empty without one), read before the full parser
    is built, since it sets that parser's defaults."""
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
