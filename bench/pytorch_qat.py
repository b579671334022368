"""pytorch_qat.py: PyTorch fake quantization for the QAT speed comparison (bench/pytorch_train_step.py's
qat_step cases), written the way the methods' official code writes it, so that the comparison is with
what a PyTorch user of those methods runs. Each method quantizes the layers bitgrad's
quant::quantize_model quantizes for it (quant/policy.hpp, default_edge), at the same granularity:

- apot (yhhhli/APoT_Quantization, CIFAR10/models/quant_layer.py): per-tensor weight normalisation
  (detached mean/std), weights and activations through custom autograd Functions with learnable
  alphas, projection to the nearest level by an argmin over |x - level| (as the official power_quant),
  2-bit weights uniform ternary; first conv and classifier with max-scaled 8-bit weights (int8 edge).
- minmax (GDFQ/ZeroQ quantization_utils): asymmetric, per-output-channel weight ranges recomputed
  every forward, per-tensor activation ranges from an EMA of batch min/max (bias-corrected), STE via
  x + (q - x).detach(), every conv and the classifier at the trunk's weight bits (same edge).
- lint (cvlab-yonsei/EWGS custom_modules.py QConv with the STE_discretizer, its `--baseline` path):
  learnable lW, uW, lA, uA and output scale s per conv; w -> 2 D(clamp((w - lW)/(uW - lW), 0, 1)) - 1,
  a -> D(clamp((a - lA)/(uA - lA), 0, 1)), D(z) = round(z (L-1))/(L-1) with an identity backward;
  output conv(a_q, w_q) * |s|; l, u and s get their gradients from autograd through the affine map
  and the clamp; QConv.initialize (init buffer, EWGS's init_quant_model) on the calibration batch.
  First conv and classifier float (fp edge).
- lsq (LSQ paper pseudo-code, Esser et al. 2020, as the common PyTorch ports write it: grad_scale and
  round_pass with .detach(), clamp, per-tensor step): weights signed [-2^(b-1), 2^(b-1)-1],
  activations unsigned [0, 2^b-1], step gradient scaled by 1/sqrt(numel(x) Qp), step initialised to
  2 mean|x|/sqrt(Qp) on the first training forward (the calibration batch). First conv and
  classifier with max-scaled 8-bit weights (int8 edge, as bitgrad's lsq default).
- pact: activations through PACT (Choi et al. 2018; no official release, written as the 1-sided
  PACT_STE autograd Function of IBM's fms-model-optimizer: clip to alpha, round(y n/alpha)/(n/alpha),
  dx = g on [0, alpha], dalpha = sum of g where x >= alpha), learnable alpha per conv, initial 6.0;
  weights per-output-channel min-max (GDFQ style, the weight quantizer bitgrad's pact method uses).
  First conv and classifier float (fp edge).

Only conv inputs are quantized (the first conv's input, the image, and the classifier's stay float), as
bitgrad's quant::quantize_model does. calibrate() runs the one data-dependent initialisation forward
that bitgrad's quant::calibrate runs. Imported by pytorch_train_step.py; needs torch (/usr/bin/python3).
"""
import math

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

    def quant_input(self, x):
        return _ActQuant.apply(x, self.act_alpha, self.act_levels)

    def quant_weight(self):
        w = self.weight
        w = (w - w.data.mean()) / w.data.std()
        return _WeightQuant.apply(w, self.wgt_alpha, self.wgt_levels, self.bits)

    def forward(self, x):
        return F.conv2d(self.quant_input(x), self.quant_weight(), None, self.stride, self.padding)


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

    def quant_input(self, x):
        return self.act(x) if self.act is not None else x

    def quant_weight(self):
        return minmax_weight(self.weight, self.bits)

    def forward(self, x):
        return F.conv2d(self.quant_input(x), self.quant_weight(), self.bias, self.stride, self.padding)


class MinMaxLinear(nn.Linear):
    def __init__(self, *args, bits=2, **kwargs):
        super().__init__(*args, **kwargs)
        self.bits = bits

    def forward(self, x):
        return F.linear(x, minmax_weight(self.weight, self.bits), self.bias)


class _SteDiscretizer(torch.autograd.Function):
    """EWGS's STE_discretizer: D(x) = round(x (L-1)) / (L-1) on [0, 1], identity backward."""
    @staticmethod
    def forward(ctx, x_in, num_levels):
        x = x_in * (num_levels - 1)
        x = torch.round(x)
        return x / (num_levels - 1)

    @staticmethod
    def backward(ctx, g):
        return g, None


class LintConv2d(nn.Conv2d):
    """EWGS's QConv (weights and activations quantized, STE discretizer). l and u start at bitgrad's
    pre-calibration values (-1, 1 / 0, 1) rather than the official zeros; calibrate() overwrites them."""
    def __init__(self, *args, bits=2, **kwargs):
        super().__init__(*args, **kwargs)
        self.weight_levels = self.act_levels = 2 ** bits
        self.uW = nn.Parameter(torch.tensor(1.0))
        self.lW = nn.Parameter(torch.tensor(-1.0))
        self.uA = nn.Parameter(torch.tensor(1.0))
        self.lA = nn.Parameter(torch.tensor(0.0))
        self.register_buffer("init", torch.tensor([0]))
        self.output_scale = nn.Parameter(torch.tensor(1.0))

    def weight_quantization(self, weight):
        weight = (weight - self.lW) / (self.uW - self.lW)
        weight = weight.clamp(min=0, max=1)  # [0, 1]
        weight = _SteDiscretizer.apply(weight, self.weight_levels)
        return (weight - 0.5) * 2  # [-1, 1]

    def act_quantization(self, x):
        x = (x - self.lA) / (self.uA - self.lA)
        x = x.clamp(min=0, max=1)  # [0, 1]
        return _SteDiscretizer.apply(x, self.act_levels)

    def initialize(self, x):
        """EWGS's QConv.initialize: l, u from the weight / input statistics, s = mean|out|/mean|Qout|."""
        self.uW.data.fill_(self.weight.std() * 3.0)
        self.lW.data.fill_(-self.weight.std() * 3.0)
        qweight = self.weight_quantization(self.weight)
        self.uA.data.fill_(x.std() / math.sqrt(1 - 2 / math.pi) * 3.0)
        self.lA.data.fill_(x.min())
        qact = self.act_quantization(x)
        qout = F.conv2d(qact, qweight, self.bias, self.stride, self.padding, self.dilation, self.groups)
        out = F.conv2d(x, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups)
        self.output_scale.data.fill_(out.abs().mean() / qout.abs().mean())

    def quant_input(self, x):
        return self.act_quantization(x)

    def quant_weight(self):
        return self.weight_quantization(self.weight)

    def forward(self, x):
        if self.init == 1:
            self.initialize(x)
        output = F.conv2d(self.quant_input(x), self.quant_weight(), self.bias, self.stride, self.padding,
                          self.dilation, self.groups)
        return output * torch.abs(self.output_scale)


def grad_scale(x, scale):
    """LSQ: the value of x with the gradient of x * scale."""
    y_grad = x * scale
    return (x - y_grad).detach() + y_grad


def round_pass(x):
    """LSQ: round(x) forward, identity backward."""
    return (x.round() - x).detach() + x


class LsqQuantizer(nn.Module):
    """LSQ per tensor: round(clamp(x/s, -Qn, Qp)) * s, step gradient scaled by 1/sqrt(numel Qp), step
    initialised to 2 mean|x| / sqrt(Qp) on the first training forward."""
    def __init__(self, bits, signed):
        super().__init__()
        if signed:
            self.qn, self.qp = 2 ** (bits - 1), 2 ** (bits - 1) - 1
        else:
            self.qn, self.qp = 0, 2 ** bits - 1
        self.step = nn.Parameter(torch.tensor(1.0))
        self.register_buffer("init_state", torch.zeros(1))

    def forward(self, x):
        if self.training and self.init_state == 0:
            self.step.data.copy_(2 * x.detach().abs().mean() / math.sqrt(self.qp))
            self.init_state.fill_(1)
        s = grad_scale(self.step, 1.0 / math.sqrt(x.numel() * self.qp))
        x = x / s
        x = torch.clamp(x, -self.qn, self.qp)
        x = round_pass(x)
        return x * s


class LsqConv2d(nn.Conv2d):
    def __init__(self, *args, bits=2, **kwargs):
        super().__init__(*args, **kwargs)
        self.quan_w = LsqQuantizer(bits, signed=True)
        self.quan_a = LsqQuantizer(bits, signed=False)

    def quant_input(self, x):
        return self.quan_a(x)

    def quant_weight(self):
        return self.quan_w(self.weight)

    def forward(self, x):
        return F.conv2d(self.quant_input(x), self.quant_weight(), self.bias, self.stride, self.padding)


class _PactSte(torch.autograd.Function):
    """1-sided PACT (fms-model-optimizer's PACT_STE, without its input.min() < 0 check and its zero
    zero-point arithmetic): y = min(x, alpha) (inputs are post-ReLU), out = round(y n/alpha)/(n/alpha)."""
    @staticmethod
    def forward(ctx, x, alpha, bits):
        ctx.save_for_backward(x, alpha)
        scale = (2 ** bits - 1) / alpha
        out = torch.where(x > alpha, torch.ones_like(x) * alpha, x)
        return torch.round(out * scale) / scale

    @staticmethod
    def backward(ctx, g):
        x, alpha = ctx.saved_tensors
        grad_x = torch.where(x < 0, torch.zeros_like(g), g)
        grad_x = torch.where(x > alpha, torch.zeros_like(grad_x), grad_x)
        grad_alpha = torch.where(x < alpha, torch.zeros_like(g), g)
        return grad_x, grad_alpha.sum().expand_as(alpha), None


class PactConv2d(nn.Conv2d):
    def __init__(self, *args, bits=2, alpha=6.0, **kwargs):
        super().__init__(*args, **kwargs)
        self.bits = bits
        self.alpha = nn.Parameter(torch.Tensor([alpha]))

    def quant_input(self, x):
        return _PactSte.apply(x, self.alpha, self.bits)

    def quant_weight(self):
        return minmax_weight(self.weight, self.bits)

    def forward(self, x):
        return F.conv2d(self.quant_input(x), self.quant_weight(), self.bias, self.stride, self.padding)


METHODS = ("apot", "minmax", "lint", "lsq", "pact")
# bitgrad's default_edge: what the first conv and the classifier get.
EDGE = {"apot": "int8", "minmax": "same", "lint": "fp", "lsq": "int8", "pact": "fp"}
TRUNK = {"apot": ApotConv2d, "minmax": MinMaxConv2d, "lint": LintConv2d, "lsq": LsqConv2d,
         "pact": PactConv2d}


def quantize(model, method, bits=2):
    """Replaces the convs and the classifier of a ResNet20 (pytorch_train_step.py) in place, as
    quant::quantize_model does for `method` with its default edge-layer rule."""
    if method not in METHODS:
        raise ValueError(f"quantize: expected a method in {METHODS}, got {method!r}")
    edge = EDGE[method]

    def convert(conv, first):
        if first and edge == "fp":
            return conv
        kwargs = dict(stride=conv.stride, padding=conv.padding, bias=conv.bias is not None)
        args = (conv.in_channels, conv.out_channels, conv.kernel_size)
        if first and edge == "int8":
            new = Int8MaxConv2d(*args, **kwargs)
        elif first:  # "same": the trunk's weight quantizer, input float
            new = MinMaxConv2d(*args, bits=bits, quantize_input=False, **kwargs)
        else:
            new = TRUNK[method](*args, bits=bits, **kwargs)
        new.weight.data.copy_(conv.weight.data)
        return new

    model.conv1 = convert(model.conv1, True)
    for layer in (model.layer1, model.layer2, model.layer3):
        for block in layer:
            block.conv1 = convert(block.conv1, False)
            block.conv2 = convert(block.conv2, False)
    if edge != "fp":
        lin = model.linear
        new = (Int8MaxLinear(lin.in_features, lin.out_features) if edge == "int8" else
               MinMaxLinear(lin.in_features, lin.out_features, bits=bits))
        new.weight.data.copy_(lin.weight.data)
        new.bias.data.copy_(lin.bias.data)
        model.linear = new
    return model


def calibrate(model, x):
    """One train-mode forward of the calibration batch without a graph, as bitgrad's quant::calibrate:
    EWGS's init_quant_model (init = 1, forward, init = 0), LSQ's step init (its first training
    forward), one EMA update of the min-max activation ranges, one BN running-stats update."""
    inits = [m.init for m in model.modules() if isinstance(m, LintConv2d)]
    for flag in inits:
        flag.fill_(1)
    model.train()
    with torch.no_grad():
        model(x)
    for flag in inits:
        flag.fill_(0)
    return model


def quantized_convs(model):
    """(name, module) of every conv whose input and weight are quantized (for checks)."""
    return [(n, m) for n, m in model.named_modules()
            if hasattr(m, "quant_input") and getattr(m, "act", True) is not None]
