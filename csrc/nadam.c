/* nadam.c — NAdam (Dozat, 2016), in torch's single-tensor order (torch/optim/nadam.py,
 * _single_tensor_nadam), instantiated by fo_instantiate.h. The momentum schedule mu_t and the running product
 * of the mu's are per-parameter scalars kept in Python; they arrive folded into two coefficients per tensor.
 *
 *   g = -grad if maximize else grad                          grad        IN
 *   g = g + wd * p                 (L2 weight decay)         param       INOUT
 *   p = p * (1 - lr * wd)          (decoupled weight decay)  exp_avg     INOUT
 *   m = lerp(m, g, 1 - beta1)                                exp_avg_sq  INOUT
 *   v = v * beta2 + ((1 - beta2) * g) * g
 *   d = sqrt(v / bc2) + eps                                  bc2 = 1 - beta2^t: per tensor
 *   p = p + (cg * g) / d;  p = p + (cm * m) / d              cg, cm: the two coefficients, per tensor
 */
#ifndef FO_T /* compiled as a file: instantiate the body below for float and double */
#include "fastopt.h"
/* NAdam: 2 exp_avg, 3 exp_avg_sq; scalars 0 bias_correction2 = 1 - beta2^t, 1 grad coefficient
 * -lr (1 - mu_t) / (1 - prod mu), 2 exp_avg coefficient -lr mu_{t+1} / (1 - prod mu * mu_{t+1}) */
FO_KERNEL(nadam, 4, 3, D(lr) D(beta1) D(beta2) D(eps) D(weight_decay) I(maximize) I(decoupled_weight_decay))
#define FO_IMPL "nadam.c"
#include "fo_instantiate.h"
#else /* included by fo_instantiate.h with FO_T set: the body */
FO_INLINE void FO_FN(nadam_loop)(FO_ADAM_PARAMS, const FO_T bc2, const FO_T cg, const FO_T cm, const int maximize,
                                 const int l2, const int small_w)
{
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) {
        FO_ADAM_MOMENTS(i);
        const FO_T denom = FO_SQRT(vi / bc2) + eps;   /* exp_avg_sq.div(bc2).sqrt().add_(eps) */
        m[i] = mi;
        v[i] = vi;
        pi = pi + (cg * gi) / denom;                  /* param.addcdiv_(grad, denom, value=cg) */
        p[i] = pi + (cm * mi) / denom;                /* param.addcdiv_(exp_avg, denom, value=cm) */
    }
}

FO_RANGE(nadam)
{
    FO_ADAM_LOCALS(h, bufs);
    const FO_T bc2 = (FO_T)s[0], cg = (FO_T)s[1], cm = (FO_T)s[2];
    if (small_w) {
        if (l2) FO_FN(nadam_loop)(FO_ADAM_ARGS, bc2, cg, cm, h->maximize, 1, 1);
        else    FO_FN(nadam_loop)(FO_ADAM_ARGS, bc2, cg, cm, h->maximize, 0, 1);
    } else {
        FO_FN(nadam_loop)(FO_ADAM_ARGS, bc2, cg, cm, h->maximize, l2, 0);
    }
}

FO_NEEDS_FIRST(nadam, 4)

FO_ELEMENTWISE(nadam)
#endif
