#!/usr/bin/env python3
"""pytorch_train_step.py: PyTorch's side of bench/train_step_bench.cpp, for bench/compare_pytorch.sh.

The identical model (ResNet-20, option-A shortcuts: x[:, :, ::2, ::2] plus planes/4 zero channels on
each side; 3x3 convs without bias, each followed by BatchNorm2d; global average pool; linear 64 -> 10),
the identical steps (zero_grad, forward, cross-entropy, backward, SGD momentum 0.9 update at batch 128;
eval-mode forward under no_grad at batch 1 and 64) and the same timing method (2 warm-up steps, then
repeated steps for at least --min-time seconds of wall clock; images/s = batch * steps / elapsed;
with --repetitions R the timed part runs R times and the best run is reported, as compare_pytorch.sh
does for both sides). Prints one JSON object per case: {"name", "images_per_s", "ms_per_iter",
"iterations", "threads", "repetitions"}, with names matching the C++ benchmark's. Needs torch (Debian's
python3-torch); run with /usr/bin/python3.
The qat_step cases run the same training step on the W2A2 QAT twin (bench/pytorch_qat.py, each method
as its official code writes it, on the layers bitgrad quantizes for it: apot, GDFQ-style minmax, EWGS's
learned interval lint, lsq, pact), after the one calibration forward bitgrad's quant::calibrate runs.
--filter REGEX selects cases by name (re.search; Google Benchmark's --benchmark_filter takes the same
regex). --check runs no timing: for each selected qat_step case, 10 training steps on the fixed random
batch (loss must be finite and end lower than it started) and the number of distinct values of each
quantized conv input (at most 4 per tensor) and weight (at most 4 per tensor; per output channel for
the min-max weights of minmax and pact); exits 1 when a check fails. Not here: data loading, mixed
precision, torch.compile (absent in 1.13), channels-last layouts.
"""
import argparse
import json
import os
import re
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # for pytorch_qat

TRAIN_BATCH = 128
WARMUP_STEPS = 2


class BasicBlock(nn.Module):
    def __init__(self, in_planes, planes, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.pad = planes // 4 if (stride != 1 or in_planes != planes) else None

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.pad is None:
            residual = x
        else:  # option A
            residual = F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, self.pad, self.pad), "constant", 0.0)
        return F.relu(out + residual)


class ResNet20(nn.Module):
    def __init__(self, in_channels, num_classes=10, n=3):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, 16, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        layers, in_planes = [], 16
        for s in range(3):
            planes = 16 << s
            blocks = []
            for b in range(n):
                blocks.append(BasicBlock(in_planes, planes, 2 if (s > 0 and b == 0) else 1))
                in_planes = planes
            layers.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3 = layers
        self.linear = nn.Linear(64, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.layer3(self.layer2(self.layer1(out)))
        out = F.adaptive_avg_pool2d(out, 1).flatten(1)
        return self.linear(out)


def timed(step, min_time, repetitions):
    """(iterations, seconds) of the fastest of `repetitions` timed runs, after the warm-up."""
    for _ in range(WARMUP_STEPS):
        step()
    best = None
    for _ in range(repetitions):
        iterations, start = 0, time.perf_counter()
        while True:
            step()
            iterations += 1
            elapsed = time.perf_counter() - start
            if elapsed >= min_time:
                break
        if best is None or iterations / elapsed > best[0] / best[1]:
            best = (iterations, elapsed)
    return best


def report(name, batch, iterations, elapsed, repetitions):
    print(json.dumps({"name": name, "images_per_s": batch * iterations / elapsed,
                      "ms_per_iter": 1e3 * elapsed / iterations, "iterations": iterations,
                      "threads": torch.get_num_threads(), "repetitions": repetitions}), flush=True)


def bench_train(channels, size, min_time, repetitions):
    model = ResNet20(channels).train()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x = torch.empty(TRAIN_BATCH, channels, size, size).uniform_(-1.0, 1.0)
    targets = torch.randint(0, 10, (TRAIN_BATCH,))

    def step():
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(x), targets)
        loss.backward()
        opt.step()
        return loss.item()

    iterations, elapsed = timed(step, min_time, repetitions)
    report(f"train_step/{channels}x{size}x{size}/b{TRAIN_BATCH}", TRAIN_BATCH, iterations, elapsed,
           repetitions)


def bench_qat(method, channels, size, min_time, repetitions):
    """The training step of ResNet-20 W2A2 with PyTorch fake quantization (bench/pytorch_qat.py)."""
    from pytorch_qat import calibrate, quantize  # noqa: E402  (same folder)
    model = quantize(ResNet20(channels), method, bits=2).train()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x = torch.empty(TRAIN_BATCH, channels, size, size).uniform_(-1.0, 1.0)
    targets = torch.randint(0, 10, (TRAIN_BATCH,))
    calibrate(model, x)  # as bench/train_step_bench.cpp: quant::calibrate on the batch, untimed

    def step():
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(x), targets)
        loss.backward()
        opt.step()
        return loss.item()

    iterations, elapsed = timed(step, min_time, repetitions)
    report(f"qat_step/{method}_w2a2/{channels}x{size}x{size}/b{TRAIN_BATCH}", TRAIN_BATCH, iterations,
           elapsed, repetitions)


def check_qat(method, channels, size, steps=10):
    """The --check of one qat_step case; returns a list of problems (empty when it passes)."""
    from pytorch_qat import calibrate, quantize, quantized_convs  # noqa: E402  (same folder)
    model = quantize(ResNet20(channels), method, bits=2).train()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x = torch.empty(TRAIN_BATCH, channels, size, size).uniform_(-1.0, 1.0)
    targets = torch.randint(0, 10, (TRAIN_BATCH,))
    calibrate(model, x)
    losses = []
    for _ in range(steps):
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(x), targets)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    problems = []
    if not all(torch.isfinite(torch.tensor(losses))):
        problems.append(f"non-finite loss {losses}")
    elif not losses[-1] < losses[0]:
        problems.append(f"loss did not decrease: {losses[0]:.4f} -> {losses[-1]:.4f}")
    # Distinct values: each quantized conv's input quantizer applied to the input that conv sees in a
    # train-mode forward (a pre-hook; the forward itself is the one the training step runs).
    counts = {}
    convs = quantized_convs(model)

    def hook(name, module):
        def pre(_, inputs):
            with torch.no_grad():
                counts[name] = (module.quant_input(inputs[0]).unique().numel(), module)
        return pre

    handles = [m.register_forward_pre_hook(hook(n, m)) for n, m in convs]
    with torch.no_grad():
        model(x)
    for h in handles:
        h.remove()
    act_max = 0
    wgt_max = 0
    for name, (n_act, module) in counts.items():
        w = module.quant_weight().detach()
        per_channel = method in ("minmax", "pact")
        if per_channel:
            n_wgt = max(row.unique().numel() for row in w.reshape(w.shape[0], -1))
        else:
            n_wgt = w.unique().numel()
        act_max, wgt_max = max(act_max, n_act), max(wgt_max, n_wgt)
        if n_act > 4:
            problems.append(f"{name}: {n_act} distinct input values")
        if n_wgt > 4:
            where = " in a channel" if per_channel else ""
            problems.append(f"{name}: {n_wgt} distinct weight values{where}")
    print(json.dumps({"name": f"qat_step/{method}_w2a2/{channels}x{size}x{size}/b{TRAIN_BATCH}",
                      "check": "fail" if problems else "ok", "losses": [round(v, 4) for v in losses],
                      "quantized_convs": len(counts), "max_distinct_inputs": act_max,
                      "max_distinct_weights": wgt_max, "problems": problems}), flush=True)
    return problems


def bench_eval(channels, size, batch, min_time, repetitions):
    model = ResNet20(channels).eval()
    x = torch.empty(batch, channels, size, size).uniform_(-1.0, 1.0)

    def step():
        with torch.no_grad():
            return model(x)

    iterations, elapsed = timed(step, min_time, repetitions)
    report(f"eval_forward/{channels}x{size}x{size}/b{batch}", batch, iterations, elapsed, repetitions)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--min-time", type=float, default=2.0, help="seconds per case (after warm-up)")
    parser.add_argument("--repetitions", type=int, default=1, help="timed runs per case; best kept")
    parser.add_argument("--filter", default="", metavar="REGEX",
                        help="run only cases whose name matches this regular expression (re.search)")
    parser.add_argument("--check", action="store_true",
                        help="no timing: check that each selected qat_step model trains and quantizes")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(1)
    cases = []
    for channels, size in ((1, 28), (3, 32)):
        cases.append((f"train_step/{channels}x{size}x{size}/b{TRAIN_BATCH}",
                      lambda c=channels, s=size: bench_train(c, s, args.min_time, args.repetitions)))
        for batch in (1, 64):
            cases.append((f"eval_forward/{channels}x{size}x{size}/b{batch}",
                          lambda c=channels, s=size, b=batch: bench_eval(c, s, b, args.min_time,
                                                                         args.repetitions)))
    from pytorch_qat import METHODS  # noqa: E402  (same folder)
    qat = [(f"qat_step/{method}_w2a2/1x28x28/b{TRAIN_BATCH}", method) for method in METHODS]
    pattern = re.compile(args.filter)
    if args.check:
        failed = [name for name, method in qat if pattern.search(name) and check_qat(method, 1, 28)]
        return 1 if failed else 0
    for name, method in qat:
        cases.append((name, lambda m=method: bench_qat(m, 1, 28, args.min_time, args.repetitions)))
    for name, run in cases:
        if pattern.search(name):
            run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
