"""Pooling kernels' ``schedule_rule`` annotation, answered without TVM's warning.

TOPI's pooling operators (which ``LegalizeOps`` uses) annotate their block with ``schedule_rule =
"meta_schedule.pool_max"`` (or ``pool_avg``, ``adaptive_pool_max``, ``adaptive_pool_avg``). MetaSchedule's
``ApplyCustomRule`` looks up a function ``s_tir.meta_schedule.<target key>.<rule>``; TVM 0.27 registers none for
these, so on every design space of a pooling kernel (each compile's default schedules, each tune) it logged
``Unknown schedule rule "meta_schedule.pool_max" ...``, removed the annotation and let the other rules
schedule the block. The functions below do exactly that without the warning.

Removing the annotation from the kernels instead would change their workloads: every tuning record of a
pooling kernel (the zoo's, the shipped library's) would stop matching. Here the workload is unchanged and the
design space too, down to the trace (its ``Unannotate`` step included), so those records match and replay as before.
"""

RULES = ("pool_max", "pool_avg", "adaptive_pool_max", "adaptive_pool_avg")
KEYS = ("cpu", "gpu")  # every CPU target has the key "cpu" (llvm, arm_cpu), every GPU target "gpu"


def _unannotate(sch, block):
    """What ``ApplyCustomRule`` does for a rule it cannot find, less the warning."""
    sch.unannotate(block, "schedule_rule")
    return [sch]


def register_pool_rules() -> None:
    """Register ``s_tir.meta_schedule.<key>.meta_schedule.<rule>`` for the pooling rules (once per process)."""
    import tvm  # pylint: disable=import-outside-toplevel

    for key in KEYS:
        for rule in RULES:
            name = f"s_tir.meta_schedule.{key}.meta_schedule.{rule}"
            if tvm.get_global_func(name, allow_missing=True) is None:
                tvm.register_global_func(name, _unannotate)
