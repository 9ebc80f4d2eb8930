/* fo_adam_f32.h — Adam's per-tensor constants in float32, for a kernel that runs Adam's float32 arithmetic on
 * low-precision storage (lowp.c: compressed state; lowp_params.c runs adam.c's own loop instead). `h` is a hyper
 * struct with lr, beta1, beta2, eps, weight_decay, decoupled_weight_decay; `s` the tensor's scalars
 * (0 the step size lr / (1 - beta1^t), 1 sqrt(1 - beta2^t)), as adam.c reads them. */
#ifndef FO_ADAM_F32_H
#define FO_ADAM_F32_H

typedef struct {
    float wd, decay, w1, b2, w2, bc2s, eps, neg_step;
} fo_adam_f32c;

#define FO_ADAM_F32_CONSTS(c, h, s)                                                                           \
    do {                                                                                                      \
        (c).decay = (float)(((h)->weight_decay != 0 && (h)->decoupled_weight_decay)                           \
                                ? 1 - (h)->lr * (h)->weight_decay : 1.0);                                     \
        (c).w1 = (float)(1 - (h)->beta1);                                                                     \
        (c).wd = (float)(h)->weight_decay;                                                                    \
        (c).b2 = (float)(h)->beta2;                                                                           \
        (c).w2 = (float)(1 - (h)->beta2);                                                                     \
        (c).bc2s = (float)(s)[1];                                                                             \
        (c).eps = (float)(h)->eps;                                                                            \
        (c).neg_step = (float)(-(s)[0]);                                                                      \
    } while (0)

#endif /* FO_ADAM_F32_H */
