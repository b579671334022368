#!/usr/bin/env bash
# setup.sh: install every Debian package bitgrad needs to build, test, benchmark and run its demo.
# Idempotent: packages already present are skipped, and `apt-get update` runs at most once per call.
# `setup.sh --torch` also installs Debian's PyTorch (python3-torch) and OpenBLAS (OpenMP build), needed
# only to regenerate the golden test fixtures and for side-by-side benchmarks against PyTorch.
set -euo pipefail

packages=(
  build-essential cmake pkg-config git
  libeigen3-dev libtbb-dev libxsimd-dev xtl-dev
  catch2 libbenchmark-dev zlib1g-dev libdnnl-dev
  dataset-fashion-mnist
)
if [[ "${1:-}" == "--torch" ]]; then
  packages+=(python3-torch python3-numpy libopenblas0-openmp)
fi

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if ((${#missing[@]} == 0)); then
  echo "setup: all ${#packages[@]} packages present"
  exit 0
fi

sudo_cmd=()
if [[ "$(id -u)" != "0" ]]; then sudo_cmd=(sudo); fi
echo "setup: installing ${missing[*]}"
"${sudo_cmd[@]}" apt-get update -qq
DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
