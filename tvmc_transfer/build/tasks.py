"""Tuning tasks: the fused kernels of a model, as MetaSchedule sees them.

``extract_tasks`` on a freshly imported module finds nothing; the fusion passes must run first, the same ones
the build runs (``lowering.py``), so that database keys match at compile time.
"""

import re

import attrs

from ..errors import TVMCException
from ..kernels.kernel import Kernel
from .lowering import Lowering, fuse, fusion_passes  # noqa: F401  (fusion_passes: where callers found it)


@attrs.frozen
class Task(Kernel):
    """One kernel to tune (``Kernel``: its index in the model, name, weight and FLOPs) and MetaSchedule's task."""

    extracted: object  # ms.ExtractedTask

    @property
    def mod(self):
        return self.extracted.dispatched[0]


def extract_tasks(model, target, lowering: Lowering = Lowering()) -> list:
    """The model's tuning tasks under ``lowering``, in MetaSchedule's order."""
    from tvm.s_tir import meta_schedule as ms  # pylint: disable=import-outside-toplevel

    extracted = ms.relax_integration.extract_tasks(fuse(model.mod, target, lowering), target)
    return [Task(i, t.task_name, int(t.weight), _flops(t.dispatched[0]), t) for i, t in enumerate(extracted)]


def _flops(mod) -> float:
    from tvm.s_tir.analysis import estimate_tir_flops  # pylint: disable=import-outside-toplevel

    try:
        return float(estimate_tir_flops(mod))
    except Exception:  # some kernels (pure data movement) have no countable FLOPs
        return 0.0


def heaviest_first(tasks) -> list:
    """``tasks`` by FLOPs times uses per inference, the heaviest first."""
    return sorted(tasks, key=lambda t: -t.flops * t.weight)


def costliest_first(tasks, best_seconds: dict) -> list:
    """``tasks`` by measured time times uses per inference, the costliest first, where ``best_seconds`` (task
    index -> seconds) knows it; then the others, heaviest first. FLOPs rank kernels of one kind, not kinds: a
    depthwise convolution does few FLOPs slowly, so its untuned time can outweigh a convolution's of several times its FLOPs."""
    known = sorted((t for t in tasks if best_seconds.get(t.index) is not None), key=lambda t: -best_seconds[t.index] * t.weight)
    return known + heaviest_first(t for t in tasks if best_seconds.get(t.index) is None)


def select_tasks(tasks: list, spec: str | None) -> list:
    """Pick tasks by a spec like ``"0,2-5"``; ``None`` or ``"all"`` keeps every task."""
    if spec is None or spec.strip() in ("", "all"):
        return list(tasks)
    chosen = set()
    for part in spec.split(","):
        match = re.fullmatch(r"\s*(\d+)\s*(?:-\s*(\d+)\s*)?", part)
        if not match:
            raise TVMCException(f"--tasks '{spec}' is not a list like 0,2-5 (or 'list' to show the tasks)")
        first, last = int(match.group(1)), int(match.group(2) or match.group(1))
        if last < first or last >= len(tasks):
            raise TVMCException(f"--tasks '{spec}': the model has tasks 0-{len(tasks) - 1}")
        chosen.update(range(first, last + 1))
    return [t for t in tasks if t.index in chosen]


def format_task_table(tasks: list) -> str:
    rows = [f"{'#':>3}  {'task':<40} {'weight':>6} {'MFLOP':>10}"]
    rows += [f"{t.index:>3}  {t.name[:40]:<40} {t.weight:>6} {t.flops / 1e6:>10.2f}" for t in tasks]
    return "\n".join(rows)
