"""Transfer-tuning: replay other models' tuned schedules on this model's kernels (``transfer_tune``).

The package follows one run: ``options`` (what to try), ``sources`` (records folders read by kernel class,
ranked, and each kernel's candidates), ``classes`` and ``replay`` (which schedules fit a kernel, and fitting
them), ``check`` (correct on random inputs?), ``kernel`` (one kernel's transfer), ``journal`` (resuming),
``report`` and ``run`` (``transfer_tune``), ``observer`` (what a caller sees of the loop).
"""

from .options import TransferOptions  # noqa: F401
from .observer import TransferObserver  # noqa: F401
from .report import KernelTransfer, TransferReport  # noqa: F401
from .run import transfer_tune  # noqa: F401
