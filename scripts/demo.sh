#!/usr/bin/env bash
# demo.sh: install dependencies, build the bitgrad tool, and run the end-to-end demo on the real
# Fashion-MNIST data (Debian's dataset-fashion-mnist): train a ResNet-20 FP32 teacher, train its W2A2
# student with quantization-aware training and VA-QKD distillation from it, export the student to the
# packed format, verify it layer by layer against the QAT model, and print one table of accuracy, size,
# latency and speed-up per kernel tier (runs/demo/). Extra arguments go to `bitgrad demo` (e.g.
# `bash scripts/demo.sh --student-epochs 8`); see `bitgrad demo --help`. With PyTorch installed
# (`scripts/setup.sh --torch`) the table also times the same network in PyTorch.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${BITGRAD_BUILD_DIR:-build}

bash scripts/setup.sh
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DBITGRAD_BUILD_APPS=ON > /dev/null
cmake --build "$build" -j "$(nproc)" --target bitgrad_cli

"$build/apps/bitgrad" demo "$@"
