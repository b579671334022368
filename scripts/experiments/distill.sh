#!/usr/bin/env bash
# distill.sh: the distillation comparison of issue 7 (docs/experiments/distill.md). From one FP32
# ResNet-20 checkpoint (the teacher, and every student's starting weights), a W2A2 learned-interval
# (STE) student is trained on Fashion-MNIST with the same schedule by each method:
#   qat (no teacher), kd, qkd, va-qkd with the logit loss; kd and va-qkd with the feature-map and the
#   contrastive losses; takd (a 4-bit assistant distilled first, with the same schedule, then the student)
# three seeds each (the seed sets the data order and augmentation; the starting weights are the same).
# VA-QKD splits KD's weight between the teacher and the anchor (--kd-weight 0.5 --anchor-weight 0.5), so
# its soft targets weigh as much as KD's and the comparison isolates what the anchor carries; the
# paper's plain sum (1 + 1) is run once for the logit and feature losses (the *-sum rows). LR 0.005, half
# the QAT experiment's: at 0.01 logit KD runs diverge now and then (docs/experiments/distill.md).
# Wall time per run includes everything the method needs (takd: the assistant's training too).
# Writes runs and logs under OUT, a summary (summary.md, summary.jsonl, paired.md) and curve pictures.
# Usage: scripts/experiments/distill.sh [BUILD_DIR] [FP32_CHECKPOINT] [OUT]
#   defaults: build, runs/fp32-fmnist-r20.safetensors (trained here first if missing: bitgrad train
#   --epochs 15, about 30 minutes), runs/distill-exp.
# Schedule (environment overrides): EPOCHS=3, LIMIT=10000 (first N training images), LR=0.005, WD=3e-5,
# SEEDS="1 2 3", THREADS=2. Expect ~70 minutes on 2 cores. Runs already done (their
# <name>-s<seed>.result.json exists) are skipped: delete a result file to redo that run.
set -euo pipefail

build="${1:-build}"
fp32="${2:-runs/fp32-fmnist-r20.safetensors}"
out="${3:-runs/distill-exp}"
epochs="${EPOCHS:-3}"
limit="${LIMIT:-10000}"
lr="${LR:-0.005}"
wd="${WD:-3e-5}"
seeds="${SEEDS:-1 2 3}"
threads="${THREADS:-2}"
cli="${build}/apps/bitgrad"
[[ -x "${cli}" ]] || { echo "distill.sh: ${cli} not found; build first (cmake --build ${build})" >&2; exit 1; }
mkdir -p "${out}"

common=(--init "${fp32}" --quant lint --wbits 2 --abits 2 --epochs "${epochs}" --train-limit "${limit}"
        --lr "${lr}" --wd "${wd}" --threads "${threads}" --log-steps 10 --json)
source "$(dirname "$0")/common.sh"
ensure_fp32 "${fp32}"

[[ -f "${out}/fp32-eval.json" ]] || "${cli}" eval "${fp32}" --json | tail -n 1 > "${out}/fp32-eval.json"
teacher=(--teacher "${fp32}")
split=(--kd-weight 0.5 --anchor-weight 0.5)
for seed in ${seeds}; do
  run qat "${seed}" train
  run kd-logit "${seed}" distill "${teacher[@]}" --method kd --loss logit
  run va-qkd-logit "${seed}" distill "${teacher[@]}" --method va-qkd --loss logit "${split[@]}"
  run qkd-logit "${seed}" distill "${teacher[@]}" --method qkd --loss logit
  run kd-feature "${seed}" distill "${teacher[@]}" --method kd --loss feature
  run va-qkd-feature "${seed}" distill "${teacher[@]}" --method va-qkd --loss feature "${split[@]}"
  run kd-contrastive "${seed}" distill "${teacher[@]}" --method kd --loss contrastive
  run va-qkd-contrastive "${seed}" distill "${teacher[@]}" --method va-qkd --loss contrastive "${split[@]}"
  run takd-logit "${seed}" distill "${teacher[@]}" --method takd --loss logit --ta-bits 4
done
run va-qkd-logit-sum 1 distill "${teacher[@]}" --method va-qkd --loss logit
run va-qkd-feature-sum 1 distill "${teacher[@]}" --method va-qkd --loss feature

# Summary table, paired differences and pictures.
python3 - "${out}" "$(dirname "$0")" <<'PY'
import math, statistics, sys
out = sys.argv[1]
sys.path.insert(0, sys.argv[2])
import results
runs, by, fp32 = results.load(out, ["qat", "kd-logit", "qkd-logit", "va-qkd-logit", "kd-feature", "va-qkd-feature",
                                    "kd-contrastive", "va-qkd-contrastive", "takd-logit", "va-qkd-logit-sum",
                                    "va-qkd-feature-sum"])
def ms(values):
    return f"{statistics.mean(values):.2f}" + (f" ± {statistics.stdev(values):.2f}" if len(values) > 1 else "")
lines = ["| method | seeds | test top-1 % (mean ± std) | per seed | wall s per run (mean ± std) |",
         "|---|---|---|---|---|",
         f"| FP32 teacher | - | {fp32['top1']:.2f} | - | - |"]
for name, rs in by.items():
    if row := results.failed_row(name, rs, 5):
        lines.append(row)
        continue
    acc = [r["result"]["test_top1"] for r in rs]
    wall = [r["wall_seconds"] for r in rs]
    seeds = ",".join(str(r["seed"]) for r in rs)
    lines.append(f"| {name} | {seeds} | {ms(acc)} | {' / '.join(f'{a:.2f}' for a in acc)} | {ms(wall)} |")
open(f"{out}/summary.md", "w").write("\n".join(lines) + "\n")
print("\n".join(lines))

# Paired differences (same seed: same data order and augmentation), mean ± std over seeds and a 95%
# t interval (t(0.975, n-1)).
t975 = {1: 12.71, 2: 4.30, 3: 3.18, 4: 2.78}
acc = {(r["name"], r["seed"]): r["result"].get("test_top1") for r in runs if "error" not in r["result"]}
pairs = [("va-qkd-logit", "kd-logit"), ("va-qkd-feature", "kd-feature"), ("va-qkd-contrastive", "kd-contrastive"),
         ("va-qkd-logit", "qkd-logit"), ("kd-logit", "qat"), ("va-qkd-logit", "qat"), ("qkd-logit", "kd-logit"),
         ("takd-logit", "kd-logit"), ("va-qkd-logit", "takd-logit")]
plines = ["| comparison | seeds | difference, points (mean ± std) | 95% interval |", "|---|---|---|---|"]
for a, b in pairs:
    d = [acc[(a, s)] - acc[(b, s)] for (n, s) in acc if n == a and (b, s) in acc]
    if len(d) < 2:
        continue
    m, sd = statistics.mean(d), statistics.stdev(d)
    h = t975[len(d) - 1] * sd / math.sqrt(len(d))
    plines.append(f"| {a} − {b} | {len(d)} | {m:+.2f} ± {sd:.2f} | [{m - h:+.2f}, {m + h:+.2f}] |")
open(f"{out}/paired.md", "w").write("\n".join(plines) + "\n")
print("\n".join(plines))
PY

logs=()
names=()
for n in qat kd-logit qkd-logit va-qkd-logit kd-feature va-qkd-feature kd-contrastive va-qkd-contrastive takd-logit; do
  [[ -s "${out}/${n}-s1.log.jsonl" ]] || continue
  logs+=("${out}/${n}-s1.log.jsonl")
  names+=("${n}")
done
"${cli}" plot "${logs[@]}" --y test_top1,train_top1 --labels "$(IFS=,; echo "${names[*]}")" \
  --title "ResNet-20 W2A2 (learned interval) on Fashion-MNIST, seed 1: per-epoch accuracy by method" \
  --width 1200 --height 500 --out "${out}/distill-curves.png"
logs=()
names=()
for seed in ${seeds}; do
  for n in kd-logit va-qkd-logit; do
    [[ -s "${out}/${n}-s${seed}.steps.jsonl" ]] || continue
    logs+=("${out}/${n}-s${seed}.steps.jsonl")
    names+=("${n} s${seed}")
  done
done
"${cli}" plot "${logs[@]}" --x step --y loss --labels "$(IFS=,; echo "${names[*]}")" \
  --title "KD vs VA-QKD (logit): training loss every 10 steps (VA-QKD's includes its anchor term)" \
  --width 1100 --height 450 --out "${out}/kd-vs-vaqkd-loss.png"
echo "distill.sh: summary in ${out}/summary.md and ${out}/paired.md, pictures ${out}/distill-curves.png" \
  "and ${out}/kd-vs-vaqkd-loss.png"
