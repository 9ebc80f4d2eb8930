/* schedulefree.c — Schedule-Free SGD and AdamW (Defazio et al., 2024, "The Road Less Scheduled"), in the order
 * of torch operations of the schedulefree package 1.4.x (SGDScheduleFree / AdamWScheduleFree, for-loop path);
 * instantiated for float and double by fo_instantiate.h. The NumPy reference: tests/reference_beyond.py.
 *
 * The parameter holds y = (1 - beta) z + beta x while training. Per group and step, Python computes in double
 * (fastopt/optim/schedulefree.py): the scheduled lr, the averaging weight c = weight / weight_sum and
 * adj = lr * (beta * (1 - c) - 1); they arrive as per-tensor scalars 0 lr, 1 c, 2 adj (3 bc2 = 1 - beta2^(k+1)
 * for AdamW). Unlike upstream the gradient is never written into.
 *
 *   sf_sgd:                                               param y  INOUT,  grad g  IN,  z  INOUT
 *     u = g + wd * y            (weight_decay != 0; one fma: grad.add_(y, alpha=wd))
 *     y = lerp(y, z, c)         (torch's two-branch lerp)
 *     y = y + adj * u           (one fma: y.add_(u, alpha=adj))
 *     z = z + (-lr) * u         (one fma: z.sub_(u, alpha=lr))
 *
 *   sf_adamw:                                             ... and exp_avg_sq v  INOUT
 *     v = v * beta2 + ((1 - beta2) * g) * g               (mul_, then addcmul_: one fma)
 *     u = g / (sqrt(v / bc2) + eps)
 *     then u = u + wd * y and the three lines of sf_sgd
 *
 * Speed (round 6). Both loops are vectorised (AVX-512: 16 lanes, aligned stores after the peel) with the minimum
 * of loads and stores; sf_sgd runs at the same-traffic probe's speed. sf_adamw is bound by the divider, whose
 * one-per-16-lanes divisions and square root cost more than its traffic while the arrays sit in L2 (0.38 ns per
 * element on the round-6 machine, as Adam; the probe moves the same 7 values in 0.14): in float, v / bc2 is the
 * product (double)v * (1 / (double)bc2) rounded once (FO_DIV_BY_INV, fo_common.h: the same bits for every v, proof
 * there), which leaves one division and one square root (0.31 ns; `sh bench/sf_micro.sh ab`, measured under load).
 * The rewrite was checked against the division over all 2^32 float bit patterns of v for bc2 = 1 - 0.999^(k+1),
 * k = 0..19, and other sample constants (`sh bench/sf_micro.sh check`: 0 mismatches).
 */
#ifndef FO_T /* compiled as a file: instantiate the bodies below for float and double */
#include "fastopt.h"
/* Schedule-Free SGD / AdamW: 2 z, 3 exp_avg_sq (AdamW); scalars 0 scheduled lr, 1 averaging
 * weight c = weight / weight_sum, 2 adj = lr * (beta * (1 - c) - 1), 3 bias_correction2 = 1 - beta2^(k+1) (AdamW);
 * beta1 is read by Python only (adj, eval/train) */
FO_KERNEL(sf_sgd, 3, 3, D(weight_decay))
FO_KERNEL(sf_adamw, 4, 4, D(beta1) D(beta2) D(eps) D(weight_decay))
#define FO_IMPL "schedulefree.c"
#include "fo_instantiate.h"
#else /* included by fo_instantiate.h with FO_T set: the bodies */
/* The interpolation and the two steps shared by both rules (u: the update direction of element i). */
#define FO_SF_APPLY(y, z, i, u)                                  \
    do {                                                         \
        const FO_T yl_ = FO_LERP(y[i], z[i], c, small_c);        \
        y[i] = FO_FMA(adj, (u), yl_);                            \
        z[i] = FO_FMA(neg_lr, (u), z[i]);                        \
    } while (0)

FO_INLINE void FO_FN(sf_sgd_loop)(FO_T *FO_RESTRICT y, const FO_T *FO_RESTRICT g, FO_T *FO_RESTRICT z,
                                  const int64_t n, const FO_T wd, const int decay, const FO_T c, const int small_c,
                                  const FO_T adj, const FO_T neg_lr)
{
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) {
        const FO_T u = decay ? FO_FMA(wd, y[i], g[i]) : g[i];
        FO_SF_APPLY(y, z, i, u);
    }
}

FO_RANGE(sf_sgd)
{
    const FO_T c = (FO_T)s[1];
    const int small_c = fo_small_weight(c), decay = h->weight_decay != 0;
    const FO_T wd = (FO_T)h->weight_decay, adj = (FO_T)s[2], neg_lr = (FO_T)(-s[0]);
    /* unswitched: each (decay, lerp branch) combination is its own vectorised loop */
    if (decay) {
        if (small_c) FO_FN(sf_sgd_loop)(bufs[0], bufs[1], bufs[2], n, wd, 1, c, 1, adj, neg_lr);
        else         FO_FN(sf_sgd_loop)(bufs[0], bufs[1], bufs[2], n, wd, 1, c, 0, adj, neg_lr);
    } else {
        if (small_c) FO_FN(sf_sgd_loop)(bufs[0], bufs[1], bufs[2], n, wd, 0, c, 1, adj, neg_lr);
        else         FO_FN(sf_sgd_loop)(bufs[0], bufs[1], bufs[2], n, wd, 0, c, 0, adj, neg_lr);
    }
}

FO_NEEDS_FIRST(sf_sgd, 3)

FO_ELEMENTWISE(sf_sgd)

FO_INLINE void FO_FN(sf_adamw_loop)(FO_T *FO_RESTRICT y, const FO_T *FO_RESTRICT g, FO_T *FO_RESTRICT z,
                                    FO_T *FO_RESTRICT v, const int64_t n, const FO_T b2, const FO_T w2,
                                    const FO_T bc2, const double inv_bc2, const int by_inv, const FO_T eps,
                                    const FO_T wd, const int decay, const FO_T c, const int small_c, const FO_T adj,
                                    const FO_T neg_lr)
{
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) {
        const FO_T gi = g[i];
        const FO_T vi = FO_FMA(w2 * gi, gi, v[i] * b2);
        v[i] = vi;
        const FO_T vb = by_inv ? FO_DIV_BY_INV(vi, bc2, inv_bc2) : vi / bc2; /* v / bc2, the same bits either way */
        const FO_T q = gi / (FO_SQRT(vb) + eps);
        const FO_T u = decay ? FO_FMA(wd, y[i], q) : q;
        FO_SF_APPLY(y, z, i, u);
    }
}

/* One call of the loop with every flag a constant (each combination is its own vectorised loop). */
#define FO_SF_ADAMW_LOOP(by_inv_, decay_, small_c_)                                                         \
    FO_FN(sf_adamw_loop)(bufs[0], bufs[1], bufs[2], bufs[3], n, b2, w2, bc2, inv_bc2, by_inv_, eps, wd, decay_, \
                         c, small_c_, adj, neg_lr)

FO_RANGE(sf_adamw)
{
    const FO_T c = (FO_T)s[1];
    const int small_c = fo_small_weight(c), decay = h->weight_decay != 0;
    const FO_T wd = (FO_T)h->weight_decay, adj = (FO_T)s[2], neg_lr = (FO_T)(-s[0]), bc2 = (FO_T)s[3];
    const FO_T b2 = (FO_T)h->beta2, w2 = (FO_T)(1 - h->beta2), eps = (FO_T)h->eps;
    const double inv_bc2 = 1.0 / (double)bc2;
    const int by_inv = fo_div_exact_ok(bc2); /* always, in float: bc2 = 1 - beta2^(k+1) is in (0, 1] */
    FO_UNSWITCH3(FO_SF_ADAMW_LOOP, by_inv, decay, small_c);
}
#undef FO_SF_ADAMW_LOOP

FO_NEEDS_FIRST(sf_adamw, 4)

FO_ELEMENTWISE(sf_adamw)
#undef FO_SF_APPLY
#endif
