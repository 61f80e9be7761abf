"""The defaults of ``TuneOptions``, ``DropletOptions`` and ``TransferOptions``, written once.

Those classes take their defaults from here, and so does the command line (``cli/``), which uses and prints them:
the classes' own modules import TVM, which ``tvmc --help`` must not (the light option classes, ``MeasureOptions``,
``Lowering``, ``PipelineOptions``, ``CrossCompiler``, the command line reads directly). tests/test_cli_options.py
checks that what each command builds from a bare command line equals its option classes' defaults.
"""

# Evolutionary search: `tvmc tune`, and `tvmc transfer --tune-rest` for the kernels no source matches.
TRIALS = 1000  # over all tasks, recorded ones included
TRIALS_PER_ITER = 64  # candidates per batch unless --trials-per-iter says (fewer when the budget is small)
POPULATION = None  # None: sized to the batch (population_for)
POPULATION_HELP = "default: the batch, at least 64 and at most 512"
SEED = 0  # of the search; transfer's also seeds its random check inputs

# Droplet search (`--droplet`).
DROPLET_TRIALS = 64  # per task, recorded ones included
DROPLET_PVALUE = 0.05  # chance of a false move per batch

# Transfer-tuning.
MAX_CANDIDATES = 1  # best records of each matching source kernel
MEASURE_TOP = 8  # candidates measured per batch, in the cost model's order
SOURCE_MODES = {"auto": "the best-ranked sources until coverage stops growing", "all": "every source"}
SOURCES = "all"
TUNE_REST = 0  # trials of evolutionary search for the kernels no source matches
RTOL = 1e-3  # largest error of a candidate, relative to the largest reference value
E2E_REPEAT = 10  # end-to-end runs timed
PASSES = 2  # measurements of each batch: the stopping rule of --measure-top compares batches


def population_for(batch: int) -> int:
    """The evolutionary search's population for batches of ``batch`` candidates: the batch, 64 to 512. At
    MetaSchedule's 512 much of a run (most of a small one) went to mutating candidates never measured; 64 reached
    the same latency in the same wall time, on a tiny CNN and on ResNet-50's heaviest kernels (BENCHMARKS, session
    24)."""
    return min(512, max(64, batch))
