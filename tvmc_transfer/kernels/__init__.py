"""One kernel, whatever phase looks at it: its identity (``kernel.py``: index, task name, weight, FLOPs; each
phase's row extends it) and class (``classes.py``: which kernels compute the same thing up to shapes), a
recorded schedule replayed on it (``replay.py``), its numerical check against the unscheduled kernel
(``check.py``) and its prepacked weight layouts computed in NumPy (``weight_layouts.py``).
Records, defaults and transfer all build on these; nothing here knows about them."""
