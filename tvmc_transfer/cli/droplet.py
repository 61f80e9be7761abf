"""``--droplet`` for ``tvmc tune`` and ``tvmc transfer``: refine each kernel's best schedule with droplet search
after evolutionary search or after transfer.

Registered as an option hook of both commands, the way a plugin would; TVM is imported only when it runs.
"""

from ..errors import TVMCException
from ..tune.option_defaults import DROPLET_PVALUE, DROPLET_TRIALS
from .common import shown
from .registry import OptionHook, register_option_hook


def add_arguments(parser) -> None:
    group = parser.add_argument_group("droplet search")
    group.add_argument("--droplet", action="store_true", help="then refine each kernel's best schedule with droplet search")
    group.add_argument("--droplet-trials", type=int, metavar="N", help=f"most schedules droplet tries per task, recorded ones included (default {DROPLET_TRIALS})")
    group.add_argument("--droplet-pvalue", type=float, metavar="P", help=f"chance of a false move per batch: t-tests, Holm-corrected over the batch (default {shown(DROPLET_PVALUE)})")
    group.add_argument("--droplet-max-step", type=int, metavar="S", help="widest step along an axis (default: the longest axis)")
    group.add_argument("--droplet-diagonal", type=int, metavar="K", help="after a batch without a move, try combinations of its K fastest directions (default 0: off)")
    group.add_argument("--droplet-axis-order", action="store_true", default=None, help="measure neighbours axis by axis, not in the order a cost model trained on the records predicts")


def apply(args, plan) -> None:
    flags = ("droplet_trials", "droplet_pvalue", "droplet_max_step", "droplet_diagonal", "droplet_axis_order")
    given = [name for name in flags if getattr(args, name) is not None]
    if not args.droplet:
        if given:
            raise TVMCException(f"--{given[0].replace('_', '-')} needs --droplet")
        return
    if args.repeat < 2:
        raise TVMCException("--droplet compares repeated measurements with a t-test: use --repeat 2 or more")
    from ..droplet.phase import droplet_phase  # pylint: disable=import-outside-toplevel

    plan.phases.append(droplet_phase(droplet_options_from_args(args)))  # tune's Plan or transfer's


def droplet_options_from_args(args):
    """The ``DropletOptions`` of the ``--droplet-*`` options given; those left out keep the class's defaults."""
    from ..droplet.phase import DropletOptions  # pylint: disable=import-outside-toplevel

    given = {"trials": args.droplet_trials, "pvalue": args.droplet_pvalue, "max_step": args.droplet_max_step, "diagonal": args.droplet_diagonal}
    return DropletOptions(**{name: value for name, value in given.items() if value is not None}, model_order=not args.droplet_axis_order)


for command in ("tune", "transfer"):
    register_option_hook(command, OptionHook(add_arguments, apply))
