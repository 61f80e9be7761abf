"""Rebuild the schedule library that ``tvmc compile`` applies when it is given no tuning records, and that
``tvmc transfer`` transfers from (besides any ``--from`` folders).

Takes the best --top-k measured records of every workload in the records folders (tuned on processors of the
family) and writes them, with their workloads, to one xz-compressed file in tvmc_transfer/data/. A workload that
several folders hold (ResNet-50 tuned on a Zen 4 and a Zen 5) is written once, with the fastest of all its
records. A folder that is not there is unpacked from FOLDER.tar.xz first (``records/archive.py``).

The shipped AVX2 library is every zoo records set tuned on a Zen 3: in NHWC with weight prepacking on two
threads (the default lowering on AVX2; ``<model>-znver3-nhwc-records.tar.xz``, MobileNetV2's included) and
ResNet-50, GoogLeNet and AlexNet in NCHW without prepacking on one thread (``<model>-records``: what generic
x86-64 targets, whose default layout is the model's own, take from it):

    python -m tvmc_transfer.cli.build_library bench/work/resnet50-records bench/work/googlenet-records \
        bench/work/alexnet-records bench/work/resnet50-znver3-nhwc-records bench/work/googlenet-znver3-nhwc-records \
        bench/work/alexnet-znver3-nhwc-records bench/work/mobilenet_v2-znver3-nhwc-records \
        --family "x86-64 AVX2+FMA" --arch x86_64 --requires avx2 fma \
        --version 2026.12-5 -o tvmc_transfer/data/schedules-x86-avx2.json.xz

The shipped AVX-512 library is every zoo records set tuned on a Zen 4 or Zen 5: the four models in NHWC with
weight prepacking (the default lowering on AVX-512; ResNet-50 on both processors), and ResNet-50 and AlexNet in
NCHW with prepacking (Zen 5: what a model whose layout conversion falls back, or ``--desired-layout NCHW``,
takes from it). The Winograd records sets (``*-winograd-records``) are left out: their kernels exist only with
``--winograd``.

    python -m tvmc_transfer.cli.build_library bench/work/resnet50-znver4-nhwc-records \
        bench/work/googlenet-znver4-nhwc-records bench/work/alexnet-znver4-nhwc-records \
        bench/work/mobilenet_v2-znver4-nhwc-records bench/work/resnet50-znver5-nhwc-records \
        bench/work/resnet50-znver5-records bench/work/alexnet-znver5-records \
        --family "x86-64 AVX-512" --arch x86_64 --requires avx512f avx512bw avx512dq avx512vl avx2 fma \
        --version 2026.12-4 -o tvmc_transfer/data/schedules-x86-avx512.json.xz

A library for another family (Arm NEON, ...) is the same command on records tuned there, with the
features that family requires; ``tvmc compile`` and ``tvmc transfer`` pick the most specific library the target
has the features of (or, outside every family of its architecture, the least specific one).
"""

import argparse
import os

from ..errors import TVMCException


def main(argv=None) -> None:
    """``python -m tvmc_transfer.cli.build_library``: a maintainer's tool, not a ``tvmc`` command."""
    from ..defaults.library import write_library  # pylint: disable=import-outside-toplevel
    from ..records.archive import unpacked

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folders", nargs="+", help="records folders, tuned on processors of the family (FOLDER.tar.xz is unpacked when only it is there)")
    parser.add_argument("-o", "--output", required=True, help="library file (.json.xz)")
    parser.add_argument("--family", required=True, help='what processors it is for, in words ("x86-64 AVX2+FMA")')
    parser.add_argument("--arch", required=True, help="LLVM architecture of the processor (x86_64, aarch64)")
    parser.add_argument("--requires", nargs="+", required=True, help="LLVM CPU features a target must have")
    parser.add_argument("--version", required=True, help="library version, recorded in packages built with it")
    parser.add_argument("--top-k", type=int, default=3, help="best records kept per workload (default 3)")
    args = parser.parse_args(argv)
    try:
        folders = [unpacked(folder) for folder in args.folders]
        header = write_library(args.output, folders, args.family, args.arch, args.requires, args.version, args.top_k)
    except TVMCException as err:
        raise SystemExit(f"Error: {err}") from None
    print(f"{args.output}: {header['workloads']} workloads, best {args.top_k} records each, tuned on "
          f"{header['tuned_on']}, {os.path.getsize(args.output) / 1e6:.2f} MB")


if __name__ == "__main__":
    main()
