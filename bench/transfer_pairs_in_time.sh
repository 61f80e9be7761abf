#!/bin/bash
# The zoo pairs as a user runs them: `tvmc transfer --droplet --time-limit T` (T: each pair's search time of
# 2026-11-26, less a margin), each result compiled, then every package of a target timed side by side in one
# process with the untuned and fully tuned ones (bench/transfer_bench.py --shares prints each share of full
# tuning's speedup). Issue 15's acceptance 2.
#
#   bash bench/transfer_pairs_in_time.sh OUT UNTUNED_AND_FULL_PACKAGES [LABEL=PACKAGE_FOLDER ...]
#
# OUT: a new folder for the records, reports and packages. UNTUNED_AND_FULL_PACKAGES: a folder with
# <model>-untuned.tar and <model>-full*.tar (transfer_bench.py's `packages`, from the same records). Extra
# LABEL=FOLDER arguments add the <target>-from-<source>.tar packages of earlier runs to the timing.
# Environment: RECORDS (default bench/work) holds <model>-$TAG-records; TAG (default znver3-nhwc);
# PAIRS (default below: source:target:seconds); TRIALS (droplet trials per kernel, default 8); ROUNDS (5).
set -euo pipefail
[ $# -ge 2 ] || { echo "usage: $0 OUT UNTUNED_AND_FULL_PACKAGES [LABEL=PACKAGE_FOLDER ...]" >&2; exit 2; }
OUT=$1; BASE=$2; shift 2
cd "$(dirname "$0")/.."
RECORDS=${RECORDS:-bench/work}; TAG=${TAG:-znver3-nhwc}; TRIALS=${TRIALS:-8}; ROUNDS=${ROUNDS:-5}
PAIRS=${PAIRS:-"resnet50:alexnet:110 googlenet:alexnet:90 alexnet:resnet50:335 googlenet:resnet50:265"}
mkdir -p "$OUT"
for spec in $PAIRS; do
  IFS=: read -r src dst limit <<< "$spec"
  [ -f "$OUT/$dst.onnx" ] || tvmc zoo "$dst" -o "$OUT/$dst.onnx" > /dev/null
  echo "=== $src -> $dst, --time-limit $limit ($(date +%T))"
  tvmc transfer "$OUT/$dst.onnx" --from "$RECORDS/$src-$TAG-records" -o "$OUT/$src-to-$dst-records" --no-library --droplet \
    --droplet-trials "$TRIALS" --time-limit "$limit" --target native --no-e2e --report "$OUT/$src-to-$dst.json" 2>&1 \
    | grep -v "^droplet #\|^transfer: \["
  tvmc compile "$OUT/$dst.onnx" --tuning-records "$OUT/$src-to-$dst-records" --no-default-schedules --target native \
    -o "$OUT/$dst-from-$src.tar" > /dev/null
done
for dst in $(for spec in $PAIRS; do echo "${spec#*:}" | cut -d: -f1; done | sort -u); do
  packages=()
  for spec in $PAIRS; do
    IFS=: read -r src to _ <<< "$spec"
    [ "$to" = "$dst" ] || continue
    packages+=("this:$src=$OUT/$dst-from-$src.tar")
    for extra in "$@"; do
      [ -f "${extra#*=}/$dst-from-$src.tar" ] && packages+=("${extra%%=*}:$src=${extra#*=}/$dst-from-$src.tar")
    done
  done
  full=$(ls "$BASE/$dst"-full*.tar | head -1)
  python bench/transfer_bench.py --shares "$OUT/$dst.onnx" --untuned "$BASE/$dst-untuned.tar" --full "$full" --packages "${packages[@]}" --rounds "$ROUNDS"
done
