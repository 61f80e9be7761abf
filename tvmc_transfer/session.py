"""One session, one plan of phases: what ``tune``, ``transfer`` and droplet search share.

A command (``tune_model``, ``transfer_tune``) opens its records folder once and works in a ``Session``; a
``Plan`` lists the ``Phase``s that run after the command's own search, on the same session (``tvmc tune
--droplet`` and ``tvmc transfer --droplet`` append ``droplet_phase``). Plugins extend a plan through an option
hook (``main.register_option_hook``) and write phases the same way.

>>> def count(session):                                              # doctest: +SKIP
...     return MyReport(len(session.tasks))            # anything with summary() and to_json()
>>> tune_model(model, target, "records", plan=Plan([count]))         # doctest: +SKIP
"""

from typing import Callable, Protocol

import attrs


class PhaseReport(Protocol):
    """What a phase returns: a summary for the terminal and the same as plain data for JSON reports."""

    def summary(self) -> str: ...

    def to_json(self) -> dict: ...


@attrs.frozen
class Session:
    """What a command and its later phases work on: the model, the target, the kernels to work on (for
    transfer's phases, those with a measured record), the open records folder (``records.RecordsFolder``) and
    the command's options (``options.measure`` is the measurement protocol every phase uses), and when the
    command's time is up (``time.monotonic()``; None: no limit): a phase starts no batch after it."""

    model: object
    target: object
    tasks: list
    folder: object
    options: object
    deadline: float | None = None

    @property
    def database(self):
        """The folder's MetaSchedule database."""
        return self.folder.database

    @property
    def records(self) -> str:
        """The folder's path."""
        return self.folder.path

    def run(self, plan: "Plan | None") -> tuple:
        """Run the plan's phases in order on this session; their reports, in order."""
        return tuple(phase(self) for phase in plan.phases) if plan is not None else ()


Phase = Callable[[Session], PhaseReport]


@attrs.define
class Plan:
    """What a command does after its own search, open to plugins: ``phases`` run in order, each as
    ``phase(session) -> PhaseReport``. A ``tune`` phase such as ``droplet_phase`` works after ``transfer``
    unchanged.

    >>> plan = Plan([droplet_phase(DropletOptions(trials=16))])                # doctest: +SKIP
    """

    phases: list = attrs.field(factory=list)

