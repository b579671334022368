#!/usr/bin/python3
"""make_golden_apot.py: writes tests/golden/data/quant_apot.safetensors, PyTorch references of the PoT /
APoT quantizers and of APoT's 8-bit first/last-layer weight quantizer, for tests/quant/apot_test.cpp.

Run by hand with Debian's python3-torch:  /usr/bin/python3 tests/golden/make_golden_apot.py
The reference is a transcription of the official APoT CIFAR code (yhhhli/APoT_Quantization,
CIFAR10/models/quant_layer.py, as ALGORITHMS.md §1 describes it at commit 13204f1): build_power_value,
weight_quantization (_pq), weight_quantize_fn (PoT switched off for w_bit <= 2, so 2-bit weights are
ternary), act_quantization (_uq), and first_conv / last_fc's 8-bit weight fake quantization. One
change: weight_quantize_fn passes `additive` to build_power_value (the original hard-codes True), so
that "vanilla" PoT is covered by the same code. Inputs are drawn in float32, the quantizers run in
float64 (torch's default dtype is set to float64, so the level sets are exact doubles), results are
stored as F32 and codes as I64. Inputs are redrawn until no element lies within MARGIN of a rounding
decision (a midpoint between levels, the clip point |u| = 1; exact zeros excepted), so float32 and
float64 agree on every code.
Reuses make_golden.py's safetensors writer.
"""
import hashlib
import os
import sys

import torch
import torch.nn as nn
from torch.nn.parameter import Parameter

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import make_golden  # noqa: E402  (the safetensors writer)

with open(os.path.abspath(__file__), "rb") as f:
    SCRIPT_SHA256 = hashlib.sha256(f.read()).hexdigest()

GEN = torch.Generator().manual_seed(20261122)
MARGIN = 1e-4


# ---- transcription of CIFAR10/models/quant_layer.py ---------------------------------------------------
def build_power_value(B=2, additive=True):
    base_a = [0.]
    base_b = [0.]
    base_c = [0.]
    if additive:
        if B == 2:
            for i in range(3):
                base_a.append(2 ** (-i - 1))
        elif B == 4:
            for i in range(3):
                base_a.append(2 ** (-2 * i - 1))
                base_b.append(2 ** (-2 * i - 2))
        elif B == 6:
            for i in range(3):
                base_a.append(2 ** (-3 * i - 1))
                base_b.append(2 ** (-3 * i - 2))
                base_c.append(2 ** (-3 * i - 3))
        elif B == 3:
            for i in range(3):
                if i < 2:
                    base_a.append(2 ** (-i - 1))
                else:
                    base_b.append(2 ** (-i - 1))
                    base_a.append(2 ** (-i - 2))
        elif B == 5:
            for i in range(3):
                if i < 2:
                    base_a.append(2 ** (-2 * i - 1))
                    base_b.append(2 ** (-2 * i - 2))
                else:
                    base_c.append(2 ** (-2 * i - 1))
                    base_a.append(2 ** (-2 * i - 2))
                    base_b.append(2 ** (-2 * i - 3))
        else:
            pass
    else:
        for i in range(2 ** B - 1):
            base_a.append(2 ** (-i - 1))
    values = []
    for a in base_a:
        for b in base_b:
            for c in base_c:
                values.append((a + b + c))
    values = torch.Tensor(list(set(values)))
    values = values.mul(1.0 / torch.max(values))
    return values


def weight_quantization(b, grids, power=True):

    def uniform_quant(x, b):
        xdiv = x.mul((2 ** b - 1))
        xhard = xdiv.round().div(2 ** b - 1)
        return xhard

    def power_quant(x, value_s):
        shape = x.shape
        xhard = x.view(-1)
        value_s = value_s.type_as(x)
        idxs = (xhard.unsqueeze(0) - value_s.unsqueeze(1)).abs().min(dim=0)[1]
        xhard = value_s[idxs].view(shape)
        return xhard

    class _pq(torch.autograd.Function):
        @staticmethod
        def forward(ctx, input, alpha):
            input.div_(alpha)
            input_c = input.clamp(min=-1, max=1)
            sign = input_c.sign()
            input_abs = input_c.abs()
            if power:
                input_q = power_quant(input_abs, grids).mul(sign)
            else:
                input_q = uniform_quant(input_abs, b).mul(sign)
            ctx.save_for_backward(input, input_q)
            input_q = input_q.mul(alpha)
            return input_q

        @staticmethod
        def backward(ctx, grad_output):
            grad_input = grad_output.clone()
            input, input_q = ctx.saved_tensors
            i = (input.abs() > 1.).float()
            sign = input.sign()
            grad_alpha = (grad_output * (sign * i + (input_q - input) * (1 - i))).sum()
            return grad_input, grad_alpha

    return _pq().apply


class weight_quantize_fn(nn.Module):
    def __init__(self, w_bit, power=True, additive=True):
        super(weight_quantize_fn, self).__init__()
        assert (w_bit <= 5 and w_bit > 0) or w_bit == 32
        self.w_bit = w_bit - 1
        self.power = power if w_bit > 2 else False
        self.grids = build_power_value(self.w_bit, additive=additive)
        self.weight_q = weight_quantization(b=self.w_bit, grids=self.grids, power=self.power)
        self.register_parameter('wgt_alpha', Parameter(torch.tensor(3.0)))

    def forward(self, weight):
        if self.w_bit == 32:
            weight_q = weight
        else:
            mean = weight.data.mean()
            std = weight.data.std()
            weight = weight.add(-mean).div(std)
            weight_q = self.weight_q(weight, self.wgt_alpha)
        return weight_q


def act_quantization(b, grid, power=True):

    def uniform_quant(x, b=3):
        xdiv = x.mul(2 ** b - 1)
        xhard = xdiv.round().div(2 ** b - 1)
        return xhard

    def power_quant(x, grid):
        shape = x.shape
        xhard = x.view(-1)
        value_s = grid.type_as(x)
        idxs = (xhard.unsqueeze(0) - value_s.unsqueeze(1)).abs().min(dim=0)[1]
        xhard = value_s[idxs].view(shape)
        return xhard

    class _uq(torch.autograd.Function):
        @staticmethod
        def forward(ctx, input, alpha):
            input = input.div(alpha)
            input_c = input.clamp(max=1)
            if power:
                input_q = power_quant(input_c, grid)
            else:
                input_q = uniform_quant(input_c, b)
            ctx.save_for_backward(input, input_q)
            input_q = input_q.mul(alpha)
            return input_q

        @staticmethod
        def backward(ctx, grad_output):
            grad_input = grad_output.clone()
            input, input_q = ctx.saved_tensors
            i = (input > 1.).float()
            grad_alpha = (grad_output * (i + (input_q - input) * (1 - i))).sum()
            grad_input = grad_input * (1 - i)
            return grad_input, grad_alpha

    return _uq().apply


def first_last_weight_q(weight):
    """first_conv / last_fc: the 8-bit weight fake quantization with its STE."""
    max = weight.data.max()
    weight_q = weight.div(max).mul(127).round().div(127).mul(max)
    weight_q = (weight_q - weight).detach() + weight
    return weight_q
# ---- end of transcription ---------------------------------------------------------------------------


def randn(*shape):
    return torch.randn(*shape, generator=GEN, dtype=torch.float32)


def uniform(lo, hi, *shape):
    return torch.rand(*shape, generator=GEN, dtype=torch.float32) * (hi - lo) + lo


def denominator(levels):
    """The lattice denominator: every grid contains 1/den as its smallest positive level."""
    return int(round(1.0 / levels[levels > 0].min().item()))


def distance_to_decisions(pos, levels, clip_points):
    """Smallest distance of each |pos| to a midpoint between neighbouring levels or a clip point."""
    lv = torch.sort(levels)[0]
    cuts = torch.cat([(lv[1:] + lv[:-1]) / 2, torch.tensor(clip_points)])
    pos = pos.reshape(-1)
    pos = pos[pos != 0]  # exact zeros are exactly level 0 in float32 too
    return (pos.abs().reshape(-1, 1) - cuts.reshape(1, -1)).abs().min(dim=1)[0]


def draw_until_clear(draw, positions, levels, clip_points):
    for _ in range(100):
        t = draw()
        if distance_to_decisions(positions(t), levels, clip_points).min().item() > MARGIN:
            return t
    raise RuntimeError("could not draw inputs away from the rounding decisions")


WEIGHT_SHAPE = (8, 4, 3, 3)
ACT_SHAPE = (2, 4, 5, 5)
# alpha per bit width: normalised-weight thresholds in the trained range of §1.7 (some |u| > 1);
# activation thresholds below the largest inputs (some v > 1).
WEIGHT_ALPHA = {2: 0.9, 3: 1.3, 4: 1.7}
ACT_ALPHA = {2: 1.5, 3: 2.0, 4: 2.5}


def make_weight_case(tensors, mode, bits):
    additive = mode == "apot"
    fn = weight_quantize_fn(bits, power=True, additive=additive)
    alpha = torch.tensor(WEIGHT_ALPHA[bits], dtype=torch.float32)
    fn.wgt_alpha.data.fill_(alpha.double().item())
    levels = fn.grids if fn.power else torch.tensor([0.0, 1.0])

    def positions(w):
        w = w.double()
        return (w - w.mean()) / w.std() / alpha.double()

    w = draw_until_clear(lambda: randn(*WEIGHT_SHAPE) * 0.1 + 0.01, positions, levels, [1.0])
    g = randn(*WEIGHT_SHAPE)
    leaf = w.double().requires_grad_(True)
    out = fn(leaf)
    dw, dalpha = torch.autograd.grad(out, [leaf, fn.wgt_alpha], g.double())
    den = denominator(levels)
    code = torch.round(out.detach() / fn.wgt_alpha.detach() * den).to(torch.int64)
    key = "weight.%s%d" % (mode, bits)
    tensors.update({key + ".w": w, key + ".alpha": alpha.reshape(1), key + ".grad_out": g,
                    key + ".out": out, key + ".dw": dw, key + ".dalpha": dalpha.reshape(1),
                    key + ".code": code})
    u = positions(w)
    return "%s: den %d, %d of %d clipped" % (key, den, int((u.abs() > 1).sum()), u.numel())


def make_act_case(tensors, mode, bits):
    additive = mode == "apot"
    grid = build_power_value(bits, additive=additive)
    fn = act_quantization(bits, grid, power=True)
    alpha = torch.tensor(ACT_ALPHA[bits], dtype=torch.float32)

    def draw():
        # Post-ReLU-like: a quarter exact zeros, the rest up to 1.4 alpha; four small negatives
        # (pinned: the CIFAR code passes their gradient and sends them to level 0).
        x = uniform(0.0, 1.4 * alpha.item(), *ACT_SHAPE)
        x[uniform(0.0, 1.0, *ACT_SHAPE) < 0.25] = 0.0
        x.view(-1)[:4] = uniform(-0.3 * alpha.item(), -0.01, 4)
        return x

    x = draw_until_clear(draw, lambda t: t.double() / alpha.double(), grid, [1.0])
    g = randn(*ACT_SHAPE)
    leaf = x.double().requires_grad_(True)
    a = Parameter(alpha.double().clone())
    out = fn(leaf, a)
    dx, dalpha = torch.autograd.grad(out, [leaf, a], g.double())
    den = denominator(grid)
    code = torch.round(out.detach() / a.detach() * den).to(torch.int64)
    key = "act.%s%d" % (mode, bits)
    tensors.update({key + ".x": x, key + ".alpha": alpha.reshape(1), key + ".grad_out": g,
                    key + ".out": out, key + ".dx": dx, key + ".dalpha": dalpha.reshape(1),
                    key + ".code": code})
    v = x.double() / alpha.double()
    return "%s: den %d, %d of %d above alpha" % (key, den, int((v > 1).sum()), v.numel())


def make_int8max_case(tensors, name, shape):
    def draw():
        w = randn(*shape) * 0.2
        w[w < 0] *= 1.6  # so the minimum lies below -max: codes below -127
        return w

    def halfway(w):  # distance of w / max * 127 to the nearest rounding point (k + 1/2)
        r = w.double() / w.double().max() * 127
        return (r - torch.floor(r) - 0.5).abs().min().item()

    for _ in range(100):
        w = draw()
        if halfway(w) > MARGIN:
            break
    else:
        raise RuntimeError("could not draw int8max weights away from the rounding points")
    g = randn(*shape)
    leaf = w.double().requires_grad_(True)
    out = first_last_weight_q(leaf)
    (dw,) = torch.autograd.grad(out, [leaf], g.double())
    code = torch.round(leaf.detach() / leaf.detach().max() * 127).to(torch.int64)
    key = "int8max." + name
    tensors.update({key + ".w": w, key + ".grad_out": g, key + ".out": out, key + ".dw": dw,
                    key + ".code": code})
    return "%s: codes %d..%d" % (key, int(code.min()), int(code.max()))


def main():
    torch.set_default_dtype(torch.float64)
    tensors, notes = {}, []
    for B in range(2, 7):
        tensors["grid.apot%d" % B] = torch.sort(build_power_value(B, additive=True))[0]
    for B in range(1, 5):
        tensors["grid.pot%d" % B] = torch.sort(build_power_value(B, additive=False))[0]
    for mode in ("apot", "pot"):
        for bits in (2, 3, 4):
            notes.append(make_weight_case(tensors, mode, bits))
            notes.append(make_act_case(tensors, mode, bits))
    notes.append(make_int8max_case(tensors, "conv", (16, 3, 3, 3)))
    notes.append(make_int8max_case(tensors, "fc", (10, 64)))
    for n in notes:
        print(n)
    meta = {"generator": "tests/golden/make_golden_apot.py", "script_sha256": SCRIPT_SHA256,
            "source": "yhhhli/APoT_Quantization CIFAR10/models/quant_layer.py (ALGORITHMS.md §1, 13204f1)",
            "margin": MARGIN, "cases": " ".join(n.split(":")[0] for n in notes)}
    make_golden.write_safetensors(os.path.join(make_golden.OUT, "quant_apot.safetensors"), tensors, meta)


if __name__ == "__main__":
    main()
