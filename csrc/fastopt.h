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
    /* Scratch of the reduce-then-update kernels (fo_reduce.h), owned by the table and allocated with the work
     * items, so a step allocates nothing: FO_PARTIALS doubles per work item, then FO_PARTIALS per tensor
     * ([(n_work + n_tensors) * FO_PARTIALS]). Contents are undefined between calls; other kernels ignore it. */
    double *partials;
} fo_tensor_list;
enum { FO_PARTIALS = 4 };

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
/* The check every elementwise kernel makes first (the driver in fo_elementwise.h): the list is well formed, holds
 * at least n_scalars per-tensor scalars, and every buffer position in the bit mask `needs` is non-NULL for every
 * non-empty tensor (positions beyond t->n_bufs are a layout error). */
int fo_kernel_check(const fo_tensor_list *t, uint32_t needs, int64_t n_scalars);

/* ---- The kernel table ------------------------------------------------------------------------------------
 *
 * Every elementwise kernel is one row of FO_KERNELS below: X(name, fields, n_bufs, n_scalars). From that row come
 * its hyper-parameter struct fo_<name>_hyper (the fields, in order: D(S, x) is a double, I(S, x) an int), its two
 * entry points fo_<name>_{f32,f64}, the constants fo_<name>_n_bufs / fo_<name>_n_scalars, and its row of
 * fo_kernels[] (kernel_table.c), which Python reads to pack a hyper block by field name and to check, when the
 * module loads, that each optimizer's spec names exactly these fields (fastopt/_spec.py).
 *
 * The comment above each field list gives the buffers (bufs 0 and 1 are param INOUT and grad IN unless said
 * otherwise; NULL for an unused optional buffer) and the per-tensor scalars, in their positions. */

/* SGD: 2 momentum_buffer (NULL iff momentum == 0); scalars 0 first (1.0 when the buffer is new: set to g) */
#define FO_SGD_FIELDS(D, I, S) D(S, lr) D(S, momentum) D(S, dampening) D(S, weight_decay) I(S, nesterov) I(S, maximize)
/* Adam / AdamW: 2 exp_avg, 3 exp_avg_sq, 4 max_exp_avg_sq (NULL unless amsgrad);
 * scalars 0 step_size = lr / (1 - beta1^t), 1 bias_correction2_sqrt = sqrt(1 - beta2^t) */
#define FO_ADAM_FIELDS(D, I, S) D(S, lr) D(S, beta1) D(S, beta2) D(S, eps) D(S, weight_decay) \
    I(S, amsgrad) I(S, maximize) I(S, decoupled_weight_decay)
/* RMSprop: 2 square_avg, 3 grad_avg (NULL unless centered), 4 momentum_buffer (NULL unless momentum > 0) */
#define FO_RMSPROP_FIELDS(D, I, S) D(S, lr) D(S, alpha) D(S, eps) D(S, weight_decay) D(S, momentum) \
    I(S, centered) I(S, maximize)
/* Adagrad: 2 sum; scalars 0 clr = lr / (1 + (t - 1) * lr_decay) */
#define FO_ADAGRAD_FIELDS(D, I, S) D(S, eps) D(S, weight_decay) I(S, maximize)
/* Adadelta: 2 square_avg, 3 acc_delta */
#define FO_ADADELTA_FIELDS(D, I, S) D(S, lr) D(S, rho) D(S, eps) D(S, weight_decay) I(S, maximize)
/* Adamax: 2 exp_avg, 3 exp_inf; scalars 0 clr = lr / (1 - beta1^t) */
#define FO_ADAMAX_FIELDS(D, I, S) D(S, beta1) D(S, beta2) D(S, eps) D(S, weight_decay) I(S, maximize)
/* NAdam: 2 exp_avg, 3 exp_avg_sq; scalars 0 bias_correction2 = 1 - beta2^t, 1 grad coefficient
 * -lr (1 - mu_t) / (1 - prod mu), 2 exp_avg coefficient -lr mu_{t+1} / (1 - prod mu * mu_{t+1}) */
#define FO_NADAM_FIELDS(D, I, S) D(S, lr) D(S, beta1) D(S, beta2) D(S, eps) D(S, weight_decay) \
    I(S, maximize) I(S, decoupled_weight_decay)
/* RAdam: 2 exp_avg, 3 exp_avg_sq; scalars 0 bias_correction1 = 1 - beta1^t, 1 sqrt(1 - beta2^t), 2 rect (the
 * variance rectification term), 3 rectified (1.0 when rho_t > 5, else 0.0) */
#define FO_RADAM_FIELDS(D, I, S) D(S, lr) D(S, beta1) D(S, beta2) D(S, eps) D(S, weight_decay) \
    I(S, maximize) I(S, decoupled_weight_decay)
/* Lion: 2 exp_avg */
#define FO_LION_FIELDS(D, I, S) D(S, lr) D(S, beta1) D(S, beta2) D(S, weight_decay) I(S, maximize)
/* ASGD: 2 ax; scalars 0 decay = 1 - lambd * eta, 1 -eta, 2 mu, 3 1.0 if mu == 1 (ax = p) else 0.0 */
#define FO_ASGD_FIELDS(D, I, S) D(S, weight_decay) I(S, maximize)
/* Rprop: 2 prev, 3 step_size */
#define FO_RPROP_FIELDS(D, I, S) D(S, etaminus) D(S, etaplus) D(S, step_size_min) D(S, step_size_max) I(S, maximize)
/* Muon's momentum: 0 update (OUT), 1 grad, 2 momentum_buffer */
#define FO_MUON_MOMENTUM_FIELDS(D, I, S) D(S, momentum) I(S, nesterov)
/* Muon's update: 0 param, 1 update (IN, the orthogonalised update); scalars 0 adjusted_lr */
#define FO_MUON_APPLY_FIELDS(D, I, S) D(S, lr) D(S, weight_decay)
/* SparseAdam over gathered rows: 0 param rows, 1 gradient rows, 2 exp_avg rows, 3 exp_avg_sq rows;
 * scalars 0 step_size */
#define FO_SPARSE_ADAM_FIELDS(D, I, S) D(S, beta1) D(S, beta2) D(S, eps) I(S, maximize)
/* Parameter averaging (SWA / EMA): 0 averaged (INOUT), 1 current parameter (IN). mode FO_AVG_SWA:
 * a += (p - a) / weight (weight = n_averaged + 1); FO_AVG_LERP: a = lerp(a, p, weight);
 * FO_AVG_EMA: a = weight * a + (1 - weight) * p (weight = decay) */
#define FO_AVERAGE_FIELDS(D, I, S) I(S, mode) D(S, weight)
/* The same-traffic probe (the benchmark's memory ceiling): reads 1 (IN), and every written buffer b (0, then
 * n_state of 2..4) becomes b + scale * g, exactly an optimizer's traffic (fastopt.bench) */
#define FO_PROBE_FIELDS(D, I, S) I(S, n_state) D(S, scale)
/* Schedule-Free SGD / AdamW (schedulefree.c): 2 z, 3 exp_avg_sq (AdamW); scalars 0 scheduled lr, 1 averaging
 * weight c = weight / weight_sum, 2 adj = lr * (beta * (1 - c) - 1), 3 bias_correction2 = 1 - beta2^(k+1) (AdamW);
 * beta1 is read by Python only (adj, eval/train) */
#define FO_SF_SGD_FIELDS(D, I, S) D(S, weight_decay)
#define FO_SF_ADAMW_FIELDS(D, I, S) D(S, beta1) D(S, beta2) D(S, eps) D(S, weight_decay)
/* Prodigy's update, the second of its two passes (prodigy.c; the first is the reduction prodigy_reduce below):
 * 2 exp_avg (NULL when beta1 == 0), 3 exp_avg_sq, 4 s, 5 p0 (the update reads 0-3); scalars, pass 1: 2 the weight
 * of g in s, 3 beta3; pass 2: 0 d (1 - beta1), 1 d^2 (1 - beta2) (the moments), 3 the mode (0 moments and update,
 * 1 moments only, 2 update only), 4 the step coefficient (-dlr, or -dlr d when beta1 == 0), 5 d eps, 6 the
 * decoupled decay coefficient -wd dlr */
#define FO_PRODIGY_FIELDS(D, I, S) D(S, beta1) D(S, beta2) D(S, weight_decay) I(S, decouple)

/* ---- AdEMAMix, LAMB, LARS and Lookahead (pytorch-optimizer 4.1's variants) ---- */
/* AdEMAMix: 2 exp_avg, 3 exp_avg_sq, 4 exp_avg_slow; scalars 0 bias_correction1 = 1 - beta1^t,
 * 1 sqrt(1 - beta2^t), 2 alpha_t, 3 1 - beta3_t (the warm-up schedules, computed in Python) */
#define FO_ADEMAMIX_FIELDS(D, I, S) D(S, lr) D(S, beta1) D(S, beta2) D(S, eps) D(S, weight_decay) \
    I(S, weight_decouple) I(S, fixed_decay) I(S, maximize)
/* LAMB (reduce then update, fo_reduce.h): 2 exp_avg, 3 exp_avg_sq; scalars 0 step_size = lr / (1 - beta1^t)
 * (lr under adam_debias) */
#define FO_LAMB_FIELDS(D, I, S) D(S, lr) D(S, beta1) D(S, beta2) D(S, eps) D(S, weight_decay) \
    I(S, weight_decouple) I(S, fixed_decay) I(S, grad_averaging) I(S, adam) I(S, maximize)
/* LARS (reduce then update): 2 momentum_buffer (NULL iff momentum == 0); scalars 0 1.0 if the tensor has more
 * than one dimension (only those are adapted, as pytorch-optimizer), else 0.0 */
#define FO_LARS_FIELDS(D, I, S) D(S, lr) D(S, momentum) D(S, dampening) D(S, weight_decay) \
    D(S, trust_coefficient) I(S, nesterov) I(S, adapt) I(S, maximize)
/* Lookahead's slow-weight update: 0 param (INOUT, the fast weights), 1 slow_params (INOUT):
 * p = lerp(p, slow, weight) with weight = 1 - alpha, then slow = p */
#define FO_LOOKAHEAD_FIELDS(D, I, S) D(S, weight)

/* Adam / AdamW on float32 params with compressed moments (lowp.c): state_kind FO_LOWP_BF16: 2 exp_avg, 3 exp_avg_sq
 * (uint16 bfloat16 bits); FO_LOWP_Q8: 2 state1, 3 state2 (uint8 codes), 4 absmax1, 5 absmax2 (float32, one per
 * FO_QBLOCK block), 6 qmap1, 7 qmap2 (float32[256] IN), 8 qlev1, 9 qlev2 (float32[256]: the maps' rounding thresholds, level by level, IN);
 * scalars as Adam's */
#define FO_ADAM_LOWP_FIELDS(D, I, S) D(S, lr) D(S, beta1) D(S, beta2) D(S, eps) D(S, weight_decay) \
    I(S, maximize) I(S, decoupled_weight_decay) I(S, state_kind)
/* Adam / AdamW on float16 / bfloat16 params with float32 state (lowp_params.c): 0 exp_avg, 1 exp_avg_sq (float32),
 * 2 param (uint16 bits of param_kind FO_LP_F16 / FO_LP_BF16), 3 grad (float32 if grad_f32, else param's format),
 * 4 master (float32, NULL unless master weights); scalars 0, 1 as Adam's, 2 step count, 3 tensor index
 * (stochastic rounding's hash with seed) */
#define FO_ADAM_LP_FIELDS(D, I, S) D(S, lr) D(S, beta1) D(S, beta2) D(S, eps) D(S, weight_decay) \
    I(S, maximize) I(S, decoupled_weight_decay) I(S, param_kind) I(S, grad_f32) I(S, stochastic) I(S, seed)
enum { FO_LP_BF16 = 0, FO_LP_F16 = 1 };
/* SGD, RMSprop and Lion on float16 / bfloat16 params with float32 state (lowp_params.c): 0 param (uint16 bits of
 * param_kind), 1 grad (float32 if grad_f32, else the param's format), then the float32 kernel's state buffers in its
 * positions (float32), then master (float32, NULL unless master weights); the hyper-parameters are the float32
 * kernel's, then FO_LP_PARAM_FIELDS; scalars: the float32 kernel's, then the step count and the tensor index. */
#define FO_LP_PARAM_FIELDS(D, I, S) I(S, param_kind) I(S, grad_f32) I(S, stochastic) I(S, seed)
#define FO_SGD_LP_FIELDS(D, I, S) FO_SGD_FIELDS(D, I, S) FO_LP_PARAM_FIELDS(D, I, S)
#define FO_RMSPROP_LP_FIELDS(D, I, S) FO_RMSPROP_FIELDS(D, I, S) FO_LP_PARAM_FIELDS(D, I, S)
#define FO_LION_LP_FIELDS(D, I, S) FO_LION_FIELDS(D, I, S) FO_LP_PARAM_FIELDS(D, I, S)

#define FO_KERNELS(X)                                   \
    X(sgd, FO_SGD_FIELDS, 3, 1)                         \
    X(adam, FO_ADAM_FIELDS, 5, 2)                       \
    X(rmsprop, FO_RMSPROP_FIELDS, 5, 0)                 \
    X(adagrad, FO_ADAGRAD_FIELDS, 3, 1)                 \
    X(adadelta, FO_ADADELTA_FIELDS, 4, 0)               \
    X(adamax, FO_ADAMAX_FIELDS, 4, 1)                   \
    X(nadam, FO_NADAM_FIELDS, 4, 3)                     \
    X(radam, FO_RADAM_FIELDS, 4, 4)                     \
    X(lion, FO_LION_FIELDS, 3, 0)                       \
    X(asgd, FO_ASGD_FIELDS, 3, 4)                       \
    X(rprop, FO_RPROP_FIELDS, 4, 0)                     \
    X(muon_momentum, FO_MUON_MOMENTUM_FIELDS, 3, 0)     \
    X(muon_apply, FO_MUON_APPLY_FIELDS, 2, 1)           \
    X(sparse_adam, FO_SPARSE_ADAM_FIELDS, 4, 1)         \
    X(average, FO_AVERAGE_FIELDS, 2, 0)                 \
    X(probe, FO_PROBE_FIELDS, 5, 0)                     \
    X(sf_sgd, FO_SF_SGD_FIELDS, 3, 3)                   \
    X(sf_adamw, FO_SF_ADAMW_FIELDS, 4, 4)               \
    X(prodigy, FO_PRODIGY_FIELDS, 6, 7)                 \
    X(adam_lowp, FO_ADAM_LOWP_FIELDS, 10, 2)            \
    X(adam_lp, FO_ADAM_LP_FIELDS, 5, 4)                 \
    X(ademamix, FO_ADEMAMIX_FIELDS, 5, 4)               \
    X(lamb, FO_LAMB_FIELDS, 4, 1)                       \
    X(lars, FO_LARS_FIELDS, 3, 1)                       \
    X(lookahead, FO_LOOKAHEAD_FIELDS, 2, 0)            \
    X(sgd_lp, FO_SGD_LP_FIELDS, 4, 3)                   \
    X(rmsprop_lp, FO_RMSPROP_LP_FIELDS, 6, 2)           \
    X(lion_lp, FO_LION_LP_FIELDS, 4, 2)

enum { FO_AVG_SWA = 0, FO_AVG_LERP = 1, FO_AVG_EMA = 2 };

#define FO_MEMBER_D_(S, x) double x;
#define FO_MEMBER_I_(S, x) int x;
#define FO_DECLARE_KERNEL_(name, FIELDS, nb, ns)                                   \
    typedef struct { FIELDS(FO_MEMBER_D_, FO_MEMBER_I_, _) } fo_##name##_hyper;    \
    enum { fo_##name##_n_bufs = nb, fo_##name##_n_scalars = ns };                  \
    int fo_##name##_f32(const fo_tensor_list *t, const fo_##name##_hyper *h);      \
    int fo_##name##_f64(const fo_tensor_list *t, const fo_##name##_hyper *h);
FO_KERNELS(FO_DECLARE_KERNEL_)
#undef FO_DECLARE_KERNEL_
#undef FO_MEMBER_D_
#undef FO_MEMBER_I_

/* The table Python reads (kernel_table.c): one row per FO_KERNELS entry, in that order. */
enum { FO_FIELD_DOUBLE = 0, FO_FIELD_INT = 1 };
typedef struct {
    const char *name;
    int kind;        /* FO_FIELD_DOUBLE or FO_FIELD_INT */
    size_t offset;   /* offsetof(fo_<kernel>_hyper, name) */
} fo_field;
typedef int (*fo_kernel_fn)(const fo_tensor_list *t, const void *h);
typedef struct {
    const char *name;
    int64_t n_fields;
    const fo_field *fields;   /* in the struct's order */
    size_t hyper_size;        /* sizeof(fo_<name>_hyper) */
    int64_t n_bufs;           /* buffers per tensor (the most the kernel reads) */
    int64_t n_scalars;        /* per-tensor doubles */
    fo_kernel_fn f32, f64;
} fo_kernel_info;
extern const fo_kernel_info fo_kernels[];
extern const int64_t fo_n_kernels;

/* Per-tensor scalars computed in C: for a kernel whose scalars depend only on its hyper-parameters and the step
 * count t (Adam's bias corrections), fo_<name>_step_scalars(h, t, out) writes its n_scalars values in double, with
 * the libm calls Python's float ** int makes, so the repeated step needs no Python and the optimizer's Python spec
 * calls the same function (one formula). FO_STEP_SCALARS lists them; fo_step_scalars[] (kernel_table.c) maps
 * each kernel name to its function. */
typedef void (*fo_step_scalars_fn)(const void *h, int64_t t, double *out);
#define FO_STEP_SCALARS(X) X(adam)
#define FO_DECLARE_STEP_SCALARS_(name) void fo_##name##_step_scalars(const fo_##name##_hyper *h, int64_t t, double *out);
FO_STEP_SCALARS(FO_DECLARE_STEP_SCALARS_)
#undef FO_DECLARE_STEP_SCALARS_
typedef struct {
    const char *name;
    fo_step_scalars_fn fn;
} fo_step_scalars_info;
extern const fo_step_scalars_info fo_step_scalars[];
extern const int64_t fo_n_step_scalars;

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


/* ---- Adafactor (adafactor.c) ----
 *
 * Adafactor's state does not have the parameter's shape (row_var and col_var are reduced along one axis), so
 * these kernels take one tensor at a time, viewed as a C-contiguous (batch, m, n) block (the leading dimensions
 * folded into batch; a 0-D or 1-D tensor is a flat vector of n elements). Python runs them in this order per
 * tensor: sumsq(param) -> factored or vector -> sumsq(update) -> apply, and turns the two sums of squares into
 * the step size alpha and the clipping divisor in double, as torch does with .item().
 *
 * Every sum is fastopt's one reduction (fo_sum.h: FO_SUM_LANES lanes in double inside fixed FO_CHUNK-element items,
 * the items' partials added in order), so results depend neither on the thread count nor on the ISA. The caller
 * owns the scratch (the optimizer keeps it between steps): nothing is allocated per call. */
typedef struct {
    double weight;   /* lerp weight of the second-moment average: step^beta2_decay (torch's one_minus_beta2_t) */
    double eps1;     /* floor of the row mean and, squared, of the variance estimate */
    int maximize;
    int n_threads;   /* threads the caller allows (>= 1) */
} fo_adafactor_hyper;

/* sum of x^2 over n elements into *out. partials: caller's scratch of fo_adafactor_n_chunks(n) doubles. */
int64_t fo_adafactor_n_chunks(int64_t n);
int fo_adafactor_sumsq_f32(const float *x, int64_t n, double *partials, int n_threads, double *out);
int fo_adafactor_sumsq_f64(const double *x, int64_t n, double *partials, int n_threads, double *out);
/* Factored second moment (grad of >= 2 dims) over (batch, m, n):
 *   grad [batch*m*n] IN, row_var [batch*m] INOUT, col_var [batch*n] INOUT, update [batch*m*n] OUT,
 *   scratch [batch] doubles (the floored means of row_var, one per batch entry) */
int fo_adafactor_factored_f32(const float *grad, float *row_var, float *col_var, float *update, double *scratch,
                              int64_t batch, int64_t m, int64_t n, const fo_adafactor_hyper *h);
int fo_adafactor_factored_f64(const double *grad, double *row_var, double *col_var, double *update,
                              double *scratch, int64_t batch, int64_t m, int64_t n, const fo_adafactor_hyper *h);
/* Unfactored (0-D or 1-D grad): grad [n] IN, variance [n] INOUT, update [n] OUT */
int fo_adafactor_vector_f32(const float *grad, float *variance, float *update, int64_t n,
                            const fo_adafactor_hyper *h);
int fo_adafactor_vector_f64(const double *grad, double *variance, double *update, int64_t n,
                            const fo_adafactor_hyper *h);
/* param = param * decay + step * update  (the product rounded first, then one fma: torch's mul_ then add_) */
int fo_adafactor_apply_f32(float *param, const float *update, int64_t n, double decay, double step,
                           int n_threads);
int fo_adafactor_apply_f64(double *param, const double *update, int64_t n, double decay, double step,
                           int n_threads);

/* ---- Compressed optimizer state (lowp.c) ----
 * Blockwise 8-bit quantization: blocks of FO_QBLOCK elements (a divisor of FO_CHUNK), one float32 absmax per
 * block, 256 sorted codes. */
enum { FO_LOWP_F32 = 0, FO_LOWP_BF16 = 1, FO_LOWP_Q8 = 2 };
#define FO_QBLOCK 256
/* fo_q8_quantize's `levels`: the map's 255 rounding thresholds stored level by level for the binary search
 * (fastopt/_lowp.py code_levels; 256 floats) */
int fo_q8_quantize(const float *x, int64_t n, const float *levels, uint8_t *q, float *absmax);
int fo_q8_dequantize(const uint8_t *q, int64_t n, const float *code, const float *absmax, float *x);

/* ---- Group reductions (reduce_table.c, fo_group_reduce.h): sums over every tensor of a kernel's list ----------------
 *
 * A reduction runs over the tensor list of the FO_KERNELS row it accompanies (the same buffers, per-tensor scalars,
 * work items and hyper struct), may update buffers as a kernel does, and returns n_out sums: work item w writes its
 * n_out partial sums (in double, over fixed lanes) to partials[w * n_out + k] (the caller's scratch of
 * n_work * n_out doubles), and out[k] is their sum in work-item order, so neither the thread count nor the
 * instruction set changes a bit. X(name, kernel, n_out): entry points fo_<name>_{f32,f64}(t, h, partials, out) with
 * h a const fo_<kernel>_hyper *, and a row of fo_reducers[] that Python reads (fastopt._kernels.REDUCERS).
 * prodigy_reduce: Prodigy's first pass (prodigy.c): out 0 the sum of g (p0 - p), 1 the sum of |s| after its update. */
#define FO_REDUCERS(X) X(prodigy_reduce, prodigy, 2)

typedef int (*fo_reduce_fn)(const fo_tensor_list *t, const void *h, double *partials, double *out);
typedef struct {
    const char *name;
    const char *kernel;   /* the FO_KERNELS row whose list and hyper struct it takes */
    int64_t n_out;        /* sums returned */
    fo_reduce_fn f32, f64;
} fo_reducer_info;
#define FO_DECLARE_REDUCER_(name, kernel, n_out)                                                              \
    int fo_##name##_f32(const fo_tensor_list *t, const fo_##kernel##_hyper *h, double *partials, double *out); \
    int fo_##name##_f64(const fo_tensor_list *t, const fo_##kernel##_hyper *h, double *partials, double *out);
FO_REDUCERS(FO_DECLARE_REDUCER_)
#undef FO_DECLARE_REDUCER_
extern const fo_reducer_info fo_reducers[];
extern const int64_t fo_n_reducers;

#ifdef __cplusplus
}
#endif
#endif /* FASTOPT_H */
