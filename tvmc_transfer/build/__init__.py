"""From a loaded model to kernels and back to a package: the lowering passes before tuning and the build after
it kept in step (``lowering.py`` with ``layout_conversion.py``, ``clamps.py``, ``winograd.py``, ``pool_rules.py``),
task extraction (``tasks.py``), the build pipeline and tvmc 0.19's pipeline options (``pipeline.py``), tensor
intrinsics (``intrinsics.py``), cross-compiling (``cross.py``) and the one-file package (``package.py``)."""
