"""Argument groups and small helpers shared by several commands."""

import os

import attrs
import numpy as np

from ..atomic import atomic_write
from ..errors import TVMCException
from .registry import apply_option_hooks


def default_of(cls, name: str):
    """The default of field ``name`` of the attrs class ``cls`` (a factory's product): the command line uses and
    prints the option classes' own defaults, so each is written once.

    >>> from tvmc_transfer.tune.measure import MeasureOptions
    >>> default_of(MeasureOptions, "repeat")
    3
    """
    default = getattr(attrs.fields(cls), name).default
    return default.factory() if isinstance(default, attrs.Factory) else default


def shown(number) -> str:
    """A default as the help texts write it: ``10``, ``0.05``, and ``1e-3`` rather than ``0.001``."""
    short = f"{number:.0e}".replace("e-0", "e-")
    return short if 0 < abs(number) < 0.01 and float(short) == number else f"{number:g}"


def add_model_arguments(parser) -> None:
    parser.add_argument("model", metavar="MODEL", help="model file (.onnx; .pt2 torch.export programs need torch)")
    parser.add_argument("--model-format", choices=("onnx", "pytorch"), help="model format (default: from the suffix)")
    parser.add_argument("--input-shapes", metavar="SHAPES", help="static input shapes, e.g. 'input:[1,3,224,224]'")


def plan_from_args(command: str, args):
    """The command's plan of later phases, as the option hooks registered for it (``--droplet``, plugins)
    extend it from ``args``."""
    from ..session import Plan

    plan = Plan()
    apply_option_hooks(command, args, plan)
    return plan


def load_model_from_args(args):
    from ..frontends.load import load_model  # pylint: disable=import-outside-toplevel

    return load_model(args.model, args.model_format, args.input_shapes)


def save_npz(path: str, arrays: dict) -> None:
    """Write an .npz atomically: a reader never sees half a file."""
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise TVMCException(f"cannot write '{path}': folder '{folder}' does not exist")
    with atomic_write(path, "wb") as f:
        np.savez(f, **arrays)


def check_output_folder(path: str, what: str) -> None:
    """Fail before any work when an output cannot be written."""
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise TVMCException(f"cannot write {what} '{path}': folder '{folder}' does not exist")
