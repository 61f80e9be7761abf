"""Train the cost model that picks default schedules for kernels the schedule library does not cover.

MetaSchedule's XGBModel (per-store features, the score of a schedule relative to the fastest of its workload) is
fitted to every measured record of the records folders and its booster alone is saved (no cached features), so
the package ships a small file. The shipped model is exactly:

    python -m tvmc_transfer.cli.train_cost_model bench/work/resnet50-records bench/work/googlenet-records \
        bench/work/alexnet-records bench/work/resnet50-znver5-nhwc-records bench/work/googlenet-znver4-nhwc-records \
        bench/work/alexnet-znver4-nhwc-records -o tvmc_transfer/data/default_cost_model.ubj

(the zoo's NCHW records tuned on a Zen 3 and its NHWC prepacked records tuned on a Zen 5 and a Zen 4; what it
learned from and how long it took: BENCHMARKS, "The default cost model retrained with the NHWC records"; the
archives of the NHWC ones are committed, ``tar -xJf`` them).
"""

import argparse
import os
import time


def main(argv=None) -> None:
    """``python -m tvmc_transfer.cli.train_cost_model``: a maintainer's tool, not a ``tvmc`` command."""
    from ..defaults.cost_model import train_cost_model  # pylint: disable=import-outside-toplevel

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folders", nargs="+", help="records folders to learn from")
    parser.add_argument("-o", "--output", required=True, help="booster file (.ubj)")
    args = parser.parse_args(argv)
    start = time.time()
    records, workloads = train_cost_model(args.folders, args.output)
    print(f"{args.output}: trained on {records} records of {workloads} workloads in {time.time() - start:.0f} s, "
          f"{os.path.getsize(args.output) / 1e3:.0f} kB")


if __name__ == "__main__":
    main()
