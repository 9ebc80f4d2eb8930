/* table.c — work planning and thread policy shared by every kernel. */
#include "fastopt.h"

#include <stdlib.h>
#include <string.h>

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

int fo_kernel_check(const fo_tensor_list *t, uint32_t needs, int64_t n_scalars)
{
    /* one past the highest buffer position in needs */
    int64_t top = 0;
    for (uint32_t m = needs; m != 0; m >>= 1)
        ++top;
    /* fo_check_list(t, 0)'s checks and the needed buffers' in one pass over the tensors (every kernel call makes
     * them: a repeated small step pays them per tensor) */
    if (t == NULL || t->n_tensors < 0 || t->n_work < 0 || t->n_threads < 1)
        return FO_ERR_LAYOUT;
    if (t->n_tensors > 0 && (t->bufs == NULL || t->sizes == NULL))
        return FO_ERR_LAYOUT;
    if (t->n_scalars > 0 && t->n_tensors > 0 && t->scalars == NULL)
        return FO_ERR_LAYOUT;
    if (t->n_work > 0 && t->work == NULL)
        return FO_ERR_LAYOUT;
    if (t->n_bufs < top || t->n_scalars < n_scalars)
        return FO_ERR_LAYOUT;
    int missing = 0; /* a needed buffer is NULL: FO_ERR_NULL, unless the list is also malformed (FO_ERR_LAYOUT) */
    for (int64_t i = 0; i < t->n_tensors; ++i) {
        if (t->sizes[i] < 0)
            return FO_ERR_LAYOUT;
        if (t->sizes[i] == 0)
            continue;
        void *const *row = t->bufs + i * t->n_bufs;
        for (int64_t k = 0; k < top; ++k)
            missing |= (needs >> k & 1u) && row[k] == NULL;
    }
    for (int64_t w = 0; w < t->n_work; ++w) {
        const fo_work *it = &t->work[w];
        if (it->tensor < 0 || it->tensor >= t->n_tensors || it->begin < 0 || it->end > t->sizes[it->tensor]
            || it->begin > it->end)
            return FO_ERR_LAYOUT;
    }
    return missing ? FO_ERR_NULL : FO_OK;
}

int fo_check_list(const fo_tensor_list *t, int64_t n_required)
{
    if (t != NULL && (n_required < 0 || t->n_bufs < n_required))
        return FO_ERR_LAYOUT;
    /* buffers [0, n_required) needed (a table has at most 32 positions: fastopt/_kernels.pyx, TensorTable) */
    return fo_kernel_check(t, n_required >= 32 ? 0xFFFFFFFFu : (uint32_t)FO_FIRST(n_required), 0);
}

/* The ISA variant every kernel runs: the CPU's best, capped by the environment variable FASTOPT_ISA
 * ("baseline", "avx2" or "avx512"; read once, at the first kernel call) so that the tests can run each variant
 * the CPU has and require identical bits. Any other value, or a variant the CPU lacks, leaves the CPU's best. */
int fo_isa(void)
{
#if defined(__GNUC__) && defined(__x86_64__) && !defined(FO_NO_DISPATCH)
    static int isa = -1;
    if (isa < 0) {
        __builtin_cpu_init();
        const int fma = __builtin_cpu_supports("fma");
        int best = 0;
        if (fma && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl"))
            best = 2;
        else if (fma && __builtin_cpu_supports("avx2"))
            best = 1;
        const char *force = getenv("FASTOPT_ISA");
        const int want = force == NULL ? -1 : !strcmp(force, "baseline") ? 0 : !strcmp(force, "avx2") ? 1
                       : !strcmp(force, "avx512") ? 2 : -1;
        isa = (want >= 0 && want < best) ? want : best;
    }
    return isa;
#else
    return 0;
#endif
}

/* ---- the thread pool behind FO_RUN_ITEMS ---------------------------------------------------------------
 *
 * One job at a time (a second caller that finds the pool busy runs its items alone). A job is published as a
 * 64-bit word `claim` = (generation << 32) | next unclaimed item. Every participant — the caller and any
 * helper that is awake — claims items with compare-and-swap on that word, runs them, and counts them in
 * `done`; the caller returns when every item is done. It therefore never waits for a helper that is asleep,
 * descheduled or slow to wake (the case that makes OpenMP's fork/join barrier 10-1000x slower than one thread
 * on a loaded 2-core machine), only for an item a helper is running. A claim succeeds only while the word
 * still holds the generation whose job fields the helper read, so a late helper can never run an item of a
 * finished job. Helpers spin for FO_POOL_SPIN_NS after their last item, then sleep on a condition variable. */
#if defined(FO_HAVE_OPENMP) && defined(__unix__)
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <time.h>

#ifndef FO_POOL_MAX
#define FO_POOL_MAX 64
#endif
#ifndef FO_POOL_SPIN_NS
#define FO_POOL_SPIN_NS 50000
#endif
#define FO_CLOSED 0xFFFFFFFFu

static pthread_mutex_t pool_run = PTHREAD_MUTEX_INITIALIZER;  /* held by the caller of the current job */
static pthread_mutex_t pool_mu = PTHREAD_MUTEX_INITIALIZER;   /* guards wake_seq, n_helpers, the cv */
static pthread_cond_t pool_cv = PTHREAD_COND_INITIALIZER;
static uint64_t wake_seq;
static int n_helpers;
static atomic_int n_sleeping;
static _Atomic uint64_t claim = ((uint64_t)0 << 32) | FO_CLOSED;
static atomic_llong done;
/* Job fields: written by the caller while `claim` is closed, read by helpers between loading an open
 * `claim` and claiming from it (the claim's success proves they belonged to that job). */
static _Atomic(fo_item_fn) job_fn;
static _Atomic(const void *) job_t;
static _Atomic(const void *) job_h;
static atomic_llong job_n;
static atomic_int job_threads;

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Claim and run items of the job in `c`'s generation until none is left (or the job changed). `rank` is the
 * participant's index (0 = caller); a helper whose rank is not below the job's thread count stays out. */
static void work(uint64_t c, int rank)
{
    const uint32_t gen = (uint32_t)(c >> 32);
    for (;;) {
        if ((uint32_t)(c >> 32) != gen)
            return;
        const uint32_t i = (uint32_t)c;
        const fo_item_fn fn = atomic_load_explicit(&job_fn, memory_order_relaxed);
        const void *t = atomic_load_explicit(&job_t, memory_order_relaxed);
        const void *h = atomic_load_explicit(&job_h, memory_order_relaxed);
        const int64_t n = atomic_load_explicit(&job_n, memory_order_relaxed);
        if (i == FO_CLOSED || (int64_t)i >= n || rank >= atomic_load_explicit(&job_threads, memory_order_relaxed))
            return;
        if (atomic_compare_exchange_weak_explicit(&claim, &c, c + 1, memory_order_acq_rel, memory_order_acquire)) {
            fn(t, h, (int64_t)i);
            atomic_fetch_add_explicit(&done, 1, memory_order_release);
            c = atomic_load_explicit(&claim, memory_order_acquire);
        }
    }
}

static void *helper_main(void *arg)
{
    const int rank = (int)(intptr_t)arg;
    uint32_t seen = 0;
    uint64_t seq = 0;
    for (;;) {
        int64_t idle_since = now_ns();
        uint64_t c = atomic_load_explicit(&claim, memory_order_acquire);
        while ((uint32_t)(c >> 32) == seen || (uint32_t)c == FO_CLOSED) {
            if (now_ns() - idle_since < FO_POOL_SPIN_NS) {
                for (int k = 0; k < 32; ++k)
                    cpu_relax();
            } else {
                pthread_mutex_lock(&pool_mu);
                atomic_fetch_add(&n_sleeping, 1);
                c = atomic_load(&claim);
                while (wake_seq == seq && ((uint32_t)(c >> 32) == seen || (uint32_t)c == FO_CLOSED)) {
                    pthread_cond_wait(&pool_cv, &pool_mu);
                    c = atomic_load_explicit(&claim, memory_order_acquire);
                }
                seq = wake_seq;
                atomic_fetch_sub(&n_sleeping, 1);
                pthread_mutex_unlock(&pool_mu);
                idle_since = now_ns();
            }
            c = atomic_load_explicit(&claim, memory_order_acquire);
        }
        seen = (uint32_t)(c >> 32);
        work(c, rank);
    }
    return NULL;
}

static void pool_after_fork(void)
{
    /* The child has only the forking thread: forget the helpers and reset the locks. */
    pthread_mutex_init(&pool_run, NULL);
    pthread_mutex_init(&pool_mu, NULL);
    pthread_cond_init(&pool_cv, NULL);
    n_helpers = 0;
    atomic_store(&n_sleeping, 0);
}

/* Start helpers until there are `want` (with the lock held by nobody else but us). */
static void pool_grow(int want)
{
    static int registered = 0;
    if (want > FO_POOL_MAX - 1)
        want = FO_POOL_MAX - 1;
    pthread_mutex_lock(&pool_mu);
    if (!registered) {
        pthread_atfork(NULL, NULL, pool_after_fork);
        registered = 1;
    }
    while (n_helpers < want) {
        pthread_t th;
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        pthread_attr_setstacksize(&attr, 1 << 20);
        const int rc = pthread_create(&th, &attr, helper_main, (void *)(intptr_t)(n_helpers + 1));
        pthread_attr_destroy(&attr);
        if (rc != 0)
            break;
        ++n_helpers;
    }
    pthread_mutex_unlock(&pool_mu);
}

void fo_run_items(const void *t, int64_t n_work, const void *h, fo_item_fn fn, int n_threads)
{
    const int64_t n = n_work;
    if (n_threads <= 1 || n < 2 || n >= (int64_t)FO_CLOSED || pthread_mutex_trylock(&pool_run) != 0) {
        for (int64_t w = 0; w < n; ++w)
            fn(t, h, w);
        return;
    }
    if (n_helpers < n_threads - 1)
        pool_grow(n_threads - 1);
    /* Close the claim word under a new generation, fill the job, then open it. */
    const uint32_t gen = (uint32_t)(atomic_load_explicit(&claim, memory_order_relaxed) >> 32) + 1;
    atomic_store_explicit(&claim, ((uint64_t)gen << 32) | FO_CLOSED, memory_order_release);
    atomic_store_explicit(&job_fn, fn, memory_order_relaxed);
    atomic_store_explicit(&job_t, t, memory_order_relaxed);
    atomic_store_explicit(&job_h, h, memory_order_relaxed);
    atomic_store_explicit(&job_n, n, memory_order_relaxed);
    atomic_store_explicit(&job_threads, n_threads, memory_order_relaxed);
    atomic_store_explicit(&done, 0, memory_order_relaxed);
    const uint64_t open = (uint64_t)gen << 32;
    atomic_store(&claim, open); /* seq_cst: ordered before the n_sleeping load below (no lost wake-up) */
    if (atomic_load(&n_sleeping) > 0) {
        pthread_mutex_lock(&pool_mu);
        ++wake_seq;
        pthread_cond_broadcast(&pool_cv);
        pthread_mutex_unlock(&pool_mu);
    }
    work(open, 0);
    /* Every item is claimed; wait only for the ones helpers are still running. */
    for (int64_t spins = 0; atomic_load_explicit(&done, memory_order_acquire) < n; ++spins) {
        cpu_relax();
        if (spins > 4096) /* the helper running the last item was descheduled: give it our CPU */
            sched_yield();
    }
    pthread_mutex_unlock(&pool_run);
}
#else
void fo_run_items(const void *t, int64_t n_work, const void *h, fo_item_fn fn, int n_threads)
{
    (void)n_threads;
    for (int64_t w = 0; w < n_work; ++w)
        fn(t, h, w);
}
#endif
