#!/usr/bin/python3
"""make_golden.py: writes the PyTorch reference fixtures under tests/golden/data/ (safetensors files).

Run by hand with Debian's python3-torch:  /usr/bin/python3 tests/golden/make_golden.py
Inputs are drawn in float32 (so the C++ side reads exactly the same values), references are computed in
float64 and stored as F32. Each file records the torch version and this script's sha256 in __metadata__.
Not here: the comparison itself (tests/nn/golden_test.cpp) or any dependency on the `safetensors` package
(the format is written below with struct + json).
"""
import hashlib
import json
import math
import os
import struct

import torch
import torch.nn as nn
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "data")
with open(os.path.abspath(__file__), "rb") as f:
    SCRIPT_SHA256 = hashlib.sha256(f.read()).hexdigest()

# ---- safetensors writer ---------------------------------------------------------------------------
# 8-byte little-endian header length N, N bytes of JSON (padded with spaces to a multiple of 8), then
# the raw little-endian data of each tensor in header order.
_FORMATS = {torch.float32: ("F32", "f"), torch.int64: ("I64", "q")}


def write_safetensors(path, tensors, metadata=None):
    header = {}
    data = bytearray()
    for name in sorted(tensors):
        t = tensors[name].detach().cpu()
        if t.is_floating_point():
            t = t.to(torch.float32)
        dtype_name, code = _FORMATS[t.dtype]
        flat = t.contiguous().reshape(-1).tolist()
        blob = struct.pack("<%d%s" % (len(flat), code), *flat)
        header[name] = {"dtype": dtype_name, "shape": list(t.shape),
                        "data_offsets": [len(data), len(data) + len(blob)]}
        data += blob
    meta = {"torch_version": torch.__version__, "script_sha256": SCRIPT_SHA256,
            "generator": "tests/golden/make_golden.py"}
    meta.update(metadata or {})
    header["__metadata__"] = {k: str(v) for k, v in meta.items()}
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * ((8 - len(text) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        f.write(data)
    print("wrote %s (%d tensors, %d bytes)" % (os.path.relpath(path), len(tensors), 8 + len(text) + len(data)))


# ---- inputs ---------------------------------------------------------------------------------------
GEN = torch.Generator().manual_seed(20240521)


def randn(*shape):
    return torch.randn(*shape, generator=GEN, dtype=torch.float32)


def uniform(lo, hi, *shape):
    return torch.rand(*shape, generator=GEN, dtype=torch.float32) * (hi - lo) + lo


def leaf(t):
    """float32 input -> float64 leaf requiring grad (exact widening)."""
    return t.double().requires_grad_(True)


def grads(out, inputs, grad_out):
    return torch.autograd.grad(out, inputs, grad_out.double())


# ---- conv2d ---------------------------------------------------------------------------------------
# name: (N, C, H, W, O, k, stride, padding, dilation, bias)
CONV_CASES = {
    "c0": (2, 3, 7, 7, 4, 3, 1, 0, 1, True),
    "c1": (2, 3, 6, 6, 5, 3, 1, 1, 1, False),
    "c2": (2, 4, 8, 8, 3, 3, 2, 1, 1, True),
    "c3": (1, 2, 9, 9, 3, 3, 1, 2, 2, True),
    "c4": (2, 4, 8, 8, 6, 1, 2, 0, 1, False),
    "c5": (2, 3, 8, 7, 2, 3, 2, 0, 1, True),
}


def make_conv():
    tensors, meta = {}, {}
    for key, (n, c, h, w, o, k, s, p, d, has_bias) in CONV_CASES.items():
        x, wt = randn(n, c, h, w), randn(o, c, k, k) * 0.3
        b = randn(o) if has_bias else None
        xd, wd = leaf(x), leaf(wt)
        bd = leaf(b) if has_bias else None
        out = F.conv2d(xd, wd, bd, stride=s, padding=p, dilation=d)
        g = randn(*out.shape)
        inputs = [xd, wd] + ([bd] if has_bias else [])
        gr = grads(out, inputs, g)
        tensors.update({key + ".x": x, key + ".weight": wt, key + ".out": out, key + ".grad_out": g,
                        key + ".dx": gr[0], key + ".dweight": gr[1]})
        if has_bias:
            tensors.update({key + ".bias": b, key + ".dbias": gr[2]})
        meta[key] = "stride=%d padding=%d dilation=%d bias=%d" % (s, p, d, int(has_bias))
    meta["cases"] = " ".join(CONV_CASES)
    write_safetensors(os.path.join(OUT, "conv2d.safetensors"), tensors, meta)


# ---- batch norm -----------------------------------------------------------------------------------
# name: (shape, training)
BN_CASES = {"train4d": ((4, 3, 5, 5), True), "eval4d": ((4, 3, 5, 5), False),
            "train2d": ((8, 5), True), "eval2d": ((8, 5), False)}
BN_MOMENTUM, BN_EPS = 0.1, 1e-5


def make_batch_norm():
    tensors, meta = {}, {}
    for key, (shape, training) in BN_CASES.items():
        c = shape[1]
        x = randn(*shape) * 2.0 + 0.5
        gamma, beta = uniform(0.5, 1.5, c), uniform(-0.5, 0.5, c)
        rm, rv = randn(c) * 0.3, uniform(0.5, 2.0, c)
        xd, gd, bd = leaf(x), leaf(gamma), leaf(beta)
        rmd, rvd = rm.double(), rv.double()
        out = F.batch_norm(xd, rmd, rvd, gd, bd, training=training, momentum=BN_MOMENTUM, eps=BN_EPS)
        g = randn(*out.shape)
        dx, dgamma, dbeta = grads(out, [xd, gd, bd], g)
        tensors.update({key + ".x": x, key + ".gamma": gamma, key + ".beta": beta,
                        key + ".running_mean": rm, key + ".running_var": rv, key + ".out": out,
                        key + ".grad_out": g, key + ".dx": dx, key + ".dgamma": dgamma,
                        key + ".dbeta": dbeta, key + ".running_mean_after": rmd,
                        key + ".running_var_after": rvd})
        meta[key] = "training=%d" % int(training)
    meta.update({"momentum": repr(BN_MOMENTUM), "eps": repr(BN_EPS), "cases": " ".join(BN_CASES)})
    write_safetensors(os.path.join(OUT, "batch_norm.safetensors"), tensors, meta)


# ---- pooling --------------------------------------------------------------------------------------
# name: (kind, shape, kernel, stride, padding)
POOL_CASES = {
    "avg_k2s2": ("avg", (2, 3, 6, 6), 2, 2, 0),
    "avg_k3s2p1": ("avg", (2, 3, 7, 7), 3, 2, 1),
    "max_k2s2": ("max", (2, 3, 6, 6), 2, 2, 0),
    "max_k3s2p1": ("max", (2, 3, 7, 7), 3, 2, 1),
    "max_k3s1p1": ("max", (1, 2, 5, 5), 3, 1, 1),
    "gap": ("gap", (3, 4, 5, 6), 0, 0, 0),
}


def make_pool():
    tensors, meta = {}, {}
    for key, (kind, shape, k, s, p) in POOL_CASES.items():
        x = randn(*shape)
        xd = leaf(x)
        if kind == "avg":
            out = F.avg_pool2d(xd, k, s, p, count_include_pad=True)
        elif kind == "max":
            out = F.max_pool2d(xd, k, s, p)
        else:
            out = xd.mean(dim=(2, 3))
        g = randn(*out.shape)
        (dx,) = grads(out, [xd], g)
        tensors.update({key + ".x": x, key + ".out": out, key + ".grad_out": g, key + ".dx": dx})
        meta[key] = "kind=%s kernel=%d stride=%d padding=%d" % (kind, k, s, p)
    meta["cases"] = " ".join(POOL_CASES)
    write_safetensors(os.path.join(OUT, "pool.safetensors"), tensors, meta)


# ---- softmax and losses ---------------------------------------------------------------------------
KD_T = 4.0


def make_loss():
    t = {}
    # log_softmax and softmax over axis 1 of [4, 10], with an upstream gradient.
    x = randn(4, 10) * 3.0
    for name, fn in (("log_softmax", F.log_softmax), ("softmax", F.softmax)):
        xd = leaf(x)
        out = fn(xd, dim=1)
        g = randn(4, 10)
        (dx,) = grads(out, [xd], g)
        t.update({name + ".x": x, name + ".out": out, name + ".grad_out": g, name + ".dx": dx})
    # cross_entropy, mean over the batch.
    logits, targets = randn(6, 10) * 2.0, torch.randint(0, 10, (6,), generator=GEN, dtype=torch.int64)
    ld = leaf(logits)
    loss = F.cross_entropy(ld, targets)
    (dl,) = torch.autograd.grad(loss, [ld])
    t.update({"cross_entropy.logits": logits, "cross_entropy.targets": targets,
              "cross_entropy.loss": loss, "cross_entropy.dlogits": dl})
    # Hinton KD: T^2 * batchmean KL(softmax(t/T) || softmax(s/T)).
    s, te = randn(6, 10) * 3.0, randn(6, 10) * 3.0
    sd = leaf(s)
    loss = F.kl_div(F.log_softmax(sd / KD_T, 1), F.softmax(te.double() / KD_T, 1),
                    reduction="batchmean") * KD_T * KD_T
    (ds,) = torch.autograd.grad(loss, [sd])
    t.update({"kl_div.student": s, "kl_div.teacher": te, "kl_div.loss": loss, "kl_div.dstudent": ds})
    # mse, both sides differentiable.
    a, b = randn(3, 4, 5), randn(3, 4, 5)
    ad, bd = leaf(a), leaf(b)
    loss = F.mse_loss(ad, bd)
    da, db = torch.autograd.grad(loss, [ad, bd])
    t.update({"mse.a": a, "mse.b": b, "mse.loss": loss, "mse.da": da, "mse.db": db})
    write_safetensors(os.path.join(OUT, "loss.safetensors"), t, {"kl_temperature": repr(KD_T)})


# ---- CIFAR ResNet (akamaster/pytorch_resnet_cifar10 names) -----------------------------------------
class LambdaLayer(nn.Module):
    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, x):
        return self.fn(x)


class BasicBlock(nn.Module):
    def __init__(self, in_planes, planes, stride, option):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut = nn.Sequential()
        if stride != 1 or in_planes != planes:
            if option == "A":
                pad = planes // 4
                self.shortcut = LambdaLayer(
                    lambda x: F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, pad, pad), "constant", 0))
            else:
                self.shortcut = nn.Sequential(nn.Conv2d(in_planes, planes, 1, stride, bias=False),
                                              nn.BatchNorm2d(planes))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class ResNetCifar(nn.Module):
    def __init__(self, depth, num_classes, in_channels, option):
        super().__init__()
        n = (depth - 2) // 6
        self.conv1 = nn.Conv2d(in_channels, 16, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        in_planes = 16
        for stage, planes in enumerate((16, 32, 64)):
            blocks = []
            for i in range(n):
                stride = 2 if (stage > 0 and i == 0) else 1
                blocks.append(BasicBlock(in_planes, planes, stride, option))
                in_planes = planes
            setattr(self, "layer%d" % (stage + 1), nn.Sequential(*blocks))
        self.linear = nn.Linear(64, num_classes)

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.layer3(self.layer2(self.layer1(out)))
        out = F.avg_pool2d(out, (out.size(2), out.size(3))).flatten(1)
        return self.linear(out)


def randomise(model):
    """Kaiming-normal (fan_out) convs, default Linear, and *non-trivial* BN state, so that a mix-up of
    gamma/beta or of the running statistics shows up in the comparison."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            m.weight.data = randn(*m.weight.shape) * math.sqrt(2.0 / (m.out_channels * m.kernel_size[0] ** 2))
        elif isinstance(m, nn.BatchNorm2d):
            c = m.num_features
            m.weight.data, m.bias.data = uniform(0.5, 1.5, c), uniform(-0.3, 0.3, c)
            m.running_mean.data, m.running_var.data = randn(c) * 0.2, uniform(0.5, 1.5, c)
            m.num_batches_tracked.fill_(7)
        elif isinstance(m, nn.Linear):
            bound = 1.0 / math.sqrt(m.in_features)
            m.weight.data = uniform(-bound, bound, *m.weight.shape)
            m.bias.data = uniform(-bound, bound, m.out_features)


def make_resnet(stem, depth, num_classes, in_channels, option, hw, batch):
    model = ResNetCifar(depth, num_classes, in_channels, option)
    randomise(model)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    x = randn(batch, in_channels, hw, hw)
    labels = torch.randint(0, num_classes, (batch,), generator=GEN, dtype=torch.int64)
    model.double().train()
    logits = model(x.double())
    loss = F.cross_entropy(logits, labels)
    loss.backward()
    io = {"input": x, "labels": labels, "logits": logits, "loss": loss}
    for name, p in model.named_parameters():
        io["grad." + name] = p.grad
    for name, b in model.named_buffers():
        io["after." + name] = b.clone()
    model.eval()
    with torch.no_grad():
        io["logits_eval"] = model(x.double())
    meta = {"depth": depth, "num_classes": num_classes, "in_channels": in_channels, "shortcut": option,
            "height": hw, "width": hw, "batch": batch,
            "num_parameters": sum(p.numel() for p in model.parameters())}
    write_safetensors(os.path.join(OUT, stem + "_state.safetensors"), state, meta)
    write_safetensors(os.path.join(OUT, stem + "_io.safetensors"), io, meta)


def main():
    os.makedirs(OUT, exist_ok=True)
    torch.set_grad_enabled(True)
    make_conv()
    make_batch_norm()
    make_pool()
    make_loss()
    make_resnet("resnet20_a_c3", 20, 10, 3, "A", 32, 4)
    make_resnet("resnet8_b_c1", 8, 10, 1, "B", 28, 4)


if __name__ == "__main__":
    main()
