/* fo_dot_impl.h — the dot product both L-BFGS state machines use, written once in terms of FO_T; included by
 * lbfgs_impl.h and lbfgsb_impl.h inside each FO_T instantiation (so each gets an f32 and an f64 copy).
 *
 * sum_i a_i b_i in double, four fixed accumulators combined as (s0 + s1) + (s2 + s3): the same order, and so
 * the same bits, for any CPU and thread count. */
static double FO_FN(fo_dot)(const FO_T *FO_RESTRICT a, const FO_T *FO_RESTRICT b, int64_t n) {
    double s0 = 0.0, s1 = 0.0, s2 = 0.0, s3 = 0.0;
    int64_t i = 0;
    for (; i + 4 <= n; i += 4) {
        s0 += (double)a[i] * (double)b[i];
        s1 += (double)a[i + 1] * (double)b[i + 1];
        s2 += (double)a[i + 2] * (double)b[i + 2];
        s3 += (double)a[i + 3] * (double)b[i + 3];
    }
    for (; i < n; ++i) s0 += (double)a[i] * (double)b[i];
    return (s0 + s1) + (s2 + s3);
}
