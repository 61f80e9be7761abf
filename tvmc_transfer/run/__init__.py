"""Running a package: here or on a device behind an RPC tracker (``remote.py``), timed and checked against ONNX
Runtime (``module.py``), profiled kernel by kernel (``profiling.py``)."""
