#!/usr/bin/env bash
# demo.sh: install dependencies, build the bitgrad tool, and run the end-to-end demo on the real
# Fashion-MNIST data (Debian's dataset-fashion-mnist): train a ResNet-20 with the engine, evaluate it on
# the 10,000 test images, save it as safetensors (runs/) and evaluate the saved file. Extra arguments go to `bitgrad demo`
# (e.g. `bash scripts/demo.sh --epochs 5 --train-limit 0`); see `bitgrad demo --help`.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${BITGRAD_BUILD_DIR:-build}

bash scripts/setup.sh
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DBITGRAD_BUILD_APPS=ON > /dev/null
cmake --build "$build" -j "$(nproc)" --target bitgrad_cli

"$build/apps/bitgrad" demo "$@"
