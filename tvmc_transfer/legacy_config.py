"""Read tvmc 0.19's flat ``--config`` files into per-command defaults.

tvmc 0.19 took a flat JSON object (``{"targets": [{"kind": "llvm", "mcpu": "znver3"}], "executor": {"kind":
"graph"}, "pass-config": {"tir.disable_vectorize": true}, "opt-level": 3}``) and set its keys as defaults of the
command being run. This project's own form is keyed by command (``{"tune": {"trials": 200}}``); a file whose keys
are not command names is read the 0.19 way.
"""

from .errors import TVMCException

# The only executor and runtime of TVM 0.27 for a packaged model is the Relax VM with the C++ runtime; 0.19's
# defaults map onto it, anything else (AOT, CRT/microTVM) has no counterpart.
_SAME_AS_RELAX_VM = {"executor": ("graph", "vm"), "runtime": ("cpp",)}


def is_flat(config: dict, commands) -> bool:
    """Whether ``config`` is a 0.19 flat file rather than ``{command: {option: value}}``."""
    return any(key not in commands for key in config)


def _target_text(targets) -> tuple:
    if not isinstance(targets, list) or not all(isinstance(t, dict) and "kind" in t for t in targets):
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
        parser.set_defaults(**mine)
        used.update(mine)
    unknown = sorted(set(options) - used)
    if unknown:
        raise TVMCException(f"--config sets option(s) no command has: {', '.join(unknown)} (see 'tvmc COMMAND --help')")
