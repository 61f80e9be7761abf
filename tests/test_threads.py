"""TVM's thread pool gets one thread per physical core (TVM alone takes half the logical CPUs on x86)."""

import os
import subprocess
import sys

from tvmc_transfer.threads import physical_cores, size_thread_pool, usable_cpus

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def fake_sysfs(root, cores_of_cpus: dict) -> str:
    """A /sys/devices/system/cpu with ``cpu -> (package, core)`` topology files."""
    for cpu, (package, core) in cores_of_cpus.items():
        topology = root / f"cpu{cpu}" / "topology"
        topology.mkdir(parents=True)
        (topology / "physical_package_id").write_text(f"{package}\n")
        (topology / "core_id").write_text(f"{core}\n")
    return str(root)


def test_smt_siblings_count_once(tmp_path):
    sysfs = fake_sysfs(tmp_path, {0: (0, 0), 1: (0, 1), 2: (0, 0), 3: (0, 1), 4: (1, 0), 5: (1, 0)})
    assert physical_cores([0, 1, 2, 3], sysfs) == 2  # two cores, two hardware threads each
    assert physical_cores([0, 1, 2, 3, 4, 5], sysfs) == 3  # core 0 of the second package is another core
    assert physical_cores([0, 2], sysfs) == 1


def test_cores_without_smt_all_count(tmp_path):
    # a 2-vCPU cloud VM: two cores, one thread each. TVM alone would run one thread here.
    assert physical_cores([0, 1], fake_sysfs(tmp_path, {0: (0, 0), 1: (0, 1)})) == 2


def test_no_topology_counts_logical_cpus(tmp_path):
    assert physical_cores([0, 1, 2], str(tmp_path)) == 3
    assert physical_cores([], str(tmp_path)) == 1


def test_user_setting_is_kept():
    assert size_thread_pool({"TVM_NUM_THREADS": "1"}) == "TVM_NUM_THREADS=1"
    env = {"OMP_NUM_THREADS": "3"}
    assert size_thread_pool(env) == "OMP_NUM_THREADS=3" and "TVM_NUM_THREADS" not in env
    env = {"TVM_NUM_THREADS": " "}
    assert size_thread_pool(env) == f"TVM_NUM_THREADS={physical_cores()}" and env["TVM_NUM_THREADS"] == str(physical_cores())


def tvm_threads(env_update: dict, code: str) -> int:
    env = {k: v for k, v in os.environ.items() if k not in ("TVM_NUM_THREADS", "OMP_NUM_THREADS")}
    env.update(env_update)
    env["PYTHONPATH"] = REPO + os.pathsep + env.get("PYTHONPATH", "")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300, check=True)
    return int(out.stdout.strip().splitlines()[-1])


NUM_THREADS = "import tvm; print(tvm.get_global_func('runtime.NumThreads')())"


def test_tvm_pool_after_import_has_a_thread_per_core():
    assert tvm_threads({}, "import tvmc_transfer; " + NUM_THREADS) == physical_cores()
    assert tvm_threads({"TVM_NUM_THREADS": "1"}, "import tvmc_transfer; " + NUM_THREADS) == 1
    assert physical_cores() <= len(usable_cpus())


def test_measurement_workers_inherit_the_pool_size():
    """MetaSchedule's runner measures in a PopenWorker: its kernels run on as many threads as the package will."""
    code = (
        "import tvmc_transfer\n"
        "from tvm.support.popen_pool import PopenWorker\n"
        "import tvm\n"
        "def threads():\n"
        "    import tvm\n"
        "    return tvm.get_global_func('runtime.NumThreads')()\n"
        "worker = PopenWorker()\n"
        "worker.send(threads)\n"
        "print(worker.recv())\n"
    )
    assert tvm_threads({}, code) == physical_cores()
