/* Adafactor kernels: the body is adafactor_impl.h, compiled for float and double and, since these kernels take
 * plain arrays rather than an fo_tensor_list, once per instruction set by fo_variants.h (AVX-512 + FMA, AVX2 + FMA,
 * baseline x86-64), with fo_isa() choosing per call as for the other kernels. */
#include "fastopt.h"

int64_t fo_adafactor_n_chunks(int64_t n)
{
    return n <= 0 ? 0 : (n + FO_CHUNK - 1) / FO_CHUNK;
}

#include "fo_sum.h" /* its type-independent part, at the default target, before the ISA variants */
#define FO_IMPL "adafactor_impl.h"
#include "fo_variants.h"

#define FO_AF_PICK(name, args) return FO_PICK(name) args

int fo_adafactor_sumsq_f32(const float *x, int64_t n, double *partials, int n_threads, double *out)
{ FO_AF_PICK(fo_adafactor_sumsq_f32, (x, n, partials, n_threads, out)); }
int fo_adafactor_sumsq_f64(const double *x, int64_t n, double *partials, int n_threads, double *out)
{ FO_AF_PICK(fo_adafactor_sumsq_f64, (x, n, partials, n_threads, out)); }

int fo_adafactor_factored_f32(const float *grad, float *row_var, float *col_var, float *update, double *scratch,
                              int64_t batch, int64_t m, int64_t n, const fo_adafactor_hyper *h)
{ FO_AF_PICK(fo_adafactor_factored_f32, (grad, row_var, col_var, update, scratch, batch, m, n, h)); }
int fo_adafactor_factored_f64(const double *grad, double *row_var, double *col_var, double *update,
                              double *scratch, int64_t batch, int64_t m, int64_t n, const fo_adafactor_hyper *h)
{ FO_AF_PICK(fo_adafactor_factored_f64, (grad, row_var, col_var, update, scratch, batch, m, n, h)); }

int fo_adafactor_vector_f32(const float *grad, float *variance, float *update, int64_t n,
                            const fo_adafactor_hyper *h)
{ FO_AF_PICK(fo_adafactor_vector_f32, (grad, variance, update, n, h)); }
int fo_adafactor_vector_f64(const double *grad, double *variance, double *update, int64_t n,
                            const fo_adafactor_hyper *h)
{ FO_AF_PICK(fo_adafactor_vector_f64, (grad, variance, update, n, h)); }

int fo_adafactor_apply_f32(float *param, const float *update, int64_t n, double decay, double step, int n_threads)
{ FO_AF_PICK(fo_adafactor_apply_f32, (param, update, n, decay, step, n_threads)); }
int fo_adafactor_apply_f64(double *param, const double *update, int64_t n, double decay, double step,
                           int n_threads)
{ FO_AF_PICK(fo_adafactor_apply_f64, (param, update, n, decay, step, n_threads)); }
