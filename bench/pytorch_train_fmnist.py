#!/usr/bin/env python3
"""pytorch_train_fmnist.py: PyTorch running the identical recipe as `bitgrad train`, for the accuracy
comparison of issue 3 (docs/benchmarks.md, "Learning like PyTorch").

Recipe (bitgrad train's defaults): ResNet-20 option A (model from pytorch_train_step.py), Fashion-MNIST
read from the IDX files, the first --train-limit training images, batch 128 with drop-last, per-epoch
shuffle, augmentation = random crop with 2 pixels of zero padding + horizontal flip, normalisation
(x/255 - 0.2860)/0.3530, SGD lr 0.1, momentum 0.9, Nesterov, weight decay 5e-4 on conv/linear weights
only (BN and biases undecayed), cosine learning rate stepped per batch to 0 over the run, cross-entropy.
Evaluation: top-1 on the 10,000 test images. Runs each seed and prints one JSON line per seed plus a
summary line {"mean", "std"}. Needs Debian's python3-torch: run with /usr/bin/python3.
Not here: the random streams are PyTorch's, so only the distribution over seeds is comparable, not one run.
"""
import argparse
import gzip
import json
import math
import os
import statistics
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from pytorch_train_step import ResNet20  # noqa: E402

MEAN, STD = 0.2860, 0.3530


def read_idx(path):
    with gzip.open(path, "rb") if path.endswith(".gz") else open(path, "rb") as f:
        data = f.read()
    rank = data[3]
    dims = [int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(rank)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * rank).reshape(dims)


def load(data_dir, prefix):
    images = read_idx(os.path.join(data_dir, f"{prefix}-images-idx3-ubyte.gz"))
    labels = read_idx(os.path.join(data_dir, f"{prefix}-labels-idx1-ubyte.gz"))
    x = (torch.from_numpy(images.astype(np.float32)) / 255.0 - MEAN) / STD
    return x.unsqueeze(1), torch.from_numpy(labels.astype(np.int64))


def augment(x, gen):
    # Random crop with 2 pixels of zero padding (in normalised space the pad value is that of pixel 0)
    # and a horizontal flip with probability 1/2, per image.
    n, _, h, w = x.shape
    pad_value = (0.0 - MEAN) / STD
    padded = F.pad(x, (2, 2, 2, 2), value=pad_value)
    out = torch.empty_like(x)
    offsets = torch.randint(0, 5, (n, 2), generator=gen)
    flips = torch.rand(n, generator=gen) < 0.5
    for i in range(n):
        dy, dx = offsets[i].tolist()
        img = padded[i, :, dy:dy + h, dx:dx + w]
        out[i] = img.flip(-1) if flips[i] else img
    return out


def run(seed, args, train, test):
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    model = ResNet20(1)
    decay = [p for n, p in model.named_parameters() if p.dim() > 1]
    no_decay = [p for n, p in model.named_parameters() if p.dim() <= 1]
    opt = torch.optim.SGD([{"params": decay, "weight_decay": args.wd},
                           {"params": no_decay, "weight_decay": 0.0}],
                          lr=args.lr, momentum=0.9, nesterov=True)
    x_all, y_all = train[0][:args.train_limit], train[1][:args.train_limit]
    steps_per_epoch = len(x_all) // args.batch_size
    total = steps_per_epoch * args.epochs
    step = 0
    start = time.time()
    for epoch in range(args.epochs):
        model.train()
        order = torch.randperm(len(x_all), generator=gen)
        for b in range(steps_per_epoch):
            lr = args.lr * 0.5 * (1 + math.cos(math.pi * step / total))
            for g in opt.param_groups:
                g["lr"] = lr
            idx = order[b * args.batch_size:(b + 1) * args.batch_size]
            x = augment(x_all[idx], gen)
            loss = F.cross_entropy(model(x), y_all[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            step += 1
    train_time = time.time() - start
    model.eval()
    correct = 0
    with torch.no_grad():
        for i in range(0, len(test[0]), 500):
            correct += (model(test[0][i:i + 500]).argmax(1) == test[1][i:i + 500]).sum().item()
    return 100.0 * correct / len(test[0]), train_time


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--train-limit", type=int, default=10000)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=0.1)
    p.add_argument("--wd", type=float, default=5e-4)
    p.add_argument("--seeds", default="1,2,3")
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    train, test = load(args.data, "train"), load(args.data, "t10k")
    accs = []
    for seed in [int(s) for s in args.seeds.split(",")]:
        acc, secs = run(seed, args, train, test)
        accs.append(acc)
        print(json.dumps({"framework": "pytorch", "seed": seed, "test_top1": acc,
                          "train_seconds": round(secs, 1)}), flush=True)
    print(json.dumps({"framework": "pytorch", "runs": len(accs), "mean": statistics.mean(accs),
                      "std": statistics.stdev(accs) if len(accs) > 1 else 0.0,
                      "torch": torch.__version__}))


if __name__ == "__main__":
    main()
