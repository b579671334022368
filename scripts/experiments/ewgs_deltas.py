#!/usr/bin/env python3
"""ewgs_deltas.py CHECKPOINT [CHECKPOINT ...]: the EWGS deltas a QAT run ended with, read from its
checkpoint's `<layer>.quant.{weight,input}.ewgs_delta` buffers, with the largest |x - x_q| each
quantizer's grid allows (half its widest gap, in the units delta multiplies), so that the largest EWGS
factor 1 + delta * max|x - x_q| can be read off: above 2 the backward can flip a gradient's sign.
Reads safetensors directly (no packages beyond the standard library); prints one Markdown table per file.
"""
import json
import struct
import sys


def read_scalars(path):
    data = open(path, "rb").read()
    n = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8:8 + n])
    meta = header.pop("__metadata__", {})
    out = {}
    for name, info in header.items():
        if name.endswith("ewgs_delta") and info["dtype"] == "F32":
            begin = 8 + n + info["data_offsets"][0]
            out[name] = struct.unpack("<f", data[begin:begin + 4])[0]
    return out, meta


def half_gap(kind, role, bits):
    """Half the widest gap between neighbouring levels, in the quantizer's EWGS units."""
    if kind in ("apot", "pot"):
        if role == "weight":
            return 0.5 if bits == 2 else 0.25  # ternary step 1; 3-bit {0, 1/4, 1/2, 1}: widest gap 1/2
        return {2: 0.25, 3: 0.1, 4: 1 / 6}[bits]  # widest gaps 1/2, 1/5, 1/3 of alpha
    return 0.5 / (2 ** bits - 1)  # uniform grids normalised to [0, 1]


def main():
    for path in sys.argv[1:]:
        deltas, meta = read_scalars(path)
        policy = json.loads(meta.get("quant", "{}"))
        kind = policy.get("method", "?")
        print(f"\n{path} ({kind} W{policy.get('weight_bits')}A{policy.get('act_bits')}, "
              f"{policy.get('estimator')})\n")
        print("| quantizer | delta | largest factor 1 + delta * max \\|x - x_q\\| |")
        print("|---|---|---|")
        for name, delta in deltas.items():
            role = "weight" if ".quant.weight." in name else "input"
            bits = policy.get("weight_bits") if role == "weight" else policy.get("act_bits")
            if delta == 0.0:
                continue
            factor = 1 + delta * half_gap(kind, role, bits)
            print(f"| {name.removesuffix('.ewgs_delta')} | {delta:.3g} | {factor:.2f} |")
        zero = sum(1 for d in deltas.values() if d == 0.0)
        print(f"\n{zero} of {len(deltas)} quantizers have delta 0 (a negative trace estimate, clipped).")


if __name__ == "__main__":
    main()
