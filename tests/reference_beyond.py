"""NumPy references for optimizers beyond torch.optim whose reference implementation is a pip
package: Schedule-Free SGD / AdamW (``schedulefree`` 1.4.x, Defazio et al. 2024) and Prodigy
(``prodigyopt`` 1.1.x, Mishchenko & Defazio 2024).

These optimizers keep scalars per group (Schedule-Free's running weight sum, Prodigy's distance
estimate ``d``) and Prodigy reduces over every parameter of every group, so a reference step takes
the whole optimizer: ``groups`` is a list of dicts holding the options and the group scalars (the
keys the packages keep in ``param_groups``), ``params[i]`` / ``grads[i]`` are lists of arrays for
group ``i`` (a grad may be None: that param is skipped, as upstream), and ``states`` maps
``(i, j)`` to the param's state dict, created here as upstream creates it. Arithmetic is in the
parameters' dtype, in the packages' order of torch operations (lerp with torch's two branches,
``addcmul``'s ``value * t1 * t2``); Python-side scalars are doubles, as in the packages.
Unlike upstream, gradients are never written into (upstream divides ``p.grad`` in place).
"""
from __future__ import annotations

import math

import numpy as np

from reference import _c, _lerp

# ---------------------------------------------------------------------------------------------
# Schedule-Free (schedulefree.SGDScheduleFree / AdamWScheduleFree)
# ---------------------------------------------------------------------------------------------
SF_SGD_DEFAULTS = dict(lr=1.0, momentum=0.9, weight_decay=0.0, warmup_steps=0, r=0.0,
                       weight_lr_power=2.0)
SF_ADAMW_DEFAULTS = dict(lr=0.0025, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0,
                         warmup_steps=0, r=0.0, weight_lr_power=2.0)
SF_GROUP_STATE = dict(k=0, train_mode=False, weight_sum=0.0, lr_max=-1.0, scheduled_lr=0.0)


def sf_group(defaults: dict, **options) -> dict:
    """A Schedule-Free group dict: defaults, then ``options``, then the fresh group scalars."""
    return {**defaults, **options, **SF_GROUP_STATE}


def _sf_beta(group: dict) -> float:
    return group["momentum"] if "momentum" in group else group["betas"][0]


def _sf_schedule(group: dict) -> tuple[float, float]:
    """Advance the group's schedule scalars; return (scheduled lr, averaging weight c_{k+1})."""
    k = group["k"]
    sched = (k + 1) / group["warmup_steps"] if k < group["warmup_steps"] else 1.0
    lr = group["lr"] * sched
    group["scheduled_lr"] = lr
    lr_max = group["lr_max"] = max(lr, group["lr_max"])
    weight = ((k + 1) ** group["r"]) * (lr_max ** group["weight_lr_power"])
    weight_sum = group["weight_sum"] = group["weight_sum"] + weight
    ckp1 = weight / weight_sum if weight_sum != 0 else 0.0
    return lr, ckp1


def ref_sf_step(groups: list, params: list, grads: list, states: dict) -> None:
    """One step of Schedule-Free SGD (groups with ``momentum``) or AdamW (groups with ``betas``).

    The param holds y = (1 - beta) z + beta x during training; with c = c_{k+1}:
    ``y <- lerp(y, z, c) + lr (beta (1 - c) - 1) u``, ``z <- z - lr u``, where u is the gradient
    plus ``weight_decay * y`` (SGD) or the Adam-normalised gradient plus ``weight_decay * y`` (AdamW).
    """
    if not groups[0]["train_mode"]:
        raise RuntimeError("not in train mode")
    for i, group in enumerate(groups):
        lr, ckp1 = _sf_schedule(group)
        beta = _sf_beta(group)
        adam = "betas" in group
        if adam:
            beta2 = group["betas"][1]
            bc2 = 1 - beta2 ** (group["k"] + 1)
        decay = group["weight_decay"]
        for j, (y, g) in enumerate(zip(params[i], grads[i])):
            if g is None:
                continue
            dt = y.dtype
            st = states.setdefault((i, j), {})
            if "z" not in st:
                st["z"] = y.copy()
                if adam:
                    st["exp_avg_sq"] = np.zeros_like(y)
            z = st["z"]
            if adam:
                v = st["exp_avg_sq"]
                v[...] = v * _c(beta2, dt) + (_c(1 - beta2, dt) * g) * g
                denom = np.sqrt(v / _c(bc2, dt)) + _c(group["eps"], dt)
                u = g / denom
            else:
                u = g.copy()
            if decay != 0:
                u = u + _c(decay, dt) * y
            y[...] = _lerp(y, z, ckp1)
            y[...] = y + _c(lr * (beta * (1 - ckp1) - 1), dt) * u
            z[...] = z - _c(lr, dt) * u
        group["k"] += 1


def ref_sf_eval(groups: list, params: list, states: dict) -> None:
    """y -> x: ``p <- lerp(p, z, 1 - 1/beta)`` in groups that are in train mode."""
    for i, group in enumerate(groups):
        if group["train_mode"]:
            for j, p in enumerate(params[i]):
                if (i, j) in states:
                    p[...] = _lerp(p, states[(i, j)]["z"], 1 - 1 / _sf_beta(group))
            group["train_mode"] = False


def ref_sf_train(groups: list, params: list, states: dict) -> None:
    """x -> y: ``p <- lerp(p, z, 1 - beta)`` in groups that are in eval mode."""
    for i, group in enumerate(groups):
        if not group["train_mode"]:
            for j, p in enumerate(params[i]):
                if (i, j) in states:
                    p[...] = _lerp(p, states[(i, j)]["z"], 1 - _sf_beta(group))
            group["train_mode"] = True


# ---------------------------------------------------------------------------------------------
# Prodigy (prodigyopt.Prodigy)
# ---------------------------------------------------------------------------------------------
PRODIGY_DEFAULTS = dict(lr=1.0, betas=(0.9, 0.999), beta3=None, eps=1e-8, weight_decay=0.0,
                        decouple=True, use_bias_correction=False, safeguard_warmup=False, d0=1e-6,
                        d_coef=1.0, growth_rate=math.inf, slice_p=1)


def prodigy_group(**options) -> dict:
    """A Prodigy group dict: defaults, then ``options``, then the fresh group scalars."""
    g = {**PRODIGY_DEFAULTS, **options}
    g.update(d=g["d0"], d_max=g["d0"], d_numerator=0.0, k=0)
    return g


def ref_prodigy_step(groups: list, params: list, grads: list, states: dict) -> None:
    r"""One Prodigy step over all groups (the d estimate is shared: every group must have the
    same lr, or 0).

    With :math:`\lambda = d \cdot lr \cdot bc` (bc = 1, or :math:`\sqrt{1-\beta_2^{k+1}}/(1-\beta_1^{k+1})`):
    :math:`r \leftarrow \beta_3 r + (d/d_0)\lambda\langle g, x_0 - x\rangle`,
    :math:`m \leftarrow \beta_1 m + d(1-\beta_1) g`, :math:`v \leftarrow \beta_2 v + d^2(1-\beta_2) g^2`,
    :math:`s \leftarrow \beta_3 s + (d/d_0)\lambda g` (:math:`(d/d_0) d\, g` with safeguard_warmup),
    :math:`\hat d = d_{coef}\, r / \|s\|_1`, :math:`d_{max} = \max(d_{max}, \hat d)`,
    :math:`d \leftarrow \min(d_{max}, d \cdot growth)` (and :math:`d = \max(d, \hat d)` while d = d0),
    then :math:`x \leftarrow x - \lambda\, wd\, x` (decoupled) and :math:`x \leftarrow x - \lambda m / (\sqrt v + d\,\epsilon)`.
    """
    group0 = groups[0]
    beta1, beta2 = group0["betas"]
    beta3 = group0["beta3"] if group0["beta3"] is not None else math.sqrt(beta2)
    k, d, d_max, d_coef = group0["k"], group0["d"], group0["d_max"], group0["d_coef"]
    lr = max(g["lr"] for g in groups)
    bias_correction = (((1 - beta2 ** (k + 1)) ** 0.5) / (1 - beta1 ** (k + 1))
                       if group0["use_bias_correction"] else 1)
    dlr = d * lr * bias_correction
    growth_rate, decouple = group0["growth_rate"], group0["decouple"]
    d_numerator = group0["d_numerator"] * beta3
    delta_numerator = 0.0
    d_denom = 0.0
    effective = {}
    for i, group in enumerate(groups):
        decay, d0, slice_p = group["weight_decay"], group["d0"], group["slice_p"]
        if group["lr"] not in (lr, 0.0):
            raise RuntimeError("different lr values in different parameter groups")
        for j, (p, g) in enumerate(zip(params[i], grads[i])):
            if g is None:
                continue
            dt = p.dtype
            if decay != 0 and not decouple:
                g = g + _c(decay, dt) * p
            effective[(i, j)] = g
            st = states.setdefault((i, j), {})
            if "step" not in st:
                st["step"] = 0
                st["s"] = np.zeros_like(p.reshape(-1)[::slice_p])
                st["p0"] = p.reshape(-1)[::slice_p].copy() if p.any() else np.zeros((), dt)
                if beta1 > 0:
                    st["exp_avg"] = np.zeros_like(p)
                st["exp_avg_sq"] = np.zeros_like(p)
            if group["lr"] > 0.0:
                sliced = g.reshape(-1)[::slice_p]
                dot = float(np.dot(sliced.astype(np.float64), (st["p0"] - p.reshape(-1)[::slice_p]).astype(np.float64)))
                delta_numerator += (d / d0) * dlr * dot
                if beta1 > 0:
                    m = st["exp_avg"]
                    m[...] = m * _c(beta1, dt) + _c(d * (1 - beta1), dt) * g
                v = st["exp_avg_sq"]
                v[...] = v * _c(beta2, dt) + (_c(d * d * (1 - beta2), dt) * g) * g
                s = st["s"]
                alpha = (d / d0) * d if group["safeguard_warmup"] else (d / d0) * dlr
                s[...] = s * _c(beta3, dt) + _c(alpha, dt) * sliced
                d_denom += float(np.abs(s).sum(dtype=np.float64))
    d_hat = d
    if d_denom == 0:
        return                                  # upstream returns here (k not advanced)
    global_d_numerator = d_numerator + delta_numerator
    if lr > 0.0:
        d_hat = d_coef * global_d_numerator / d_denom
        if d == group0["d0"]:
            d = max(d, d_hat)
        d_max = max(d_max, d_hat)
        d = min(d_max, d * growth_rate)
    for i, group in enumerate(groups):
        group.update(d_numerator=global_d_numerator, d_denom=d_denom, d=d, d_max=d_max, d_hat=d_hat)
        decay, eps = group["weight_decay"], group["eps"]
        for j, p in enumerate(params[i]):
            if (i, j) not in effective:
                continue
            dt = p.dtype
            st = states[(i, j)]
            st["step"] += 1
            denom = np.sqrt(st["exp_avg_sq"]) + _c(d * eps, dt)
            if decay != 0 and decouple:
                p[...] = p + _c(-decay * dlr, dt) * p
            if beta1 > 0:
                p[...] = p + _c(-dlr, dt) * (st["exp_avg"] / denom)
            else:
                p[...] = p + _c(-dlr * d, dt) * (effective[(i, j)] / denom)
        group["k"] = group["k"] + 1
