#!/usr/bin/env bash
# compare_pytorch.sh: ResNet-20 speed, bitgrad against PyTorch on this CPU, in one go: runs
# bitgrad_train_step_bench (--benchmark_format=json) and bench/pytorch_train_step.py (the identical
# model and steps) and prints one table row per case: bitgrad images/s, PyTorch images/s, ratio. Cases:
# train_step and eval_forward (float), and qat_step/{apot,minmax,lint,lsq,pact}_w2a2 (the QAT twins;
# PyTorch's fake quantization in bench/pytorch_qat.py), each QAT row also as a multiple of bitgrad's
# FP32 step.
# Usage: bench/compare_pytorch.sh [BUILD_DIR] [MIN_TIME_SECONDS] [REPETITIONS]  (defaults: build, 2, 1)
# With REPETITIONS > 1 each side times every case that many times and keeps its best run (the one
# least disturbed by other processes on a shared machine); the load average is printed around it.
# Threads: BITGRAD_THREADS (default 2) for both sides. PyTorch runs under /usr/bin/python3 (Debian's
# python3-torch); without torch only bitgrad's column is printed. Not here: building the benchmark.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
build="${1:-${here}/../build}"
min_time="${2:-2}"
reps="${3:-1}"
threads="${BITGRAD_THREADS:-2}"
bench="${build}/bench/bitgrad_train_step_bench"
python=/usr/bin/python3

if [[ ! -x "${bench}" ]]; then
  echo "compare_pytorch.sh: ${bench} not found; build it first:" >&2
  echo "  cmake --build ${build} --target bitgrad_train_step_bench" >&2
  exit 1
fi

tmp="$(mktemp -d)"
trap 'rm -rf "${tmp}"' EXIT

echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)   threads: ${threads}   best of ${reps}"
BITGRAD_THREADS="${threads}" "${bench}" --benchmark_format=json \
  --benchmark_min_time="${min_time}" --benchmark_repetitions="${reps}" \
  >"${tmp}/bitgrad.json" 2>"${tmp}/bitgrad.err"

torch_ok=0
if [[ -x "${python}" ]] && "${python}" -c "import torch" 2>/dev/null; then
  torch_ok=1
  "${python}" "${here}/pytorch_train_step.py" --threads "${threads}" --min-time "${min_time}" \
    --repetitions "${reps}" >"${tmp}/torch.jsonl"
else
  echo "compare_pytorch.sh: PyTorch is missing (${python} cannot import torch; on Debian:" \
    "apt-get install python3-torch); printing bitgrad's figures only" >&2
  : >"${tmp}/torch.jsonl"
fi
echo "load average after:  $(cut -d' ' -f1-3 /proc/loadavg)"

# The table is formatted by any python3 (no torch needed for that part).
python3 - "${tmp}/bitgrad.json" "${tmp}/torch.jsonl" "${torch_ok}" <<'EOF'
import json, sys
ours = {}
for b in json.load(open(sys.argv[1]))["benchmarks"]:
    if b.get("run_type", "iteration") != "iteration":
        continue  # repetition aggregates (mean, median, stddev)
    name = b["run_name"].removesuffix("/real_time") if "run_name" in b else b["name"]
    ours[name] = max(ours.get(name, 0.0), b["images/s"])
theirs = {}
for line in open(sys.argv[2]):
    if line.strip():
        r = json.loads(line)
        theirs[r["name"]] = r["images_per_s"]
torch_ok = sys.argv[3] == "1"
print(f"{'case':<28} {'bitgrad img/s':>14} {'PyTorch img/s':>14} {'ratio':>7}")
for name, v in ours.items():
    t = theirs.get(name)
    ts = f"{t:14.1f}" if t else f"{'n/a':>14}"
    ratio = f"{v / t:7.2f}" if t else f"{'n/a':>7}"
    print(f"{name:<28} {v:14.1f} {ts} {ratio}")
fp32 = ours.get("train_step/1x28x28/b128")
for name, v in ours.items():
    if name.startswith("qat_step/") and fp32:
        print(f"{name}: {fp32 / v:.2f}x the time of bitgrad's FP32 step (train_step/1x28x28/b128)")
if not torch_ok:
    print("(PyTorch missing: no comparison)")
EOF
