"""``--droplet`` for ``tvmc tune`` and ``tvmc transfer``: refine each kernel's best schedule with droplet search
after evolutionary search or after transfer.

Registered as an option hook of both commands, the way a plugin would; TVM is imported only when it runs.
"""

from ..errors import TVMCException
from .registry import OptionHook, register_option_hook


def add_arguments(parser) -> None:
    group = parser.add_argument_group("droplet search")
    group.add_argument("--droplet", action="store_true", help="then refine each kernel's best schedule with droplet search")
    group.add_argument("--droplet-trials", type=int, metavar="N", help="most schedules droplet tries per task, recorded ones included (default 64)")
    group.add_argument("--droplet-pvalue", type=float, metavar="P", help="chance of a false move per batch: t-tests, Holm-corrected over the batch (default 0.05)")
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
    from ..droplet.phase import DropletOptions, droplet_phase  # pylint: disable=import-outside-toplevel

    options = DropletOptions(
        trials=64 if args.droplet_trials is None else args.droplet_trials,
        pvalue=0.05 if args.droplet_pvalue is None else args.droplet_pvalue,
        max_step=args.droplet_max_step,
        diagonal=args.droplet_diagonal or 0,
        model_order=not args.droplet_axis_order,
    )
    plan.phases.append(droplet_phase(options))  # tune's TunePlan or transfer's TransferPlan


for command in ("tune", "transfer"):
    register_option_hook(command, OptionHook(add_arguments, apply))
