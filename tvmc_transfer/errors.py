"""The one exception type for a user's mistake.

Commands raise ``TVMCException("what is wrong and what to do")``; the driver prints it as a single
``Error: ...`` line and exits non-zero. Anything else that escapes is a bug and keeps its traceback.
"""


class TVMCException(Exception):
    """A problem with the user's input or environment, worded for the user."""
