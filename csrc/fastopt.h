/* fastopt.h — the whole C API of fastopt's kernels (mirrored in fastopt/_kernels.pxd).
 *
 * A kernel updates every tensor of one parameter group in one call. The caller (the Cython layer) fills an
 * fo_tensor_list: for each tensor, n_bufs pointers (param, grad, then the state buffers in the order the
 * kernel's comment gives; NULL for an unused optional buffer), its element count, and n_scalars per-tensor
 * doubles (step-dependent values such as bias corrections, computed in Python because each parameter keeps its
 * own step as in torch). The list also holds the work items: fixed-size (tensor, chunk) pairs, planned once by
 * fo_plan_work, so the split never depends on the number of threads.
 *
 * Kernels return FO_OK or an FO_ERR_* code; they check what they need before their first write. */
#ifndef FASTOPT_H
#define FASTOPT_H

#include "fo_common.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
    FO_OK = 0,
    FO_ERR_NULL = 1,      /* a required buffer pointer is NULL */
    FO_ERR_LAYOUT = 2,    /* the tensor list is malformed (counts, sizes, work items) */
    FO_ERR_ARG = 3        /* a hyper-parameter the kernel cannot use */
} fo_status;

typedef struct {
    int64_t tensor;   /* index of the tensor in the list */
    int64_t begin;    /* first element of the chunk */
    int64_t end;      /* one past the last element */
} fo_work;

typedef struct {
    int64_t n_tensors;
    int64_t n_bufs;         /* pointers per tensor */
    int64_t n_scalars;      /* doubles per tensor */
    void **bufs;            /* [n_tensors * n_bufs], tensor i buffer k at bufs[i * n_bufs + k] */
    const int64_t *sizes;   /* [n_tensors] element counts */
    const double *scalars;  /* [n_tensors * n_scalars] */
    const fo_work *work;    /* [n_work] */
    int64_t n_work;
    int64_t total;          /* sum of sizes */
    int n_threads;          /* threads the caller allows (>= 1) */
} fo_tensor_list;

/* Work planning (table.c). fo_count_work gives how many items fo_plan_work writes for these sizes. */
int64_t fo_count_work(const int64_t *sizes, int64_t n_tensors, int64_t chunk);
void fo_plan_work(const int64_t *sizes, int64_t n_tensors, int64_t chunk, fo_work *out);
/* How many threads a call over `total` elements should use, given what the caller allows. */
int fo_threads_for(int64_t total, int allowed);
int fo_max_threads(void);
/* Run fn(t, h, w) for every work item w of t on up to n_threads threads (FO_RUN_ITEMS in fo_common.h). */
typedef void (*fo_item_fn)(const fo_tensor_list *t, const void *h, int64_t w);
void fo_run_items(const fo_tensor_list *t, const void *h, fo_item_fn fn, int n_threads);
int fo_have_openmp(void);
/* Check the list's shape and that buffers [0, n_required) are non-NULL for every tensor. */
int fo_check_list(const fo_tensor_list *t, int64_t n_required);

/* ---- SGD ----  bufs: 0 param (INOUT), 1 grad (IN), 2 momentum_buffer (INOUT, NULL iff momentum == 0)
 *                scalars: 0 first (1.0 when the momentum buffer is new: it is set to the gradient) */
typedef struct {
    double lr, momentum, dampening, weight_decay;
    int nesterov, maximize;
} fo_sgd_hyper;
int fo_sgd_f32(const fo_tensor_list *t, const fo_sgd_hyper *h);
int fo_sgd_f64(const fo_tensor_list *t, const fo_sgd_hyper *h);

/* ---- Adam / AdamW ----  bufs: 0 param, 1 grad, 2 exp_avg, 3 exp_avg_sq, 4 max_exp_avg_sq (NULL unless amsgrad)
 *                         scalars: 0 step_size = lr / (1 - beta1^t), 1 bias_correction2_sqrt = sqrt(1 - beta2^t) */
typedef struct {
    double lr, beta1, beta2, eps, weight_decay;
    int amsgrad, maximize, decoupled_weight_decay;
} fo_adam_hyper;
int fo_adam_f32(const fo_tensor_list *t, const fo_adam_hyper *h);
int fo_adam_f64(const fo_tensor_list *t, const fo_adam_hyper *h);

/* ---- RMSprop ----  bufs: 0 param, 1 grad, 2 square_avg, 3 grad_avg (NULL unless centered),
 *                           4 momentum_buffer (NULL unless momentum > 0);  no scalars */
typedef struct {
    double lr, alpha, eps, weight_decay, momentum;
    int centered, maximize;
} fo_rmsprop_hyper;
int fo_rmsprop_f32(const fo_tensor_list *t, const fo_rmsprop_hyper *h);
int fo_rmsprop_f64(const fo_tensor_list *t, const fo_rmsprop_hyper *h);

#ifdef __cplusplus
}
#endif
#endif /* FASTOPT_H */
