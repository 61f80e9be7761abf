"""``TransferOptions``: how transfer-tuning picks, checks and measures candidates."""

import attrs

from ..build.lowering import Lowering
from ..errors import TVMCException
from ..tune.measure import MeasureOptions
from ..tune.option_defaults import E2E_REPEAT, MAX_CANDIDATES, MEASURE_TOP, PASSES, POPULATION, RTOL, SEED, SOURCE_MODES, SOURCES, TUNE_REST


def _positive_or_none(name, unlimited="left out"):
    def check(_instance, _attribute, value):
        if value is not None and value < 1:
            raise TVMCException(f"--{name} must be at least 1 (or {unlimited} for no limit), got {value}")

    return check


@attrs.frozen
class TransferOptions:
    """How transfer-tuning picks, ranks, checks and measures candidates.

    ``max_candidates``: the best k records of every matching source workload are tried (None: every record).
    ``max_per_kernel``: at most this many candidates per target kernel, source workloads of the nearest shapes
    first (None: no cap). ``sources``: ``"auto"`` uses the best-ranked sources until the class coverage of the
    target stops growing, ``"all"`` every source. ``tune_rest``: trials of ``tvmc tune`` for the kernels no
    source matches. ``rtol``: largest error, relative to the largest reference value, a candidate may have.
    ``exact_classes``: a kernel takes only schedules of its own class; by default a kernel whose class no source
    holds takes those of kernels with the same anchor and another epilogue (``kernels/classes.py``), the two epilogues
    fitted to each other (``kernels/replay.py``). ``measure_top``: a kernel's candidates are ranked by the shipped cost
    model (``defaults/cost_model.py``; nearest shapes first without it), then built, checked and measured in that
    order, K at a time: the first K with the unscheduled kernel, and the next K only while the last batch beat
    everything measured before it with one of its lower-ranked half (None: every candidate, unranked).
    ``use_library``: the schedule library shipped for the target's CPU family (``defaults/library.py``) is a
    source besides the records folders given; False leaves it out (a held-out experiment, say).
    """

    max_candidates: int | None = attrs.field(default=MAX_CANDIDATES, validator=_positive_or_none("max-candidates"))
    max_per_kernel: int | None = attrs.field(default=None, validator=_positive_or_none("max-per-kernel"))
    measure_top: int | None = attrs.field(default=MEASURE_TOP, validator=_positive_or_none("measure-top", "'all'"))
    sources: str = SOURCES
    use_library: bool = True
    tune_rest: int = TUNE_REST
    population: int | None = POPULATION  # evolutionary search population for --tune-rest (None: sized to the batch)
    seed: int = SEED
    rtol: float = RTOL
    e2e: bool = True
    e2e_repeat: int = E2E_REPEAT
    time_limit: float | None = None  # seconds; no new kernel or batch (droplet's too) is started after it (the next run goes on)
    exact_classes: bool = False
    measure: MeasureOptions = attrs.field(factory=lambda: MeasureOptions(passes=PASSES))  # a batch measured twice: the stopping rule compares
    lowering: Lowering = attrs.field(factory=Lowering)  # of the target's kernels (the sources' records match it)

    def __attrs_post_init__(self):
        if self.sources not in SOURCE_MODES:
            raise TVMCException(f"--sources must be one of {', '.join(SOURCE_MODES)}, got '{self.sources}'")
        if self.tune_rest < 0 or (self.population is not None and self.population < 2):
            raise TVMCException("--tune-rest must be >= 0 and --population >= 2")
        if not 0 < self.rtol < 1 or self.e2e_repeat < 1:
            raise TVMCException("--rtol must be in (0, 1) and the end-to-end repeat at least 1")
        if self.time_limit is not None and self.time_limit <= 0:
            raise TVMCException("--time-limit must be a positive number of seconds")
