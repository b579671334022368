#!/usr/bin/env bash
# test.sh: install dependencies, configure, build (warnings are errors), run the whole ctest suite, then
# install into a scratch prefix and build + run the find_package(bitgrad) consumer in tests/consumer.
# Usage: bash scripts/test.sh            (build dir: build/, override with BITGRAD_BUILD_DIR)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
build=${BITGRAD_BUILD_DIR:-build}
jobs=$(nproc)

bash scripts/setup.sh

cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DBITGRAD_WERROR=ON -DBITGRAD_BUILD_TESTS=ON \
  -DBITGRAD_BUILD_BENCH=ON -DBITGRAD_BUILD_APPS=ON
cmake --build "$build" -j "$jobs"
ctest --test-dir "$build" --output-on-failure -j "$jobs" --timeout 600

# The installed package must be usable from another project.
prefix="$root/$build/install-prefix"
rm -rf "$prefix" "$build/consumer"
cmake --install "$build" --prefix "$prefix" > /dev/null
cmake -S tests/consumer -B "$build/consumer" -DCMAKE_PREFIX_PATH="$prefix" -DCMAKE_BUILD_TYPE=Release
cmake --build "$build/consumer" -j "$jobs"
"$build/consumer/bitgrad_consumer"
bash scripts/loc.sh
echo "test.sh: all tests passed and the find_package(bitgrad) consumer built and ran"
