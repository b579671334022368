#!/usr/bin/python3
"""make_golden_uniform.py: writes tests/golden/data/quant_uniform.safetensors, PyTorch references of the four
uniform quantizers (min-max, learned interval, PACT, LSQ) for tests/quant/uniform_test.cpp.

Run by hand with Debian's python3-torch:  /usr/bin/python3 tests/golden/make_golden_uniform.py
Each quantizer is a direct torch transcription of its formula (ALGORITHMS.md §2.1, §5.3; PACT; LSQ):
autograd where the method uses autograd (EWGS's affine map + clamp, LSQ's clamp), custom autograd
Functions where it defines its own backward (straight-through / EWGS rounding, PACT, LSQ's gradient
scale). Inputs are float32 draws; references are computed in float64 and stored as F32. Gradients are
those of sum(grad_out * out). The script refuses inputs whose rounding is within MARGIN of a tie (so
float32 vs float64 arithmetic cannot flip a code). Reuses make_golden.py's safetensors writer.
Not here: the comparison (tests/quant/uniform_test.cpp).
"""
import hashlib
import math
import os
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import make_golden  # noqa: E402  (the safetensors writer)

with open(os.path.abspath(__file__), "rb") as f:
    SCRIPT_SHA256 = hashlib.sha256(f.read()).hexdigest()

GEN = torch.Generator().manual_seed(20261122)
MARGIN = 1e-5            # min distance of any pre-rounding grid position from a .5 tie (float32 error ~1e-6)
EWGS_DELTA = 0.2         # the delta of the lint.*_ewgs cases
EMA_MOMENTUM = 0.9       # min-max activation EMA beta
WEIGHT_SHAPE = (4, 3, 3, 3)
ACT_SHAPE = (2, 3, 5, 5)


def randn(*shape):
    return torch.randn(*shape, generator=GEN, dtype=torch.float32)


def f32(v):
    """A float32 scalar parameter, as stored (shape [1])."""
    return torch.tensor([v], dtype=torch.float32)


def check_margin(pos, what):
    """pos: float64 grid positions before rounding (only those that get rounded)."""
    if pos.numel() == 0:
        return
    frac = pos - torch.floor(pos)
    worst = (frac - 0.5).abs().min().item()
    assert worst > MARGIN, "%s: a position is %.2e from a rounding tie; change the seed" % (what, worst)


# ---- rounding with a straight-through / EWGS backward ---------------------------------------------
class RoundSte(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return torch.round(x)

    @staticmethod
    def backward(ctx, g):
        return g


class EwgsDiscretizer(torch.autograd.Function):
    """EWGS CIFAR10/custom_modules.py: D(x) = round(x (L-1)) / (L-1); dx = g (1 + delta sign(g) (x - D(x)))."""

    @staticmethod
    def forward(ctx, x, levels, delta):
        xq = torch.round(x * (levels - 1)) / (levels - 1)
        ctx.save_for_backward(x - xq)
        ctx.delta = delta
        return xq

    @staticmethod
    def backward(ctx, g):
        (diff,) = ctx.saved_tensors
        return g * (1 + ctx.delta * torch.sign(g) * diff), None, None


# ---- min-max (GDFQ / ZeroQ AsymmetricQuantFunction, ALGORITHMS.md §5.3) ---------------------------
class GdfqQuant(torch.autograd.Function):
    """Signed GDFQ form: z = round(S m) + 2^(k-1), q = clamp(round(S x - z), -2^(k-1), 2^(k-1)-1),
    x^ = (q + z) / S; backward: pure STE (dx = g, no clip mask)."""

    @staticmethod
    def forward(ctx, x, m, M, k):
        S = (2 ** k - 1) / torch.clamp(M - m, min=1e-8)
        z = torch.round(S * m) + 2 ** (k - 1)
        pos = S * x - z
        check_margin(pos[(pos > -2 ** (k - 1) - 0.5) & (pos < 2 ** (k - 1) - 0.5)], "minmax")
        q = torch.clamp(torch.round(S * x - z), -2 ** (k - 1), 2 ** (k - 1) - 1)
        return (q + z) / S

    @staticmethod
    def backward(ctx, g):
        return g, None, None, None


def minmax_weight_case(key, bits, per_channel, scale):
    x = randn(*WEIGHT_SHAPE) * scale
    grad_out = randn(*WEIGHT_SHAPE)
    xd = x.double().requires_grad_(True)
    if per_channel:
        flat = xd.detach().reshape(WEIGHT_SHAPE[0], -1)
        m = flat.min(1).values.reshape(-1, 1, 1, 1)
        M = flat.max(1).values.reshape(-1, 1, 1, 1)
    else:
        m, M = xd.detach().min(), xd.detach().max()
    out = GdfqQuant.apply(xd, m, M, bits)
    (dx,) = torch.autograd.grad(out, [xd], grad_out.double())
    return {key + ".x": x, key + ".grad_out": grad_out, key + ".out": out.detach(), key + ".dx": dx}


def minmax_activation_case(key, bits):
    """Three training batches update the bias-corrected EMA; the last one's output and dx are stored,
    then an eval batch is quantized with the stored range."""
    batches = [randn(*ACT_SHAPE) * 0.5 + 0.1, randn(*ACT_SHAPE) * 1.0 + 0.2, randn(*ACT_SHAPE) * 0.8 + 0.3]
    raw_min, raw_max, steps = 0.0, 0.0, 0
    t = {}
    for i, b in enumerate(batches):
        bd = b.double()
        raw_min = EMA_MOMENTUM * raw_min + (1 - EMA_MOMENTUM) * bd.min().item()
        raw_max = EMA_MOMENTUM * raw_max + (1 - EMA_MOMENTUM) * bd.max().item()
        steps += 1
        t["%s.x%d" % (key, i)] = b
    corr = 1 - EMA_MOMENTUM ** steps
    m = torch.tensor(raw_min / corr, dtype=torch.float64)
    M = torch.tensor(raw_max / corr, dtype=torch.float64)
    grad_out = randn(*ACT_SHAPE)
    xd = batches[-1].double().requires_grad_(True)
    out = GdfqQuant.apply(xd, m, M, bits)
    (dx,) = torch.autograd.grad(out, [xd], grad_out.double())
    x_eval = randn(*ACT_SHAPE) * 1.3
    out_eval = GdfqQuant.apply(x_eval.double(), m, M, bits)
    t.update({key + ".grad_out": grad_out, key + ".out": out.detach(), key + ".dx": dx,
              key + ".range": torch.stack([m, M]), key + ".x_eval": x_eval, key + ".out_eval": out_eval})
    return t


# ---- learned interval (EWGS / QIL, ALGORITHMS.md §2.1) --------------------------------------------
def lint_case(key, bits, weight, lower, upper, delta):
    L = 2 ** bits
    x = randn(*WEIGHT_SHAPE) * 0.2 if weight else torch.relu(randn(*ACT_SHAPE) * 0.8 + 0.3)
    grad_out = randn(*x.shape)
    lo, up = f32(lower), f32(upper)
    xd, ld, ud = (v.double().requires_grad_(True) for v in (x, lo, up))
    z = torch.clamp((xd - ld) / (ud - ld), 0, 1)
    inside = ((xd - ld) / (ud - ld)).detach()
    check_margin((z.detach() * (L - 1))[(inside > 0) & (inside < 1)], key)
    assert ((inside - 1).abs() > 1e-6).all() and ((inside.abs() > 1e-6) | (inside == 0)).all(), key
    d = EwgsDiscretizer.apply(z, L, delta)
    out = 2 * d - 1 if weight else d
    dx, dl, du = torch.autograd.grad(out, [xd, ld, ud], grad_out.double())
    xs = x.double()
    if weight:
        calib = (-3 * xs.std(), 3 * xs.std())
    else:
        calib = (xs.min(), 3 * xs.std() / math.sqrt(1 - 2 / math.pi))
    return {key + ".x": x, key + ".lower": lo, key + ".upper": up, key + ".grad_out": grad_out,
            key + ".out": out.detach(), key + ".dx": dx, key + ".dlower": dl, key + ".dupper": du,
            key + ".calib_lower": calib[0].reshape(1), key + ".calib_upper": calib[1].reshape(1)}


# ---- PACT (Choi et al. 2018) ----------------------------------------------------------------------
class PactRef(torch.autograd.Function):
    """y = clamp(x, 0, alpha), out = round(y (L-1)/alpha) alpha/(L-1);
    dx = g for 0 <= x <= alpha, dalpha = sum g over x >= alpha."""

    @staticmethod
    def forward(ctx, x, alpha, levels):
        ctx.save_for_backward(x, alpha)
        y = torch.minimum(torch.clamp(x, min=0), alpha)
        pos = y * (levels - 1) / alpha
        check_margin(pos[(x > 0) & (x < alpha)], "pact")
        return torch.round(pos) * alpha / (levels - 1)

    @staticmethod
    def backward(ctx, g):
        x, alpha = ctx.saved_tensors
        dx = g * ((x >= 0) & (x <= alpha)).to(g.dtype)
        dalpha = (g * (x >= alpha).to(g.dtype)).sum().reshape(alpha.shape)
        return dx, dalpha, None


def pact_case(key, bits, alpha):
    x = torch.relu(randn(*ACT_SHAPE) * 0.8 + 0.3) - 0.05 * (randn(*ACT_SHAPE) > 1.5).float()
    grad_out = randn(*ACT_SHAPE)
    al = f32(alpha)
    xd, ad = x.double().requires_grad_(True), al.double().requires_grad_(True)
    assert ((xd - ad).abs() > 1e-6).all()
    out = PactRef.apply(xd, ad, 2 ** bits)
    dx, da = torch.autograd.grad(out, [xd, ad], grad_out.double())
    return {key + ".x": x, key + ".alpha": al, key + ".grad_out": grad_out, key + ".out": out.detach(),
            key + ".dx": dx, key + ".dalpha": da}


# ---- LSQ (Esser et al. 2020; the paper's reference code) ------------------------------------------
class GradScale(torch.autograd.Function):
    """Identity forward; multiplies the gradient by `scale` (LSQ's grad_scale)."""

    @staticmethod
    def forward(ctx, x, scale):
        ctx.scale = scale
        return x.clone()

    @staticmethod
    def backward(ctx, g):
        return g * ctx.scale, None


def lsq_case(key, bits, weight, step):
    qn, qp = (2 ** (bits - 1), 2 ** (bits - 1) - 1) if weight else (0, 2 ** bits - 1)
    x = randn(*WEIGHT_SHAPE) * 0.2 if weight else torch.relu(randn(*ACT_SHAPE) * 0.8 + 0.3)
    grad_out = randn(*x.shape)
    st = f32(step)
    xd, sd = x.double().requires_grad_(True), st.double().requires_grad_(True)
    s = GradScale.apply(sd, 1.0 / math.sqrt(x.numel() * qp))
    v = torch.clamp(xd / s, -qn, qp)
    vv = (xd / sd).detach()
    check_margin(vv[(vv > -qn) & (vv < qp)], key)
    assert (((vv + qn).abs() > 1e-6) | (vv == -qn)).all() and ((vv - qp).abs() > 1e-6).all(), key
    out = RoundSte.apply(v) * s
    dx, ds = torch.autograd.grad(out, [xd, sd], grad_out.double())
    calib = 2 * x.double().abs().mean() / math.sqrt(qp)
    return {key + ".x": x, key + ".step": st, key + ".grad_out": grad_out, key + ".out": out.detach(),
            key + ".dx": dx, key + ".dstep": ds, key + ".calib_step": calib.reshape(1)}


def main():
    tensors, meta = {}, {}
    for bits in (2, 4):
        for per_channel in (False, True):
            key = "minmax.w%d_%s" % (bits, "channel" if per_channel else "tensor")
            tensors.update(minmax_weight_case(key, bits, per_channel, 0.2))
        tensors.update(minmax_activation_case("minmax.a%d" % bits, bits))
        tensors.update(lint_case("lint.w%d" % bits, bits, True, -0.3, 0.25, 0.0))
        tensors.update(lint_case("lint.a%d" % bits, bits, False, 0.0, 1.4, 0.0))
        tensors.update(pact_case("pact.a%d" % bits, bits, 1.5))
    tensors.update(lint_case("lint.w2_ewgs", 2, True, -0.3, 0.25, EWGS_DELTA))
    tensors.update(lint_case("lint.a2_ewgs", 2, False, 0.0, 1.4, EWGS_DELTA))
    tensors.update(lsq_case("lsq.w2", 2, True, 0.1))
    tensors.update(lsq_case("lsq.w4", 4, True, 0.05))
    tensors.update(lsq_case("lsq.a2", 2, False, 0.4))
    tensors.update(lsq_case("lsq.a4", 4, False, 0.08))
    cases = sorted({name.rsplit(".", 1)[0] for name in tensors})
    meta.update({"generator": "tests/golden/make_golden_uniform.py", "script_sha256": SCRIPT_SHA256,
                 "cases": " ".join(cases), "ewgs_delta": EWGS_DELTA, "ema_momentum": EMA_MOMENTUM,
                 "margin": MARGIN})
    make_golden.write_safetensors(os.path.join(make_golden.OUT, "quant_uniform.safetensors"), tensors, meta)


if __name__ == "__main__":
    main()
