"""Read tvmc 0.19's flat ``--config`` files into per-command defaults, and check every ``--config`` value.

tvmc 0.19 took a flat JSON object (``{"targets": [{"kind": "llvm", "mcpu": "znver3"}], "executor": {"kind":
"graph"}, "pass-config": {"tir.disable_vectorize": true}, "opt-level": 3}``) and set its keys as defaults of the
command being run. This project's own form is keyed by command (``{"tune": {"trials": 200}}``); a file whose keys
are not command names is read the 0.19 way. Either way a value must be one the command line would accept for that
option (``checked_defaults``): ``{"tune": {"trials": [1]}}`` is an ``Error:``, not a traceback later on.
"""

import argparse

from ..errors import TVMCException

# The only executor and runtime of TVM 0.27 for a packaged model is the Relax VM with the C++ runtime; 0.19's
# defaults map onto it, anything else (AOT, CRT/microTVM) has no counterpart.
_SAME_AS_RELAX_VM = {"executor": ("graph", "vm"), "runtime": ("cpp",)}


def is_flat(config: dict, commands) -> bool:
    """Whether ``config`` is a 0.19 flat file rather than ``{command: {option: value}}``."""
    return any(key not in commands for key in config)


def checked_defaults(parser, options: dict, command: str) -> dict:
    """``options`` (``dest`` -> a JSON value) as ``parser``'s defaults, each checked and typed as the command line
    would: a flag takes true or false, an option that repeats a list of strings, any other option one string or
    number, converted by the option's type and checked against its choices."""
    actions = {action.dest: action for action in parser._actions}  # pylint: disable=protected-access
    return {dest: _checked(parser, actions[dest], value, command) for dest, value in options.items()}


def _checked(parser, action, value, command: str):
    where = f"--config value of '{command}' option {action.option_strings[0] if action.option_strings else action.dest}"
    if isinstance(action, argparse._CountAction):  # pylint: disable=protected-access
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise TVMCException(f"{where} must be a count (0, 1, 2, ...), got {value!r}")
        return value
    if action.nargs == 0:  # store_true, store_false, --x/--no-x
        if not isinstance(value, bool):
            raise TVMCException(f"{where} is a flag: give true or false, got {value!r}")
        return value
    repeated = isinstance(action, argparse._AppendAction) or action.nargs in ("*", "+")  # pylint: disable=protected-access
    items = value if repeated and isinstance(value, list) else [value]
    if isinstance(action, argparse._SubParsersAction) or not all(_scalar(item) for item in items):  # pylint: disable=protected-access
        raise TVMCException(f"{where} must be {'a list of strings' if repeated else 'a string or a number'}, got {value!r}"[:300])
    try:
        typed = [parser._get_values(action, [str(item)]) for item in items]  # pylint: disable=protected-access
    except (argparse.ArgumentError, TVMCException) as err:
        raise TVMCException(f"{where}: {getattr(err, 'message', err)}"[:300]) from None
    return [t[0] if isinstance(t, list) else t for t in typed] if repeated else typed[0]


def _scalar(value) -> bool:
    return isinstance(value, (str, int, float)) and not isinstance(value, bool)


def _target_text(targets) -> tuple:
    if not isinstance(targets, list) or not targets or not all(isinstance(t, dict) and isinstance(t.get("kind"), str) for t in targets):
        raise TVMCException("--config 'targets' must be a list of objects with a 'kind', as in tvmc 0.19")
    if len(targets) > 1:
        kinds = ", ".join(t["kind"] for t in targets)
        raise TVMCException(f"--config 'targets' lists {kinds}: BYOC target lists are not in this TVM build; give one target")
    options = {key: value for key, value in targets[0].items() if key != "kind"}
    text = " ".join([targets[0]["kind"], *(f"-{key}={_cli_value(value)}" for key, value in options.items())])
    return "target", text


def _cli_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ",".join(map(str, value))
    return str(value)


def flat_to_options(config: dict) -> dict:
    """The options (argparse ``dest`` names) a 0.19 flat file sets, executor and runtime checked and dropped."""
    options = {}
    for key, value in config.items():
        if key == "targets":
            dest, text = _target_text(value)
            options[dest] = text
        elif key in _SAME_AS_RELAX_VM:
            kind = value.get("kind") if isinstance(value, dict) else value
            if kind not in _SAME_AS_RELAX_VM[key]:
                raise TVMCException(
                    f"--config {key} '{kind}' has no counterpart in TVM 0.27: packages run on the Relax VM "
                    f"with the C++ runtime; drop '{key}' from the file"
                )
        elif isinstance(value, dict):  # "pass-config": {"name": value} -> ["name=value"], as 0.19 did
            options[key.replace("-", "_")] = [f"{name}={_cli_value(v)}" for name, v in value.items()]
        else:
            options[key.replace("-", "_")] = value
    return options


def apply_flat(subparsers, config: dict) -> None:
    """Set a 0.19 flat file's options as defaults of every command that has them; fail on options none has."""
    options = flat_to_options(config)
    used = set()
    for parser in subparsers.choices.values():
        known = {action.dest for action in parser._actions}  # pylint: disable=protected-access
        mine = {dest: value for dest, value in options.items() if dest in known}
        parser.set_defaults(**checked_defaults(parser, mine, parser.prog.split()[-1]))
        used.update(mine)
    unknown = sorted(set(options) - used)
    if unknown:
        raise TVMCException(f"--config sets option(s) no command has: {', '.join(unknown)} (see 'tvmc COMMAND --help')")
