#!/usr/bin/python3
"""make_golden_optim.py: writes tests/golden/data/optim.safetensors, PyTorch's optimizer trajectories and
learning-rate schedules, for tests/nn/optim_test.cpp and tests/nn/schedule_test.cpp.

Run by hand with Debian's python3-torch:  /usr/bin/python3 tests/golden/make_golden_optim.py
Optimizers: two parameters p0 [3, 4] and p1 [5] start from fixed float32 values and take 5 steps with a
fixed float32 gradient sequence; the optimizer runs in float64 (the reference) and the parameters after
every step plus the final per-parameter state are stored as F32. Schedules: the lr used in each epoch
(or each step) for 20 positions, computed by torch.optim.lr_scheduler. Each case's hyperparameters are
in __metadata__ (and mirrored by hand in the C++ tests). Reuses make_golden.py's safetensors writer.
"""
import hashlib
import os
import sys
import warnings

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import make_golden  # noqa: E402  (the safetensors writer)

with open(os.path.abspath(__file__), "rb") as f:
    SCRIPT_SHA256 = hashlib.sha256(f.read()).hexdigest()

GEN = torch.Generator().manual_seed(20240607)
STEPS = 5
SHAPES = {"p0": (3, 4), "p1": (5,)}


def randn(*shape):
    return torch.randn(*shape, generator=GEN, dtype=torch.float32)


INIT = {name: randn(*shape) for name, shape in SHAPES.items()}
GRADS = [{name: randn(*shape) for name, shape in SHAPES.items()} for _ in range(STEPS)]
# Steps at which a parameter has no gradient (p.grad = None): it must be skipped, and Adam's
# per-parameter step count (bias correction) must not advance.
NO_GRAD = {"p1": {1, 3}}

# case: (optimizer class, group layout, options, skip missing grads?)
#   group layout "one": both parameters in one group with the options;
#   "two": p0 with the options, p1 with the per-group overrides in `group1`.
OPT_CASES = {
    "sgd_plain": ("SGD", dict(lr=0.1), None, False),
    "sgd_momentum": ("SGD", dict(lr=0.1, momentum=0.9), None, False),
    "sgd_nesterov": ("SGD", dict(lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.05), None, False),
    "sgd_decay": ("SGD", dict(lr=0.1, momentum=0.9, weight_decay=0.1), None, False),
    "sgd_groups": ("SGD", dict(lr=0.1, momentum=0.9, weight_decay=0.05), dict(lr=0.02, weight_decay=0.0),
                   False),
    "sgd_skip": ("SGD", dict(lr=0.1, momentum=0.9), None, True),
    "adam": ("Adam", dict(lr=0.01), None, False),
    "adam_decay": ("Adam", dict(lr=0.01, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1), None, False),
    "adam_groups": ("Adam", dict(lr=0.01, weight_decay=0.1), dict(lr=0.005, weight_decay=0.0), False),
    "adam_skip": ("Adam", dict(lr=0.01), None, True),
    "adamw": ("AdamW", dict(lr=0.01, weight_decay=0.1), None, False),
    "adamw_groups": ("AdamW", dict(lr=0.01, weight_decay=0.1), dict(lr=0.05, weight_decay=0.0), False),
}

STATE_NAMES = {"momentum_buffer": "momentum", "exp_avg": "exp_avg", "exp_avg_sq": "exp_avg_sq"}


def run_optimizer(key, cls_name, options, group1, skip):
    params = {name: INIT[name].double().clone().requires_grad_(True) for name in SHAPES}
    cls = getattr(torch.optim, cls_name)
    if group1 is None:
        opt = cls([params["p0"], params["p1"]], **options)
    else:
        opt = cls([{"params": [params["p0"]]}, dict(params=[params["p1"]], **group1)], **options)
    tensors = {}
    for step in range(STEPS):
        opt.zero_grad(set_to_none=True)
        for name, p in params.items():
            if skip and step in NO_GRAD.get(name, ()):
                p.grad = None
            else:
                p.grad = GRADS[step][name].double().clone()
        opt.step()
        for name, p in params.items():
            tensors["%s.step%d.%s" % (key, step, name)] = p.detach().clone()
    for name, p in params.items():
        state = opt.state[p]
        for torch_name, ours in STATE_NAMES.items():
            if torch_name in state and state[torch_name] is not None:
                tensors["%s.state.%s.%s" % (key, ours, name)] = state[torch_name].detach().clone()
        steps = int(state["step"]) if "step" in state else sum(
            1 for s in range(STEPS) if not (skip and s in NO_GRAD.get(name, ())))
        tensors["%s.state.steps.%s" % (key, name)] = torch.tensor(steps, dtype=torch.int64)
    desc = "%s %s" % (cls_name, options) + ("" if group1 is None else " group1 %s" % group1)
    return tensors, desc


# ---- schedules ------------------------------------------------------------------------------------
BASE_LR = 0.1
EPOCHS = 20
STEPS_PER_EPOCH = 4   # for the per-step cases: 5 epochs x 4 steps = 20 positions
STEP_EPOCHS = 5


def dummy_optimizer():
    return torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=BASE_LR)


def lr_sequence(make_scheduler, positions):
    opt = dummy_optimizer()
    sched = make_scheduler(opt)
    out = []
    for _ in range(positions):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return torch.tensor(out, dtype=torch.float64)


def warmup_then(opt, start, warm, after):
    lin = torch.optim.lr_scheduler.LinearLR(opt, start_factor=start, end_factor=1.0, total_iters=warm)
    return torch.optim.lr_scheduler.SequentialLR(opt, [lin, after(opt)], milestones=[warm])


S = torch.optim.lr_scheduler
SPE = STEPS_PER_EPOCH
# case: (our spec, total epochs, per-step?, scheduler factory)
SCHED_CASES = {
    "cosine": ("cosine", EPOCHS, False, lambda o: S.CosineAnnealingLR(o, T_max=EPOCHS)),
    "cosine_floor": ("cosine:0.001", EPOCHS, False,
                     lambda o: S.CosineAnnealingLR(o, T_max=EPOCHS, eta_min=0.001)),
    "multistep": ("multistep:8,14", EPOCHS, False, lambda o: S.MultiStepLR(o, milestones=[8, 14], gamma=0.1)),
    "multistep_gamma": ("multistep:5,10,15:0.5", EPOCHS, False,
                        lambda o: S.MultiStepLR(o, milestones=[5, 10, 15], gamma=0.5)),
    "constant": ("constant", EPOCHS, False, lambda o: S.LambdaLR(o, lambda e: 1.0)),
    # Warm-up: SequentialLR(LinearLR, main) with the main schedule's own clock starting at the
    # warm-up's end, so our absolute multistep milestones 8, 14 are 4, 10 here.
    "warmup_cosine": ("cosine:0.001+warmup:3", EPOCHS, False,
                      lambda o: warmup_then(o, 0.1, 3,
                                            lambda o2: S.CosineAnnealingLR(o2, T_max=EPOCHS - 3, eta_min=0.001))),
    "warmup_multistep": ("multistep:8,14+warmup:4:0.25", EPOCHS, False,
                         lambda o: warmup_then(o, 0.25, 4, lambda o2: S.MultiStepLR(o2, milestones=[4, 10]))),
    "warmup_constant": ("constant+warmup:5:0.01", EPOCHS, False,
                        lambda o: S.LinearLR(o, start_factor=0.01, total_iters=5)),
    # Per step: the scheduler is stepped after every optimizer step; lengths are in steps.
    "cosine_per_step": ("cosine+per-step", STEP_EPOCHS, True,
                        lambda o: S.CosineAnnealingLR(o, T_max=STEP_EPOCHS * SPE)),
    "warmup_cosine_per_step": ("cosine+warmup:2+per-step", STEP_EPOCHS, True,
                               lambda o: warmup_then(o, 0.1, 2 * SPE,
                                                     lambda o2: S.CosineAnnealingLR(o2, T_max=(STEP_EPOCHS - 2) * SPE))),
}


def main():
    warnings.simplefilter("ignore")  # SequentialLR's deprecation chatter about step(epoch)
    torch.set_default_dtype(torch.float64)
    tensors, meta = {}, {}
    for name in SHAPES:
        tensors["init." + name] = INIT[name]
        for step in range(STEPS):
            tensors["grad%d.%s" % (step, name)] = GRADS[step][name]
    for key, (cls_name, options, group1, skip) in OPT_CASES.items():
        t, desc = run_optimizer(key, cls_name, options, group1, skip)
        tensors.update(t)
        meta["opt." + key] = desc
    for key, (spec, epochs, per_step, factory) in SCHED_CASES.items():
        positions = epochs * SPE if per_step else epochs
        tensors["sched." + key] = lr_sequence(factory, positions)
        meta["sched." + key] = "%s epochs=%d steps_per_epoch=%d" % (spec, epochs, SPE if per_step else 1)
    meta.update({"generator": "tests/golden/make_golden_optim.py", "script_sha256": SCRIPT_SHA256,
                 "steps": STEPS, "no_grad": "p1 at steps 1, 3 (the *_skip cases)",
                 "opt_cases": " ".join(OPT_CASES), "sched_cases": " ".join(SCHED_CASES),
                 "base_lr": BASE_LR})
    make_golden.write_safetensors(os.path.join(make_golden.OUT, "optim.safetensors"), tensors, meta)


if __name__ == "__main__":
    main()
