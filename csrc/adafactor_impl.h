/* adafactor_impl.h — Adafactor (Shazeer & Stern, 2018) in torch's single-tensor order
 * (torch/optim/_adafactor.py, _single_tensor_adafactor); see fo_adafactor.h for the calling sequence.
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
 * G is -grad when maximize. Sums of squares are taken in double (fixed lanes, fixed order). */
#ifndef FO_AF_LANES
#define FO_AF_LANES 8
#endif
#ifndef FO_AF_COLS
#define FO_AF_COLS 256 /* columns per work item of the column sums */
#endif

/* torch's lerp (FO_LERP) as a function: its arguments here are computed values, evaluated once */
static inline FO_T FO_FN(af_lerp)(const FO_T start, const FO_T end, const FO_T w, const int small_w)
{
    return FO_LERP(start, end, w, small_w);
}

/* sum of x^2 in double over FO_AF_LANES lanes, lanes added in order */
static inline double FO_FN(af_sumsq)(const FO_T *FO_RESTRICT x, const int64_t n)
{
    double acc[FO_AF_LANES] = {0};
    const int64_t n_full = n - n % FO_AF_LANES;
    for (int64_t i = 0; i < n_full; i += FO_AF_LANES)
        for (int k = 0; k < FO_AF_LANES; ++k) {
            const double v = (double)x[i + k];
            acc[k] += v * v;
        }
    for (int64_t i = n_full; i < n; ++i) {
        const double v = (double)x[i];
        acc[i - n_full] += v * v;
    }
    double s = 0;
    for (int k = 0; k < FO_AF_LANES; ++k)
        s += acc[k];
    return s;
}

/* a mean of squares the way torch writes it: the norm (rounded to FO_T), squared, divided by the count */
static inline FO_T FO_FN(af_mean_sq)(const double sumsq, const int64_t count)
{
    const FO_T r = (FO_T)sqrt(sumsq);
    return (r * r) / (FO_T)count;
}

int FO_FN(fo_adafactor_sumsq)(const FO_T *x, const int64_t n, double *partials, const int n_threads, double *out)
{
    if (out == NULL || n < 0 || (n > 0 && (x == NULL || partials == NULL)))
        return FO_ERR_NULL;
    const int64_t nc = fo_adafactor_n_chunks(n);
    const int nt = fo_threads_for(n, n_threads);
#pragma omp parallel for schedule(static) num_threads(nt) if (nt > 1)
    for (int64_t c = 0; c < nc; ++c) {
        const int64_t b = c * FO_CHUNK, e = (b + FO_CHUNK < n) ? b + FO_CHUNK : n;
        partials[c] = FO_FN(af_sumsq)(x + b, e - b);
    }
    double s = 0;
    for (int64_t c = 0; c < nc; ++c)
        s += partials[c];
    *out = s;
    return FO_OK;
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
    double *col_sum = scratch, *row_mean = scratch + batch * n;

    /* 1. row factor: one row per iteration */
#pragma omp parallel for schedule(static) num_threads(nt) if (nt > 1)
    for (int64_t r = 0; r < rows; ++r)
        row_var[r] = FO_FN(af_lerp)(row_var[r], FO_FN(af_mean_sq)(FO_FN(af_sumsq)(grad + r * n, n), n), w, small);

    /* 2. column factor: (batch entry, block of columns) per iteration, rows added in order */
    const int64_t n_blocks = (n + FO_AF_COLS - 1) / FO_AF_COLS;
#pragma omp parallel for schedule(static) num_threads(nt) if (nt > 1)
    for (int64_t item = 0; item < batch * n_blocks; ++item) {
        const int64_t b = item / n_blocks, j0 = (item % n_blocks) * FO_AF_COLS;
        const int64_t j1 = (j0 + FO_AF_COLS < n) ? j0 + FO_AF_COLS : n;
        double *FO_RESTRICT acc = col_sum + b * n;
        for (int64_t j = j0; j < j1; ++j)
            acc[j] = 0;
        for (int64_t i = 0; i < m; ++i) {
            const FO_T *FO_RESTRICT g = grad + (b * m + i) * n;
#pragma omp simd
            for (int64_t j = j0; j < j1; ++j) {
                const double v = (double)g[j];
                acc[j] += v * v;
            }
        }
        FO_T *FO_RESTRICT cv = col_var + b * n;
        for (int64_t j = j0; j < j1; ++j)
            cv[j] = FO_FN(af_lerp)(cv[j], FO_FN(af_mean_sq)(acc[j], m), w, small);
    }

    /* 3. mean of the row factor per batch entry, floored at eps1 */
    for (int64_t b = 0; b < batch; ++b) {
        double acc[FO_AF_LANES] = {0};
        const FO_T *rv = row_var + b * m;
        for (int64_t i = 0; i < m; ++i)
            acc[i % FO_AF_LANES] += (double)rv[i];
        double s = 0;
        for (int k = 0; k < FO_AF_LANES; ++k)
            s += acc[k];
        const FO_T mean = (FO_T)(s / (double)m);
        row_mean[b] = (double)(mean < eps1 ? eps1 : mean);
    }

    /* 4. update = rsqrt(clamp(row_i * col_j / r, eps1^2)) * G */
#pragma omp parallel for schedule(static) num_threads(nt) if (nt > 1)
    for (int64_t r = 0; r < rows; ++r) {
        const int64_t b = r / m;
        const FO_T rv = row_var[r], rm = (FO_T)row_mean[b];
        const FO_T *FO_RESTRICT cv = col_var + b * n;
        const FO_T *FO_RESTRICT g = grad + r * n;
        FO_T *FO_RESTRICT u = update + r * n;
#pragma omp simd
        for (int64_t j = 0; j < n; ++j) {
            FO_T v = (rv * cv[j]) / rm;
            v = v < eps1_sq ? eps1_sq : v;
            u[j] = ((FO_T)1 / FO_SQRT(v)) * (sign * g[j]);
        }
    }
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
    const int64_t nc = fo_adafactor_n_chunks(n);
#pragma omp parallel for schedule(static) num_threads(nt) if (nt > 1)
    for (int64_t c = 0; c < nc; ++c) {
        const int64_t b = c * FO_CHUNK, e = (b + FO_CHUNK < n) ? b + FO_CHUNK : n;
#pragma omp simd
        for (int64_t i = b; i < e; ++i) {
            const FO_T g = sign * grad[i];
            const FO_T v = FO_FN(af_lerp)(variance[i], g * g, w, small);
            variance[i] = v;
            const FO_T vc = v < eps1_sq ? eps1_sq : v;
            update[i] = ((FO_T)1 / FO_SQRT(vc)) * g;
        }
    }
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
    const FO_T dec = (FO_T)decay, s = (FO_T)step;
    const int64_t nc = fo_adafactor_n_chunks(n);
#pragma omp parallel for schedule(static) num_threads(nt) if (nt > 1)
    for (int64_t c = 0; c < nc; ++c) {
        const int64_t b = c * FO_CHUNK, e = (b + FO_CHUNK < n) ? b + FO_CHUNK : n;
#pragma omp simd
        for (int64_t i = b; i < e; ++i)
            param[i] = FO_FMA(s, update[i], param[i] * dec);
    }
    return FO_OK;
}
