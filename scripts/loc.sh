#!/usr/bin/env bash
# loc.sh: lines of C++ per top-level folder (a size budget to watch, in the spirit of tinygrad's sz.py;
# informational, never a gate). Comment lines are counted separately.
set -euo pipefail
cd "$(dirname "$0")/.."
printf "%-10s %8s %8s %8s\n" folder files lines comment%
for d in core autograd nn quant kernels distill datasets apps bench tests; do
  files=$(find "$d" -name '*.cpp' -o -name '*.hpp' 2>/dev/null | grep -v '/consumer/build' || true)
  [ -z "$files" ] && { printf "%-10s %8d %8d %8s\n" "$d" 0 0 -; continue; }
  n=$(echo "$files" | wc -l)
  lines=$(cat $files | grep -cv '^\s*$' || true)
  comments=$(cat $files | grep -c '^\s*//' || true)
  printf "%-10s %8d %8d %7d%%\n" "$d" "$n" "$lines" $((100 * comments / (lines > 0 ? lines : 1)))
done
