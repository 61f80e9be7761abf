"""User errors: the one exception type for a user's mistake, and a TVM error reduced to one line.

Commands raise ``TVMCException("what is wrong and what to do")``; the driver prints it as a single
``Error: ...`` line and exits non-zero. Anything else that escapes is a bug and keeps its traceback.
"""

import contextlib
import logging
import os
import re

# What TVM prints around the reason: a printed IR module or expression (TVMScript), a Python or C++ traceback.
# A user saw the last line of such an error as the reason: "# Metadata omitted. Use show_meta=True ...".
_IR_OR_TRACE = re.compile(r"(#|@|class |def |with |return |[RTI]\.|metadata\[|\w+(: .+)? = [RTI]\.|Traceback \(most recent call last\)|File \")")
_OPERATOR = re.compile(r"^(?:\w+(?:: [^=]+)? = )?(R\.[\w.]+)\(")  # a printed call: "R.nn.conv2d_transpose(x, ...)"


class TVMCException(Exception):
    """A problem with the user's input or environment, worded for the user."""


def one_line(err: BaseException, limit: int = 300) -> str:
    """A TVM error reduced to the one line a user reads, at most ``limit`` characters.

    TVM's errors are a traceback then the reason (``Check failed: (cond) is false: message``), or a reason
    followed by the IR it is about. The reason is the last ``Check failed`` line, else the last line that is
    neither IR nor traceback (nor a header such as ``Offending call:``); an operator printed alone on a line
    (``R.nn.conv2d_transpose(...)``) is named after it. The exception's type when there is no text.

    >>> one_line(RuntimeError("CodeGenVM cannot emit this Relax operator directly.\\nOffending call:\\nR.nn.pad(x)\\n# Metadata omitted."))
    'CodeGenVM cannot emit this Relax operator directly. (R.nn.pad)'
    """
    raw = [line for line in str(err).splitlines() if line.strip()]
    reasons = [line.strip() for line in raw if not line[0].isspace() and not _IR_OR_TRACE.match(line.strip())]
    checks = [line for line in reasons if "Check failed" in line]
    plain = [line for line in reasons if not line.endswith(":")] or reasons
    reason = (checks or plain or [type(err).__name__])[-1]
    operators = [m.group(1) for m in map(_OPERATOR.match, raw) if m]
    if operators and operators[0] not in reason:
        reason = f"{reason} ({operators[0]})"
    return reason[:limit]


def raised_by_us(err: BaseException) -> bool:
    """Whether ``err`` was raised in this package's own code (a bug: it keeps its traceback), not inside TVM
    or another library it called."""
    frames, tb = [], err.__traceback__
    while tb is not None:
        frames.append(tb.tb_frame.f_code.co_filename)
        tb = tb.tb_next
    package = os.path.dirname(os.path.abspath(__file__)) + os.sep
    return bool(frames) and os.path.abspath(frames[-1]).startswith(package)


@contextlib.contextmanager
def tvm_errors(what: str, hint: str | None = None):
    """Inside the block, an error raised in TVM becomes ``TVMCException("WHAT failed: REASON; HINT")``: one
    ``Error:`` line with TVM's reason (``one_line``) and what to try. ``-vv`` logs TVM's whole error.
    Errors raised by this package's own code stay as they are: a traceback is how a bug gets reported.

    >>> with tvm_errors("compilation", "try --desired-layout NCHW"):              # doctest: +SKIP
    ...     relax.build(mod, target)
    """
    try:
        yield
    except TVMCException:
        raise
    except Exception as err:  # pylint: disable=broad-except  # tvm.error.*, and whatever TVM's Python raises
        if raised_by_us(err):
            raise
        logging.getLogger("tvmc").debug("%s failed inside TVM", what, exc_info=True)
        tail = f"; {hint}" if hint else ""
        raise TVMCException(f"{what} failed: {one_line(err)}{tail} (-vv shows TVM's whole error)") from None


def lowering_hint(target, lowering) -> str | None:
    """What to try when TVM fails on a model under ``lowering`` (a ``lowering.Lowering``): without the layout
    conversion (the step that most often meets an operator TVM cannot carry through it: a ``conv2d_transpose``
    TVM 0.27 legalizes only in NCHW), else without weight prepacking; None when the lowering has neither."""
    if (lowering.layout_for(target) or "NCHW") != "NCHW":
        return "try --desired-layout NCHW"
    if lowering.prepacks(target):
        return "try --no-weight-prepack"
    return None
