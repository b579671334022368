"""results.py: the result files of an experiment directory (written by common.sh's run), shared by the
summaries of qat.sh and distill.sh."""
import glob
import json


def load(out, order):
    """The runs of OUT/*.result.json in `order` (unknown names last), then by seed; also written to
    OUT/summary.jsonl. Returns (runs, by name in that order, the FP32 evaluation of OUT/fp32-eval.json)."""
    runs = [json.load(open(f)) for f in sorted(glob.glob(f"{out}/*.result.json"))]
    runs.sort(key=lambda r: (order.index(r["name"]) if r["name"] in order else 99, r["seed"]))
    with open(f"{out}/summary.jsonl", "w") as f:
        for r in runs:
            f.write(json.dumps(r) + "\n")
    by = {}
    for r in runs:
        by.setdefault(r["name"], []).append(r)
    return runs, by, json.loads(open(f"{out}/fp32-eval.json").read())


def failed_row(name, rs, columns):
    """A table row for a configuration with a failed run (its first error), or None."""
    failed = [r for r in rs if "error" in r["result"]]
    if not failed:
        return None
    seeds = ",".join(str(r["seed"]) for r in rs)
    return f"| {name} | {seeds} | failed: {failed[0]['result']['error']} |" + " - |" * (columns - 3)
