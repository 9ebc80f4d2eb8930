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
/* Run fn(t, h, w) for w in [0, n_work) on up to n_threads threads (FO_RUN_ITEMS in fo_common.h). `t` is the
 * kernel's list (an fo_tensor_list, or another list type such as clipping's fo_grad_list), passed through. */
typedef void (*fo_item_fn)(const void *t, const void *h, int64_t w);
void fo_run_items(const void *t, int64_t n_work, const void *h, fo_item_fn fn, int n_threads);
int fo_have_openmp(void);
/* Check the list's shape and that buffers [0, n_required) are non-NULL for every tensor. */
int fo_check_list(const fo_tensor_list *t, int64_t n_required);
/* fo_check_list, and at least n_scalars per-tensor scalars: the check every elementwise kernel makes first. */
int fo_kernel_check(const fo_tensor_list *t, int64_t n_required, int64_t n_scalars);

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


/* ---- Gradient clipping (clip.c) ----
 * A list of gradients of mixed dtypes: one pointer, size and dtype per tensor, and the fixed work items.
 * fo_grad_norm writes one partial per work item (partials[n_work], scratch owned by the caller), each tensor's
 * norm (norms[n_tensors]) and the norm of those norms (*total), in double, for any norm_type: 2, 1, 0, +inf,
 * -inf, or a general p; FO_ERR_ARG for a NaN norm_type, or for +inf, -inf or p < 0 with an empty tensor
 * (torch raises: no identity). fo_grad_scale multiplies every gradient by coef (cast to its dtype);
 * fo_grad_clamp clamps every gradient to [lo, hi] keeping NaN. */
enum { FO_DTYPE_F32 = 0, FO_DTYPE_F64 = 1 };
enum { FO_NORM_L2 = 0, FO_NORM_L1 = 1, FO_NORM_L0 = 2, FO_NORM_LINF = 3, FO_NORM_LNINF = 4, FO_NORM_LP = 5 };
typedef struct {
    int64_t n_tensors;
    void **data;            /* [n_tensors] gradient buffers (C-contiguous) */
    const int64_t *sizes;   /* [n_tensors] element counts */
    const int *dtypes;      /* [n_tensors] FO_DTYPE_F32 or FO_DTYPE_F64 */
    const fo_work *work;    /* [n_work], from fo_plan_work over sizes */
    int64_t n_work;
    int64_t total;          /* sum of sizes */
    int n_threads;          /* threads the caller allows (>= 1) */
} fo_grad_list;
int fo_check_grad_list(const fo_grad_list *g);
int fo_grad_norm(const fo_grad_list *g, double norm_type, double *partials, double *norms, double *total);
int fo_grad_scale(const fo_grad_list *g, double coef);
int fo_grad_clamp(const fo_grad_list *g, double lo, double hi);


/* ---- Parameter averaging (averaging.c) ----  bufs: 0 averaged (INOUT), 1 current parameter (IN); no scalars.
 * mode FO_AVG_SWA: a += (p - a) / weight (weight = n_averaged + 1); FO_AVG_LERP: a = lerp(a, p, weight);
 * FO_AVG_EMA: a = weight * a + (1 - weight) * p (weight = decay). */
enum { FO_AVG_SWA = 0, FO_AVG_LERP = 1, FO_AVG_EMA = 2 };
typedef struct {
    int mode;
    double weight;
} fo_avg_hyper;
int fo_average_f32(const fo_tensor_list *t, const fo_avg_hyper *h);
int fo_average_f64(const fo_tensor_list *t, const fo_avg_hyper *h);
/* ---- ASGD ----  bufs: 0 param, 1 grad, 2 ax
 *                 scalars: 0 decay = 1 - lambd * eta, 1 -eta, 2 mu, 3 1.0 if mu == 1 (ax = p) else 0.0 */
typedef struct {
    double weight_decay;
    int maximize;
} fo_asgd_hyper;
int fo_asgd_f32(const fo_tensor_list *t, const fo_asgd_hyper *h);
int fo_asgd_f64(const fo_tensor_list *t, const fo_asgd_hyper *h);

/* ---- Rprop ----  bufs: 0 param, 1 grad, 2 prev, 3 step_size;  no scalars */
typedef struct {
    double etaminus, etaplus, step_size_min, step_size_max;
    int maximize;
} fo_rprop_hyper;
int fo_rprop_f32(const fo_tensor_list *t, const fo_rprop_hyper *h);
int fo_rprop_f64(const fo_tensor_list *t, const fo_rprop_hyper *h);

/* ---- Muon (elementwise parts) ----
 * momentum: bufs 0 update (OUT), 1 grad, 2 momentum_buffer; no scalars
 * apply:    bufs 0 param, 1 update (IN, the orthogonalised update); scalars: 0 adjusted_lr */
typedef struct {
    double lr, weight_decay, momentum;
    int nesterov;
} fo_muon_hyper;
int fo_muon_momentum_f32(const fo_tensor_list *t, const fo_muon_hyper *h);
int fo_muon_momentum_f64(const fo_tensor_list *t, const fo_muon_hyper *h);
int fo_muon_apply_f32(const fo_tensor_list *t, const fo_muon_hyper *h);
int fo_muon_apply_f64(const fo_tensor_list *t, const fo_muon_hyper *h);

/* ---- SparseAdam (over gathered rows) ----  bufs: 0 param rows, 1 gradient rows, 2 exp_avg rows,
 *                                             3 exp_avg_sq rows;  scalars: 0 step_size */
typedef struct {
    double beta1, beta2, eps;
    int maximize;
} fo_sparse_adam_hyper;
int fo_sparse_adam_f32(const fo_tensor_list *t, const fo_sparse_adam_hyper *h);
int fo_sparse_adam_f64(const fo_tensor_list *t, const fo_sparse_adam_hyper *h);
#include "fo_optim_a.h" /* Adagrad, Adadelta, Adamax, NAdam, RAdam, Lion */
#include "fo_adafactor.h" /* Adafactor: per-tensor kernels over (batch, m, n) views */

#ifdef __cplusplus
}
#endif
#endif /* FASTOPT_H */
