/* radam.c — RAdam (Liu et al., 2020), in torch's single-tensor order (torch/optim/radam.py,
 * _single_tensor_radam), instantiated by fo_instantiate.h. Whether step t is rectified (rho_t > 5) and the
 * rectification term are computed in Python per tensor, because each parameter keeps its own step.
 *
 *   g = -grad if maximize else grad                          grad        IN
 *   g = g + wd * p                 (L2 weight decay)         param       INOUT
 *   p = p * (1 - lr * wd)          (decoupled weight decay)  exp_avg     INOUT
 *   m = lerp(m, g, 1 - beta1)                                exp_avg_sq  INOUT
 *   v = v * beta2 + ((1 - beta2) * g) * g
 *   u = (m / bc1) * lr                                       bc1 = 1 - beta1^t: per tensor
 *   u = (u * ((1 / (sqrt(v) + eps)) * bc2_sqrt)) * rect      (rectified steps only; 1/x as torch's rdiv)
 *   p = p - u
 */
#ifndef FO_T /* compiled as a file: instantiate the body below for float and double */
#include "fastopt.h"
/* RAdam: 2 exp_avg, 3 exp_avg_sq; scalars 0 bias_correction1 = 1 - beta1^t, 1 sqrt(1 - beta2^t), 2 rect (the
 * variance rectification term), 3 rectified (1.0 when rho_t > 5, else 0.0) */
FO_KERNEL(radam, 4, 4, D(lr) D(beta1) D(beta2) D(eps) D(weight_decay) I(maximize) I(decoupled_weight_decay))
#define FO_IMPL "radam.c"
#include "fo_instantiate.h"
#else /* included by fo_instantiate.h with FO_T set: the body */
FO_INLINE void FO_FN(radam_loop)(FO_ADAM_PARAMS, const FO_T bc1, const FO_T lr, const FO_T bc2s, const FO_T rect,
                                 const int maximize, const int l2, const int small_w, const int rectified)
{
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) {
        FO_ADAM_MOMENTS(i);
        FO_T u = (mi / bc1) * lr;                     /* bias_corrected_exp_avg * lr */
        if (rectified) {
            const FO_T adaptive = ((FO_T)1 / (FO_SQRT(vi) + eps)) * bc2s;
            u = (u * adaptive) * rect;
        }
        m[i] = mi;
        v[i] = vi;
        p[i] = pi - u;                                /* param.add_(u, alpha=-1.0): fma(-1, u, p) == p - u */
    }
}

FO_RANGE(radam)
{
    FO_ADAM_LOCALS(h, bufs);
    const FO_T lr = (FO_T)h->lr, bc1 = (FO_T)s[0], bc2s = (FO_T)s[1], rect = (FO_T)s[2];
    const int rectified = s[3] != 0, mx = h->maximize;
    if (rectified) {
        if (small_w) FO_FN(radam_loop)(FO_ADAM_ARGS, bc1, lr, bc2s, rect, mx, l2, 1, 1);
        else         FO_FN(radam_loop)(FO_ADAM_ARGS, bc1, lr, bc2s, rect, mx, l2, 0, 1);
    } else {
        if (small_w) FO_FN(radam_loop)(FO_ADAM_ARGS, bc1, lr, bc2s, rect, mx, l2, 1, 0);
        else         FO_FN(radam_loop)(FO_ADAM_ARGS, bc1, lr, bc2s, rect, mx, l2, 0, 0);
    }
}

FO_NEEDS_FIRST(radam, 4)

FO_ELEMENTWISE(radam)
#endif
