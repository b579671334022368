"""pytorch_qat.py: PyTorch fake quantization for the QAT speed comparison (bench/pytorch_train_step.py's
qat_step cases), written the way the methods' official code writes it, so that the comparison is with
what a PyTorch user of those methods runs:

- APoT (yhhhli/APoT_Quantization, CIFAR10/models/quant_layer.py): per-tensor weight normalisation
  (detached mean/std), weights and activations through custom autograd Functions with learnable
  alphas, projection to the nearest level by an argmin over |x - level| (as the official power_quant),
  2-bit weights uniform ternary, first conv and classifier with max-scaled 8-bit weights.
- min-max (GDFQ/ZeroQ quantization_utils): asymmetric, per-output-channel weight ranges recomputed
  every forward, per-tensor activation ranges from an EMA of batch min/max (bias-corrected), STE via
  x + (q - x).detach(), every conv and the classifier at the trunk's weight bits.

Only conv inputs are quantized (the first conv's input, the image, and the classifier's stay float), as
bitgrad's quant::quantize_model does. Imported by pytorch_train_step.py; needs torch (/usr/bin/python3).
"""
import torch
import torch.nn as nn
import torch.nn.functional as F


def build_power_value(bits, additive=True):
    """ALGORITHMS.md §1.1: APoT level set on [0, 1] (normalised by its maximum)."""
    base_a, base_b, base_c = [0.0], [0.0], [0.0]
    if additive:
        if bits == 2:
            base_a += [2.0 ** -i for i in (1, 2, 3)]
        elif bits == 3:
            base_a += [2.0 ** -i for i in (1, 2, 4)]
            base_b += [2.0 ** -3]
        elif bits == 4:
            base_a += [2.0 ** -i for i in (1, 3, 5)]
            base_b += [2.0 ** -i for i in (2, 4, 6)]
    else:
        base_a += [2.0 ** -i for i in range(1, 2 ** bits)]
    values = sorted({a + b + c for a in base_a for b in base_b for c in base_c})
    values = torch.tensor(values)
    return values / values.max()


def power_quant(x, levels):
    shape = x.shape
    flat = x.reshape(-1)
    idx = (flat.unsqueeze(0) - levels.unsqueeze(1)).abs().min(dim=0)[1]
    return levels[idx].view(shape)


class _WeightQuant(torch.autograd.Function):
    @staticmethod
    def forward(ctx, w, alpha, levels, bits):
        u = w / alpha
        c = u.clamp(-1, 1)
        sign = c.sign()
        if bits <= 2:
            q = c.abs().round() * sign  # uniform ternary
        else:
            q = power_quant(c.abs(), levels) * sign
        ctx.save_for_backward(u, q)
        return q * alpha

    @staticmethod
    def backward(ctx, g):
        u, q = ctx.saved_tensors
        outside = (u.abs() > 1.0).float()
        grad_alpha = (g * (u.sign() * outside + (q - u) * (1 - outside))).sum()
        return g.clone(), grad_alpha, None, None


class _ActQuant(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, alpha, levels):
        v = x / alpha
        c = v.clamp(max=1)
        q = power_quant(c, levels)
        ctx.save_for_backward(v, q)
        return q * alpha

    @staticmethod
    def backward(ctx, g):
        v, q = ctx.saved_tensors
        above = (v > 1.0).float()
        return g * (1 - above), (g * (above + (q - v) * (1 - above))).sum(), None


class ApotConv2d(nn.Conv2d):
    def __init__(self, *args, bits=2, **kwargs):
        super().__init__(*args, **kwargs)
        self.bits = bits
        self.act_alpha = nn.Parameter(torch.tensor(8.0))
        self.wgt_alpha = nn.Parameter(torch.tensor(3.0))
        self.register_buffer("act_levels", build_power_value(bits, True), persistent=False)
        self.register_buffer("wgt_levels", build_power_value(bits - 1, True), persistent=False)

    def forward(self, x):
        x = _ActQuant.apply(x, self.act_alpha, self.act_levels)
        w = self.weight
        w = (w - w.data.mean()) / w.data.std()
        w = _WeightQuant.apply(w, self.wgt_alpha, self.wgt_levels, self.bits)
        return F.conv2d(x, w, None, self.stride, self.padding)


def int8_max(w):
    scale = w.max() / 127
    return w + ((w / scale).round() * scale - w).detach()


class Int8MaxConv2d(nn.Conv2d):
    def forward(self, x):
        return F.conv2d(x, int8_max(self.weight), self.bias, self.stride, self.padding)


class Int8MaxLinear(nn.Linear):
    def forward(self, x):
        return F.linear(x, int8_max(self.weight), self.bias)


def minmax_fake(x, lo, hi, bits):
    s = (2 ** bits - 1) / torch.clamp(hi - lo, min=1e-8)
    zero = torch.round(s * lo)
    q = (torch.clamp(torch.round(s * x - zero), 0, 2 ** bits - 1) + zero) / s
    return x + (q - x).detach()


def minmax_weight(w, bits):
    flat = w.detach().reshape(w.shape[0], -1)
    view = (-1,) + (1,) * (w.dim() - 1)
    return minmax_fake(w, flat.min(1)[0].view(view), flat.max(1)[0].view(view), bits)


class MinMaxAct(nn.Module):
    def __init__(self, bits, momentum=0.9):
        super().__init__()
        self.bits, self.momentum = bits, momentum
        self.register_buffer("ema_min", torch.zeros(()))
        self.register_buffer("ema_max", torch.zeros(()))
        self.steps = 0

    def forward(self, x):
        if self.training:
            self.steps += 1
            m = self.momentum
            self.ema_min.mul_(m).add_((1 - m) * x.detach().min())
            self.ema_max.mul_(m).add_((1 - m) * x.detach().max())
        correction = 1 - self.momentum ** max(self.steps, 1)
        return minmax_fake(x, self.ema_min / correction, self.ema_max / correction, self.bits)


class MinMaxConv2d(nn.Conv2d):
    def __init__(self, *args, bits=2, quantize_input=True, **kwargs):
        super().__init__(*args, **kwargs)
        self.bits = bits
        self.act = MinMaxAct(bits) if quantize_input else None

    def forward(self, x):
        if self.act is not None:
            x = self.act(x)
        return F.conv2d(x, minmax_weight(self.weight, self.bits), self.bias, self.stride, self.padding)


class MinMaxLinear(nn.Linear):
    def __init__(self, *args, bits=2, **kwargs):
        super().__init__(*args, **kwargs)
        self.bits = bits

    def forward(self, x):
        return F.linear(x, minmax_weight(self.weight, self.bits), self.bias)


def quantize(model, method, bits=2):
    """Replaces the convs and the classifier of a ResNet20 (pytorch_train_step.py) in place."""
    def convert(conv, first):
        kwargs = dict(stride=conv.stride, padding=conv.padding, bias=conv.bias is not None)
        args = (conv.in_channels, conv.out_channels, conv.kernel_size)
        if method == "apot":
            new = Int8MaxConv2d(*args, **kwargs) if first else ApotConv2d(*args, bits=bits, **kwargs)
        else:
            new = MinMaxConv2d(*args, bits=bits, quantize_input=not first, **kwargs)
        new.weight.data.copy_(conv.weight.data)
        return new

    model.conv1 = convert(model.conv1, True)
    for layer in (model.layer1, model.layer2, model.layer3):
        for block in layer:
            block.conv1 = convert(block.conv1, False)
            block.conv2 = convert(block.conv2, False)
    lin = model.linear
    new = (Int8MaxLinear if method == "apot" else
           (lambda i, o: MinMaxLinear(i, o, bits=bits)))(lin.in_features, lin.out_features)
    new.weight.data.copy_(lin.weight.data)
    new.bias.data.copy_(lin.bias.data)
    model.linear = new
    return model
