# common.sh: sourced by the experiment scripts (qat.sh, distill.sh). Expects cli (the bitgrad binary),
# out (the run directory), threads, and the array common (the options every run shares).

# Trains the FP32 checkpoint $1 (15 epochs) when it does not exist yet.
ensure_fp32() {  # ensure_fp32 FILE
  if [[ ! -f "$1" ]]; then
    echo "training the FP32 checkpoint $1 (15 epochs)"
    "${cli}" train --epochs 15 --threads "${threads}" --out "$1" > "${out}/fp32.txt"
  fi
}

# One run of `bitgrad SUBCOMMAND common... --seed SEED --out OUT/NAME-sSEED.safetensors ARGS...`,
# skipped when its result file exists (so an interrupted experiment continues); a failed run (e.g. a
# learned interval that collapses) is recorded with its error line and does not stop the rest. The
# result file holds the name, seed, wall seconds (everything the run did) and the run's last JSON line.
run() {  # run NAME SEED SUBCOMMAND ARGS...
  local name=$1 seed=$2 sub=$3
  shift 3
  local file="${out}/${name}-s${seed}"
  [[ -f "${file}.result.json" ]] && { echo "== ${name} seed ${seed}: done before"; return; }
  echo "== ${name} seed ${seed}: ${sub} $*"
  local start=$SECONDS last
  if "${cli}" "${sub}" "${common[@]}" --seed "${seed}" --out "${file}.safetensors" "$@" > "${file}.txt" 2> "${file}.err"; then
    last=$(tail -n 1 "${file}.txt")
  else
    last=$(python3 -c 'import json,sys; print(json.dumps({"error": sys.argv[1]}))' "$(tail -n 1 "${file}.err")")
  fi
  echo "{\"name\": \"${name}\", \"seed\": ${seed}, \"wall_seconds\": $((SECONDS - start)), \"result\": ${last}}" \
    > "${file}.result.json"
  echo "   $(echo "${last}" | grep -o '"test_top1":[0-9.]*\|"error".*') in $((SECONDS - start)) s"
}
