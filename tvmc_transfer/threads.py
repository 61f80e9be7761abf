"""TVM's CPU thread pool sized to this machine's cores, not half of them.

TVM's runtime starts ``hardware_concurrency / 2`` threads on x86 when ``TVM_NUM_THREADS`` is not set: it
assumes two hardware threads per core. On a machine without SMT, such as the common 2-vCPU cloud VM, that is
one thread on two cores, and every kernel, every tuning measurement and every package ran at half the
machine (BENCHMARKS, session 13). The pool reads
``TVM_NUM_THREADS`` once, when the process runs its first parallel kernel, and MetaSchedule's runner workers
inherit it, so it is set when ``tvmc_transfer`` is imported, before any kernel runs: one thread per physical
core this process may use. A ``TVM_NUM_THREADS`` or ``OMP_NUM_THREADS`` the user set is left as it is.
"""

import os

SYSFS_CPU = "/sys/devices/system/cpu"


def usable_cpus() -> list:
    """The logical CPUs this process may run on."""
    return sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else list(range(os.cpu_count() or 1))


def physical_cores(cpus=None, sysfs: str = SYSFS_CPU) -> int:
    """How many physical cores the logical ``cpus`` (by default the usable ones) sit on: hardware threads of one
    core (SMT siblings) count once. Without topology information, every logical CPU counts as a core."""
    cpus = usable_cpus() if cpus is None else cpus
    cores = set()
    for cpu in cpus:
        topology = os.path.join(sysfs, f"cpu{cpu}", "topology")
        try:
            with open(os.path.join(topology, "physical_package_id")) as package, open(os.path.join(topology, "core_id")) as core:
                cores.add((package.read().strip(), core.read().strip()))
        except OSError:
            cores.add(("cpu", str(cpu)))
    return max(1, len(cores))


def size_thread_pool(environ=None) -> str:
    """Set ``TVM_NUM_THREADS`` to the physical core count unless the user set the pool's size; returns the
    variable and value that decide it, e.g. ``"TVM_NUM_THREADS=2"``."""
    environ = os.environ if environ is None else environ
    for name in ("TVM_NUM_THREADS", "OMP_NUM_THREADS"):
        if environ.get(name, "").strip():
            return f"{name}={environ[name]}"
    environ["TVM_NUM_THREADS"] = str(physical_cores())
    return f"TVM_NUM_THREADS={environ['TVM_NUM_THREADS']}"
