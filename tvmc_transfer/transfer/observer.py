"""``TransferObserver``: what a caller of ``transfer_tune`` sees of the loop while it runs, step by step.

A benchmark that asks where a transfer's time goes, or how each candidate fared, subclasses it and overrides
the methods it needs; every method here does nothing, and the loop runs the same with or without one. Each
kernel transferred in the run is seen once, in the order the loop takes them (heaviest first):
``kernel_started``, then its steps, then ``kernel_finished``. Kernels without candidates (unmatched), left for
the next run (pending) or read back from the journal are not transferred and not seen. Seconds are wall
seconds of the step; a check compiled in a thread overlaps the builds of its batch.

>>> class Counting(TransferObserver):                                                      # doctest: +SKIP
...     def kernel_finished(self, task, row):
...         print(task.name, row.measured)
>>> transfer_tune(model, target, ["a-records"], "b-records", observer=Counting())          # doctest: +SKIP
"""


class TransferObserver:
    """Called by ``transfer_tune`` (and ``transfer.kernel.transfer_kernel``) at each step of a kernel's transfer."""

    def kernel_started(self, task, candidates: list) -> None:
        """``task``'s transfer starts with ``candidates`` (``records.sources.Candidate``, nearest shapes first)."""

    def reference_ran(self, task, seconds: float) -> None:
        """The unscheduled kernel was built and run once: the reference every candidate is checked against."""

    def replayed(self, task, replayed: list, context, seconds: float) -> None:
        """Every candidate was replayed and post-processed: ``replayed`` the distinct schedules that fit, as
        ``[(schedule, candidate)]``, and ``context`` the ``TuneContext`` they were post-processed in (what
        ``defaults.cost_model.predicted_order`` ranks them in)."""

    def ranked(self, task, order: list, seconds: float) -> None:
        """``order``: the indices into ``replayed`` in the order they are checked and measured."""

    def checked(self, task, candidate, correct: bool, seconds: float, on_library: bool) -> None:
        """One candidate's numbers compared with the reference: on the library its build made (``on_library``)
        or compiled here."""

    def measured(self, task, batch: list, seconds_each: list, seconds: float) -> None:
        """One batch (``[(schedule, candidate)]``) built, checked and run: ``seconds_each`` each candidate's mean
        time, None for one that computed wrong numbers, or did not build or run; ``seconds`` the whole batch's."""

    def kernel_finished(self, task, row) -> None:
        """``task``'s transfer ended: ``row`` is its ``KernelTransfer``, as the report has it."""
