"""AdEMAMix, LAMB, LARS and Lookahead against pytorch-optimizer (``pytorch_optimizer`` 4.1, on torch CPU), the
published implementation whose variants they follow: 100 steps, two parameter groups with different options,
matrices and vectors (LARS adapts only the matrices), every option; float64 within 1e-12 and float32 within 1e-5
relative to the largest entry. Skips when torch or pytorch-optimizer is absent."""
from __future__ import annotations

import numpy as np
import pytest

import fastopt as fo

torch = pytest.importorskip("torch")
po = pytest.importorskip("pytorch_optimizer")

STEPS = 100
TOL = {np.float32: 1e-5, np.float64: 1e-12}
SHAPES = [(7, 5), (33,), (4, 3, 2), (1,), (16, 130)]


def _arrays(rng, dtype):
    return [rng.standard_normal(s).astype(dtype) for s in SHAPES]


def _run_pair(build_fo, build_ref, dtype, seed=0, steps=STEPS, closure_every=0):
    """The same trajectory in fastopt and in the reference; returns the worst relative difference of the params."""
    rng = np.random.default_rng(seed)
    init = _arrays(rng, dtype)
    fp = [fo.Parameter(a.copy()) for a in init]
    tp = [torch.tensor(a.copy(), requires_grad=True) for a in init]
    groups_fo = [{"params": fp[:3]}, {"params": fp[3:]}]
    groups_t = [{"params": tp[:3]}, {"params": tp[3:]}]
    opt, ref = build_fo(groups_fo), build_ref(groups_t)
    for _ in range(steps):
        grads = [rng.standard_normal(a.shape).astype(dtype) for a in init]
        for p, g in zip(fp, grads):
            p.grad = g.copy()
        for p, g in zip(tp, grads):
            p.grad = torch.tensor(g.copy())  # the reference writes into its gradients
        opt.step()
        ref.step()
    worst = 0.0
    for p, t in zip(fp, tp):
        expected = t.detach().numpy()
        assert p.data.dtype == dtype
        worst = max(worst, float(np.max(np.abs(p.data - expected)) / max(1e-30, float(np.max(np.abs(expected))))))
    return worst


ADEMAMIX = [
    (dict(lr=1e-2), dict(lr=5e-3, betas=(0.8, 0.99, 0.999), alpha=2.0)),
    (dict(lr=1e-2, t_alpha_beta3=40.0, weight_decay=0.1), dict(lr=1e-2, weight_decay=0.05, eps=1e-6)),
    (dict(lr=1e-2, weight_decay=0.1, weight_decouple=True, maximize=True),
     dict(lr=1e-2, weight_decay=0.2, weight_decouple=True, fixed_decay=True, maximize=True)),
    (dict(lr=2e-2, betas=(0.3, 0.9, 0.999), t_alpha_beta3=150.0), dict(lr=1e-2, betas=(0.5, 0.6, 0.7))),
]
LAMB = [
    (dict(lr=1e-2), dict(lr=5e-3, betas=(0.8, 0.99))),
    (dict(lr=1e-2, weight_decay=0.1), dict(lr=1e-2, weight_decay=0.1, weight_decouple=False)),
    (dict(lr=1e-2, weight_decay=0.3, fixed_decay=True, eps=1e-8), dict(lr=1e-2, adam=True, weight_decay=0.0)),
    (dict(lr=1e-2, adam_debias=True, weight_decay=0.05), dict(lr=1e-2, adam_debias=True, betas=(0.5, 0.9))),
    (dict(lr=1e-2, grad_averaging=False, maximize=True), dict(lr=2e-2, weight_decay=0.01, maximize=True)),
]
LARS = [
    (dict(lr=0.1), dict(lr=0.05, momentum=0.0)),
    (dict(lr=0.5, weight_decay=0.1, trust_coefficient=0.02), dict(lr=0.1, weight_decay=0.1, dampening=0.3)),
    (dict(lr=0.5, momentum=0.8, nesterov=True, weight_decay=0.01, maximize=True),
     dict(lr=0.1, momentum=0.5, nesterov=True, maximize=True)),
]


def _ref_kwargs(name, kw):
    return dict(kw, foreach=False)  # the per-parameter loop: the order of operations fastopt follows


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name,cls,cases", [("AdEMAMix", fo.AdEMAMix, ADEMAMIX), ("Lamb", fo.LAMB, LAMB),
                                            ("LARS", fo.LARS, LARS)])
def test_matches_pytorch_optimizer(name, cls, cases, dtype):
    ref_cls = getattr(po, name)
    for i, (g0, g1) in enumerate(cases):
        # pytorch-optimizer reads maximize from its constructor only: pass it there, and the rest per group
        top = {k: g0[k] for k in ("maximize",) if k in g0}

        def build_fo(groups):
            return cls([dict(groups[0], **g0), dict(groups[1], **g1)], **top)

        def build_ref(groups):
            return ref_cls([dict(groups[0], **{k: v for k, v in g0.items() if k != "maximize"}),
                            dict(groups[1], **{k: v for k, v in g1.items() if k != "maximize"})],
                           **_ref_kwargs(name, top))

        worst = _run_pair(build_fo, build_ref, dtype, seed=i)
        assert worst <= TOL[dtype], (name, i, worst)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("inner", ["SGD", "Adam", "LAMB"])
def test_lookahead_matches_pytorch_optimizer(inner, dtype):
    inner_kw = {"SGD": dict(lr=0.05, momentum=0.9), "Adam": dict(lr=1e-2), "LAMB": dict(lr=1e-2)}[inner]
    ref_inner = {"SGD": lambda g: torch.optim.SGD(g, **inner_kw), "Adam": lambda g: torch.optim.Adam(g, **inner_kw),
                 "LAMB": lambda g: po.Lamb(g, foreach=False, **inner_kw)}[inner]
    for k, alpha in ((5, 0.5), (3, 0.8), (1, 0.2)):
        worst = _run_pair(lambda g: fo.Lookahead(getattr(fo, inner)(g, **inner_kw), k=k, alpha=alpha),
                          lambda g: po.Lookahead(ref_inner(g), k=k, alpha=alpha), dtype)
        assert worst <= TOL[dtype], (inner, k, alpha, worst)


def _table() -> None:
    """Print the parity table (README, "AdEMAMix, LAMB, LARS and Lookahead"): the worst relative difference of
    every configuration above, per optimizer and dtype. Run: python tests/test_parity_beyond_more.py"""
    print("| optimizer | dtype | configurations | worst max abs diff / max abs value, 100 steps |")
    print("|---|---|---|---|")
    for name, cls, cases in [("AdEMAMix", fo.AdEMAMix, ADEMAMIX), ("Lamb", fo.LAMB, LAMB), ("LARS", fo.LARS, LARS)]:
        for dtype in (np.float64, np.float32):
            worst = 0.0
            for i, (g0, g1) in enumerate(cases):
                top = {k: g0[k] for k in ("maximize",) if k in g0}

                def strip(g):
                    return {k: v for k, v in g.items() if k != "maximize"}
                worst = max(worst, _run_pair(
                    lambda gs: cls([dict(gs[0], **g0), dict(gs[1], **g1)], **top),
                    lambda gs: getattr(po, name)([dict(gs[0], **strip(g0)), dict(gs[1], **strip(g1))],
                                                 **_ref_kwargs(name, top)), dtype, seed=i))
            print(f"| {cls.__name__} | {np.dtype(dtype).name} | {len(cases)} × 2 groups | {worst:.1e} |")
    inner = [("SGD", dict(lr=0.05, momentum=0.9), lambda g: torch.optim.SGD(g, lr=0.05, momentum=0.9)),
             ("Adam", dict(lr=1e-2), lambda g: torch.optim.Adam(g, lr=1e-2)),
             ("LAMB", dict(lr=1e-2), lambda g: po.Lamb(g, lr=1e-2, foreach=False))]
    for dtype in (np.float64, np.float32):
        worst = 0.0
        for name, kw, ref in inner:
            for k, alpha in ((5, 0.5), (3, 0.8), (1, 0.2)):
                worst = max(worst, _run_pair(lambda g: fo.Lookahead(getattr(fo, name)(g, **kw), k=k, alpha=alpha),
                                             lambda g: po.Lookahead(ref(g), k=k, alpha=alpha), dtype))
        print(f"| Lookahead (around SGD, Adam, LAMB) | {np.dtype(dtype).name} | 9 × 2 groups | {worst:.1e} |")


if __name__ == "__main__":
    _table()
