/* table.c — work planning and thread policy shared by every kernel. */
#include "fastopt.h"

#ifdef FO_HAVE_OPENMP
#include <omp.h>
#endif

int64_t fo_count_work(const int64_t *sizes, int64_t n_tensors, int64_t chunk)
{
    int64_t n = 0;
    for (int64_t i = 0; i < n_tensors; ++i)
        n += (sizes[i] + chunk - 1) / chunk;
    return n;
}

void fo_plan_work(const int64_t *sizes, int64_t n_tensors, int64_t chunk, fo_work *out)
{
    int64_t w = 0;
    for (int64_t i = 0; i < n_tensors; ++i) {
        for (int64_t b = 0; b < sizes[i]; b += chunk) {
            out[w].tensor = i;
            out[w].begin = b;
            out[w].end = (sizes[i] - b < chunk) ? sizes[i] : b + chunk;
            ++w;
        }
    }
}

int fo_threads_for(int64_t total, int allowed)
{
#ifdef FO_HAVE_OPENMP
    if (allowed <= 1 || total < FO_PARALLEL_MIN)
        return 1;
    /* at least FO_PARALLEL_MIN / 2 elements per thread */
    int64_t by_work = total / (FO_PARALLEL_MIN / 2);
    return (int)(by_work < allowed ? (by_work < 1 ? 1 : by_work) : allowed);
#else
    (void)total;
    (void)allowed;
    return 1;
#endif
}

int fo_max_threads(void)
{
#ifdef FO_HAVE_OPENMP
    return omp_get_num_procs();
#else
    return 1;
#endif
}

int fo_have_openmp(void)
{
#ifdef FO_HAVE_OPENMP
    return 1;
#else
    return 0;
#endif
}

int fo_check_list(const fo_tensor_list *t, int64_t n_required)
{
    if (t == NULL || t->n_tensors < 0 || t->n_bufs < n_required || t->n_work < 0 || t->n_threads < 1)
        return FO_ERR_LAYOUT;
    if (t->n_tensors > 0 && (t->bufs == NULL || t->sizes == NULL))
        return FO_ERR_LAYOUT;
    if (t->n_scalars > 0 && t->n_tensors > 0 && t->scalars == NULL)
        return FO_ERR_LAYOUT;
    for (int64_t i = 0; i < t->n_tensors; ++i) {
        if (t->sizes[i] < 0)
            return FO_ERR_LAYOUT;
        if (t->sizes[i] == 0)
            continue;
        for (int64_t k = 0; k < n_required; ++k)
            if (t->bufs[i * t->n_bufs + k] == NULL)
                return FO_ERR_NULL;
    }
    for (int64_t w = 0; w < t->n_work; ++w) {
        const fo_work *it = &t->work[w];
        if (it->tensor < 0 || it->tensor >= t->n_tensors || it->begin < 0 || it->end > t->sizes[it->tensor]
            || it->begin > it->end)
            return FO_ERR_LAYOUT;
    }
    return FO_OK;
}

int fo_isa(void)
{
#if defined(__GNUC__) && defined(__x86_64__) && !defined(FO_NO_DISPATCH)
    static int isa = -1;
    if (isa < 0) {
        __builtin_cpu_init();
        const int fma = __builtin_cpu_supports("fma");
        if (fma && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl"))
            isa = 2;
        else if (fma && __builtin_cpu_supports("avx2"))
            isa = 1;
        else
            isa = 0;
    }
    return isa;
#else
    return 0;
#endif
}
