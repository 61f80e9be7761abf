"""Transfer-tuning: replay other models' tuned schedules on this model's kernels (``transfer_tune``)."""

from .run import TransferOptions, TransferPlan, TransferReport, TransferSession, transfer_tune  # noqa: F401
