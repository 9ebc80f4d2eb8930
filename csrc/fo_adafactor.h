/* fo_adafactor.h — prototypes of the Adafactor kernels (included by fastopt.h; mirrored in fastopt/_kernels.pxd).
 *
 * Adafactor's state does not have the parameter's shape (row_var and col_var are reduced along one axis), so
 * these kernels take one tensor at a time, viewed as a C-contiguous (batch, m, n) block (the leading dimensions
 * folded into batch; a 0-D or 1-D tensor is a flat vector of n elements). Python runs them in this order per
 * tensor: sumsq(param) -> factored or vector -> sumsq(update) -> apply, and turns the two sums of squares into
 * the step size alpha and the clipping divisor in double, as torch does with .item().
 *
 * Every reduction accumulates in double in FO_AF_LANES fixed lanes inside fixed FO_CHUNK-element chunks whose
 * partials are added in index order, so results never depend on the thread count. */
#ifndef FO_ADAFACTOR_H
#define FO_ADAFACTOR_H

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
 *   scratch [batch*(n+1)] doubles (column sums, then the row means) */
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

#endif /* FO_ADAFACTOR_H */
