#!/usr/bin/env python3
"""kernels_table.py: docs/kernels.md's markdown tables from bitgrad_kernels_bench's JSON output.

Usage:
  build/bench/bitgrad_kernels_bench --benchmark_out=k2.json --benchmark_out_format=json
  python3 bench/kernels_table.py k2.json [k1.json ...]

One section per JSON file (e.g. a 2-thread and a 1-thread run). Per layer: every registry
kernel's GMAC/s, MAC/cycle/core (at the clock the benchmark measured), percent of its tier's bound,
its ratio to bitgrad's FP32 convolution, to oneDNN's int8 convolution without AMX (the VNNI anchor)
and to oneDNN's f32 convolution, and its pack_input() time; then the baselines themselves; then a
second table with the threshold epilogue per tier and oneDNN's one-off reorders. Runs with
--benchmark_repetitions use the median aggregate. Standard library only.
"""
import json
import re
import sys

LAYER_RE = re.compile(r"^(r\d+)_(\d+)x(\d+)_(\d+)-(\d+)_(\d+)x(\d+)_s(\d+)_b(\d+)$")
NETS = {"r20": "ResNet-20 (CIFAR)", "r18": "ResNet-18-style"}
UNIT_TO_US = {"ns": 1e-3, "us": 1.0, "ms": 1e3, "s": 1e6}


def layer_title(layer_id):
    m = LAYER_RE.match(layer_id)
    if not m:
        return layer_id
    net, k, _, cin, cout, h, w, s, b = m.groups()
    return f"{NETS.get(net, net)} {k}×{k} {cin}→{cout} @{h}×{w} s{s}, batch {b}"


def load(path):
    """{(layer, kind, impl): entry} with entry = the benchmark's dict (median when aggregated)."""
    with open(path, encoding="utf-8") as f:
        data = json.load(f)
    runs = {}
    for b in data.get("benchmarks", []):
        name = b.get("run_name", b["name"])
        name = re.sub(r"/real_time$", "", name)
        parts = name.split("/")
        if len(parts) < 3:
            continue
        key = (parts[0], parts[1], "/".join(parts[2:]))
        if b.get("run_type") == "aggregate":
            if b.get("aggregate_name") == "median":
                runs.setdefault(key, {})["median"] = b
        else:
            runs.setdefault(key, {}).setdefault("iterations", []).append(b)
    entries = {}
    for key, r in runs.items():
        if "median" in r:
            entries[key] = r["median"]
            continue
        its = r.get("iterations", [])
        ok = [b for b in its if not b.get("error_occurred")]
        if not ok:
            entries[key] = its[0]
            continue
        # Several plain repetitions without aggregates: the median run by time.
        ok.sort(key=lambda b: b["real_time"])
        entries[key] = ok[len(ok) // 2]
    return data.get("context", {}), entries


def us(entry):
    return entry["real_time"] * UNIT_TO_US.get(entry.get("time_unit", "ns"), 1e-3)


def fmt(x, digits=3):
    if x is None:
        return "—"
    if x >= 100:
        return f"{x:.0f}"
    return f"{x:.{digits}g}"


def ratio(a, b):
    if a is None or b is None or b == 0:
        return "—"
    return f"{a / b:.2f}×"


def gmacs(entry):
    if entry is None or entry.get("error_occurred"):
        return None
    return entry.get("GMAC")


def section(path):
    ctx, entries = load(path)
    layers = []
    for (layer, _, _) in entries:
        if layer not in layers:
            layers.append(layer)
    out = []
    threads = ctx.get("threads", "?")
    out.append(f"### {path}: {threads} thread(s)")
    out.append("")
    clock = float(ctx.get("clock_ghz", "nan"))
    load_avg = ", ".join(f"{x:.2f}" for x in ctx.get("load_avg", []))
    out.append(
        f"Clock {clock:.2f} GHz (dependent imul chain, measured at start); "
        f"{ctx.get('onednn', 'oneDNN: ?')}; kernel tier {ctx.get('cpu_tier', '?')}; "
        f"{ctx.get('date', '')}; load average {load_avg}."
    )
    out.append("")
    out.append(
        "| layer | implementation | GMAC/s | MAC/cycle/core | % of bound | × FP32 (bitgrad) "
        "| × oneDNN int8 (no AMX) | × oneDNN f32 | pack µs |"
    )
    out.append("|---|---|---|---|---|---|---|---|---|")
    notes = []
    epilogue_rows = []
    for layer in layers:
        get = lambda kind, impl: entries.get((layer, kind, impl))
        fp32 = gmacs(get("fp32", "bitgrad"))
        vnni = gmacs(get("onednn_s8", "vnni"))
        f32 = gmacs(get("onednn_f32", "best"))
        title = layer_title(layer)
        first = True

        def row(impl, entry, pack=None, name=None):
            nonlocal first
            cell = title if first else ""
            first = False
            if entry is None:
                return
            label = name or impl
            if entry.get("error_occurred"):
                notes.append(f"{title}, {label}: {entry.get('error_message', 'error')}")
                out.append(f"| {cell} | {label} | — (see notes) | | | | | | |")
                return
            g = entry.get("GMAC")
            pct = entry.get("pct_bound")
            pct_s = f"{pct:.0f}% of {entry.get('bound'):g}" if pct is not None else "—"
            pack_s = fmt(us(pack)) if pack is not None and not pack.get("error_occurred") else "—"
            out.append(
                f"| {cell} | {label} | {fmt(g)} | {fmt(entry.get('MAC/cycle/core'))} | {pct_s} | "
                f"{ratio(g, fp32)} | {ratio(g, vnni)} | {ratio(g, f32)} | {pack_s} |"
            )

        kernels = [impl for (l, kind, impl) in entries if l == layer and kind == "conv"]
        for impl in kernels:
            row(impl, get("conv", impl), get("pack", impl), f"`{impl}`")
        row("fp32", get("fp32", "bitgrad"), name="FP32, bitgrad (`core::conv2d_forward`)")
        for kind, impl, name in (
            ("onednn_s8", "vnni", "oneDNN u8·s8→s32, no AMX"),
            ("onednn_s8", "best", "oneDNN u8·s8→s32, best ISA"),
            ("onednn_f32", "best", "oneDNN f32"),
        ):
            e = get(kind, impl)
            if e is None:
                continue
            if impl == "best" and kind == "onednn_s8":
                v = get("onednn_s8", "vnni")
                if v is not None and v.get("label") == e.get("label"):
                    continue  # same implementation as the no-AMX row (a CPU without AMX)
            row(impl, e, name=f"{name} ({e.get('label', '?')})")
        # The epilogue and one-off costs, for the second table.
        epi = {impl: us(e) for (l, kind, impl), e in entries.items()
               if l == layer and kind == "epilogue" and not e.get("error_occurred")}
        reorders = {}
        for kind, impl in (("onednn_s8", "vnni"), ("onednn_f32", "best")):
            e = get(kind, impl)
            if e is not None and not e.get("error_occurred"):
                reorders[kind] = tuple(
                    e.get(k, 0.0) for k in ("src_reorder_us", "wei_reorder_us", "dst_reorder_us"))
        epilogue_rows.append((title, epi, reorders))
    out.append("")
    tiers = []
    for _, epi, _ in epilogue_rows:
        for impl in epi:
            if impl not in tiers:
                tiers.append(impl)
    out.append("Threshold epilogue (int32 NHWC accumulators → 2-bit codes, µs per layer) and "
               "oneDNN's "
               "one-off reorders (src / weights / dst to NHWC, µs, outside its timed loop):")
    out.append("")
    out.append("| layer | " + " | ".join(f"`{t}`" for t in tiers)
               + " | oneDNN int8 reorders | oneDNN f32 reorders |")
    out.append("|---|" + "---|" * len(tiers) + "---|---|")
    for title, epi, reorders in epilogue_rows:
        cells = [fmt(epi.get(t)) for t in tiers]
        ro = ["/".join(fmt(x) for x in reorders[k]) if k in reorders else "—"
              for k in ("onednn_s8", "onednn_f32")]
        out.append(f"| {title} | " + " | ".join(cells) + f" | {ro[0]} | {ro[1]} |")
    if notes:
        out.append("")
        out.append("Notes:")
        for n in notes:
            out.append(f"- {n}")
    out.append("")
    return "\n".join(out)


def main(argv):
    if len(argv) < 2 or argv[1] in ("-h", "--help"):
        print(__doc__.strip())
        return 0 if len(argv) >= 2 else 2
    print("\n".join(section(p) for p in argv[1:]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
