"""``Kernel``: one kernel of a model as every phase names it; each phase's row for a kernel extends it."""

import attrs


@attrs.frozen
class Kernel:
    """A kernel of a model: its index in MetaSchedule's task order, its task name, its weight (uses per
    inference) and its FLOPs. Written once here; the row each phase keeps per kernel extends it with what that
    phase found: ``build.tasks.Task`` (the extracted task), ``tune.model.TaskResult``,
    ``defaults.schedules.KernelDefault``, ``transfer.report.KernelTransfer``, ``droplet.report.DropletTaskResult``.
    JSON reports call the name ``task``.

    >>> row = TaskResult.of(task, trials=8, best_seconds=1.5e-6)                 # doctest: +SKIP
    """

    index: int
    name: str
    weight: int
    flops: float

    @classmethod
    def of(cls, kernel: "Kernel", *fields, **named):
        """A ``cls`` row for ``kernel`` (any ``Kernel``, a ``Task`` or another phase's row): its identity, then
        ``cls``'s own fields."""
        return cls(kernel.index, kernel.name, kernel.weight, kernel.flops, *fields, **named)
