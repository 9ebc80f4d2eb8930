/* fo_optim_a.h — hyper-parameter structs and prototypes of Adagrad, Adadelta, Adamax, NAdam, RAdam and Lion
 * (included by fastopt.h; mirrored in fastopt/_kernels.pxd). Buffer order and per-tensor scalars are given
 * above each struct; bufs 0 and 1 are always param (INOUT) and grad (IN). */
#ifndef FO_OPTIM_A_H
#define FO_OPTIM_A_H

/* ---- Adagrad ----  bufs: 2 sum;  scalars: 0 clr = lr / (1 + (t - 1) * lr_decay) */
typedef struct {
    double eps, weight_decay;
    int maximize;
} fo_adagrad_hyper;
int fo_adagrad_f32(const fo_tensor_list *t, const fo_adagrad_hyper *h);
int fo_adagrad_f64(const fo_tensor_list *t, const fo_adagrad_hyper *h);

/* ---- Adadelta ----  bufs: 2 square_avg, 3 acc_delta;  no scalars */
typedef struct {
    double lr, rho, eps, weight_decay;
    int maximize;
} fo_adadelta_hyper;
int fo_adadelta_f32(const fo_tensor_list *t, const fo_adadelta_hyper *h);
int fo_adadelta_f64(const fo_tensor_list *t, const fo_adadelta_hyper *h);

/* ---- Adamax ----  bufs: 2 exp_avg, 3 exp_inf;  scalars: 0 clr = lr / (1 - beta1^t) */
typedef struct {
    double beta1, beta2, eps, weight_decay;
    int maximize;
} fo_adamax_hyper;
int fo_adamax_f32(const fo_tensor_list *t, const fo_adamax_hyper *h);
int fo_adamax_f64(const fo_tensor_list *t, const fo_adamax_hyper *h);

/* ---- NAdam ----  bufs: 2 exp_avg, 3 exp_avg_sq;
 *                  scalars: 0 bias_correction2 = 1 - beta2^t, 1 grad coefficient -lr (1 - mu_t) / (1 - prod mu),
 *                           2 exp_avg coefficient -lr mu_{t+1} / (1 - prod mu * mu_{t+1}) */
typedef struct {
    double lr, beta1, beta2, eps, weight_decay;
    int maximize, decoupled_weight_decay;
} fo_nadam_hyper;
int fo_nadam_f32(const fo_tensor_list *t, const fo_nadam_hyper *h);
int fo_nadam_f64(const fo_tensor_list *t, const fo_nadam_hyper *h);

/* ---- RAdam ----  bufs: 2 exp_avg, 3 exp_avg_sq;
 *                  scalars: 0 bias_correction1 = 1 - beta1^t, 1 sqrt(1 - beta2^t), 2 rect (the variance
 *                           rectification term), 3 rectified (1.0 when rho_t > 5, else 0.0) */
typedef struct {
    double lr, beta1, beta2, eps, weight_decay;
    int maximize, decoupled_weight_decay;
} fo_radam_hyper;
int fo_radam_f32(const fo_tensor_list *t, const fo_radam_hyper *h);
int fo_radam_f64(const fo_tensor_list *t, const fo_radam_hyper *h);

/* ---- Lion ----  bufs: 2 exp_avg;  no scalars */
typedef struct {
    double lr, beta1, beta2, weight_decay;
    int maximize;
} fo_lion_hyper;
int fo_lion_f32(const fo_tensor_list *t, const fo_lion_hyper *h);
int fo_lion_f64(const fo_tensor_list *t, const fo_lion_hyper *h);

#endif /* FO_OPTIM_A_H */
