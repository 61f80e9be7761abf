#!/usr/bin/env bash
# The main job on a bundled model: write it, tune it, compile it, run it against ONNX Runtime.
# Usage: bash examples/quickstart.sh [MODEL] [TRIALS]   (default: tiny-cnn, 64 trials; try resnet50 2000)
set -euo pipefail
model=${1:-tiny-cnn}
trials=${2:-64}
work=${WORK:-quickstart}
mkdir -p "$work"
tvmc zoo "$model" -o "$work/$model.onnx"
tvmc tune "$work/$model.onnx" --target native --trials "$trials" -o "$work/$model-records"
tvmc compile "$work/$model.onnx" --target native --tuning-records "$work/$model-records" -o "$work/$model.tar"
tvmc compile "$work/$model.onnx" --target native -o "$work/$model-untuned.tar"
echo "untuned (default schedules):"; tvmc run "$work/$model-untuned.tar" --print-time --repeat 5 --number 3
echo "tuned:";   tvmc run "$work/$model.tar" --print-time --repeat 5 --number 3 --verify "$work/$model.onnx"
