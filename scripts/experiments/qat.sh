#!/usr/bin/env bash
# qat.sh: the QAT comparison of issue 4 (docs/experiments/qat.md). From one FP32 ResNet-20 checkpoint,
# every configuration is fine-tuned with the same short schedule on Fashion-MNIST, W2A2 unless said:
#   minmax+ste, lint+ste, lint+ewgs, apot+ste, apot+ewgs, lint+dsq, lint+daq, apot W3A3, apot W4A4;
# apot+ste and apot+ewgs with three seeds each. EWGS re-estimates delta from the Hessian trace at the
# start of every epoch after the first (--ewgs-update-every 1), as the EWGS code does every 10th epoch.
# Writes runs and logs under OUT, a summary table (summary.md, summary.jsonl) and the curve pictures.
# Usage: scripts/experiments/qat.sh [BUILD_DIR] [FP32_CHECKPOINT] [OUT]
#   defaults: build, runs/fp32-fmnist-r20.safetensors (trained here first if missing: bitgrad train
#   --epochs 15, about 30 minutes), runs/qat-exp.
# Schedule (environment overrides): EPOCHS=3, LIMIT=10000 (first N training images), LR=0.01, WD=3e-5,
# SEEDS="1 2 3", THREADS=2, EWGS_BATCHES=1; quantizer parameters at bitgrad train's default learning-rate
# multiplier (0.01 for lint, 1 otherwise). Expect ~40 minutes on 2 cores. Runs already done (their
# <name>-s<seed>.result.json exists) are skipped: delete a result file to redo that run.
set -euo pipefail

build="${1:-build}"
fp32="${2:-runs/fp32-fmnist-r20.safetensors}"
out="${3:-runs/qat-exp}"
epochs="${EPOCHS:-3}"
limit="${LIMIT:-10000}"
lr="${LR:-0.01}"
wd="${WD:-3e-5}"
seeds="${SEEDS:-1 2 3}"
threads="${THREADS:-2}"
ewgs_batches="${EWGS_BATCHES:-1}"
cli="${build}/apps/bitgrad"
[[ -x "${cli}" ]] || { echo "qat.sh: ${cli} not found; build first (cmake --build ${build})" >&2; exit 1; }
mkdir -p "${out}"

common=(--init "${fp32}" --epochs "${epochs}" --train-limit "${limit}" --lr "${lr}" --wd "${wd}"
        --threads "${threads}" --log-steps 10 --json)
source "$(dirname "$0")/common.sh"
ensure_fp32 "${fp32}"

[[ -f "${out}/fp32-eval.json" ]] || "${cli}" eval "${fp32}" --json | tail -n 1 > "${out}/fp32-eval.json"
for seed in ${seeds}; do
  run apot-ste "${seed}" train --quant apot
  run apot-ewgs "${seed}" train --quant apot --grad ewgs --ewgs-update-every 1 --ewgs-batches "${ewgs_batches}"
done
run minmax-ste 1 train --quant minmax
run lint-ste 1 train --quant lint
run lint-ewgs 1 train --quant lint --grad ewgs --ewgs-update-every 1 --ewgs-batches "${ewgs_batches}"
run lint-dsq 1 train --quant lint --grad dsq
run lint-daq 1 train --quant lint --grad daq
run apot-w3a3 1 train --quant apot --wbits 3 --abits 3
run apot-w4a4 1 train --quant apot --wbits 4 --abits 4

# Summary table and pictures.
python3 - "${out}" "$(dirname "$0")" <<'EOF'
import statistics, sys
out = sys.argv[1]
sys.path.insert(0, sys.argv[2])
import results
runs, by, fp32 = results.load(out, ["apot-ste", "apot-ewgs", "minmax-ste", "lint-ste", "lint-ewgs", "lint-dsq",
                                    "lint-daq", "apot-w3a3", "apot-w4a4"])
lines = ["| configuration | seeds | test top-1 % (mean ± std) | best epoch top-1 % | wall s per run |",
         "|---|---|---|---|---|",
         f"| FP32 starting point | - | {fp32['top1']:.2f} | - | - |"]
for name, rs in by.items():
    if row := results.failed_row(name, rs, 5):
        lines.append(row)
        continue
    acc = [r["result"]["test_top1"] for r in rs]
    best = [r["result"]["best_top1"] for r in rs]
    wall = statistics.mean(r["wall_seconds"] for r in rs)
    spread = f" ± {statistics.stdev(acc):.2f}" if len(acc) > 1 else ""
    seeds = ",".join(str(r["seed"]) for r in rs)
    lines.append(f"| {name} | {seeds} | {statistics.mean(acc):.2f}{spread} | {statistics.mean(best):.2f} | {wall:.0f} |")
open(f"{out}/summary.md", "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
EOF

logs=()
labels=()
for seed in ${seeds}; do
  logs+=("${out}/apot-ste-s${seed}.steps.jsonl" "${out}/apot-ewgs-s${seed}.steps.jsonl")
  labels+=("apot+ste s${seed}" "apot+ewgs s${seed}")
done
"${cli}" plot "${logs[@]}" --x step --y loss --labels "$(IFS=,; echo "${labels[*]}")" \
  --title "ResNet-20 W2A2 APoT on Fashion-MNIST: training loss every 10 steps" --width 1100 --height 450 \
  --out "${out}/apot-ste-vs-ewgs.png"
all=()
names=()
for n in minmax-ste lint-ste lint-ewgs apot-ste apot-ewgs lint-dsq lint-daq apot-w3a3 apot-w4a4; do
  [[ -s "${out}/${n}-s1.log.jsonl" ]] || continue  # a run that failed before its first epoch
  all+=("${out}/${n}-s1.log.jsonl")
  names+=("${n}")
done
"${cli}" plot "${all[@]}" --y train_loss,test_top1 --labels "$(IFS=,; echo "${names[*]}")" \
  --title "ResNet-20 QAT on Fashion-MNIST (seed 1): per-epoch curves" --width 1200 --height 500 \
  --out "${out}/qat-curves.png"
echo "qat.sh: summary in ${out}/summary.md, pictures ${out}/apot-ste-vs-ewgs.png and ${out}/qat-curves.png"
