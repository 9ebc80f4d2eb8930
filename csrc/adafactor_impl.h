/* adafactor_impl.h — Adafactor (Shazeer & Stern, 2018) in torch's single-tensor order
 * (torch/optim/_adafactor.py, _single_tensor_adafactor); see fastopt.h (Adafactor) for the calling sequence.
 *
 * factored (grad G of shape (batch, m, n)), w = step^beta2_decay:
 *   row_mean = (sqrt(sum_j G^2))^2 / n          (torch: norm(G, dim=-1).square_().div_(n))
 *   row_var  = lerp(row_var, row_mean, w)
 *   col_mean = (sqrt(sum_i G^2))^2 / m          col_var = lerp(col_var, col_mean, w)
 *   r        = max(mean_i row_var, eps1)        (per batch entry; NaN stays NaN, as torch's clamp)
 *   update   = 1 / sqrt(max(row_var_i * col_var_j / r, eps1^2)) * G
 * vector:
 *   variance = lerp(variance, G*G, w);  update = 1 / sqrt(max(variance, eps1^2)) * G
 * apply:
 *   param = fma(step, update, param * decay)     (step = -alpha / clip divisor, computed in Python)
 * G is -grad when maximize. Every sum (row, column, the mean of row_var, the RMS sums) is fastopt's one reduction
 * (fo_sum.h): FO_CHUNK-element items, FO_SUM_LANES lanes in double, the fixed fold, items added in order; a row or
 * a column is reduced exactly as a flat vector of its values would be. */
#include "fo_sum.h"
#ifndef FO_AF_COLS
#define FO_AF_COLS 256 /* columns per work item of the column sums */
#endif

/* torch's lerp (FO_LERP) as a function: its arguments here are computed values, evaluated once */
static inline FO_T FO_FN(af_lerp)(const FO_T start, const FO_T end, const FO_T w, const int small_w)
{
    return FO_LERP(start, end, w, small_w);
}

/* a mean of squares the way torch writes it: the norm (rounded to FO_T), squared, divided by the count */
static inline FO_T FO_FN(af_mean_sq)(const double sumsq, const int64_t count)
{
    const FO_T r = (FO_T)sqrt(sumsq);
    return (r * r) / (FO_T)count;
}

/* What the work items of one Adafactor call read and write: each loop below runs its items on the thread pool
 * (fo_run_items, as every other kernel), one item per FO_CHUNK-element chunk, row or column block. Items are fixed
 * by the shapes, never by the thread count, and write disjoint outputs, so results do not depend on threads. */
typedef struct {
    const FO_T *grad;
    FO_T *row_var, *col_var, *update, *variance, *param;
    double *row_mean, *partials;
    int64_t m, n, n_blocks;
    FO_T w, eps1_sq, sign, dec, step;
    int small;
} FO_FN(af_job);

static inline int64_t FO_FN(af_chunk_end)(const int64_t c, const int64_t n)
{
    return (c * FO_CHUNK + FO_CHUNK < n) ? c * FO_CHUNK + FO_CHUNK : n;
}

static void FO_FN(af_sumsq_item)(const void *jp, const void *unused, int64_t c)
{
    const FO_FN(af_job) *j = (const FO_FN(af_job) *)jp;
    (void)unused;
    j->partials[c] = FO_FN(fo_sum_item)(j->grad + c * FO_CHUNK, FO_FN(af_chunk_end)(c, j->n) - c * FO_CHUNK, 1);
}

#define FO_AF_RUN(job, count, item, nt) fo_run_items(&(job), (count), NULL, FO_FN(item), (nt))

int FO_FN(fo_adafactor_sumsq)(const FO_T *x, const int64_t n, double *partials, const int n_threads, double *out)
{
    if (out == NULL || n < 0 || (n > 0 && (x == NULL || partials == NULL)))
        return FO_ERR_NULL;
    const int64_t nc = fo_adafactor_n_chunks(n);
    FO_FN(af_job) job = {.grad = x, .n = n, .partials = partials};
    FO_AF_RUN(job, nc, af_sumsq_item, fo_threads_for(n, n_threads));
    *out = fo_sum_items(partials, nc, 1);
    return FO_OK;
}

static void FO_FN(af_row_item)(const void *jp, const void *unused, int64_t r)
{
    const FO_FN(af_job) *j = (const FO_FN(af_job) *)jp;
    (void)unused;
    j->row_var[r] = FO_FN(af_lerp)(j->row_var[r], FO_FN(af_mean_sq)(FO_FN(fo_sum_run)(j->grad + r * j->n, j->n, 1), j->n),
                                   j->w, j->small);
}

/* Column sums of one (batch entry, block of up to FO_AF_COLS columns): each column is reduced as fo_sum_run would
 * reduce its m values (row i into lane i % FO_SUM_LANES, rows cut at FO_CHUNK, the chunks added in order), with
 * the lanes of all the block's columns side by side so that the row loop vectorises across columns. */
static void FO_FN(af_col_item)(const void *jp, const void *unused, int64_t item)
{
    const FO_FN(af_job) *jb = (const FO_FN(af_job) *)jp;
    (void)unused;
    const int64_t m = jb->m, n = jb->n;
    const int64_t b = item / jb->n_blocks, j0 = (item % jb->n_blocks) * FO_AF_COLS;
    const int64_t nj = ((j0 + FO_AF_COLS < n) ? j0 + FO_AF_COLS : n) - j0;
    double lanes[FO_SUM_LANES][FO_AF_COLS], sum[FO_AF_COLS];
    for (int64_t j = 0; j < nj; ++j)
        sum[j] = 0.0;
    for (int64_t c0 = 0; c0 < m; c0 += FO_CHUNK) {
        const int64_t c1 = (c0 + FO_CHUNK < m) ? c0 + FO_CHUNK : m;
        for (int k = 0; k < FO_SUM_LANES; ++k)
            for (int64_t j = 0; j < nj; ++j)
                lanes[k][j] = 0.0;
        for (int64_t i = c0; i < c1; ++i) {
            const FO_T *FO_RESTRICT g = jb->grad + (b * m + i) * n + j0;
            double *FO_RESTRICT acc = lanes[(i - c0) % FO_SUM_LANES];
#pragma omp simd
            for (int64_t j = 0; j < nj; ++j) {
                const double v = (double)g[j];
                acc[j] += v * v;
            }
        }
#define FO_AF_LANE_(k) lanes[k][j]
#pragma omp simd
        for (int64_t j = 0; j < nj; ++j)
            sum[j] += FO_SUM_TREE(FO_AF_LANE_);
#undef FO_AF_LANE_
    }
    FO_T *FO_RESTRICT cv = jb->col_var + b * n + j0;
    for (int64_t j = 0; j < nj; ++j)
        cv[j] = FO_FN(af_lerp)(cv[j], FO_FN(af_mean_sq)(sum[j], m), jb->w, jb->small);
}

static void FO_FN(af_update_item)(const void *jp, const void *unused, int64_t r)
{
    const FO_FN(af_job) *jb = (const FO_FN(af_job) *)jp;
    (void)unused;
    const int64_t n = jb->n, b = r / jb->m;
    const FO_T rv = jb->row_var[r], rm = (FO_T)jb->row_mean[b], eps1_sq = jb->eps1_sq, sign = jb->sign;
    const FO_T *FO_RESTRICT cv = jb->col_var + b * n;
    const FO_T *FO_RESTRICT g = jb->grad + r * n;
    FO_T *FO_RESTRICT u = jb->update + r * n;
#pragma omp simd
    for (int64_t j = 0; j < n; ++j) {
        FO_T v = (rv * cv[j]) / rm;
        v = v < eps1_sq ? eps1_sq : v;
        u[j] = ((FO_T)1 / FO_SQRT(v)) * (sign * g[j]);
    }
}

static void FO_FN(af_vector_item)(const void *jp, const void *unused, int64_t c)
{
    const FO_FN(af_job) *jb = (const FO_FN(af_job) *)jp;
    (void)unused;
    const int64_t b = c * FO_CHUNK, e = FO_FN(af_chunk_end)(c, jb->n);
    const FO_T *FO_RESTRICT grad = jb->grad;
    FO_T *FO_RESTRICT variance = jb->variance, *FO_RESTRICT update = jb->update;
    const FO_T w = jb->w, eps1_sq = jb->eps1_sq, sign = jb->sign;
    const int small = jb->small;
#pragma omp simd
    for (int64_t i = b; i < e; ++i) {
        const FO_T g = sign * grad[i];
        const FO_T v = FO_FN(af_lerp)(variance[i], g * g, w, small);
        variance[i] = v;
        const FO_T vc = v < eps1_sq ? eps1_sq : v;
        update[i] = ((FO_T)1 / FO_SQRT(vc)) * g;
    }
}

static void FO_FN(af_apply_item)(const void *jp, const void *unused, int64_t c)
{
    const FO_FN(af_job) *jb = (const FO_FN(af_job) *)jp;
    (void)unused;
    const int64_t b = c * FO_CHUNK, e = FO_FN(af_chunk_end)(c, jb->n);
    FO_T *FO_RESTRICT param = jb->param;
    const FO_T *FO_RESTRICT update = jb->update;
    const FO_T s = jb->step, dec = jb->dec;
#pragma omp simd
    for (int64_t i = b; i < e; ++i)
        param[i] = FO_FMA(s, update[i], param[i] * dec);
}

int FO_FN(fo_adafactor_factored)(const FO_T *grad, FO_T *row_var, FO_T *col_var, FO_T *update, double *scratch,
                                 const int64_t batch, const int64_t m, const int64_t n,
                                 const fo_adafactor_hyper *h)
{
    if (h == NULL || batch < 0 || m < 0 || n < 0)
        return FO_ERR_ARG;
    const int64_t rows = batch * m, total = rows * n;
    if (total == 0)
        return FO_OK; /* nothing to average over: Python never calls this for an empty tensor */
    if (grad == NULL || row_var == NULL || col_var == NULL || update == NULL || scratch == NULL)
        return FO_ERR_NULL;
    const int nt = fo_threads_for(total, h->n_threads);
    const FO_T w = (FO_T)h->weight, eps1 = (FO_T)h->eps1, eps1_sq = (FO_T)(h->eps1 * h->eps1);
    const int small = fo_small_weight(w);
    const FO_T sign = h->maximize ? (FO_T)-1 : (FO_T)1;
    double *row_mean = scratch;

    FO_FN(af_job) job = {.grad = grad, .row_var = row_var, .col_var = col_var, .update = update,
                         .row_mean = row_mean, .m = m, .n = n, .n_blocks = (n + FO_AF_COLS - 1) / FO_AF_COLS, .w = w,
                         .small = small, .eps1_sq = eps1_sq, .sign = sign};

    /* 1. row factor: one row per item */
    FO_AF_RUN(job, rows, af_row_item, nt);

    /* 2. column factor: (batch entry, block of columns) per item, rows added in order */
    FO_AF_RUN(job, batch * job.n_blocks, af_col_item, nt);

    /* 3. mean of the row factor per batch entry, floored at eps1 */
    for (int64_t b = 0; b < batch; ++b) {
        const FO_T mean = (FO_T)(FO_FN(fo_sum_run)(row_var + b * m, m, 0) / (double)m);
        row_mean[b] = (double)(mean < eps1 ? eps1 : mean);
    }

    /* 4. update = rsqrt(clamp(row_i * col_j / r, eps1^2)) * G, one row per item */
    FO_AF_RUN(job, rows, af_update_item, nt);
    return FO_OK;
}

int FO_FN(fo_adafactor_vector)(const FO_T *grad, FO_T *variance, FO_T *update, const int64_t n,
                               const fo_adafactor_hyper *h)
{
    if (h == NULL || n < 0)
        return FO_ERR_ARG;
    if (n == 0)
        return FO_OK;
    if (grad == NULL || variance == NULL || update == NULL)
        return FO_ERR_NULL;
    const int nt = fo_threads_for(n, h->n_threads);
    const FO_T w = (FO_T)h->weight, eps1_sq = (FO_T)(h->eps1 * h->eps1);
    const int small = fo_small_weight(w);
    const FO_T sign = h->maximize ? (FO_T)-1 : (FO_T)1;
    FO_FN(af_job) job = {.grad = grad, .variance = variance, .update = update, .n = n, .w = w, .small = small,
                         .eps1_sq = eps1_sq, .sign = sign};
    FO_AF_RUN(job, fo_adafactor_n_chunks(n), af_vector_item, nt);
    return FO_OK;
}

int FO_FN(fo_adafactor_apply)(FO_T *param, const FO_T *update, const int64_t n, const double decay,
                              const double step, const int n_threads)
{
    if (n < 0)
        return FO_ERR_ARG;
    if (n == 0)
        return FO_OK;
    if (param == NULL || update == NULL)
        return FO_ERR_NULL;
    const int nt = fo_threads_for(n, n_threads);
    FO_FN(af_job) job = {.param = param, .update = (FO_T *)update, .n = n, .dec = (FO_T)decay, .step = (FO_T)step};
    FO_AF_RUN(job, fo_adafactor_n_chunks(n), af_apply_item, nt);
    return FO_OK;
}
