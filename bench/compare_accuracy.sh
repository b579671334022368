#!/usr/bin/env bash
# compare_accuracy.sh: "does bitgrad learn like PyTorch?" (issue 3). Trains ResNet-20 on Fashion-MNIST
# with one recipe, several seeds, in bitgrad (`bitgrad train --json`) and in PyTorch
# (bench/pytorch_train_fmnist.py, the identical recipe), then prints the test top-1 of every run and
# each side's mean and sample standard deviation.
# Usage: bench/compare_accuracy.sh [BUILD_DIR] [SEEDS] [EPOCHS] [TRAIN_LIMIT]
#   defaults: build, 1,2,3, 2, 10000 (two epochs on the first 10,000 training images).
# Recipe (both sides): batch 128, drop-last, SGD lr 0.1 momentum 0.9 Nesterov, weight decay 5e-4 on
# conv/linear weights only, cosine learning rate stepped per batch, random crop (pad 2) + flip,
# 2 threads (BITGRAD_THREADS overrides). Data: /usr/share/datasets/fashion-mnist (FMNIST_DIR overrides).
# The random streams differ between the frameworks, so compare the spread over seeds, not single runs.
# Checkpoints and logs go to a temporary directory that is removed at exit.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
build="${1:-${here}/../build}"
seeds="${2:-1,2,3}"
epochs="${3:-2}"
limit="${4:-10000}"
threads="${BITGRAD_THREADS:-2}"
data="${FMNIST_DIR:-/usr/share/datasets/fashion-mnist}"
cli="${build}/apps/bitgrad"
python=/usr/bin/python3

if [[ ! -x "${cli}" ]]; then
  echo "compare_accuracy.sh: ${cli} not found; build it first: cmake --build ${build} --target bitgrad_cli" >&2
  exit 1
fi
if ! "${python}" -c "import torch" 2>/dev/null; then
  echo "compare_accuracy.sh: ${python} cannot import torch (on Debian: apt-get install python3-torch)" >&2
  exit 1
fi

tmp="$(mktemp -d)"
trap 'rm -rf "${tmp}"' EXIT

echo "recipe: ResNet-20, fashion-mnist, first ${limit} training images, ${epochs} epochs, seeds ${seeds}," \
  "${threads} threads; load average $(cut -d' ' -f1-3 /proc/loadavg)"
IFS=',' read -r -a seed_list <<<"${seeds}"
for seed in "${seed_list[@]}"; do
  "${cli}" train --model resnet20 --dataset fashion-mnist --data "${data}" --epochs "${epochs}" \
    --train-limit "${limit}" --seed "${seed}" --threads "${threads}" \
    --out "${tmp}/seed${seed}.safetensors" --json >"${tmp}/bitgrad${seed}.out"
  tail -n 1 "${tmp}/bitgrad${seed}.out" >>"${tmp}/bitgrad.jsonl"
  echo "bitgrad seed ${seed}: $(tail -n 1 "${tmp}/bitgrad${seed}.out")"
done
"${python}" "${here}/pytorch_train_fmnist.py" --data "${data}" --epochs "${epochs}" \
  --train-limit "${limit}" --seeds "${seeds}" --threads "${threads}" | tee "${tmp}/torch.jsonl"

python3 - "${tmp}/bitgrad.jsonl" "${tmp}/torch.jsonl" "${seeds}" <<'EOF'
import json, statistics, sys
ours = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
theirs = [json.loads(l) for l in open(sys.argv[2]) if l.strip()]
theirs = [r for r in theirs if "seed" in r]
a = [r["test_top1"] for r in ours]
b = [r["test_top1"] for r in theirs]
def summary(xs):
    return statistics.mean(xs), (statistics.stdev(xs) if len(xs) > 1 else 0.0)
print()
print("| seed | bitgrad test top-1 | bitgrad train s | PyTorch test top-1 | PyTorch train s |")
print("|---|---|---|---|---|")
for seed, r, t in zip(sys.argv[3].split(","), ours, theirs):
    print(f"| {seed} | {r['test_top1']:.2f}% | {r['train_seconds']:.1f} | {t['test_top1']:.2f}% | {t['train_seconds']:.1f} |")
ma, sa = summary(a)
mb, sb = summary(b)
print(f"| mean ± std | {ma:.2f} ± {sa:.2f} | | {mb:.2f} ± {sb:.2f} | |")
print(f"difference of means (bitgrad - PyTorch): {ma - mb:+.2f} points")
EOF
