#!/usr/bin/python3
"""make_golden_distill.py: writes tests/golden/data/distill.safetensors, PyTorch references of the
distillation losses in distill/ (kd, feature, contrastive, channel_attention), for
tests/distill/losses_test.cpp.

Run by hand with Debian's python3-torch:  /usr/bin/python3 tests/golden/make_golden_distill.py
Each case stores `<case>.student`, `<case>.teacher` (inputs drawn in float32 from a fixed torch
generator, so the C++ side reads the very same values), `<case>.loss` (shape [1]) and
`<case>.dstudent` (d loss / d student by torch autograd). References are computed in float64 and
stored as F32. The loss forms are written exactly as the distill/*.hpp headers document them.
Metadata: `cases` (space-separated) and per case `<case>` = "kind=<loss> param=<T or tau or 0>".
Reuses make_golden.py's safetensors writer.
Not here: the comparison itself (tests/distill/losses_test.cpp).
"""
import hashlib
import os
import sys

import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import make_golden  # noqa: E402  (the safetensors writer)

with open(os.path.abspath(__file__), "rb") as f:
    SCRIPT_SHA256 = hashlib.sha256(f.read()).hexdigest()

GEN = torch.Generator().manual_seed(20260707)


def randn(*shape):
    return torch.randn(*shape, generator=GEN, dtype=torch.float32)


# ---- the losses, as documented in distill/*.hpp -------------------------------------------------
def kd(s, t, T):
    return F.kl_div(F.log_softmax(s / T, 1), F.softmax(t / T, 1), reduction="batchmean") * T * T


def feature_mse(s, t, _):
    return F.mse_loss(s, t)


def at(x):
    return F.normalize(x.pow(2).mean(1).view(x.size(0), -1))


def attention_transfer(s, t, _):
    return (at(s) - at(t)).pow(2).sum(1).mean()


def contrastive(s, t, tau):
    logits = F.normalize(s) @ F.normalize(t).T / tau
    return F.cross_entropy(logits, torch.arange(s.size(0)))


def channel_attention(s, t, _):
    def a(x):
        return F.normalize(x.pow(2).mean([2, 3]))
    return (a(s) - a(t)).pow(2).mean()


KINDS = {"kd": kd, "feature_mse": feature_mse, "attention_transfer": attention_transfer,
         "contrastive": contrastive, "channel_attention": channel_attention}

# name: (kind, student shape, teacher shape, parameter, input scale)
CASES = {
    "kd_t1": ("kd", (3, 7), (3, 7), 1.0, 2.0),
    "kd_t4": ("kd", (3, 7), (3, 7), 4.0, 2.0),
    "kd_t2_large": ("kd", (2, 10), (2, 10), 2.0, 40.0),  # large logits: stable log-softmax
    "mse_4d": ("feature_mse", (2, 5, 3, 4), (2, 5, 3, 4), 0.0, 1.0),
    "mse_2d": ("feature_mse", (3, 7), (3, 7), 0.0, 1.0),
    "at_same_c": ("attention_transfer", (2, 5, 3, 4), (2, 5, 3, 4), 0.0, 1.0),
    "at_wider_teacher": ("attention_transfer", (2, 5, 3, 4), (2, 8, 3, 4), 0.0, 1.0),
    "at_b3": ("attention_transfer", (3, 4, 2, 5), (3, 6, 2, 5), 0.0, 1.0),
    "con_tau01": ("contrastive", (3, 7), (3, 7), 0.1, 1.0),
    "con_tau05": ("contrastive", (4, 6), (4, 6), 0.5, 1.0),
    "con_tau1": ("contrastive", (5, 8), (5, 8), 1.0, 1.0),
    "ca_same": ("channel_attention", (2, 5, 3, 4), (2, 5, 3, 4), 0.0, 1.0),
    "ca_b3": ("channel_attention", (3, 7, 4, 4), (3, 7, 2, 2), 0.0, 1.0),
}


def main():
    tensors, meta = {}, {}
    for name, (kind, s_shape, t_shape, param, scale) in CASES.items():
        s = randn(*s_shape) * scale
        t = randn(*t_shape) * scale
        if kind in ("kd", "contrastive"):
            t = 0.6 * t + 0.4 * s  # a teacher correlated with the student, like a real one
        sd = s.double().requires_grad_(True)
        loss = KINDS[kind](sd, t.double(), param)
        (ds,) = torch.autograd.grad(loss, [sd])
        tensors.update({name + ".student": s, name + ".teacher": t,
                        name + ".loss": loss.detach().reshape(1), name + ".dstudent": ds})
        meta[name] = "kind=%s param=%g" % (kind, param)
    meta.update({"generator": "tests/golden/make_golden_distill.py",
                 "script_sha256": SCRIPT_SHA256, "cases": " ".join(CASES)})
    path = os.path.join(make_golden.OUT, "distill.safetensors")
    make_golden.write_safetensors(path, tensors, meta)


if __name__ == "__main__":
    main()
