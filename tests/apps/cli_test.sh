#!/usr/bin/env bash
# cli_test.sh BITGRAD: end-to-end checks of the command-line tool on the synthetic data set.
#  1. `train --resume` after an interrupted run gives the same final checkpoint, byte for byte, as an
#     uninterrupted run with the same seed and threads;
#  2. `eval` reads the checkpoint back and prints top-1/top-5/per-class, and --json ends stdout with JSON;
#  3. QAT: `train --quant ... --init FP32` starts from the FP32 weights, its checkpoint records the
#     policy, `eval` rebuilds the quantized model from it, and a resumed QAT run is byte-identical too;
#  4. distill: `distill --method va-qkd --teacher FP32` trains a QAT student with virtual anchors, qkd runs
#     its phases with the feature loss, takd trains its 4-bit assistant first (contrastive loss);
#  5. deploy: `export` writes a packed model, `verify` finds every code and accumulator equal to the
#     QAT model's (exit 0), `infer` reports accuracy and one image's prediction, `bench` prints its table;
#  6. bad input gives one line on stderr and a non-zero exit.
set -euo pipefail
bitgrad=$1
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
common=(--dataset synthetic --model resnet20 --epochs 2 --batch-size 64 --train-limit 256 --threads 2 --seed 3)

"$bitgrad" train "${common[@]}" --out "$work/straight.safetensors" > "$work/straight.txt"
# An interrupted run: stops after its first epoch (as a kill after the first checkpoint would), then
# is resumed to the end.
"$bitgrad" train "${common[@]}" --out "$work/killed.safetensors" --stop-after 1 > /dev/null
"$bitgrad" train "${common[@]}" --out "$work/killed.safetensors" --resume "$work/killed.safetensors" > "$work/resume.txt"
grep -q "resuming after epoch 1" "$work/resume.txt" || { echo "FAIL: resume did not start at epoch 2"; cat "$work/resume.txt"; exit 1; }
if ! cmp -s "$work/straight.safetensors" "$work/killed.safetensors"; then
  echo "FAIL: the resumed run's checkpoint differs from the uninterrupted run's"; exit 1
fi
echo "resume: identical final checkpoint"

out=$("$bitgrad" eval "$work/straight.safetensors" --json)
echo "$out" | grep -q "top-1" || { echo "FAIL: eval printed no top-1"; exit 1; }
echo "$out" | tail -n 1 | grep -q '^{"model":' || { echo "FAIL: --json is not the last line"; exit 1; }
echo "eval: ok"

# QAT from the FP32 checkpoint, interrupted and resumed like above.
qat=(--dataset synthetic --model resnet20 --epochs 2 --batch-size 64 --train-limit 256 --threads 2 --seed 4
     --quant apot --wbits 2 --abits 2 --init "$work/straight.safetensors" --lr 0.02)
"$bitgrad" train "${qat[@]}" --out "$work/qat.safetensors" > "$work/qat.txt"
grep -q "apot W2A2" "$work/qat.txt" || { echo "FAIL: QAT run does not announce its policy"; cat "$work/qat.txt"; exit 1; }
"$bitgrad" train "${qat[@]}" --out "$work/qat-killed.safetensors" --stop-after 1 > /dev/null
"$bitgrad" train "${qat[@]}" --out "$work/qat-killed.safetensors" --resume "$work/qat-killed.safetensors" > /dev/null
cmp -s "$work/qat.safetensors" "$work/qat-killed.safetensors" || { echo "FAIL: resumed QAT run differs"; exit 1; }
out=$("$bitgrad" eval "$work/qat.safetensors" --json)
echo "$out" | tail -n 1 | grep -q '"top1"' || { echo "FAIL: eval of the QAT model"; echo "$out"; exit 1; }
"$bitgrad" train --dataset synthetic --model resnet20 --epochs 1 --batch-size 64 --train-limit 128 --threads 2 \
  --quant lint --grad ewgs --ewgs-delta 0.001 --init "$work/straight.safetensors" --out "$work/lint.safetensors" \
  --log-steps 1 > /dev/null
[ "$(wc -l < "$work/lint.steps.jsonl")" -eq 2 ] || { echo "FAIL: --log-steps 1 over 2 steps"; cat "$work/lint.steps.jsonl"; exit 1; }
grep -q '"step":2,"epoch":1,"loss":' "$work/lint.steps.jsonl" || { echo "FAIL: step log format"; exit 1; }
"$bitgrad" plot "$work/straight.log.jsonl" "$work/qat.log.jsonl" --y train_loss,test_top1 --out "$work/curves.png" > /dev/null
[ "$(head -c 4 "$work/curves.png" | od -An -c | tr -d ' ')" = "211PNG" ] || { echo "FAIL: plot wrote no PNG"; exit 1; }
echo "qat: ok"

# Distillation: a QAT student trained against the FP32 checkpoint as teacher, with virtual anchors.
"$bitgrad" distill --dataset synthetic --model resnet20 --epochs 1 --batch-size 64 --train-limit 128 --threads 2 \
  --teacher "$work/straight.safetensors" --method va-qkd --anchor-bits 2 --quant lint --wbits 2 --abits 2 \
  --clip-grad-norm 5 --init "$work/straight.safetensors" --out "$work/vaqkd.safetensors" > "$work/vaqkd.txt"
grep -q "distill: va-qkd from" "$work/vaqkd.txt" || { echo "FAIL: distill announces no method"; cat "$work/vaqkd.txt"; exit 1; }
grep -aq 'clip_grad_norm' "$work/vaqkd.safetensors" || { echo "FAIL: the recipe lacks clip_grad_norm"; exit 1; }
"$bitgrad" eval "$work/vaqkd.safetensors" > /dev/null || { echo "FAIL: eval of the distilled checkpoint"; exit 1; }
# QKD's three phases with the feature-map loss, and TAKD (its 4-bit assistant first) with the contrastive one.
"$bitgrad" distill --dataset synthetic --model resnet20 --epochs 3 --batch-size 64 --train-limit 128 --threads 2 \
  --teacher "$work/straight.safetensors" --method qkd --loss feature --qkd-epochs 1,1 --quant lint \
  --out "$work/qkd.safetensors" > "$work/qkd.txt" || { echo "FAIL: distill --method qkd"; cat "$work/qkd.txt"; exit 1; }
grep -q "1 co-studying" "$work/qkd.txt" || { echo "FAIL: qkd announces no phases"; cat "$work/qkd.txt"; exit 1; }
"$bitgrad" distill --dataset synthetic --model resnet20 --epochs 1 --batch-size 64 --train-limit 128 --threads 2 \
  --teacher "$work/straight.safetensors" --method takd --loss contrastive --ta-bits 4 --quant lint \
  --out "$work/takd.safetensors" > "$work/takd.txt" || { echo "FAIL: distill --method takd"; cat "$work/takd.txt"; exit 1; }
[[ -f "$work/takd.ta.safetensors" && -f "$work/takd.safetensors" ]] || { echo "FAIL: takd wrote no assistant"; exit 1; }
grep -q "W4A4" "$work/takd.txt" || { echo "FAIL: the takd assistant is not 4-bit"; cat "$work/takd.txt"; exit 1; }
echo "distill: ok"

# Deploy: the QAT model above (APoT W2A2, synthetic 3x32x32) exported, verified, run and timed.
"$bitgrad" export "$work/qat.safetensors" --out "$work/qat.bgpk" --json > "$work/export.txt"
tail -n 1 "$work/export.txt" | grep -q '"packed_weight_bytes":' || { echo "FAIL: export --json"; cat "$work/export.txt"; exit 1; }
"$bitgrad" verify "$work/qat.safetensors" "$work/qat.bgpk" --n 64 --threads 2 > "$work/verify.txt" ||
  { echo "FAIL: verify found a difference"; cat "$work/verify.txt"; exit 1; }
grep -q "matches exactly" "$work/verify.txt" || { echo "FAIL: verify output"; cat "$work/verify.txt"; exit 1; }
grep -q "top-1 agreement: 64/64" "$work/verify.txt" || { echo "FAIL: verify agreement"; cat "$work/verify.txt"; exit 1; }
out=$("$bitgrad" infer "$work/qat.bgpk" --json)
echo "$out" | tail -n 1 | grep -q '"top1"' || { echo "FAIL: infer"; echo "$out"; exit 1; }
"$bitgrad" infer "$work/qat.bgpk" --image 3 | grep -q "image 3: predicted" || { echo "FAIL: infer --image"; exit 1; }
"$bitgrad" bench --model "$work/qat.bgpk" --min-time 0.02 --repetitions 1 --batch-size 8 --no-pytorch --json \
  > "$work/bench.txt"
grep -q "FP32 bitgrad" "$work/bench.txt" || { echo "FAIL: bench table"; cat "$work/bench.txt"; exit 1; }
tail -n 1 "$work/bench.txt" | grep -q '"speed":' || { echo "FAIL: bench --json"; exit 1; }
echo "deploy: ok"

expect_error() {  # expect_error PATTERN ARGS...: non-zero exit and one stderr line matching PATTERN
  local pattern=$1; shift
  if "$bitgrad" "$@" > /dev/null 2> "$work/err.txt"; then echo "FAIL: '$*' succeeded"; exit 1; fi
  [ "$(wc -l < "$work/err.txt")" -eq 1 ] || { echo "FAIL: '$*' printed more than one line"; cat "$work/err.txt"; exit 1; }
  grep -q -- "$pattern" "$work/err.txt" || { echo "FAIL: '$*': expected '$pattern' in:"; cat "$work/err.txt"; exit 1; }
}
expect_error "unknown option '--bogus'" train --bogus 1
expect_error "expects an integer" train --epochs two
expect_error "clip-grad-norm" train --clip-grad-norm -1
expect_error "expected one of resnet20" train --model resnet7
expect_error "missing file" train --dataset cifar10 --data "$work"
expect_error "cannot open" eval "$work/missing.safetensors"
expect_error "minmax|lsq|pact|lint|pot|apot" train --quant apot2
expect_error "wbits" train --quant apot --wbits 5
expect_error "only meaningful with --quant" train --grad ewgs
expect_error "expected a model of resnet32" train --model resnet32 --dataset synthetic --quant apot --init "$work/straight.safetensors"
expect_error "expected an FP32 model" train --dataset synthetic --quant apot --init "$work/qat.safetensors"
printf 'not a model' > "$work/bad.safetensors"
expect_error "bad.safetensors" eval "$work/bad.safetensors"
expect_error "is an FP32 model; export takes a QAT model" export "$work/straight.safetensors" --out "$work/x.bgpk"
expect_error "expected --out" export "$work/qat.safetensors"
[ ! -e "$work/x.bgpk" ] || { echo "FAIL: a failed export left a file"; exit 1; }
head -c 2000 "$work/qat.bgpk" > "$work/truncated.bgpk"
expect_error "truncated.bgpk" infer "$work/truncated.bgpk"
expect_error "missing.bgpk" infer "$work/missing.bgpk"
expect_error "expected QAT.safetensors and MODEL.bgpk" verify "$work/qat.bgpk"
expect_error "takes 3x32x32 images" infer "$work/qat.bgpk" --dataset fashion-mnist
expect_error "not a safetensors\|header\|bad.safetensors" infer "$work/bad.safetensors"
expect_error "expected --model" bench
expect_error "no bitserial kernel" infer "$work/qat.bgpk" --family bitserial
expect_error "expected --teacher" distill --method kd --dataset synthetic
expect_error "expected kd, qkd, va-qkd or takd" train --dataset synthetic --method fitnet --teacher "$work/straight.safetensors"
expect_error "expected --quant METHOD" train --dataset synthetic --method takd --teacher "$work/straight.safetensors"
expect_error "expected logit, feature or contrastive" train --dataset synthetic --method kd --loss at --teacher "$work/straight.safetensors"
expect_error "S + C <= --epochs 1" train --dataset synthetic --epochs 1 --method qkd --qkd-epochs 1,1 --teacher "$work/straight.safetensors"
expect_error "not supported with --method qkd" train --dataset synthetic --method qkd --resume "$work/straight.safetensors" --teacher "$work/straight.safetensors"
expect_error "only meaningful with --method" train --dataset synthetic --teacher "$work/straight.safetensors"
expect_error "only meaningful with --method va-qkd" train --dataset synthetic --method kd --teacher "$work/straight.safetensors" --anchor-bits 3
echo "bad input: ok"
echo "1 passed, 0 failed"
