/* clip.c — gradient norms, clipping by norm and by value (torch.nn.utils.clip_grad_*), in one pass over all
 * gradients of any mix of float32 and float64 tensors.
 *
 * Determinism: the work is the fixed (tensor, chunk) items of fo_plan_work; each item writes its own partial
 * (partials[w]), and after the parallel loop the partials of a tensor are combined in item order into that
 * tensor's norm, then the tensors' norms in index order into the total — the same bits for any thread count.
 * Norms follow torch.linalg.vector_norm, and the total is the norm of the per-tensor norms, as torch computes
 * it (which matters for norm_type 0: the total is the number of tensors with a non-zero element). */
#include "fastopt.h"
#include "fo_sum.h" /* its type-independent part, at the default target, before the ISA variants */

/* Each item's partial is fastopt's one reduction (fo_sum.h); the per-item kernels run the ISA variant fo_isa()
 * picks (fo_variants.h). The partials and norms are the caller's scratch (the Cython GradTable owns them). */
#define FO_IMPL "clip_impl.h"
#include "fo_variants.h"

typedef double (*clip_partial_fn)(const void *x, int64_t n, int kind, double p);
typedef void (*clip_write_fn)(void *x, int64_t n, int clamp, double coef, double lo, double hi);

int fo_check_grad_list(const fo_grad_list *g)
{
    if (g == NULL || g->n_tensors < 0 || g->n_work < 0 || g->n_threads < 1)
        return FO_ERR_LAYOUT;
    if (g->n_tensors > 0 && (g->data == NULL || g->sizes == NULL || g->dtypes == NULL))
        return FO_ERR_LAYOUT;
    if (g->n_work > 0 && g->work == NULL)
        return FO_ERR_LAYOUT;
    for (int64_t i = 0; i < g->n_tensors; ++i) {
        if (g->sizes[i] < 0 || (g->dtypes[i] != FO_DTYPE_F32 && g->dtypes[i] != FO_DTYPE_F64))
            return FO_ERR_LAYOUT;
        if (g->sizes[i] > 0 && g->data[i] == NULL)
            return FO_ERR_NULL;
    }
    for (int64_t w = 0; w < g->n_work; ++w) {
        const fo_work *it = &g->work[w];
        if (it->tensor < 0 || it->tensor >= g->n_tensors || it->begin < 0 || it->end > g->sizes[it->tensor]
            || it->begin > it->end)
            return FO_ERR_LAYOUT;
    }
    return FO_OK;
}

typedef struct {
    int kind;
    double p;
    double *partials;
    clip_partial_fn f32, f64; /* the chosen ISA variant, per dtype */
} clip_norm_job;

static void clip_norm_item(const fo_grad_list *g, const clip_norm_job *h, int64_t w)
{
    const fo_work *it = &g->work[w];
    const int64_t n = it->end - it->begin;
    if (g->dtypes[it->tensor] == FO_DTYPE_F32)
        h->partials[w] = h->f32((const float *)g->data[it->tensor] + it->begin, n, h->kind, h->p);
    else
        h->partials[w] = h->f64((const double *)g->data[it->tensor] + it->begin, n, h->kind, h->p);
}

/* Combine x into acc for `kind`: sums for L2/L1/L0/LP (the caller gives squared or powered values where the
 * norm needs it), max or min with NaN winning for LINF/LNINF. */
static double clip_combine(double acc, double x, int kind)
{
    if (kind == FO_NORM_LINF || kind == FO_NORM_LNINF) {
        if (acc != acc || x != x)
            return NAN;
        return kind == FO_NORM_LINF ? (x > acc ? x : acc) : (x < acc ? x : acc);
    }
    return acc + x;
}

static int clip_kind(double norm_type, double *p)
{
    *p = norm_type;
    if (norm_type == 2.0) return FO_NORM_L2;
    if (norm_type == 1.0) return FO_NORM_L1;
    if (norm_type == 0.0) return FO_NORM_L0;
    if (norm_type == INFINITY) return FO_NORM_LINF;
    if (norm_type == -INFINITY) return FO_NORM_LNINF;
    return FO_NORM_LP;
}

int fo_grad_norm(const fo_grad_list *g, double norm_type, double *partials, double *norms, double *total)
{
    int rc = fo_check_grad_list(g);
    if (rc != FO_OK)
        return rc;
    if (norm_type != norm_type || total == NULL || (g->n_tensors > 0 && norms == NULL)
        || (g->n_work > 0 && partials == NULL))
        return FO_ERR_ARG;
    double p;
    const int kind = clip_kind(norm_type, &p);
    /* min/max/negative-power norms have no value on an empty tensor (torch raises): refuse before computing */
    if (kind == FO_NORM_LINF || kind == FO_NORM_LNINF || (kind == FO_NORM_LP && p < 0))
        for (int64_t i = 0; i < g->n_tensors; ++i)
            if (g->sizes[i] == 0)
                return FO_ERR_ARG;
    clip_norm_job job = {kind, p, partials, FO_PICK(clip_partial_f32), FO_PICK(clip_partial_f64)};
    FO_RUN_ITEMS(g, &clip_norm_item, &job);
    /* per-tensor norms: partials of a tensor are consecutive items, combined in item order */
    const double init = kind == FO_NORM_LNINF ? INFINITY : 0.0;
    int64_t w = 0;
    for (int64_t i = 0; i < g->n_tensors; ++i) {
        double acc = init;
        for (; w < g->n_work && g->work[w].tensor == i; ++w)
            acc = clip_combine(acc, partials[w], kind);
        switch (kind) {
        case FO_NORM_L2: norms[i] = sqrt(acc); break;
        case FO_NORM_LP: norms[i] = pow(acc, 1.0 / p); break;
        default: norms[i] = acc; break;
        }
    }
    if (w != g->n_work) /* items not grouped by tensor in increasing order */
        return FO_ERR_LAYOUT;
    /* the total is the same norm over the vector of per-tensor norms */
    if (g->n_tensors == 0) {
        *total = 0.0;
        return FO_OK;
    }
    double acc = init;
    for (int64_t i = 0; i < g->n_tensors; ++i) {
        const double x = norms[i];
        double term;
        switch (kind) {
        case FO_NORM_L2: term = x * x; break;
        case FO_NORM_L1: term = fabs(x); break;
        case FO_NORM_L0: term = (x != 0) ? 1.0 : 0.0; break;
        case FO_NORM_LP: term = pow(fabs(x), p); break;
        default: term = fabs(x); break;
        }
        acc = clip_combine(acc, term, kind);
    }
    switch (kind) {
    case FO_NORM_L2: *total = sqrt(acc); break;
    case FO_NORM_LP: *total = pow(acc, 1.0 / p); break;
    default: *total = acc; break;
    }
    return FO_OK;
}

typedef struct {
    int clamp; /* 0: scale by coef; 1: clamp to [lo, hi] */
    double coef, lo, hi;
    clip_write_fn f32, f64;
} clip_write_job;

static void clip_write_item(const fo_grad_list *g, const clip_write_job *h, int64_t w)
{
    const fo_work *it = &g->work[w];
    const int64_t n = it->end - it->begin;
    if (g->dtypes[it->tensor] == FO_DTYPE_F32)
        h->f32((float *)g->data[it->tensor] + it->begin, n, h->clamp, h->coef, h->lo, h->hi);
    else
        h->f64((double *)g->data[it->tensor] + it->begin, n, h->clamp, h->coef, h->lo, h->hi);
}

int fo_grad_scale(const fo_grad_list *g, double coef)
{
    const int rc = fo_check_grad_list(g);
    if (rc != FO_OK)
        return rc;
    clip_write_job job = {0, coef, 0.0, 0.0, FO_PICK(clip_write_f32), FO_PICK(clip_write_f64)};
    FO_RUN_ITEMS(g, &clip_write_item, &job);
    return FO_OK;
}

int fo_grad_clamp(const fo_grad_list *g, double lo, double hi)
{
    const int rc = fo_check_grad_list(g);
    if (rc != FO_OK)
        return rc;
    if (lo != lo || hi != hi)
        return FO_ERR_ARG;
    clip_write_job job = {1, 0.0, lo, hi, FO_PICK(clip_write_f32), FO_PICK(clip_write_f64)};
    FO_RUN_ITEMS(g, &clip_write_item, &job);
    return FO_OK;
}
