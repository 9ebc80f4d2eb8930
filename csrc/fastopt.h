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
 * Every elementwise kernel is one row of FO_KERNELS: X(name, fields, n_bufs, n_scalars). The rows are not written
 * here: each kernel declares its own in csrc/<name>.c, right after including this header, with one line
 *     FO_KERNEL(lion, 3, 0, D(lr) D(beta1) D(beta2) D(weight_decay) I(maximize))
 * (name, buffers per tensor, per-tensor scalars, then its hyper-parameter fields in order: D(x) a double, I(x) an
 * int), and setup.py collects those lines into the generated header fo_kernels.h (FO_<NAME>_FIELDS(D, I, S) and
 * FO_KERNELS; FO_STEP_SCALARS and FO_REDUCERS below likewise), included here; it is written at every build and
 * never committed. Compiled in its own file, the line checks that the generated header agrees with it.
 * From a row come its hyper-parameter struct fo_<name>_hyper (the fields, in order), its two entry points
 * fo_<name>_{f32,f64}, the constants fo_<name>_n_bufs / fo_<name>_n_scalars, and its row of fo_kernels[]
 * (kernel_table.c), which Python reads to pack a hyper block by field name and to check, when the module loads,
 * that each optimizer's spec names exactly these fields (fastopt/_spec.py).
 *
 * The comment above each kernel's FO_KERNEL line gives the buffers (bufs 0 and 1 are param INOUT and grad IN
 * unless said otherwise; NULL for an unused optional buffer) and the per-tensor scalars, in their positions. */
#if defined(__has_include)
#if !__has_include("fo_kernels.h")
#error "csrc/fo_kernels.h is generated by setup.py from the FO_KERNEL lines of csrc/*.c: build with setup.py"
#endif
#endif
#include "fo_kernels.h"

/* A kernel's declaration line (see above), compiled: the generated table has the same buffer and scalar counts (the
 * field list is checked when Python loads the table: fastopt/_spec.py). */
#define FO_KERNEL(name, nb, ns, ...)                                                  \
    _Static_assert(fo_##name##_n_bufs == (nb) && fo_##name##_n_scalars == (ns),       \
                   "csrc/fo_kernels.h disagrees with FO_KERNEL(" #name ", ...): rebuild with setup.py");

/* adam_lp's param_kind (lowp_params.c) */
enum { FO_LP_BF16 = 0, FO_LP_F16 = 1 };

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
 * calls the same function (one formula). Such a kernel says so with the line FO_KERNEL_STEP_SCALARS(<name>) in its
 * file; FO_STEP_SCALARS (generated, fo_kernels.h) lists them; fo_step_scalars[] (kernel_table.c) maps each kernel name
 * to its function. */
typedef void (*fo_step_scalars_fn)(const void *h, int64_t t, double *out);
#define FO_DECLARE_STEP_SCALARS_(name) void fo_##name##_step_scalars(const fo_##name##_hyper *h, int64_t t, double *out);
FO_STEP_SCALARS(FO_DECLARE_STEP_SCALARS_)
#undef FO_DECLARE_STEP_SCALARS_
typedef struct {
    const char *name;
    fo_step_scalars_fn fn;
} fo_step_scalars_info;
extern const fo_step_scalars_info fo_step_scalars[];
extern const int64_t fo_n_step_scalars;
/* The declaration line, compiled: the function's prototype again (the generated list declares the same one). */
#define FO_KERNEL_STEP_SCALARS(name) \
    void fo_##name##_step_scalars(const fo_##name##_hyper *h, int64_t t, double *out);

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
 * h a const fo_<kernel>_hyper *, the constant fo_<name>_n_out, and a row of fo_reducers[] that Python reads
 * (fastopt._kernels.REDUCERS). Each reduction declares its row in its kernel's file with the line
 * FO_REDUCER(name, kernel, n_out) (prodigy.c: prodigy_reduce); FO_REDUCERS is generated from them (fo_kernels.h). */

typedef int (*fo_reduce_fn)(const fo_tensor_list *t, const void *h, double *partials, double *out);
typedef struct {
    const char *name;
    const char *kernel;   /* the FO_KERNELS row whose list and hyper struct it takes */
    int64_t n_out;        /* sums returned */
    fo_reduce_fn f32, f64;
} fo_reducer_info;
#define FO_DECLARE_REDUCER_(name, kernel, n_out)                                                              \
    enum { fo_##name##_n_out = n_out };                                                                       \
    int fo_##name##_f32(const fo_tensor_list *t, const fo_##kernel##_hyper *h, double *partials, double *out); \
    int fo_##name##_f64(const fo_tensor_list *t, const fo_##kernel##_hyper *h, double *partials, double *out);
FO_REDUCERS(FO_DECLARE_REDUCER_)
#undef FO_DECLARE_REDUCER_
extern const fo_reducer_info fo_reducers[];
extern const int64_t fo_n_reducers;
/* The declaration line, compiled: the generated row has the same kernel (the hyper type) and sum count. */
#define FO_REDUCER(name, kernel, n_out)                                                                 \
    int fo_##name##_f32(const fo_tensor_list *t, const fo_##kernel##_hyper *h, double *partials, double *out); \
    _Static_assert(fo_##name##_n_out == (n_out),                                                        \
                   "csrc/fo_kernels.h disagrees with FO_REDUCER(" #name ", ...): rebuild with setup.py");

#ifdef __cplusplus
}
#endif
#endif /* FASTOPT_H */
