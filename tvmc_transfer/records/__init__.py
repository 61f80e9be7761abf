"""Records folders: MetaSchedule's JSON database and the tools that read, merge and filter it."""

from .database import TUNING_RECORDS, WORKLOADS, copy_records, database_paths, is_measured, mean_seconds, open_database, records_digest, records_of, same_target, target_label  # noqa: F401
from .folder import RecordsFolder  # noqa: F401
