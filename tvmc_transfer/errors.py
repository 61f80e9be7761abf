"""User errors: the one exception type for a user's mistake, and a TVM error reduced to one line.

Commands raise ``TVMCException("what is wrong and what to do")``; the driver prints it as a single
``Error: ...`` line and exits non-zero. Anything else that escapes is a bug and keeps its traceback.
"""


class TVMCException(Exception):
    """A problem with the user's input or environment, worded for the user."""


def one_line(err: BaseException, limit: int = 300) -> str:
    """A TVM error reduced to the one line a user reads: its last non-empty line (TVM prints the traceback
    first and the reason last), at most ``limit`` characters; the exception's type when it has no text."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    return (lines[-1] if lines else type(err).__name__)[:limit]
