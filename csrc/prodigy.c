/* prodigy.c — Prodigy (Mishchenko & Defazio, ICML 2024), in the order of torch operations of prodigyopt 1.1.x
 * (Prodigy.step); instantiated for float and double by fo_instantiate.h. The NumPy reference:
 * tests/reference_beyond.py (ref_prodigy_step).
 *
 * A step is two passes over every group, because the distance estimate d of the update needs sums over all
 * parameters. Python (fastopt/optim/prodigy.py) computes the scalars in double between them.
 *
 *   pass 1, prodigy_reduce (a reduction, fo_reduce.h):       param p IN, grad g IN, exp_avg m INOUT (beta1 > 0),
 *     g' = g + wd * p              (L2 decay: not decouple)  exp_avg_sq v INOUT, s INOUT, p0 IN
 *     sum 0 += g' (p0 - p)         (in double; p0 - p rounded first, as torch.dot(g', p0 - p))
 *     m = m * beta1 + (d (1 - beta1)) * g'                   (mul_, then add_ with alpha: one fma)
 *     v = v * beta2 + ((d^2 (1 - beta2)) * g') * g'           (mul_, then addcmul_: one fma)
 *     s = s * beta3 + w_s * g'     (w_s = (d/d0) dlr, or (d/d0) d with safeguard_warmup)
 *     sum 1 += |s|
 *   pass 2, prodigy (elementwise), with the new d:
 *     p = p + (-wd dlr) * p        (decoupled decay; one fma)
 *     p = p + (c * m) / (sqrt(v) + d eps)    c = -dlr      (addcdiv_)
 *       or p + (c * g') / (sqrt(v) + d eps)  c = -dlr d    (beta1 == 0)
 */
#ifndef FO_T /* compiled as a file: instantiate the bodies below for float and double */
#include "fastopt.h"
#define FO_IMPL "prodigy.c"
#include "fo_instantiate.h"
#else /* included by fo_instantiate.h with FO_T set: the bodies */
#include "fo_reduce.h"

#define FO_PRODIGY_L2(h) ((h)->weight_decay != 0 && !(h)->decouple)

FO_INLINE void FO_FN(prodigy_update_loop)(FO_T *FO_RESTRICT p, const FO_T *FO_RESTRICT g,
                                          const FO_T *FO_RESTRICT u, const FO_T *FO_RESTRICT v, const int64_t n,
                                          const FO_T wd, const int l2, const FO_T ndec, const int decoupled,
                                          const FO_T coef, const FO_T deps)
{
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) {
        const FO_T pi = p[i];
        /* u is exp_avg, or NULL when beta1 == 0: then the (L2-decayed) gradient itself */
        const FO_T ui = u != NULL ? u[i] : (l2 ? FO_FMA(wd, pi, g[i]) : g[i]);
        const FO_T pd = decoupled ? FO_FMA(ndec, pi, pi) : pi;
        p[i] = pd + (coef * ui) / (FO_SQRT(v[i]) + deps);
    }
}

FO_RANGE(prodigy)
{
    const int decoupled = h->weight_decay != 0 && h->decouple, l2 = FO_PRODIGY_L2(h);
    const FO_T *u = h->beta1 > 0 ? bufs[2] : NULL;
    const FO_T wd = (FO_T)h->weight_decay, ndec = (FO_T)s[6], coef = (FO_T)s[4], deps = (FO_T)s[5];
    if (u != NULL) {
        if (decoupled) FO_FN(prodigy_update_loop)(bufs[0], bufs[1], u, bufs[3], n, wd, 0, ndec, 1, coef, deps);
        else           FO_FN(prodigy_update_loop)(bufs[0], bufs[1], u, bufs[3], n, wd, 0, ndec, 0, coef, deps);
    } else {
        FO_FN(prodigy_update_loop)(bufs[0], bufs[1], NULL, bufs[3], n, wd, l2, ndec, decoupled, coef, deps);
    }
}

static inline int64_t FO_FN(prodigy_needs)(const fo_prodigy_hyper *h)
{
    return h->beta1 > 0 ? FO_FIRST(4) : (FO_FIRST(2) | (1 << 3));
}

FO_ELEMENTWISE(prodigy)

/* Element i of a pass-1 run, lane k: the moments, s, and the two sums' lanes. */
FO_INLINE void FO_FN(prodigy_pass1_elem)(FO_T *FO_RESTRICT p, const FO_T *FO_RESTRICT g, FO_T *FO_RESTRICT m,
                                         FO_T *FO_RESTRICT v, FO_T *FO_RESTRICT sb, const FO_T *FO_RESTRICT p0,
                                         const int64_t i, const int k, double *FO_RESTRICT dot,
                                         double *FO_RESTRICT l1, const FO_T wd, const int l2, const int has_m,
                                         const FO_T b1, const FO_T w1, const FO_T b2, const FO_T w2,
                                         const FO_T b3, const FO_T ws)
{
    const FO_T pi = p[i];
    const FO_T gi = l2 ? FO_FMA(wd, pi, g[i]) : g[i];
    dot[k] += (double)gi * (double)(p0[i] - pi);
    if (has_m)
        m[i] = FO_FMA(w1, gi, m[i] * b1);
    v[i] = FO_FMA(w2 * gi, gi, v[i] * b2);
    const FO_T si = FO_FMA(ws, gi, sb[i] * b3);
    sb[i] = si;
    l1[k] += (double)(si < 0 ? -si : si);
}

/* Blocks of FO_REDUCE_LANES elements (a fixed trip count, so the block vectorises), then the tail: element i of the
 * run always adds to lane i % FO_REDUCE_LANES, whatever the instruction set; the lanes are added in order. */
FO_INLINE void FO_FN(prodigy_pass1)(FO_T *FO_RESTRICT p, const FO_T *FO_RESTRICT g, FO_T *FO_RESTRICT m,
                                    FO_T *FO_RESTRICT v, FO_T *FO_RESTRICT sb, const FO_T *FO_RESTRICT p0,
                                    const int64_t n, double *part, const FO_T wd, const int l2, const int has_m,
                                    const FO_T b1, const FO_T w1, const FO_T b2, const FO_T w2, const FO_T b3,
                                    const FO_T ws)
{
    double dot[FO_REDUCE_LANES] = {0}, l1[FO_REDUCE_LANES] = {0};
    const int64_t n_full = n - n % FO_REDUCE_LANES;
    for (int64_t i0 = 0; i0 < n_full; i0 += FO_REDUCE_LANES)
        for (int k = 0; k < FO_REDUCE_LANES; ++k)
            FO_FN(prodigy_pass1_elem)(p, g, m, v, sb, p0, i0 + k, k, dot, l1, wd, l2, has_m, b1, w1, b2, w2, b3, ws);
    for (int64_t i = n_full; i < n; ++i)
        FO_FN(prodigy_pass1_elem)(p, g, m, v, sb, p0, i, (int)(i - n_full), dot, l1, wd, l2, has_m, b1, w1, b2, w2,
                                  b3, ws);
    double a = 0.0, b = 0.0;
    for (int k = 0; k < FO_REDUCE_LANES; ++k) {
        a += dot[k];
        b += l1[k];
    }
    part[0] = a;
    part[1] = b;
}

FO_REDUCE_RANGE(prodigy_reduce, prodigy)
{
    const int l2 = FO_PRODIGY_L2(h), has_m = h->beta1 > 0;
    const FO_T wd = (FO_T)h->weight_decay, b1 = (FO_T)h->beta1, b2 = (FO_T)h->beta2;
    const FO_T w1 = (FO_T)s[0], w2 = (FO_T)s[1], ws = (FO_T)s[2], b3 = (FO_T)s[3];
    /* unswitched: each (L2 decay, exp_avg) combination is its own loop */
    if (has_m) {
        if (l2) FO_FN(prodigy_pass1)(bufs[0], bufs[1], bufs[2], bufs[3], bufs[4], bufs[5], n, part, wd, 1, 1, b1, w1, b2, w2, b3, ws);
        else    FO_FN(prodigy_pass1)(bufs[0], bufs[1], bufs[2], bufs[3], bufs[4], bufs[5], n, part, wd, 0, 1, b1, w1, b2, w2, b3, ws);
    } else {
        if (l2) FO_FN(prodigy_pass1)(bufs[0], bufs[1], NULL, bufs[3], bufs[4], bufs[5], n, part, wd, 1, 0, b1, w1, b2, w2, b3, ws);
        else    FO_FN(prodigy_pass1)(bufs[0], bufs[1], NULL, bufs[3], bufs[4], bufs[5], n, part, wd, 0, 0, b1, w1, b2, w2, b3, ws);
    }
}

static inline int64_t FO_FN(prodigy_reduce_needs)(const fo_prodigy_hyper *h)
{
    return h->beta1 > 0 ? FO_FIRST(6) : (FO_FIRST(2) | (int64_t)0x38); /* 0, 1, 3, 4, 5 */
}

FO_REDUCTION(prodigy_reduce, prodigy, 2)
#undef FO_PRODIGY_L2
#endif
