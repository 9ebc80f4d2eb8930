"""The test registry: every optimizer configuration the generic tests run, and every constructor error.

Adding an optimizer means adding its rows here (and its reference in reference.py); the kernel, torch parity,
error, state_dict and determinism tests then cover it.
"""
from __future__ import annotations

from typing import Callable

import fastopt as fo

# (class name, kwargs): each row is run by every generic test.
CASES: list[tuple[str, dict]] = [
    ("SGD", dict(lr=0.1)),
    ("SGD", dict(lr=0.05, momentum=0.9)),
    ("SGD", dict(lr=0.05, momentum=0.9, dampening=0.3, weight_decay=0.01)),
    ("SGD", dict(lr=0.05, momentum=0.8, nesterov=True, weight_decay=0.1)),
    ("SGD", dict(lr=0.05, momentum=0.5, maximize=True)),
    ("Adam", dict(lr=1e-2)),
    ("Adam", dict(lr=1e-2, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1)),
    ("Adam", dict(lr=1e-2, amsgrad=True, weight_decay=0.05)),
    ("Adam", dict(lr=1e-2, maximize=True, decoupled_weight_decay=True, weight_decay=0.1)),
    ("Adam", dict(lr=1e-2, betas=(0.3, 0.9))),  # 1 - beta1 >= 0.5: torch's other lerp branch
    ("AdamW", dict(lr=1e-2)),
    ("AdamW", dict(lr=1e-2, amsgrad=True, weight_decay=0.3, maximize=True)),
    ("RMSprop", dict(lr=1e-2)),
    ("RMSprop", dict(lr=1e-2, alpha=0.9, weight_decay=0.1)),
    ("RMSprop", dict(lr=1e-2, momentum=0.7, centered=True)),
    ("RMSprop", dict(lr=1e-2, centered=True, alpha=0.4, maximize=True)),
    ("RMSprop", dict(lr=1e-2, momentum=0.5)),
    ("ASGD", dict(lr=1e-2)),
    ("ASGD", dict(lr=5e-2, lambd=1e-2, alpha=0.5, t0=2, weight_decay=0.1)),  # averaging starts at step 3
    ("ASGD", dict(lr=1e-2, t0=0, maximize=True)),
    ("ASGD", dict(lr=5e-2, lambd=1e-2, alpha=0.5, t0=20, weight_decay=0.1)),  # averaging starts at step 21
    ("ASGD", dict(lr=2e-2, lambd=0.0, alpha=1.0, t0=50.5, weight_decay=0.01)),  # a fractional t0
    ("Rprop", dict(lr=1e-2)),
    ("Rprop", dict(lr=1e-3, etas=(0.3, 1.5), step_sizes=(1e-4, 2e-3))),  # the clamp bites both ways
    ("Rprop", dict(lr=1e-2, maximize=True)),
    ("Rprop", dict(lr=0.1, etas=(0.9, 1.01), step_sizes=(0.05, 0.2))),  # a narrow step-size band
    ("Adagrad", dict(lr=1e-2)),
    ("Adagrad", dict(lr=5e-2, lr_decay=1e-2, weight_decay=0.1)),
    ("Adagrad", dict(lr=5e-2, initial_accumulator_value=0.5, eps=1e-6, maximize=True)),
    ("Adadelta", dict()),
    ("Adadelta", dict(lr=0.5, rho=0.95, eps=1e-4, weight_decay=0.1)),
    ("Adadelta", dict(lr=0.5, rho=0.3, maximize=True)),
    ("Adamax", dict(lr=1e-2)),
    ("Adamax", dict(lr=1e-2, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1)),
    ("Adamax", dict(lr=1e-2, betas=(0.3, 0.9), maximize=True)),  # 1 - beta1 >= 0.5: the other lerp branch
    ("NAdam", dict(lr=1e-2)),
    ("NAdam", dict(lr=1e-2, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1, momentum_decay=1e-2)),
    ("NAdam", dict(lr=1e-2, weight_decay=0.1, decoupled_weight_decay=True, maximize=True)),
    ("NAdam", dict(lr=1e-2, betas=(0.3, 0.9), momentum_decay=0.0)),
    ("RAdam", dict(lr=1e-2)),
    ("RAdam", dict(lr=1e-2, betas=(0.8, 0.9), eps=1e-6, weight_decay=0.1)),  # rectified from step 4 on
    ("RAdam", dict(lr=1e-2, weight_decay=0.1, decoupled_weight_decay=True, maximize=True)),
    ("RAdam", dict(lr=1e-2, betas=(0.3, 0.5))),  # never rectified (rho_inf = 3)
    ("Lion", dict()),
    ("Lion", dict(lr=1e-3, betas=(0.95, 0.98), weight_decay=0.1)),
    ("Lion", dict(lr=1e-3, betas=(0.3, 0.9), maximize=True)),
    ("Adafactor", dict()),
    ("Adafactor", dict(lr=5e-2, beta2_decay=-0.5, eps=(1e-20, 1e-2), d=2.0, weight_decay=0.1)),
    ("Adafactor", dict(lr=1e-2, eps=(1e-3, 1e-3), maximize=True)),  # eps1 floors the estimate
    ("Adafactor", dict(lr=1.0, beta2_decay=0.0, d=1.0)),  # weight 1: the averages are the last squares
]

# Optimizers outside the elementwise registry (Muon takes 2-D parameters only, SparseAdam row-sparse gradients):
# their reference, torch, functional and golden tests run these rows.
MUON_CASES: list[dict] = [
    dict(),
    dict(lr=0.02, nesterov=False, weight_decay=0.0, momentum=0.8),
    dict(lr=0.01, adjust_lr_fn="match_rms_adamw", ns_steps=2, ns_coefficients=(2.0, -1.5, 0.5), eps=1e-3),
    dict(lr=1e-2, adjust_lr_fn="match_rms_adamw", weight_decay=0.05),
    dict(lr=1e-2, momentum=0.3, ns_steps=3, ns_coefficients=(2.0, -1.5, 0.5), eps=1e-5, adjust_lr_fn="original"),
]
SPARSE_ADAM_CASES: list[dict] = [
    dict(),
    dict(lr=0.01, betas=(0.5, 0.9), eps=1e-4, maximize=True),
    dict(lr=1e-2, betas=(0.8, 0.99), eps=1e-6),
    dict(lr=5e-3, maximize=True),
    dict(lr=1e-2, betas=(0.3, 0.5)),
]

# fastopt.swa_utils.AveragedParameters: name -> the keyword arguments of each averaging rule.
AVERAGING_RULES: dict[str, Callable[[], dict]] = {
    "default": lambda: {},
    "swa": lambda: dict(avg_fn=fo.swa_utils.get_swa_avg_fn()),
    "swa_multi": lambda: dict(multi_avg_fn=fo.swa_utils.get_swa_multi_avg_fn()),
    "ema": lambda: dict(avg_fn=fo.swa_utils.get_ema_avg_fn(0.9)),
    "ema_multi": lambda: dict(multi_avg_fn=fo.swa_utils.get_ema_multi_avg_fn(0.9)),
    "ema_multi_small": lambda: dict(multi_avg_fn=fo.swa_utils.get_ema_multi_avg_fn(0.3)),
}

# (class name, kwargs, exception, message regex): the constructor must raise this.
ERROR_CASES: list[tuple[str, dict, type, str]] = [
    ("SGD", dict(lr=-0.1), ValueError, "Invalid learning rate: -0.1"),
    ("SGD", dict(lr=0.1, momentum=-0.5), ValueError, "Invalid momentum value"),
    ("SGD", dict(lr=0.1, weight_decay=-1), ValueError, "Invalid weight_decay value"),
    ("SGD", dict(lr=0.1, nesterov=True), ValueError, "Nesterov momentum requires a momentum and zero dampening"),
    ("SGD", dict(lr=0.1, momentum=0.9, dampening=0.1, nesterov=True), ValueError, "Nesterov"),
    ("SGD", dict(lr=float("nan")), ValueError, "Invalid learning rate"),
    ("SGD", dict(lr="0.1"), TypeError, "Invalid learning rate"),
    ("Adam", dict(lr=-1e-3), ValueError, "Invalid learning rate"),
    ("Adam", dict(eps=-1.0), ValueError, "Invalid epsilon value"),
    ("Adam", dict(betas=(1.0, 0.999)), ValueError, "Invalid beta parameter at index 0"),
    ("Adam", dict(betas=(0.9, -0.1)), ValueError, "Invalid beta parameter at index 1"),
    ("Adam", dict(betas=(0.9,)), TypeError, "betas must be a pair"),
    ("Adam", dict(weight_decay=-0.1), ValueError, "Invalid weight_decay value"),
    ("Adam", dict(amsgrad=1), TypeError, "amsgrad must be a bool"),
    ("AdamW", dict(betas=(0.9, 1.5)), ValueError, "Invalid beta parameter at index 1"),
    ("AdamW", dict(weight_decay=-1e-2), ValueError, "Invalid weight_decay value"),
    ("RMSprop", dict(lr=-1.0), ValueError, "Invalid learning rate"),
    ("RMSprop", dict(alpha=-0.1), ValueError, "Invalid alpha value"),
    ("RMSprop", dict(eps=-1e-8), ValueError, "Invalid epsilon value"),
    ("RMSprop", dict(momentum=-0.5), ValueError, "Invalid momentum value"),
    ("RMSprop", dict(weight_decay=-0.5), ValueError, "Invalid weight_decay value"),
    ("ASGD", dict(lr=-1e-2), ValueError, "Invalid learning rate: -0.01"),
    ("ASGD", dict(weight_decay=-1.0), ValueError, "Invalid weight_decay value: -1.0"),
    ("ASGD", dict(t0="x"), TypeError, "Invalid t0 value"),
    ("ASGD", dict(maximize=None), TypeError, "maximize must be a bool"),
    ("Rprop", dict(lr=-1e-2), ValueError, "Invalid learning rate: -0.01"),
    ("Rprop", dict(etas=(1.5, 1.2)), ValueError, r"Invalid eta values: 1.5, 1.2"),
    ("Rprop", dict(etas=(0.5, 0.9)), ValueError, r"Invalid eta values: 0.5, 0.9"),
    ("Rprop", dict(etas=(0.0, 1.2)), ValueError, r"Invalid eta values: 0.0, 1.2"),
    ("Rprop", dict(etas=0.5), TypeError, "etas must be a pair"),
    ("Rprop", dict(step_sizes=(1e-6,)), TypeError, "step_sizes must be a pair"),
    ("Adagrad", dict(lr=-1.0), ValueError, "Invalid learning rate: -1.0"),
    ("Adagrad", dict(lr_decay=-0.1), ValueError, "Invalid lr_decay value: -0.1"),
    ("Adagrad", dict(weight_decay=-0.1), ValueError, "Invalid weight_decay value: -0.1"),
    ("Adagrad", dict(initial_accumulator_value=-1.0), ValueError, "Invalid initial_accumulator_value value: -1.0"),
    ("Adagrad", dict(eps=-1e-10), ValueError, "Invalid epsilon value: -1e-10"),
    ("Adagrad", dict(maximize=1), TypeError, "maximize must be a bool"),
    ("Adadelta", dict(lr=-1.0), ValueError, "Invalid learning rate: -1.0"),
    ("Adadelta", dict(rho=1.5), ValueError, "Invalid rho value: 1.5"),
    ("Adadelta", dict(rho=-0.1), ValueError, "Invalid rho value: -0.1"),
    ("Adadelta", dict(eps=-1e-6), ValueError, "Invalid epsilon value: -1e-06"),
    ("Adadelta", dict(weight_decay=-0.1), ValueError, "Invalid weight_decay value: -0.1"),
    ("Adamax", dict(lr=-1.0), ValueError, "Invalid learning rate: -1.0"),
    ("Adamax", dict(eps=-1.0), ValueError, "Invalid epsilon value: -1.0"),
    ("Adamax", dict(betas=(1.0, 0.999)), ValueError, "Invalid beta parameter at index 0: 1.0"),
    ("Adamax", dict(betas=(0.9, 1.0)), ValueError, "Invalid beta parameter at index 1: 1.0"),
    ("Adamax", dict(weight_decay=-0.1), ValueError, "Invalid weight_decay value: -0.1"),
    ("NAdam", dict(lr=-1.0), ValueError, "Invalid learning rate: -1.0"),
    ("NAdam", dict(eps=-1.0), ValueError, "Invalid epsilon value: -1.0"),
    ("NAdam", dict(betas=(-0.1, 0.999)), ValueError, "Invalid beta parameter at index 0: -0.1"),
    ("NAdam", dict(betas=(0.9, 1.0)), ValueError, "Invalid beta parameter at index 1: 1.0"),
    ("NAdam", dict(weight_decay=-0.1), ValueError, "Invalid weight_decay value: -0.1"),
    ("NAdam", dict(momentum_decay=-1e-3), ValueError, "Invalid momentum_decay value: -0.001"),
    ("NAdam", dict(decoupled_weight_decay=None), TypeError, "decoupled_weight_decay must be a bool"),
    ("RAdam", dict(lr=-1.0), ValueError, "Invalid learning rate: -1.0"),
    ("RAdam", dict(eps=-1.0), ValueError, "Invalid epsilon value: -1.0"),
    ("RAdam", dict(betas=(1.0, 0.999)), ValueError, "Invalid beta parameter at index 0: 1.0"),
    ("RAdam", dict(betas=(0.9, -0.5)), ValueError, "Invalid beta parameter at index 1: -0.5"),
    ("RAdam", dict(weight_decay=-0.1), ValueError, "Invalid weight_decay value: -0.1"),
    ("Lion", dict(lr=-1.0), ValueError, "Invalid learning rate: -1.0"),
    ("Lion", dict(betas=(1.0, 0.99)), ValueError, "Invalid beta parameter at index 0: 1.0"),
    ("Lion", dict(betas=(0.9, 1.5)), ValueError, "Invalid beta parameter at index 1: 1.5"),
    ("Lion", dict(weight_decay=-0.1), ValueError, "Invalid weight_decay value: -0.1"),
    ("Adafactor", dict(lr=-1.0), ValueError, r"Learning rate should be >= 0 but is: -1.0"),
    ("Adafactor", dict(beta2_decay=0.5), ValueError, r"beta2_decay should be <= 0 but is: 0.5"),
    ("Adafactor", dict(eps=(-1e-3, 1e-3)), ValueError, r"epsilon1 should be >= 0 but is: -0.001"),
    ("Adafactor", dict(eps=(None, -1.0)), ValueError, r"epsilon2 should be >= 0 but is: -1.0"),
    ("Adafactor", dict(eps=1e-3), TypeError, r"eps must be a pair"),
    ("Adafactor", dict(d=0.5), ValueError, r"Clipping threshold d should be >= 1 but is: 0.5"),
    ("Adafactor", dict(weight_decay=-0.1), ValueError, r"weight_decay should be >= 0 but is: -0.1"),
    ("Adafactor", dict(maximize=1), TypeError, "maximize must be a bool"),
    ("Adafactor", dict(foreach=False), TypeError, "foreach"),
    ("Muon", dict(lr=-1.0), ValueError, "Learning rate should be >= 0 but is: -1.0"),
    ("Muon", dict(momentum=-0.1), ValueError, "momentum should be >= 0 but is: -0.1"),
    ("Muon", dict(weight_decay=-0.1), ValueError, "weight decay should be >= 0 but is: -0.1"),
    ("Muon", dict(adjust_lr_fn="bogus"), ValueError, "Adjust learning rate function bogus is not supported"),
    ("Muon", dict(ns_steps=100), ValueError, "Number of steps must be less than 100"),
    ("Muon", dict(ns_coefficients=(1.0, 2.0)), ValueError, "Coefficients must be a tuple of exactly 3 values"),
    ("SparseAdam", dict(lr=0.0), ValueError, "Invalid learning rate: 0.0"),
    ("SparseAdam", dict(eps=0.0), ValueError, "Invalid epsilon value: 0.0"),
    ("SparseAdam", dict(betas=(1.0, 0.9)), ValueError, "Invalid beta parameter at index 0"),
    ("SparseAdam", dict(betas=(0.9, -0.1)), ValueError, "Invalid beta parameter at index 1"),
    # issue #11 items 2-3 (reliab-api): ranges beyond torch's checks, and eps values that would give 0/0
    ("SGD", dict(momentum=0.9, dampening=-0.1), ValueError, r"Invalid dampening value: -0.1 \(expected in \[0, 1\]\)"),
    ("SGD", dict(momentum=0.9, dampening=1.5), ValueError, r"Invalid dampening value: 1.5"),
    ("SGD", dict(momentum=1.5), ValueError, "Invalid momentum value: 1.5 .*grows without bound"),
    ("SGD", dict(momentum=float("inf")), ValueError, "Invalid momentum value: inf .*must be finite"),
    ("SGD", dict(lr=float("inf")), ValueError, r"Invalid learning rate: inf \(lr must be finite\)"),
    ("SGD", dict(weight_decay=float("inf")), ValueError, "Invalid weight_decay value: inf .*must be finite"),
    ("SGD", dict(lr=float("-inf")), ValueError, "Invalid learning rate: -inf"),
    ("SGD", dict(lr=0.1 + 0j), TypeError, "lr must be a real number, got complex"),
    ("SGD", dict(lr=True), TypeError, "lr must be a real number, got bool"),
    ("RMSprop", dict(alpha=1.5), ValueError, r"Invalid alpha value: 1.5 \(expected in \[0, 1\]\)"),
    ("RMSprop", dict(momentum=2.0), ValueError, "Invalid momentum value: 2.0"),
    ("RMSprop", dict(eps=float("inf")), ValueError, "Invalid epsilon value: inf .*must be finite"),
    ("RMSprop", dict(eps=0.0), ValueError, "Invalid epsilon value: 0.0 .*0/0 = NaN"),
    ("Rprop", dict(step_sizes=(1.0, 0.5)), ValueError, r"Invalid step_sizes values: 1.0, 0.5 \(expected 0 <= min"),
    ("Rprop", dict(step_sizes=(-1e-6, 50)), ValueError, "Invalid step_sizes values: -1e-06, 50"),
    ("Rprop", dict(step_sizes=(0.0, 0.0)), ValueError, "Invalid step_sizes values: 0.0, 0.0"),
    ("Rprop", dict(step_sizes=(1e-6, float("inf"))), ValueError, r"step_sizes\[1\] must be finite"),
    ("Rprop", dict(etas=(0.5, float("nan"))), ValueError, r"etas\[1\] must not be NaN"),
    ("ASGD", dict(lambd=-1e-4), ValueError, "Invalid lambd value: -0.0001"),
    ("ASGD", dict(alpha=-0.5), ValueError, "Invalid alpha value: -0.5"),
    ("ASGD", dict(t0=float("inf")), ValueError, "Invalid t0 value: inf .*must be finite"),
    ("Adam", dict(eps=0.0), ValueError, "Invalid epsilon value: 0.0 .*0/0 = NaN"),
    ("Adam", dict(eps=1e-46), ValueError, "Invalid epsilon value: 1e-46 .*not round to 0 in float32"),
    ("Adam", dict(eps=float("inf")), ValueError, "Invalid epsilon value: inf .*must be finite"),
    ("Adam", dict(betas=(0.9, float("nan"))), ValueError, r"Invalid beta parameter at index 1: nan"),
    ("AdamW", dict(eps=0.0), ValueError, "Invalid epsilon value: 0.0"),
    ("NAdam", dict(eps=0.0), ValueError, "Invalid epsilon value: 0.0"),
    ("NAdam", dict(momentum_decay=float("inf")), ValueError, "Invalid momentum_decay value: inf"),
    ("RAdam", dict(eps=0.0), ValueError, "Invalid epsilon value: 0.0"),
    ("RAdam", dict(eps=1e-40), ValueError, "Invalid epsilon value: 1e-40 .*smallest normal float32"),
    ("Adamax", dict(eps=0.0), ValueError, "Invalid epsilon value: 0.0"),
    ("Adadelta", dict(eps=0.0), ValueError, "Invalid epsilon value: 0.0"),
    ("Adagrad", dict(eps=0.0), ValueError, "Invalid epsilon value: 0.0 .*initial_accumulator_value=0"),
    ("Adagrad", dict(lr_decay=float("inf")), ValueError, "Invalid lr_decay value: inf"),
    ("Lion", dict(betas=(0.9, float("inf"))), ValueError, "Invalid beta parameter at index 1: inf"),
    ("Lion", dict(weight_decay=float("nan")), ValueError, "Invalid weight_decay value: nan"),
    ("Adafactor", dict(eps=(0.0, 1e-3)), ValueError, "epsilon1 should be >= 0 but is: 0.0 .*NaN"),
    ("Adafactor", dict(eps=(1e-30, 1e-3)), ValueError, "epsilon1 should be >= 0 but is: 1e-30 .*float32"),
    ("Adafactor", dict(d=float("inf")), ValueError, "Clipping threshold d should be >= 1 but is: inf"),
    ("Muon", dict(momentum=1.5), ValueError, "momentum should be >= 0 but is: 1.5 .*grows without bound"),
    ("Muon", dict(eps=0.0), ValueError, "Invalid epsilon value: 0.0 .*0/0"),
    ("Muon", dict(ns_coefficients=(1.0, float("nan"), 0.5)), ValueError, r"ns_coefficients\[1\] must not be NaN"),
    ("Muon", dict(ns_steps=-1), TypeError, "ns_steps must be a non-negative int"),
    ("SparseAdam", dict(eps=1e-46), ValueError, "Invalid epsilon value: 1e-46"),
    ("SparseAdam", dict(lr=float("inf")), ValueError, "Invalid learning rate: inf"),
    ("LBFGS", dict(tolerance_grad=-1e-7), ValueError, "Invalid tolerance_grad value"),
    ("LBFGS", dict(tolerance_change=float("inf")), ValueError, "tolerance_change must be finite"),
    ("LBFGS", dict(history_size=0), ValueError, "Invalid history_size value: 0"),
    ("LBFGS", dict(max_iter=2.0), TypeError, "max_iter must be an int"),
]


def case_id(case: tuple[str, dict]) -> str:
    name, kw = case
    return name + "(" + ",".join(f"{k}={v}" for k, v in kw.items()) + ")"


def make(name: str, params, **kwargs):
    return getattr(fo, name)(params, **kwargs)


# Optimizers whose arithmetic is torch's operation for operation, with no square root (torch's float32 sqrt is not
# correctly rounded): their trajectories must equal torch's exactly, in both dtypes.
BIT_EXACT = {"SGD", "Adamax", "ASGD", "Rprop"}

# fastopt class name -> torch.optim class name for the parity tests (None: torch has no such optimizer).
TORCH_NAMES: dict[str, str | None] = {"SGD": "SGD", "Adam": "Adam", "AdamW": "AdamW", "RMSprop": "RMSprop",
                                     "ASGD": "ASGD", "Rprop": "Rprop",
                                     "Adagrad": "Adagrad", "Adadelta": "Adadelta", "Adamax": "Adamax",
                                     "NAdam": "NAdam", "RAdam": "RAdam", "Lion": None,
                                     "Adafactor": "Adafactor"}


# ---- AdEMAMix, LAMB, LARS (issue #15; beyond torch.optim, pytorch-optimizer's variants) --------------------------
CASES += [
    ("AdEMAMix", dict()),
    ("AdEMAMix", dict(lr=1e-2, betas=(0.8, 0.99, 0.999), alpha=2.0, t_alpha_beta3=3.0, weight_decay=0.1)),
    ("AdEMAMix", dict(lr=1e-2, weight_decay=0.1, weight_decouple=True, eps=1e-6, maximize=True)),
    ("AdEMAMix", dict(lr=1e-2, betas=(0.3, 0.9, 0.4), weight_decay=0.2, weight_decouple=True, fixed_decay=True)),
    ("LAMB", dict()),
    ("LAMB", dict(lr=1e-2, betas=(0.8, 0.99), weight_decay=0.1, eps=1e-8)),
    ("LAMB", dict(lr=1e-2, weight_decay=0.1, weight_decouple=False, grad_averaging=False, maximize=True)),
    ("LAMB", dict(lr=1e-2, weight_decay=0.3, fixed_decay=True, adam_debias=True)),
    ("LAMB", dict(lr=1e-2, adam=True)),
    ("LARS", dict()),
    ("LARS", dict(lr=0.1, weight_decay=0.1, momentum=0.3)),  # momentum 0 (no state): tests/test_beyond_more.py
    ("LARS", dict(lr=0.1, momentum=0.8, dampening=0.3, trust_coefficient=0.02, maximize=True)),
    ("LARS", dict(lr=0.1, momentum=0.5, nesterov=True, weight_decay=0.01, adapt=False)),
]
ERROR_CASES += [
    ("AdEMAMix", dict(lr=-1.0), ValueError, "Invalid learning rate: -1.0"),
    ("AdEMAMix", dict(betas=(0.9, 0.999)), TypeError, r"betas must be a triple"),
    ("AdEMAMix", dict(betas=(1.0, 0.999, 0.9999)), ValueError, "Invalid beta parameter at index 0: 1.0"),
    ("AdEMAMix", dict(betas=(0.9, 0.999, 1.5)), ValueError, "Invalid beta parameter at index 2: 1.5"),
    ("AdEMAMix", dict(alpha=-1.0), ValueError, "Invalid alpha value"),
    ("AdEMAMix", dict(t_alpha_beta3=0), ValueError, "Invalid t_alpha_beta3 value: 0"),
    ("AdEMAMix", dict(betas=(0.0, 0.999, 0.9999), t_alpha_beta3=10), ValueError, r"log\(beta1\)"),
    ("AdEMAMix", dict(weight_decouple=1), TypeError, "weight_decouple must be a bool"),
    ("AdEMAMix", dict(eps=-1.0), ValueError, "Invalid epsilon value: -1.0"),
    ("LAMB", dict(lr=-1.0), ValueError, "Invalid learning rate: -1.0"),
    ("LAMB", dict(betas=(0.9, 1.0)), ValueError, "Invalid beta parameter at index 1: 1.0"),
    ("LAMB", dict(weight_decay=-0.1), ValueError, "Invalid weight_decay value: -0.1"),
    ("LAMB", dict(eps=-1e-6), ValueError, "Invalid epsilon value"),
    ("LAMB", dict(adam=None), TypeError, "adam must be a bool"),
    ("LAMB", dict(pre_norm=True), TypeError, "pre_norm"),
    ("LARS", dict(lr=-1.0), ValueError, "Invalid learning rate: -1.0"),
    ("LARS", dict(momentum=1.0), ValueError, "Invalid momentum value: 1.0"),
    ("LARS", dict(dampening=-0.1), ValueError, "Invalid dampening value: -0.1"),
    ("LARS", dict(trust_coefficient=-1e-3), ValueError, "Invalid trust_coefficient value: -0.001"),
    ("LARS", dict(weight_decay=-0.1), ValueError, "Invalid weight_decay value: -0.1"),
    ("LARS", dict(adapt="yes"), TypeError, "adapt must be a bool"),
]
TORCH_NAMES.update({"AdEMAMix": None, "LAMB": None, "LARS": None})
# ---- Beyond torch.optim: Schedule-Free SGD / AdamW (schedulefree 1.4.x; parity: tests/test_parity_beyond.py) ----
CASES += [
    ("ScheduleFreeSGD", dict(lr=0.5)),
    ("ScheduleFreeSGD", dict(lr=0.5, momentum=0.8, weight_decay=0.1, warmup_steps=3, r=0.5, weight_lr_power=1.0)),
    ("ScheduleFreeSGD", dict(lr=0.1, momentum=0.3)),  # eval's lerp weight 1 - 1/beta < -0.5: the other branch
    ("ScheduleFreeAdamW", dict(lr=1e-2)),
    ("ScheduleFreeAdamW", dict(lr=1e-2, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1, warmup_steps=2, r=1.0,
                               weight_lr_power=0.5)),
    ("ScheduleFreeAdamW", dict(lr=1e-2, betas=(0.95, 0.9), weight_lr_power=0.0)),  # uniform average
]
ERROR_CASES += [
    ("ScheduleFreeSGD", dict(lr=-1.0), ValueError, "Invalid learning rate: -1.0"),
    ("ScheduleFreeSGD", dict(momentum=1.0), ValueError, "Momentum must be between 0 and 1 exclusive: 1.0"),
    ("ScheduleFreeSGD", dict(momentum=0.0), ValueError, "Momentum must be between 0 and 1 exclusive: 0.0"),
    ("ScheduleFreeSGD", dict(weight_decay=-0.1), ValueError, "Invalid weight_decay value: -0.1"),
    ("ScheduleFreeSGD", dict(warmup_steps=-1), ValueError, "Invalid warmup_steps value: -1"),
    ("ScheduleFreeSGD", dict(warmup_steps=1.5), TypeError, "Invalid warmup_steps value: 1.5"),
    ("ScheduleFreeSGD", dict(r=float("nan")), ValueError, "Invalid r value"),
    ("ScheduleFreeAdamW", dict(lr=-1.0), ValueError, "Invalid learning rate: -1.0"),
    ("ScheduleFreeAdamW", dict(betas=(0.0, 0.999)), ValueError, "Invalid beta parameter at index 0: 0.0"),
    ("ScheduleFreeAdamW", dict(betas=(0.9, 1.0)), ValueError, "Invalid beta parameter at index 1: 1.0"),
    ("ScheduleFreeAdamW", dict(eps=-1.0), ValueError, "Invalid epsilon value: -1.0"),
    ("ScheduleFreeAdamW", dict(weight_lr_power=float("inf")), ValueError, "Invalid weight_lr_power value"),
]
TORCH_NAMES.update({"ScheduleFreeSGD": None, "ScheduleFreeAdamW": None})
# Optimizers whose schedule advances once per group and step (as upstream: also for a parameter without a gradient),
# not per parameter: the per-parameter reference follows them only while every parameter of the group steps.
GROUP_SCHEDULED = {"ScheduleFreeSGD", "ScheduleFreeAdamW"}

# ---- Beyond torch.optim: Prodigy (prodigyopt 1.1.x). Its d estimate couples all parameters and every group must
# share the lr, so the per-parameter registry above cannot run it: tests/test_prodigy.py runs these rows through
# the same checks, tests/test_parity_beyond.py against prodigyopt, the golden file through make_golden.py. ----
PRODIGY_CASES: list[dict] = [
    dict(),
    dict(betas=(0.9, 0.99), beta3=0.95, eps=1e-6, weight_decay=1e-2),
    dict(weight_decay=1e-2, decouple=False),
    dict(use_bias_correction=True, safeguard_warmup=True),
    dict(d0=1e-4, d_coef=0.5, growth_rate=1.02),
    dict(betas=(0.0, 0.999), weight_decay=1e-2, decouple=False),  # no exp_avg: the update reads the gradient
]
TORCH_NAMES.update({"Prodigy": None})
