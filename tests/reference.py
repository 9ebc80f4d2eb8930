"""Each algorithm written plainly in NumPy from its published rule, in torch's order of operations.

A reference step takes one parameter's array ``p`` and gradient ``g`` (same dtype), its state dict (created
empty by the caller, filled here as torch fills it) and the group's options, and updates ``p`` and the state in
place. Arithmetic stays in the parameter's dtype: scalars are cast to it the way torch casts Python floats.
These are the specification the C kernels are tested against: readable first, never fast.
"""
from __future__ import annotations

import numpy as np


def _c(x: float, dtype: np.dtype) -> np.generic:
    return np.asarray(x, dtype=dtype)[()]


def _lerp(start: np.ndarray, end: np.ndarray, w: float) -> np.ndarray:
    """torch.lerp with a scalar weight, in the arrays' dtype: start + w (end - start) for |w| < 0.5, else
    end - (end - start)(1 - w) (torch switches form there, so both branches are part of the rule)."""
    dt = start.dtype
    w = _c(w, dt)
    return start + w * (end - start) if abs(w) < 0.5 else end - (end - start) * (_c(1, dt) - w)


def _ema_sq(avg: np.ndarray, g: np.ndarray, beta: float) -> None:
    """avg = beta avg + (1 - beta) g^2, in place (torch's mul_(beta).addcmul_(g, g, value=1 - beta))."""
    dt = avg.dtype
    avg[...] = avg * _c(beta, dt) + (_c(1 - beta, dt) * g) * g


def _begin(p: np.ndarray, g: np.ndarray, state: dict, maximize: bool, zeros: tuple = (), **init) -> np.ndarray:
    """On the first call create the state (step 0, a zero buffer per name in zeros, then init's entries); count
    the step; return the gradient to use (a copy, negated under maximize)."""
    if not state:
        state["step"] = 0
        for k in zeros:
            state[k] = np.zeros_like(p)
        state.update(init)
    state["step"] += 1
    return -g if maximize else g.copy()


def _scalar_dtype(dt) -> np.dtype:
    """The dtype of scalar state (NAdam's mu_product, ASGD's eta and mu): float64 for float64 params, else float32."""
    return np.dtype(np.float64) if dt == np.float64 else np.dtype(np.float32)


def _weight_decay(p: np.ndarray, g: np.ndarray, lr: float, weight_decay: float, decoupled: bool = False):
    """L2 (g + wd p) or decoupled (p = p (1 - lr wd)) weight decay; returns the gradient."""
    if weight_decay != 0:
        if decoupled:
            p[...] = p * _c(1 - lr * weight_decay, p.dtype)
        else:
            g = g + _c(weight_decay, p.dtype) * p
    return g


def _adam_moments(state: dict, g: np.ndarray, beta1: float, beta2: float) -> tuple[np.ndarray, np.ndarray]:
    """exp_avg = lerp(exp_avg, g, 1 - beta1); exp_avg_sq = beta2 exp_avg_sq + (1 - beta2) g^2 (Adam, NAdam, RAdam)."""
    m, v = state["exp_avg"], state["exp_avg_sq"]
    m[...] = _lerp(m, g, 1 - beta1)
    _ema_sq(v, g, beta2)
    return m, v


def ref_sgd(p: np.ndarray, g: np.ndarray, state: dict, *, lr: float, momentum: float = 0, dampening: float = 0,
            weight_decay: float = 0, nesterov: bool = False, maximize: bool = False) -> None:
    dt = p.dtype
    g = _weight_decay(p, -g if maximize else g.copy(), lr, weight_decay)
    if momentum != 0:
        if "momentum_buffer" not in state:
            state["momentum_buffer"] = g.copy()
        else:
            buf = state["momentum_buffer"]
            buf[...] = buf * _c(momentum, dt) + _c(1 - dampening, dt) * g
        buf = state["momentum_buffer"]
        g = g + _c(momentum, dt) * buf if nesterov else buf
    p[...] = p + _c(-lr, dt) * g


def ref_adam(p: np.ndarray, g: np.ndarray, state: dict, *, lr: float, betas: tuple = (0.9, 0.999),
             eps: float = 1e-8, weight_decay: float = 0, amsgrad: bool = False, maximize: bool = False,
             decoupled_weight_decay: bool = False) -> None:
    dt = p.dtype
    beta1, beta2 = betas
    g = _begin(p, g, state, maximize, ("exp_avg", "exp_avg_sq") + (("max_exp_avg_sq",) if amsgrad else ()))
    t = state["step"]
    g = _weight_decay(p, g, lr, weight_decay, decoupled_weight_decay)
    m, v = _adam_moments(state, g, beta1, beta2)
    step_size = lr / (1 - beta1 ** t)
    bc2_sqrt = (1 - beta2 ** t) ** 0.5
    if amsgrad:
        vmax = state["max_exp_avg_sq"]
        vmax[...] = np.maximum(vmax, v)
        denom = np.sqrt(vmax) / _c(bc2_sqrt, dt) + _c(eps, dt)
    else:
        denom = np.sqrt(v) / _c(bc2_sqrt, dt) + _c(eps, dt)
    p[...] = p + (_c(-step_size, dt) * m) / denom


def ref_adamw(p: np.ndarray, g: np.ndarray, state: dict, *, lr: float, betas: tuple = (0.9, 0.999),
              eps: float = 1e-8, weight_decay: float = 1e-2, amsgrad: bool = False, maximize: bool = False) -> None:
    ref_adam(p, g, state, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, amsgrad=amsgrad,
             maximize=maximize, decoupled_weight_decay=True)


def ref_rmsprop(p: np.ndarray, g: np.ndarray, state: dict, *, lr: float, alpha: float = 0.99, eps: float = 1e-8,
                weight_decay: float = 0, momentum: float = 0, centered: bool = False, maximize: bool = False) -> None:
    dt = p.dtype
    g = _begin(p, g, state, maximize, ("square_avg",) + (("momentum_buffer",) if momentum > 0 else ())
               + (("grad_avg",) if centered else ()))
    g = _weight_decay(p, g, lr, weight_decay)
    sq = state["square_avg"]
    _ema_sq(sq, g, alpha)
    if centered:
        ga = state["grad_avg"]
        ga[...] = _lerp(ga, g, 1 - alpha)
        avg = np.sqrt(sq - ga * ga)
    else:
        avg = np.sqrt(sq)
    avg = avg + _c(eps, dt)
    if momentum > 0:
        buf = state["momentum_buffer"]
        buf[...] = buf * _c(momentum, dt) + g / avg
        p[...] = p + _c(-lr, dt) * buf
    else:
        p[...] = p + (_c(-lr, dt) * g) / avg


def ref_asgd(p: np.ndarray, g: np.ndarray, state: dict, *, lr: float = 1e-2, lambd: float = 1e-4,
             alpha: float = 0.75, t0: float = 1e6, weight_decay: float = 0, maximize: bool = False) -> None:
    dt = p.dtype
    # torch keeps eta and mu as 0-d tensors of its default dtype: float64 for float64 params (torch run under
    # set_default_dtype(float64)), float32 otherwise
    sdt = _scalar_dtype(dt)
    g = _begin(p, g, state, maximize, ("ax",), eta=np.array(lr, dtype=sdt), mu=np.array(1.0, dtype=sdt))
    eta, mu = float(state["eta"]), float(state["mu"])
    g = _weight_decay(p, g, lr, weight_decay)
    p[...] = p * _c(1 - lambd * eta, dt)
    p[...] = p + _c(-eta, dt) * g
    ax = state["ax"]
    if mu != 1:
        ax[...] = ax + (p - ax) * _c(mu, dt)
    else:
        ax[...] = p
    t = float(state["step"])
    state["eta"] = np.array(lr / ((1 + lambd * lr * t) ** alpha), dtype=sdt)
    state["mu"] = np.array(1 / max(1, t - t0), dtype=sdt)


def ref_rprop(p: np.ndarray, g: np.ndarray, state: dict, *, lr: float = 1e-2, etas: tuple = (0.5, 1.2),
              step_sizes: tuple = (1e-6, 50), maximize: bool = False) -> None:
    dt = p.dtype
    etaminus, etaplus = etas
    g = _begin(p, g, state, maximize, ("prev",), step_size=np.full_like(p, lr))
    prev, ss = state["prev"], state["step_size"]
    with np.errstate(invalid="ignore"):
        s = np.sign(g * prev)
    s = np.where(np.isnan(s), 0, s).astype(dt)         # torch.sign(nan) is 0
    factor = np.where(s > 0, _c(etaplus, dt), np.where(s < 0, _c(etaminus, dt), _c(1, dt)))
    ss[...] = np.minimum(np.maximum(ss * factor, _c(step_sizes[0], dt)), _c(step_sizes[1], dt))
    g[factor == _c(etaminus, dt)] = 0
    p[...] = p - np.sign(g) * ss
    prev[...] = g


def ref_muon(p: np.ndarray, g: np.ndarray, state: dict, *, lr: float = 1e-3, weight_decay: float = 0.1,
             momentum: float = 0.95, nesterov: bool = True, ns_coefficients: tuple = (3.4445, -4.7750, 2.0315),
             eps: float = 1e-7, ns_steps: int = 5, adjust_lr_fn: str | None = None) -> None:
    """Muon on one 2-D parameter; the Newton-Schulz iteration in the parameter's dtype (torch uses bfloat16)."""
    dt = p.dtype
    if not state:
        state["momentum_buffer"] = np.zeros_like(p)
    b = state["momentum_buffer"]
    b[...] = _lerp(b, g, 1 - momentum)
    u = g + _c(momentum, dt) * (b - g) if nesterov else b.copy()
    a_, b_, c_ = ns_coefficients
    x = u.T if u.shape[0] > u.shape[1] else u
    x = x / _c(max(float(np.sqrt(np.sum(x.astype(np.float64) ** 2))), eps), dt)
    for _ in range(ns_steps):
        gram = x @ x.T
        x = _c(a_, dt) * x + (_c(b_, dt) * gram + _c(c_, dt) * (gram @ gram)) @ x
    o = x.T if u.shape[0] > u.shape[1] else x
    rows, cols = p.shape
    ratio = 0.2 * max(rows, cols) ** 0.5 if adjust_lr_fn == "match_rms_adamw" else max(1, rows / cols) ** 0.5
    _weight_decay(p, g, lr, weight_decay, decoupled=True)
    p[...] = p + _c(-lr * ratio, dt) * o


def ref_sparse_adam(p: np.ndarray, rows: np.ndarray, values: np.ndarray, state: dict, *, lr: float = 1e-3,
                    betas: tuple = (0.9, 0.999), eps: float = 1e-8, maximize: bool = False) -> None:
    """SparseAdam with a row-sparse gradient given as (rows, values); repeated rows are summed."""
    dt = p.dtype
    beta1, beta2 = betas
    if not state:
        state["step"] = 0
        state["exp_avg"] = np.zeros_like(p)
        state["exp_avg_sq"] = np.zeros_like(p)
    state["step"] += 1
    t = state["step"]
    touched = np.unique(rows)
    if touched.size == 0:
        return
    dense = np.zeros_like(p)
    np.add.at(dense, rows, values)
    g = -dense[touched] if maximize else dense[touched]
    m, v = state["exp_avg"], state["exp_avg_sq"]
    m_old, v_old = m[touched], v[touched]
    m[touched] = m_old + (g - m_old) * _c(1 - beta1, dt)
    v[touched] = v_old + (g * g - v_old) * _c(1 - beta2, dt)
    step_size = lr * (1 - beta2 ** t) ** 0.5 / (1 - beta1 ** t)
    p[touched] = p[touched] + _c(-step_size, dt) * (m[touched] / (np.sqrt(v[touched]) + _c(eps, dt)))


def ref_adagrad(p: np.ndarray, g: np.ndarray, state: dict, *, lr: float = 1e-2, lr_decay: float = 0,
                weight_decay: float = 0, initial_accumulator_value: float = 0, eps: float = 1e-10,
                maximize: bool = False) -> None:
    dt = p.dtype
    g = _begin(p, g, state, maximize, sum=np.full_like(p, initial_accumulator_value))
    t = state["step"]
    g = _weight_decay(p, g, lr, weight_decay)
    clr = lr / (1 + (t - 1) * lr_decay)
    s = state["sum"]
    s[...] = s + g * g
    p[...] = p + (_c(-clr, dt) * g) / (np.sqrt(s) + _c(eps, dt))


def ref_adadelta(p: np.ndarray, g: np.ndarray, state: dict, *, lr: float = 1.0, rho: float = 0.9,
                 eps: float = 1e-6, weight_decay: float = 0, maximize: bool = False) -> None:
    dt = p.dtype
    g = _weight_decay(p, _begin(p, g, state, maximize, ("square_avg", "acc_delta")), lr, weight_decay)
    sq, acc = state["square_avg"], state["acc_delta"]
    _ema_sq(sq, g, rho)
    std = np.sqrt(sq + _c(eps, dt))
    delta = np.sqrt(acc + _c(eps, dt)) / std * g
    _ema_sq(acc, delta, rho)
    p[...] = p + _c(-lr, dt) * delta


def ref_adamax(p: np.ndarray, g: np.ndarray, state: dict, *, lr: float = 2e-3, betas: tuple = (0.9, 0.999),
               eps: float = 1e-8, weight_decay: float = 0, maximize: bool = False) -> None:
    dt = p.dtype
    beta1, beta2 = betas
    g = _begin(p, g, state, maximize, ("exp_avg", "exp_inf"))
    t = state["step"]
    g = _weight_decay(p, g, lr, weight_decay)
    m, u = state["exp_avg"], state["exp_inf"]
    m[...] = _lerp(m, g, 1 - beta1)
    u[...] = np.maximum(u * _c(beta2, dt), np.abs(g) + _c(eps, dt))
    clr = lr / (1 - beta1 ** t)
    p[...] = p + (_c(-clr, dt) * m) / u


def ref_nadam(p: np.ndarray, g: np.ndarray, state: dict, *, lr: float = 2e-3, betas: tuple = (0.9, 0.999),
              eps: float = 1e-8, weight_decay: float = 0, momentum_decay: float = 4e-3,
              decoupled_weight_decay: bool = False, maximize: bool = False) -> None:
    dt = p.dtype
    beta1, beta2 = betas
    g = _begin(p, g, state, maximize, ("exp_avg", "exp_avg_sq"), mu_product=1.0)
    t = state["step"]
    g = _weight_decay(p, g, lr, weight_decay, decoupled_weight_decay)
    mu = beta1 * (1.0 - 0.5 * 0.96 ** (t * momentum_decay))
    mu_next = beta1 * (1.0 - 0.5 * 0.96 ** ((t + 1) * momentum_decay))
    # torch keeps mu_product as a scalar tensor of its default dtype (float64 for float64 params, as above)
    sdt = _scalar_dtype(dt)
    state["mu_product"] = float(sdt.type(state["mu_product"]) * sdt.type(mu))
    mu_product = state["mu_product"]
    m, v = _adam_moments(state, g, beta1, beta2)
    denom = np.sqrt(v / _c(1 - beta2 ** t, dt)) + _c(eps, dt)
    p[...] = p + (_c(-lr * (1 - mu) / (1 - mu_product), dt) * g) / denom
    p[...] = p + (_c(-lr * mu_next / (1 - mu_product * mu_next), dt) * m) / denom


def ref_radam(p: np.ndarray, g: np.ndarray, state: dict, *, lr: float = 1e-3, betas: tuple = (0.9, 0.999),
              eps: float = 1e-8, weight_decay: float = 0, decoupled_weight_decay: bool = False,
              maximize: bool = False) -> None:
    dt = p.dtype
    beta1, beta2 = betas
    g = _begin(p, g, state, maximize, ("exp_avg", "exp_avg_sq"))
    t = state["step"]
    g = _weight_decay(p, g, lr, weight_decay, decoupled_weight_decay)
    m, v = _adam_moments(state, g, beta1, beta2)
    bc1, bc2 = 1 - beta1 ** t, 1 - beta2 ** t
    update = (m / _c(bc1, dt)) * _c(lr, dt)
    rho_inf = 2 / (1 - beta2) - 1
    rho_t = rho_inf - 2 * t * beta2 ** t / bc2
    if rho_t > 5:
        rect = ((rho_t - 4) * (rho_t - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho_t)) ** 0.5
        adaptive = _c(bc2 ** 0.5, dt) / (np.sqrt(v) + _c(eps, dt))
        update = update * adaptive * _c(rect, dt)
    p[...] = p - update


def ref_lion(p: np.ndarray, g: np.ndarray, state: dict, *, lr: float = 1e-4, betas: tuple = (0.9, 0.99),
             weight_decay: float = 0.0, maximize: bool = False) -> None:
    """Chen et al. (2023), Algorithm 2: sign of the beta1 interpolation, momentum tracked with beta2."""
    dt = p.dtype
    beta1, beta2 = betas
    if not state:
        state["exp_avg"] = np.zeros_like(p)
    g = -g if maximize else g.copy()
    m = state["exp_avg"]
    _weight_decay(p, g, lr, weight_decay, decoupled=True)
    c = m * _c(beta1, dt) + _c(1 - beta1, dt) * g
    p[...] = p - _c(lr, dt) * np.sign(c)
    m[...] = m * _c(beta2, dt) + _c(1 - beta2, dt) * g


def ref_adafactor(p: np.ndarray, g: np.ndarray, state: dict, *, lr: float = 1e-2, beta2_decay: float = -0.8,
                  eps: tuple = (None, 1e-3), d: float = 1.0, weight_decay: float = 0.0,
                  maximize: bool = False) -> None:
    """Shazeer & Stern (2018) as torch.optim.Adafactor: second moment factored over the last two axes (rows and
    columns) for tensors of 2 or more dims, relative step size, update clipped by its RMS. An empty tensor only
    counts the step (torch divides by zero there)."""
    dt = p.dtype
    eps1, eps2 = eps
    if eps1 is None:
        eps1 = float(np.finfo(dt).eps)
    if not state:
        state["step"] = 0
        if p.ndim > 1:
            state["row_var"] = np.zeros(p.shape[:-1] + (1,), dt)
            state["col_var"] = np.zeros(p.shape[:-2] + (1,) + p.shape[-1:], dt)
        else:
            state["variance"] = np.zeros_like(p)
    g = -g if maximize else g.copy()
    state["step"] += 1
    if p.size == 0:
        return
    t = float(state["step"])

    def norm(x: np.ndarray, **kw) -> np.ndarray:  # the 2-norm, summed in double, rounded to the dtype
        return np.sqrt(np.sum(np.square(x, dtype=np.float64), **kw)).astype(dt)

    weight = t ** beta2_decay                       # 1 - beta2_t
    rho = min(lr, 1 / t ** 0.5)
    alpha = max(eps2, float(norm(p)) / p.size ** 0.5) * rho
    _weight_decay(p, g, lr, weight_decay, decoupled=True)
    if p.ndim > 1:
        row_mean = np.square(norm(g, axis=-1, keepdims=True)) / _c(g.shape[-1], dt)
        state["row_var"][...] = _lerp(state["row_var"], row_mean, weight)
        col_mean = np.square(norm(g, axis=-2, keepdims=True)) / _c(g.shape[-2], dt)
        state["col_var"][...] = _lerp(state["col_var"], col_mean, weight)
        r = np.mean(state["row_var"], axis=-2, keepdims=True, dtype=np.float64).astype(dt)
        var_estimate = (state["row_var"] * state["col_var"]) / np.maximum(r, _c(eps1, dt))
    else:
        state["variance"][...] = _lerp(state["variance"], g * g, weight)
        var_estimate = state["variance"].copy()
    update = (_c(1, dt) / np.sqrt(np.maximum(var_estimate, _c(eps1 * eps1, dt)))) * g
    denom = max(1.0, float(norm(update)) / (update.size ** 0.5 * d))
    p[...] = p + _c(-alpha / denom, dt) * update


REFERENCES = {"SGD": ref_sgd, "Adam": ref_adam, "AdamW": ref_adamw, "RMSprop": ref_rmsprop,
              "ASGD": ref_asgd, "Rprop": ref_rprop,
              "Adagrad": ref_adagrad, "Adadelta": ref_adadelta, "Adamax": ref_adamax, "NAdam": ref_nadam,
              "RAdam": ref_radam, "Lion": ref_lion, "Adafactor": ref_adafactor}


# ---- AdEMAMix, LAMB, LARS (issue #15), each as pytorch-optimizer 4.1's per-parameter loop -----------------------

def ref_ademamix(p: np.ndarray, g: np.ndarray, state: dict, *, lr: float = 1e-3,
                 betas: tuple = (0.9, 0.999, 0.9999), weight_decay: float = 0.0, weight_decouple: bool = False,
                 fixed_decay: bool = False, alpha: float = 5.0, t_alpha_beta3: float | None = None,
                 eps: float = 1e-8, maximize: bool = False) -> None:
    """Pagliardini, Ablin & Grangier (2024), Algorithm 1: Adam's numerator m1 / (1 - beta1^t) plus alpha_t times a
    slow EMA m2 (decay beta3_t); alpha and beta3 warmed up over T = t_alpha_beta3 steps (the paper's schedulers)."""
    import math

    dt = p.dtype
    beta1, beta2, beta3 = betas
    g = _begin(p, g, state, maximize, ("exp_avg", "exp_avg_sq", "exp_avg_slow"))
    t = state["step"]
    if weight_decay != 0:
        if weight_decouple:
            p[...] = p * _c(1 - weight_decay * (1.0 if fixed_decay else lr), dt)
        elif weight_decay > 0:
            g = g + _c(weight_decay, dt) * p
    if t_alpha_beta3 is None:
        alpha_t, beta3_t = alpha, beta3
    else:
        alpha_t = min(t * alpha / t_alpha_beta3, alpha)
        frac = t / t_alpha_beta3
        lb1, lb3 = math.log(beta1), math.log(beta3)
        beta3_t = min(math.exp(lb1 * lb3 / ((1 - frac) * lb3 + frac * lb1)), beta3)
    m1, v = _adam_moments(state, g, beta1, beta2)
    m2 = state["exp_avg_slow"]
    m2[...] = _lerp(m2, g, 1 - beta3_t)
    denom = np.sqrt(v) / _c(math.sqrt(1 - beta2 ** t), dt) + _c(eps, dt)
    update = m1 / _c(1 - beta1 ** t, dt) + _c(alpha_t, dt) * m2
    p[...] = p + (_c(-lr, dt) * update) / denom


def _norm64(x: np.ndarray) -> float:
    """The 2-norm summed in double (fastopt's deterministic reductions)."""
    return float(np.sqrt(np.sum(np.square(x, dtype=np.float64))))


def ref_lamb(p: np.ndarray, g: np.ndarray, state: dict, *, lr: float = 1e-3, betas: tuple = (0.9, 0.999),
             weight_decay: float = 0.0, weight_decouple: bool = True, fixed_decay: bool = False,
             grad_averaging: bool = True, adam: bool = False, eps: float = 1e-6, maximize: bool = False,
             adam_debias: bool = False) -> None:
    """You et al. (2019), Algorithm 2 (LAMB): the Adam direction u = m / (sqrt(v) + eps) (+ wd x), scaled by the
    trust ratio min(|x|, 10) / (|u| + eps); the step size lr / (1 - beta1^t), no correction of v."""
    dt = p.dtype
    beta1, beta2 = betas
    g = _begin(p, g, state, maximize, ("exp_avg", "exp_avg_sq"))
    t = state["step"]
    m, v = state["exp_avg"], state["exp_avg_sq"]
    m[...] = m * _c(beta1, dt) + _c(1 - beta1 if grad_averaging else 1.0, dt) * g
    _ema_sq(v, g, beta2)
    if weight_decay != 0 and weight_decouple:
        p[...] = p * _c(1 - weight_decay * (1.0 if fixed_decay else lr), dt)
    u = m / (np.sqrt(v) + _c(eps, dt))
    if not weight_decouple and weight_decay > 0:
        u = u + _c(weight_decay, dt) * p
    w_norm, u_norm = min(_norm64(p), 10.0), _norm64(u)
    trust = 1.0 if adam or w_norm == 0 or u_norm == 0 else w_norm / (u_norm + eps)
    step_size = lr if adam_debias else lr / (1 - beta1 ** t)
    p[...] = p + _c(-step_size * trust, dt) * u


def ref_lars(p: np.ndarray, g: np.ndarray, state: dict, *, lr: float = 1e-3, weight_decay: float = 0.0,
             momentum: float = 0.9, dampening: float = 0.0, trust_coefficient: float = 1e-3,
             nesterov: bool = False, maximize: bool = False, adapt: bool = True) -> None:
    """You, Gitman & Ginsburg (2017), Algorithm 1 (LARS): arrays of more than one dimension take the local rate
    tc |p| / (|g| + wd |p|) on g + wd p; then momentum SGD (the buffer starts at zero)."""
    dt = p.dtype
    g = -g if maximize else g.copy()
    if momentum > 0 and "momentum_buffer" not in state:
        state["momentum_buffer"] = np.zeros_like(p)
    if adapt and p.ndim > 1:
        p_norm, g_norm = _norm64(p), _norm64(g)
        den = g_norm + weight_decay * p_norm
        trust = trust_coefficient * p_norm / den if p_norm > 0 and den > 0 else 1.0
        g = (g + _c(weight_decay, dt) * p) * _c(trust, dt)
    if momentum > 0:
        b = state["momentum_buffer"]
        b[...] = b * _c(momentum, dt) + _c(1 - dampening, dt) * g
        g = g + _c(momentum, dt) * b if nesterov else b.copy()
    p[...] = p + _c(-lr, dt) * g


REFERENCES.update({"AdEMAMix": ref_ademamix, "LAMB": ref_lamb, "LARS": ref_lars})
# ---- Beyond torch.optim: Schedule-Free (tests/reference_beyond.py holds the whole-optimizer references) -------
import reference_beyond as _beyond  # noqa: E402  (it imports this module: attributes are read at call time)

_SF_GROUPS: dict[int, tuple[dict, dict]] = {}  # id(state) -> (state, its one-parameter group): the group scalars


def _ref_schedule_free(defaults: str):
    """A per-parameter reference for the registry: the parameter is alone in a group (in train mode) whose
    schedule scalars (k, weight_sum, lr_max, ...) are kept beside its state dict, which holds only z / exp_avg_sq."""
    def ref(p: np.ndarray, g: np.ndarray, state: dict, **kw) -> None:
        entry = _SF_GROUPS.get(id(state))
        if entry is None or entry[0] is not state:
            group = _beyond.sf_group(getattr(_beyond, defaults), **kw)
            group["train_mode"] = True
            entry = _SF_GROUPS[id(state)] = (state, group)
        _beyond.ref_sf_step([entry[1]], [[p]], [[g]], {(0, 0): state})
    return ref


REFERENCES.update({"ScheduleFreeSGD": _ref_schedule_free("SF_SGD_DEFAULTS"),
                   "ScheduleFreeAdamW": _ref_schedule_free("SF_ADAMW_DEFAULTS")})
