"""Cross-compilation: link a package (or a tuning candidate) for another machine with a compiler the user names.

tvmc 0.19's ``--cross-compiler aarch64-linux-gnu-gcc --cross-compiler-options "--sysroot=..."``. The compiler
may be several words (``"python -m ziglang cc"`` with ``--cross-compiler-options "-target aarch64-linux-gnu"``).
Without one, a target for another architecture is refused before the host linker fails on its object files.
"""

import shlex
import subprocess

import attrs

from ..errors import TVMCException

_SAME_ARCH = {"amd64": "x86_64", "arm64": "aarch64"}


@attrs.frozen
class CrossCompiler:
    """The compiler that links shared libraries for the target machine, and its extra options."""

    command: str
    options: str = ""

    def __attrs_post_init__(self):
        if not shlex.split(self.command or ""):
            raise TVMCException("--cross-compiler is empty; give the compiler, e.g. aarch64-linux-gnu-gcc")

    def link(self, output: str, objects: list, options: list | None = None) -> None:
        """Link ``objects`` into the shared library ``output`` (the ``fcompile`` protocol of ``export_library``)."""
        cmd = [*shlex.split(self.command), "-shared", "-fPIC", "-o", output, *shlex.split(self.options), *(options or []), *objects]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        except OSError as err:
            raise TVMCException(f"cannot run --cross-compiler '{self.command}': {err.strerror}") from None
        if proc.returncode != 0:
            lines = [line for line in (proc.stderr or proc.stdout).splitlines() if line.strip()]
            raise TVMCException(f"--cross-compiler failed: {(lines[-1] if lines else f'exit code {proc.returncode}')[:300]}")

    def fcompile(self):
        """A function ``export_library(path, fcompile=...)`` calls."""

        def fcompile(output, objects, options=None):
            self.link(output, list(objects), options)

        fcompile.output_format = "so"
        return fcompile


def _arch(triple: str) -> str:
    arch = triple.split("-")[0]
    return _SAME_ARCH.get(arch, arch)


def check_linkable(target, cross: CrossCompiler | None) -> None:
    """Refuse a target for another architecture without ``--cross-compiler``: the host linker cannot link it."""
    if cross is not None:
        return
    import tvm  # pylint: disable=import-outside-toplevel

    cpu = target if target.kind.name == "llvm" else target.host
    triple = str(cpu.attrs.get("mtriple") or "") if cpu is not None and cpu.kind.name == "llvm" else ""
    host = str(tvm.target.codegen.llvm_get_system_triple())
    if triple and _arch(triple) != _arch(host):
        raise TVMCException(
            f"the target is for {_arch(triple)} ({triple}) and this machine's linker links {_arch(host)} only; "
            f"give --cross-compiler, e.g. --cross-compiler {_arch(triple)}-linux-gnu-gcc, or "
            f"--cross-compiler 'python -m ziglang cc' --cross-compiler-options '-target {_arch(triple)}-linux-gnu'"
        )
