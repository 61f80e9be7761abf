"""Argument groups and small helpers shared by several commands."""

import os

import numpy as np

from ..atomic import atomic_write
from ..errors import TVMCException
from .registry import apply_option_hooks


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
