# Mirror of csrc/fastopt.h for Cython. Keep in the same order as the header.
from libc.stdint cimport int64_t

cdef extern from "fastopt.h" nogil:
    ctypedef enum fo_status:
        FO_OK
        FO_ERR_NULL
        FO_ERR_LAYOUT
        FO_ERR_ARG

    ctypedef struct fo_work:
        int64_t tensor
        int64_t begin
        int64_t end

    ctypedef struct fo_tensor_list:
        int64_t n_tensors
        int64_t n_bufs
        int64_t n_scalars
        void **bufs
        const int64_t *sizes
        const double *scalars
        const fo_work *work
        int64_t n_work
        int64_t total
        int n_threads
        double *partials

    int64_t FO_PARTIALS
    int64_t FO_CHUNK
    int64_t FO_PARALLEL_MIN
    int64_t fo_count_work(const int64_t *sizes, int64_t n_tensors, int64_t chunk)
    void fo_plan_work(const int64_t *sizes, int64_t n_tensors, int64_t chunk, fo_work *out)
    int fo_threads_for(int64_t total, int allowed)
    int fo_max_threads()
    int fo_have_openmp()

    # The kernel table (FO_KERNELS in fastopt.h, rows in kernel_table.c)
    enum:
        FO_FIELD_DOUBLE
        FO_FIELD_INT
    ctypedef struct fo_field:
        const char *name
        int kind
        size_t offset
    ctypedef int (*fo_kernel_fn)(const fo_tensor_list *t, const void *h) noexcept nogil
    ctypedef struct fo_kernel_info:
        const char *name
        int64_t n_fields
        const fo_field *fields
        size_t hyper_size
        int64_t n_bufs
        int64_t n_scalars
        fo_kernel_fn f32
        fo_kernel_fn f64
    const fo_kernel_info fo_kernels[]
    const int64_t fo_n_kernels
    ctypedef void (*fo_step_scalars_fn)(const void *h, int64_t t, double *out) noexcept nogil
    ctypedef struct fo_step_scalars_info:
        const char *name
        fo_step_scalars_fn fn
    const fo_step_scalars_info fo_step_scalars[]
    const int64_t fo_n_step_scalars
    int fo_isa()

    # ---- Gradient clipping (clip.c) ----
    enum:
        FO_DTYPE_F32
        FO_DTYPE_F64
    ctypedef struct fo_grad_list:
        int64_t n_tensors
        void **data
        const int64_t *sizes
        const int *dtypes
        const fo_work *work
        int64_t n_work
        int64_t total
        int n_threads
    int fo_check_grad_list(const fo_grad_list *g)
    int fo_grad_norm(const fo_grad_list *g, double norm_type, double *partials, double *norms, double *total)
    int fo_grad_scale(const fo_grad_list *g, double coef)
    int fo_grad_clamp(const fo_grad_list *g, double lo, double hi)

    enum:
        FO_AVG_SWA
        FO_AVG_LERP
        FO_AVG_EMA

    # ---- Adafactor (adafactor.c): per-tensor kernels over (batch, m, n) views ----
    ctypedef struct fo_adafactor_hyper:
        double weight, eps1
        int maximize, n_threads
    int64_t fo_adafactor_n_chunks(int64_t n)
    int fo_adafactor_sumsq_f32(const float *x, int64_t n, double *partials, int n_threads, double *out)
    int fo_adafactor_sumsq_f64(const double *x, int64_t n, double *partials, int n_threads, double *out)
    int fo_adafactor_factored_f32(const float *grad, float *row_var, float *col_var, float *update,
                                  double *scratch, int64_t batch, int64_t m, int64_t n,
                                  const fo_adafactor_hyper *h)
    int fo_adafactor_factored_f64(const double *grad, double *row_var, double *col_var, double *update,
                                  double *scratch, int64_t batch, int64_t m, int64_t n,
                                  const fo_adafactor_hyper *h)
    int fo_adafactor_vector_f32(const float *grad, float *variance, float *update, int64_t n,
                                const fo_adafactor_hyper *h)
    int fo_adafactor_vector_f64(const double *grad, double *variance, double *update, int64_t n,
                                const fo_adafactor_hyper *h)
    int fo_adafactor_apply_f32(float *param, const float *update, int64_t n, double decay, double step,
                               int n_threads)
    int fo_adafactor_apply_f64(double *param, const double *update, int64_t n, double decay, double step,
                               int n_threads)
