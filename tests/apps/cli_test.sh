#!/usr/bin/env bash
# cli_test.sh BITGRAD: end-to-end checks of the command-line tool on the synthetic data set.
#  1. `train --resume` after an interrupted run gives the same final checkpoint, byte for byte, as an
#     uninterrupted run with the same seed and threads;
#  2. `eval` reads the checkpoint back and prints top-1/top-5/per-class, and --json ends stdout with JSON;
#  3. QAT: `train --quant ... --init FP32` starts from the FP32 weights, its checkpoint records the
#     policy, `eval` rebuilds the quantized model from it, and a resumed QAT run is byte-identical too;
#  4. bad input gives one line on stderr and a non-zero exit.
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

expect_error() {  # expect_error PATTERN ARGS...: non-zero exit and one stderr line matching PATTERN
  local pattern=$1; shift
  if "$bitgrad" "$@" > /dev/null 2> "$work/err.txt"; then echo "FAIL: '$*' succeeded"; exit 1; fi
  [ "$(wc -l < "$work/err.txt")" -eq 1 ] || { echo "FAIL: '$*' printed more than one line"; cat "$work/err.txt"; exit 1; }
  grep -q -- "$pattern" "$work/err.txt" || { echo "FAIL: '$*': expected '$pattern' in:"; cat "$work/err.txt"; exit 1; }
}
expect_error "unknown option '--bogus'" train --bogus 1
expect_error "expects an integer" train --epochs two
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
echo "bad input: ok"
echo "1 passed, 0 failed"
