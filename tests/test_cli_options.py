"""One home per option: every argparse line is under ``tvmc_transfer/cli/``, and what a command builds from a bare
command line is exactly its option classes' defaults, so a default written twice and changed once fails here."""

import ast
import re
from pathlib import Path

import attrs
import pytest

import tvmc_transfer
from tvmc_transfer.build.cross import CrossCompiler
from tvmc_transfer.build.lowering import Lowering
from tvmc_transfer.build.pipeline import PipelineOptions
from tvmc_transfer.cli.build import cross_from_args, lowering_from_args, pipeline_options_from_args
from tvmc_transfer.cli.driver import build_parser
from tvmc_transfer.cli.droplet import droplet_options_from_args
from tvmc_transfer.cli.measure import measure_options_from_args
from tvmc_transfer.cli.transfer import transfer_options_from_args
from tvmc_transfer.cli.tune import tune_options_from_args
from tvmc_transfer.droplet.phase import DropletOptions
from tvmc_transfer.transfer import TransferOptions
from tvmc_transfer.tune.measure import MeasureOptions
from tvmc_transfer.tune.model import TuneOptions

PACKAGE = Path(tvmc_transfer.__file__).parent
ARGPARSE_CALLS = ("add_argument", "add_argument_group", "add_mutually_exclusive_group")


def _argparse_calls(path: Path) -> list:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return [node.lineno for node in ast.walk(tree) if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in ARGPARSE_CALLS]


def test_every_argparse_line_is_under_cli():
    calls = {path.relative_to(PACKAGE): _argparse_calls(path) for path in sorted(PACKAGE.rglob("*.py"))}
    outside = [f"tvmc_transfer/{path}:{line}" for path, lines in calls.items() if path.parts[0] != "cli" for line in lines]
    assert not outside, "options defined outside tvmc_transfer/cli/:\n" + "\n".join(outside)
    assert sum(len(lines) for path, lines in calls.items() if path.parts[0] == "cli") > 80  # the scan sees them


def _args(*argv):
    return build_parser().parse_args(list(argv))


def _differences(built, default) -> list:
    """The fields where what the command line built differs from the class's defaults."""
    assert type(built) is type(default)
    return [f"{field.name}: command line {getattr(built, field.name)!r}, class {getattr(default, field.name)!r}"
            for field in attrs.fields(type(default)) if getattr(built, field.name) != getattr(default, field.name)]


@pytest.mark.parametrize(
    "argv, from_args, default",
    [
        (["tune", "m.onnx", "-o", "r"], tune_options_from_args, TuneOptions),
        (["transfer", "m.onnx", "-o", "r"], transfer_options_from_args, TransferOptions),
        (["tune", "m.onnx", "-o", "r", "--droplet"], droplet_options_from_args, DropletOptions),
        (["transfer", "m.onnx", "-o", "r", "--droplet"], droplet_options_from_args, DropletOptions),
        (["records", "retime", "a", "-o", "b"], measure_options_from_args, MeasureOptions),
        (["compile", "m.onnx"], pipeline_options_from_args, PipelineOptions),
        (["compile", "m.onnx"], lowering_from_args, Lowering),
        (["compile", "m.onnx", "--cross-compiler", "cc"], cross_from_args, lambda: CrossCompiler("cc")),
    ],
    ids=["tune", "transfer", "tune-droplet", "transfer-droplet", "retime-measure", "compile-pipeline", "compile-lowering", "compile-cross"],
)
def test_a_bare_command_line_builds_the_option_classes_defaults(argv, from_args, default):
    differences = _differences(from_args(_args(*argv)), default())
    assert not differences, f"'tvmc {' '.join(argv)}' and {from_args.__name__} disagree with the class:\n" + "\n".join(differences)


def test_transfer_measures_each_batch_twice_by_default_and_tune_once():
    # The one command default that differs from its class's: transfer's MeasureOptions (passes=2, its own default).
    assert _args("transfer", "m.onnx", "-o", "r").passes == TransferOptions().measure.passes == 2
    assert _args("tune", "m.onnx", "-o", "r").passes == MeasureOptions().passes == 1


def _actions(parser):
    for action in parser._actions:  # pylint: disable=protected-access
        if hasattr(action, "choices") and isinstance(action.choices, dict):  # subcommands
            for sub in action.choices.values():
                yield from _actions(sub)
        else:
            yield parser.prog, action


def test_every_default_a_help_text_prints_is_the_options_default():
    printed = 0
    for prog, action in _actions(build_parser()):
        match = re.search(r"default:? (\d[\d.e-]*\d|\d)", action.help or "")
        if match and isinstance(action.default, (int, float)) and not isinstance(action.default, bool):
            assert float(match.group(1)) == action.default, f"{prog} {action.option_strings}: help says {match.group(1)}, default {action.default}"
            printed += 1
    assert printed > 20
    # --droplet-* default to None (given or not) and print DropletOptions' defaults
    tune = {a.dest: a.help for prog, a in _actions(build_parser()) if prog == "tvmc tune"}
    assert f"(default {DropletOptions().trials})" in tune["droplet_trials"]
    assert f"(default {DropletOptions().pvalue})" in tune["droplet_pvalue"]
