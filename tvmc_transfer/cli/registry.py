"""The registry of commands: each module under ``cli/`` adds its parser with ``@register_parser``, a plugin adds
options to a command with ``register_option_hook``; ``main.py`` builds the driver from what is registered here."""

import argparse
from typing import Any, Callable

import attrs

from ..errors import TVMCException

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
    before it runs, with its own extension object (for ``tune`` and ``transfer`` a ``Plan``, whose
    phases it may extend).
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
