"""``Journal``: transfer's record of finished kernels in the output folder, so that a rerun resumes."""

from ..records.folder import JOURNAL


class Journal:
    """One JSON line per finished kernel in the output folder (``transfer_journal.jsonl``), and one per session
    with its wall time; a rerun with the same fingerprint (sources, candidate limits, target) reads the
    kernels back instead of measuring them again."""

    def __init__(self, folder, fingerprint: str):
        self.folder = folder
        self.fingerprint = fingerprint
        self.done = {}
        self.sessions = 0.0  # wall time of every session on this output so far, this one's included as it goes
        for entry in folder.read_lines(JOURNAL):
            if entry.get("fingerprint") == fingerprint and "kernel" in entry:
                self.done[entry["workload"]] = entry["kernel"]
            if entry.get("fingerprint") == fingerprint and "session_seconds" in entry:
                self.sessions += float(entry["session_seconds"])

    def finished(self, workload: str, kernel) -> None:
        """Journal a finished kernel (a ``KernelTransfer``) under its workload hash."""
        self.folder.append_line(JOURNAL, {"fingerprint": self.fingerprint, "workload": workload, "kernel": kernel.to_json()})

    def session(self, seconds: float) -> None:
        self.folder.append_line(JOURNAL, {"fingerprint": self.fingerprint, "session_seconds": seconds})
        self.sessions += float(seconds)
