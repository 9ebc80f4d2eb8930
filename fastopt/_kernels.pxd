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

    int64_t FO_CHUNK
    int64_t FO_PARALLEL_MIN
    int64_t fo_count_work(const int64_t *sizes, int64_t n_tensors, int64_t chunk)
    void fo_plan_work(const int64_t *sizes, int64_t n_tensors, int64_t chunk, fo_work *out)
    int fo_threads_for(int64_t total, int allowed)
    int fo_max_threads()
    int fo_have_openmp()

    ctypedef struct fo_sgd_hyper:
        double lr, momentum, dampening, weight_decay
        int nesterov, maximize
    int fo_sgd_f32(const fo_tensor_list *t, const fo_sgd_hyper *h)
    int fo_sgd_f64(const fo_tensor_list *t, const fo_sgd_hyper *h)

    ctypedef struct fo_adam_hyper:
        double lr, beta1, beta2, eps, weight_decay
        int amsgrad, maximize, decoupled_weight_decay
    int fo_adam_f32(const fo_tensor_list *t, const fo_adam_hyper *h)
    int fo_adam_f64(const fo_tensor_list *t, const fo_adam_hyper *h)

    ctypedef struct fo_rmsprop_hyper:
        double lr, alpha, eps, weight_decay, momentum
        int centered, maximize
    int fo_rmsprop_f32(const fo_tensor_list *t, const fo_rmsprop_hyper *h)
    int fo_rmsprop_f64(const fo_tensor_list *t, const fo_rmsprop_hyper *h)

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

    # ---- Parameter averaging (averaging.c) ----
    enum:
        FO_AVG_SWA
        FO_AVG_LERP
        FO_AVG_EMA
    ctypedef struct fo_avg_hyper:
        int mode
        double weight
    int fo_average_f32(const fo_tensor_list *t, const fo_avg_hyper *h)
    int fo_average_f64(const fo_tensor_list *t, const fo_avg_hyper *h)
    ctypedef struct fo_asgd_hyper:
        double weight_decay
        int maximize
    int fo_asgd_f32(const fo_tensor_list *t, const fo_asgd_hyper *h)
    int fo_asgd_f64(const fo_tensor_list *t, const fo_asgd_hyper *h)

    ctypedef struct fo_rprop_hyper:
        double etaminus, etaplus, step_size_min, step_size_max
        int maximize
    int fo_rprop_f32(const fo_tensor_list *t, const fo_rprop_hyper *h)
    int fo_rprop_f64(const fo_tensor_list *t, const fo_rprop_hyper *h)

    ctypedef struct fo_muon_hyper:
        double lr, weight_decay, momentum
        int nesterov
    int fo_muon_momentum_f32(const fo_tensor_list *t, const fo_muon_hyper *h)
    int fo_muon_momentum_f64(const fo_tensor_list *t, const fo_muon_hyper *h)
    int fo_muon_apply_f32(const fo_tensor_list *t, const fo_muon_hyper *h)
    int fo_muon_apply_f64(const fo_tensor_list *t, const fo_muon_hyper *h)

    ctypedef struct fo_sparse_adam_hyper:
        double beta1, beta2, eps
        int maximize
    int fo_sparse_adam_f32(const fo_tensor_list *t, const fo_sparse_adam_hyper *h)
    int fo_sparse_adam_f64(const fo_tensor_list *t, const fo_sparse_adam_hyper *h)
    # fo_optim_a.h (included by fastopt.h): Adagrad, Adadelta, Adamax, NAdam, RAdam, Lion
    ctypedef struct fo_adagrad_hyper:
        double eps, weight_decay
        int maximize
    int fo_adagrad_f32(const fo_tensor_list *t, const fo_adagrad_hyper *h)
    int fo_adagrad_f64(const fo_tensor_list *t, const fo_adagrad_hyper *h)

    ctypedef struct fo_adadelta_hyper:
        double lr, rho, eps, weight_decay
        int maximize
    int fo_adadelta_f32(const fo_tensor_list *t, const fo_adadelta_hyper *h)
    int fo_adadelta_f64(const fo_tensor_list *t, const fo_adadelta_hyper *h)

    ctypedef struct fo_adamax_hyper:
        double beta1, beta2, eps, weight_decay
        int maximize
    int fo_adamax_f32(const fo_tensor_list *t, const fo_adamax_hyper *h)
    int fo_adamax_f64(const fo_tensor_list *t, const fo_adamax_hyper *h)

    ctypedef struct fo_nadam_hyper:
        double lr, beta1, beta2, eps, weight_decay
        int maximize, decoupled_weight_decay
    int fo_nadam_f32(const fo_tensor_list *t, const fo_nadam_hyper *h)
    int fo_nadam_f64(const fo_tensor_list *t, const fo_nadam_hyper *h)

    ctypedef struct fo_radam_hyper:
        double lr, beta1, beta2, eps, weight_decay
        int maximize, decoupled_weight_decay
    int fo_radam_f32(const fo_tensor_list *t, const fo_radam_hyper *h)
    int fo_radam_f64(const fo_tensor_list *t, const fo_radam_hyper *h)

    ctypedef struct fo_lion_hyper:
        double lr, beta1, beta2, weight_decay
        int maximize
    int fo_lion_f32(const fo_tensor_list *t, const fo_lion_hyper *h)
    int fo_lion_f64(const fo_tensor_list *t, const fo_lion_hyper *h)
    # fo_adafactor.h (included by fastopt.h): Adafactor, per-tensor kernels over (batch, m, n) views
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
