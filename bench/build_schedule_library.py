"""Rebuild the schedule library that ``tvmc compile`` applies when it is given no tuning records.

Takes the best --top-k measured records of every workload in the records folders (tuned on processors of the family)
and writes them, with their workloads, to one xz-compressed file in tvmc_transfer/data/. The shipped AVX2
library is the zoo tuned on a Zen 3 twice: in NHWC with weight prepacking on two threads (the default layout on
AVX2; their archives are committed) and in NCHW without prepacking on one thread (what generic x86-64 targets,
whose default layout is the model's own, take from it):

    python bench/build_schedule_library.py bench/work/resnet50-records bench/work/googlenet-records \
        bench/work/alexnet-records bench/work/resnet50-znver3-nhwc-records bench/work/googlenet-znver3-nhwc-records \
        bench/work/alexnet-znver3-nhwc-records --family "x86-64 AVX2+FMA" --arch x86_64 --requires avx2 fma \
        --version 2026.12-4 -o tvmc_transfer/data/schedules-x86-avx2.json.xz

The shipped AVX-512 library is the zoo's records tuned in NHWC (the default layout on AVX-512) with weight
prepacking, ResNet-50 on an AMD Zen 5, GoogLeNet and AlexNet on a Zen 4 (their archives are committed;
``bench/common.records_folder`` or ``tar -xJf`` unpacks them):

    python bench/build_schedule_library.py bench/work/resnet50-znver5-nhwc-records \
        bench/work/googlenet-znver4-nhwc-records bench/work/alexnet-znver4-nhwc-records \
        --family "x86-64 AVX-512" --arch x86_64 --requires avx512f avx512bw avx512dq avx512vl avx2 fma \
        --version 2026.12-3 -o tvmc_transfer/data/schedules-x86-avx512.json.xz

A library for another family (Arm NEON, ...) is the same command on records tuned there, with the
features that family requires; ``tvmc compile`` picks the most specific library the target has the features of
(or, outside every family of its architecture, the least specific one).
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from tvmc_transfer.schedule_library import write_library  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folders", nargs="+", help="records folders, tuned on processors of the family")
    parser.add_argument("-o", "--output", required=True, help="library file (.json.xz)")
    parser.add_argument("--family", required=True, help='what processors it is for, in words ("x86-64 AVX2+FMA")')
    parser.add_argument("--arch", required=True, help="LLVM architecture of the processor (x86_64, aarch64)")
    parser.add_argument("--requires", nargs="+", required=True, help="LLVM CPU features a target must have")
    parser.add_argument("--version", required=True, help="library version, recorded in packages built with it")
    parser.add_argument("--top-k", type=int, default=3, help="best records kept per workload (default 3)")
    args = parser.parse_args()
    header = write_library(args.output, args.folders, args.family, args.arch, args.requires, args.version, args.top_k)
    print(f"{args.output}: {header['workloads']} workloads, best {args.top_k} records each, tuned on "
          f"{header['tuned_on']}, {os.path.getsize(args.output) / 1e6:.2f} MB")


if __name__ == "__main__":
    main()
