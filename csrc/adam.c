/* adam.c — Adam and AdamW (Kingma & Ba, 2015; Loshchilov & Hutter, 2019), in torch's single-tensor order
 * (torch/optim/adam.py, _single_tensor_adam), instantiated for float and double by fo_instantiate.h.
 *
 *   g  = -grad if maximize else grad                          grad            IN
 *   g  = g + wd * p                 (L2 weight decay)         param           INOUT
 *   p  = p * (1 - lr * wd)          (decoupled weight decay)  exp_avg         INOUT
 *   m  = lerp(m, g, 1 - beta1)                                exp_avg_sq      INOUT
 *   v  = v * beta2 + ((1 - beta2) * g) * g                    max_exp_avg_sq  INOUT (amsgrad only)
 *   vh = max(vmax, v) -> vmax        (amsgrad; NaN wins, as torch.maximum)
 *   p  = p + (-step_size * m) / (sqrt(vh) / bc2_sqrt + eps)   step_size = lr / (1 - beta1^t): per tensor
 */
#ifndef FO_T /* compiled as a file: instantiate the body below for float and double */
#include "fastopt.h"
/* Adam / AdamW: 2 exp_avg, 3 exp_avg_sq, 4 max_exp_avg_sq (NULL unless amsgrad);
 * scalars 0 step_size = lr / (1 - beta1^t), 1 bias_correction2_sqrt = sqrt(1 - beta2^t) */
FO_KERNEL(adam, 5, 2, D(lr) D(beta1) D(beta2) D(eps) D(weight_decay) I(amsgrad) I(maximize) I(decoupled_weight_decay))
FO_KERNEL_STEP_SCALARS(adam)
#define FO_IMPL "adam.c"
#include "fo_instantiate.h"

/* The per-tensor scalars at step count t, in double as torch computes them in Python:
 *   0 step_size = lr / (1 - beta1^t),  1 bias_correction2_sqrt = (1 - beta2^t)^0.5
 * with pow() both times, as Python's float ** int and ** 0.5 call it (not sqrt), so the values are the same bits
 * whichever side computes them; fastopt/optim/adam.py's spec calls this function too. */
void fo_adam_step_scalars(const fo_adam_hyper *h, int64_t t, double *out)
{
    out[0] = h->lr / (1 - pow(h->beta1, (double)t));
    out[1] = pow(1 - pow(h->beta2, (double)t), 0.5);
}
#else /* included by fo_instantiate.h with FO_T set: the body */
FO_INLINE void FO_FN(adam_loop)(FO_ADAM_PARAMS, FO_T *FO_RESTRICT vmax, const FO_T bc2s, const double inv_bc2s,
                                const int by_inv, const FO_T neg_step, const int maximize, const int l2,
                                const int amsgrad, const int small_w)
{
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) {
        FO_ADAM_MOMENTS(i);
        FO_T vh = vi;
        if (amsgrad) {
            vh = FO_MAX_NAN(vmax[i], vi);
            vmax[i] = vh;
        }
        const FO_T r = FO_SQRT(vh);
        /* r / bc2s, the same bits either way (FO_DIV_BY_INV, fo_common.h): no divide instruction in float */
        const FO_T denom = (by_inv ? FO_DIV_BY_INV(r, bc2s, inv_bc2s) : r / bc2s) + eps;
        m[i] = mi;
        v[i] = vi;
        p[i] = pi + (neg_step * mi) / denom;
    }
}

FO_RANGE(adam)
{
    FO_ADAM_LOCALS(h, bufs);
    FO_T *vmax = h->amsgrad ? bufs[4] : NULL;
    const FO_T bc2s = (FO_T)s[1], neg_step = (FO_T)(-s[0]);
    const int mx = h->maximize;
    const double inv = 1.0 / (double)bc2s;
    /* Unswitch the flags so that each combination is its own vectorised loop (the division by bc2s as a product
     * whenever that is exact: always in float, bc2s = (1 - beta2^t)^0.5 is in (0, 1]). */
#define FO_ADAM_LOOP_(by_inv_, l2_, ams_, small_) \
    FO_FN(adam_loop)(FO_ADAM_ARGS, vmax, bc2s, inv, by_inv_, neg_step, mx, l2_, ams_, small_)
#define FO_ADAM_SWITCH_(by_inv_)                                              \
    do {                                                                      \
        if (h->amsgrad) {                                                     \
            if (l2) FO_ADAM_LOOP_(by_inv_, 1, 1, small_w);                    \
            else    FO_ADAM_LOOP_(by_inv_, 0, 1, small_w);                    \
        } else if (small_w) {                                                 \
            if (l2) FO_ADAM_LOOP_(by_inv_, 1, 0, 1);                          \
            else    FO_ADAM_LOOP_(by_inv_, 0, 0, 1);                          \
        } else {                                                              \
            FO_ADAM_LOOP_(by_inv_, l2, 0, 0);                                 \
        }                                                                     \
    } while (0)
    if (fo_div_exact_ok(bc2s))
        FO_ADAM_SWITCH_(1);
    else
        FO_ADAM_SWITCH_(0);
#undef FO_ADAM_SWITCH_
#undef FO_ADAM_LOOP_
}

static inline int64_t FO_FN(adam_needs)(const fo_adam_hyper *h)
{
    return FO_FIRST(h->amsgrad ? 5 : 4);
}

FO_ELEMENTWISE(adam)
#endif
