"""``tvmc run --profile``: time every kernel and VM builtin of a package, through the Relax VM's instrument hook.

TVM 0.27 has no Relax VM profiler (0.19's came with the graph debug executor). The VM calls an instrument
before and after each call instruction; timing between the two gives each kernel's time. CPU kernels return
when done, so the wall clock is right there; on an asynchronous device the device is synchronized after each
call, which also makes the times right.
"""

import time

import attrs


@attrs.frozen
class ProfileRow:
    """One called function: its name, calls per inference, and time per inference in milliseconds."""

    name: str
    calls: int
    ms: float


def profile_vm(vm, device, args: list, runs: int = 10) -> tuple:
    """Run ``vm["main"](*args)`` ``runs`` times with every call timed; rows, slowest first."""
    totals, counts, started = {}, {}, []

    def instrument(func, name, before_run, ret_value, *call_args):  # pylint: disable=unused-argument
        if before_run:
            started.append(time.perf_counter())
        else:
            if device.dlpack_device_type() != 1:  # not a CPU: wait for the kernel itself
                device.sync()
            elapsed = time.perf_counter() - started.pop()
            totals[name] = totals.get(name, 0.0) + elapsed
            counts[name] = counts.get(name, 0) + 1
        return 0  # VMInstrumentReturnKind.NO_OP

    vm["main"](*args)  # the first run allocates and loads: leave it out
    vm.set_instrument(instrument)
    for _ in range(runs):
        vm["main"](*args)
    rows = [ProfileRow(name, counts[name] // runs, totals[name] * 1e3 / runs) for name in totals]
    return tuple(sorted(rows, key=lambda r: -r.ms))


def format_profile(rows) -> str:
    """The table ``tvmc run --profile`` prints: name, calls, time per inference, share of the total."""
    total = sum(r.ms for r in rows) or 1.0
    width = max([len("name")] + [len(r.name) for r in rows])
    lines = [f"{'name':<{width}}  {'calls':>5}  {'time (ms)':>10}  {'percent':>7}"]
    lines += [f"{r.name:<{width}}  {r.calls:>5}  {r.ms:>10.4f}  {100 * r.ms / total:>6.2f}%" for r in rows]
    lines.append(f"{'total':<{width}}  {sum(r.calls for r in rows):>5}  {total:>10.4f}  {100.0:>6.2f}%")
    return "\n".join(lines)
