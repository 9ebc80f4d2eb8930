/* lbfgsb.c — the L-BFGS-B state machine (lbfgsb_impl.h) for float and double, its code table, the layout
 * of its state struct, and the small dense algebra (2m x 2m, in double) it shares between the two types. */
#include <math.h>
#include <stddef.h>
#include <string.h>

#include "fo_common.h"
#include "fo_lbfgsb.h"

/* the one table of stop codes: scipy's status and, where scipy has one, scipy's message */
const fo_stop_code fo_lbfgsb_codes[FO_LBFGSB_NCODES] = {
    {FO_LBFGSB_CONV_PGTOL, 0, "CONVERGENCE: NORM OF PROJECTED GRADIENT <= PGTOL"},
    {FO_LBFGSB_CONV_FTOL, 0, "CONVERGENCE: RELATIVE REDUCTION OF F <= FACTR*EPSMCH"},
    {FO_LBFGSB_MAX_ITER, 1, "STOP: TOTAL NO. OF ITERATIONS REACHED LIMIT"},
    {FO_LBFGSB_MAX_FUN, 1, "STOP: TOTAL NO. OF F,G EVALUATIONS EXCEEDS LIMIT"},
    {FO_LBFGSB_ABNORMAL, 2, "ABNORMAL: THE LINE SEARCH FOUND NO DECREASE, ALSO FROM STEEPEST DESCENT"},
    {FO_LBFGSB_NONFINITE, 2, "ABNORMAL: F OR G IS NAN OR INF; X IS THE LAST ACCEPTED ITERATE"},
    {FO_LBFGSB_CALLBACK, 2, "STOP: CALLBACK REQUESTED HALT"},
    {FO_LBFGSB_FUN_ERROR, 2, "ERROR: FUN FAILED; X IS THE LAST ACCEPTED ITERATE"},
    {FO_LBFGSB_CONV_FABS, 0, "CONVERGENCE: |F_K - F_K+1| < TOLERANCE_CHANGE"},
    {FO_LBFGSB_CONV_XABS, 0, "CONVERGENCE: MAX |X_K+1 - X_K| <= TOLERANCE_CHANGE"},
};

#define FO_F(name, kind) {#name, (int64_t)offsetof(fo_lbfgsb_state, name), kind, 1}
const fo_state_field fo_lbfgsb_fields[] = {
    FO_F(phase, 'i'), FO_F(nit, 'i'), FO_F(nfev, 'i'), FO_F(loc_iter, 'i'), FO_F(loc_fev, 'i'),
    FO_F(col, 'i'), FO_F(head, 'i'), FO_F(nskip, 'i'), FO_F(nrefresh, 'i'), FO_F(nfree, 'i'),
    FO_F(nbreak, 'i'), FO_F(status, 'i'), FO_F(constrained, 'i'), FO_F(boxed, 'i'),
    FO_F(ls_iter, 'i'), FO_F(ls_stage, 'i'), FO_F(ls_brackt, 'i'), FO_F(ls_nonfinite, 'i'),
    FO_F(f, 'f'), FO_F(f_old, 'f'), FO_F(theta, 'f'), FO_F(sbgnrm, 'f'), FO_F(f0, 'f'), FO_F(gd0, 'f'),
    FO_F(stp, 'f'), FO_F(stpmax, 'f'), FO_F(dnorm, 'f'),
    FO_F(ls_stx, 'f'), FO_F(ls_fx, 'f'), FO_F(ls_gx, 'f'), FO_F(ls_sty, 'f'), FO_F(ls_fy, 'f'),
    FO_F(ls_gy, 'f'), FO_F(ls_stmin, 'f'), FO_F(ls_stmax, 'f'), FO_F(ls_width, 'f'), FO_F(ls_width1, 'f'),
};
#undef FO_F
const int64_t fo_lbfgsb_nfields = (int64_t)(sizeof fo_lbfgsb_fields / sizeof fo_lbfgsb_fields[0]);
const int64_t fo_lbfgsb_state_size = (int64_t)sizeof(fo_lbfgsb_state);

/* resume points (st->phase) */
enum { LB_IDLE = 0, LB_START = 1, LB_SEARCH = 2, LB_AFTER = 3 };
/* iw[0..n): where each variable is after the GCP search */
enum { LB_FREE = 0, LB_AT_BOUND = 1, LB_FIXED = 2 };

/* ---- small dense algebra in double (k <= 2m) -------------------------------------------------------- */

/* In-place Cholesky A = J J' of the k x k SPD matrix a (lower triangle, leading dimension ld), then
 * a <- A^{-1} (full). Returns 0, or 1 when A is not numerically positive definite. */
static int lb_chol_inverse(double *a, int64_t k, int64_t ld, double *tmp) {
    for (int64_t j = 0; j < k; ++j) {
        double s = a[j * ld + j];
        for (int64_t p = 0; p < j; ++p) s -= a[j * ld + p] * a[j * ld + p];
        if (!(s > 0.0)) return 1;
        const double r = sqrt(s);
        a[j * ld + j] = r;
        for (int64_t i = j + 1; i < k; ++i) {
            double t = a[i * ld + j];
            for (int64_t p = 0; p < j; ++p) t -= a[i * ld + p] * a[j * ld + p];
            a[i * ld + j] = t / r;
        }
    }
    /* columns of A^{-1}: solve J J' x = e_c, write into tmp (k x k), then copy back */
    for (int64_t c = 0; c < k; ++c) {
        double *x = tmp + c * k;
        for (int64_t i = 0; i < k; ++i) {
            double t = (i == c) ? 1.0 : 0.0;
            for (int64_t p = 0; p < i; ++p) t -= a[i * ld + p] * x[p];
            x[i] = t / a[i * ld + i];
        }
        for (int64_t i = k - 1; i >= 0; --i) {
            double t = x[i];
            for (int64_t p = i + 1; p < k; ++p) t -= a[p * ld + i] * x[p];
            x[i] = t / a[i * ld + i];
        }
    }
    for (int64_t i = 0; i < k; ++i)
        for (int64_t j = 0; j < k; ++j) a[i * ld + j] = tmp[j * k + i];
    return 0;
}

/* Solve A u = b (k x k, leading dimension k) by Gaussian elimination with partial pivoting; A and b are
 * overwritten, u is left in b. Returns 1 when a pivot is zero or not finite. */
static int lb_solve(double *a, double *b, int64_t k) {
    for (int64_t c = 0; c < k; ++c) {
        int64_t piv = c;
        double best = fabs(a[c * k + c]);
        for (int64_t i = c + 1; i < k; ++i)
            if (fabs(a[i * k + c]) > best) { best = fabs(a[i * k + c]); piv = i; }
        if (!(best > 0.0) || !isfinite(best)) return 1;
        if (piv != c) {
            for (int64_t j = 0; j < k; ++j) { double t = a[c * k + j]; a[c * k + j] = a[piv * k + j]; a[piv * k + j] = t; }
            double t = b[c]; b[c] = b[piv]; b[piv] = t;
        }
        const double inv = 1.0 / a[c * k + c];
        for (int64_t i = c + 1; i < k; ++i) {
            const double l = a[i * k + c] * inv;
            if (l == 0.0) continue;
            for (int64_t j = c; j < k; ++j) a[i * k + j] -= l * a[c * k + j];
            b[i] -= l * b[c];
        }
    }
    for (int64_t i = k - 1; i >= 0; --i) {
        double t = b[i];
        for (int64_t j = i + 1; j < k; ++j) t -= a[i * k + j] * b[j];
        b[i] = t / a[i * k + i];
    }
    return 0;
}

/* out = A v, A k x k (leading dimension k) */
static void lb_matvec(const double *a, const double *v, double *out, int64_t k) {
    for (int64_t i = 0; i < k; ++i) {
        double s = 0.0;
        for (int64_t j = 0; j < k; ++j) s += a[i * k + j] * v[j];
        out[i] = s;
    }
}

static double lb_vdot(const double *a, const double *b, int64_t k) {
    double s = 0.0;
    for (int64_t i = 0; i < k; ++i) s += a[i] * b[i];
    return s;
}

/* ---- Moré-Thuente line search (Moré & Thuente, ACM TOMS 20, 1994), one trial at a time ---------------- */

static double lb_max3(double a, double b, double c) {
    double m = a > b ? a : b;
    return m > c ? m : c;
}

/* The minimiser of the cubic that interpolates the trial (stp, fp, dp) and the end point (sa, fa, da), as a step
 * from stp (the paper's stpc for the cases that use both slopes and keep the discriminant as it is). */
static double lb_cubic_from_trial(double stp, double fp, double dp, double sa, double fa, double da) {
    const double theta = 3.0 * (fa - fp) / (stp - sa) + da + dp;
    const double s = lb_max3(fabs(theta), fabs(da), fabs(dp));
    double gamma = s * sqrt((theta / s) * (theta / s) - (da / s) * (dp / s));
    if (stp > sa) gamma = -gamma;
    const double p = (gamma - dp) + theta;
    const double q = ((gamma - dp) + gamma) + da;
    const double r = p / q;
    return stp + r * (sa - stp);
}

/* The safeguarded step of the paper's section 4: from the interval end points (stx, fx, dx) (best so far)
 * and (sty, fy, dy) and the trial (stp, fp, dp), choose the next trial and update the interval. */
static void lb_mt_step(double *stx, double *fx, double *dx, double *sty, double *fy, double *dy, double *stp,
                       double fp, double dp, int64_t *brackt, double stpmin, double stpmax) {
    const double sgnd = dp * (*dx / fabs(*dx));
    double stpf, stpc, stpq, theta, s, gamma, p, q, r;
    if (fp > *fx) {
        /* higher value: the minimiser is bracketed; cubic, or halfway to the quadratic if that is closer */
        theta = 3.0 * (*fx - fp) / (*stp - *stx) + *dx + dp;
        s = lb_max3(fabs(theta), fabs(*dx), fabs(dp));
        gamma = s * sqrt((theta / s) * (theta / s) - (*dx / s) * (dp / s));
        if (*stp < *stx) gamma = -gamma;
        p = (gamma - *dx) + theta;
        q = ((gamma - *dx) + gamma) + dp;
        r = p / q;
        stpc = *stx + r * (*stp - *stx);
        stpq = *stx + ((*dx / ((*fx - fp) / (*stp - *stx) + *dx)) / 2.0) * (*stp - *stx);
        stpf = (fabs(stpc - *stx) < fabs(stpq - *stx)) ? stpc : stpc + (stpq - stpc) / 2.0;
        *brackt = 1;
    } else if (sgnd < 0.0) {
        /* lower value, slopes of opposite sign: bracketed; cubic or secant, whichever is farther */
        stpc = lb_cubic_from_trial(*stp, fp, dp, *stx, *fx, *dx);
        stpq = *stp + (dp / (dp - *dx)) * (*stx - *stp);
        stpf = (fabs(stpc - *stp) > fabs(stpq - *stp)) ? stpc : stpq;
        *brackt = 1;
    } else if (fabs(dp) < fabs(*dx)) {
        /* lower value, same sign, slope decreasing in magnitude: cubic if it has a minimiser beyond stp */
        theta = 3.0 * (*fx - fp) / (*stp - *stx) + *dx + dp;
        s = lb_max3(fabs(theta), fabs(*dx), fabs(dp));
        double disc = (theta / s) * (theta / s) - (*dx / s) * (dp / s);
        gamma = s * sqrt(disc > 0.0 ? disc : 0.0);
        if (*stp > *stx) gamma = -gamma;
        p = (gamma - dp) + theta;
        q = (gamma + (*dx - dp)) + gamma;
        r = p / q;
        if (r < 0.0 && gamma != 0.0) stpc = *stp + r * (*stx - *stp);
        else stpc = (*stp > *stx) ? stpmax : stpmin;
        stpq = *stp + (dp / (dp - *dx)) * (*stx - *stp);
        if (*brackt) {
            stpf = (fabs(stpc - *stp) < fabs(stpq - *stp)) ? stpc : stpq;
            const double lim = *stp + 0.66 * (*sty - *stp);
            if (*stp > *stx) stpf = stpf < lim ? stpf : lim;
            else stpf = stpf > lim ? stpf : lim;
        } else {
            stpf = (fabs(stpc - *stp) > fabs(stpq - *stp)) ? stpc : stpq;
            stpf = stpf < stpmax ? stpf : stpmax;
            stpf = stpf > stpmin ? stpf : stpmin;
        }
    } else {
        /* lower value, same sign, slope not decreasing: cubic toward sty if bracketed, else a bound */
        if (*brackt) {
            /* the cubic through (sty, fy, dy): 3 (fp - fy) / (sty - stp) is the same quotient with both signs flipped */
            stpf = lb_cubic_from_trial(*stp, fp, dp, *sty, *fy, *dy);
        } else {
            stpf = (*stp > *stx) ? stpmax : stpmin;
        }
    }
    if (fp > *fx) {
        *sty = *stp; *fy = fp; *dy = dp;
    } else {
        if (sgnd < 0.0) { *sty = *stx; *fy = *fx; *dy = *dx; }
        *stx = *stp; *fx = fp; *dx = dp;
    }
    *stp = stpf;
}

/* Start a search at trial stp in [0, stpmax] from value f0 and slope gd0 < 0. */
static void lb_mt_init(fo_lbfgsb_state *st) {
    st->ls_brackt = 0;
    st->ls_stage = 1;
    st->ls_width = st->stpmax;
    st->ls_width1 = 2.0 * st->stpmax;
    st->ls_stx = 0.0; st->ls_fx = st->f0; st->ls_gx = st->gd0;
    st->ls_sty = 0.0; st->ls_fy = st->f0; st->ls_gy = st->gd0;
    st->ls_stmin = 0.0;
    st->ls_stmax = st->stp + 4.0 * st->stp;
}

/* Feed the value f and slope gd at st->stp. Returns 1 when the search is over (the trial is accepted:
 * both Wolfe conditions hold, or a safeguard says no better step can be found — 2 then if the trial has not
 * decreased f), 0 when st->stp holds the next trial. */
static int lb_mt_next(fo_lbfgsb_state *st, const fo_lbfgsb_hyper *h, double f, double gd) {
    const double ginit = st->gd0, gtest = h->ls_ftol * ginit, ftest = st->f0 + st->stp * gtest;
    const double stpmin = 0.0, stpmax = st->stpmax;
    if (st->ls_stage == 1 && f <= ftest && gd >= 0.0) st->ls_stage = 2;
    const int decreased = f < st->f0;
    if (st->ls_brackt && (st->stp <= st->ls_stmin || st->stp >= st->ls_stmax)) return decreased ? 1 : 2;
    if (st->ls_brackt && st->ls_stmax - st->ls_stmin <= h->ls_xtol * st->ls_stmax) return decreased ? 1 : 2;
    if (st->stp == stpmax && f <= ftest && gd <= gtest) return 1;
    if (st->stp == stpmin && (f > ftest || gd >= gtest)) return decreased ? 1 : 2;
    if (f <= ftest && fabs(gd) <= h->ls_gtol * (-ginit)) return 1;

    if (st->ls_stage == 1 && f <= st->ls_fx && f > ftest) {
        /* the modified function psi(t) = f(t) - f0 - t gtest, as the paper prescribes in stage 1 */
        double fm = f - st->stp * gtest, fxm = st->ls_fx - st->ls_stx * gtest, fym = st->ls_fy - st->ls_sty * gtest;
        double gm = gd - gtest, gxm = st->ls_gx - gtest, gym = st->ls_gy - gtest;
        lb_mt_step(&st->ls_stx, &fxm, &gxm, &st->ls_sty, &fym, &gym, &st->stp, fm, gm, &st->ls_brackt,
                   st->ls_stmin, st->ls_stmax);
        st->ls_fx = fxm + st->ls_stx * gtest; st->ls_fy = fym + st->ls_sty * gtest;
        st->ls_gx = gxm + gtest; st->ls_gy = gym + gtest;
    } else {
        lb_mt_step(&st->ls_stx, &st->ls_fx, &st->ls_gx, &st->ls_sty, &st->ls_fy, &st->ls_gy, &st->stp, f, gd,
                   &st->ls_brackt, st->ls_stmin, st->ls_stmax);
    }
    if (st->ls_brackt) {
        /* bisect when the interval did not shrink enough in two trials */
        if (fabs(st->ls_sty - st->ls_stx) >= 0.66 * st->ls_width1) st->stp = st->ls_stx + 0.5 * (st->ls_sty - st->ls_stx);
        st->ls_width1 = st->ls_width;
        st->ls_width = fabs(st->ls_sty - st->ls_stx);
        st->ls_stmin = st->ls_stx < st->ls_sty ? st->ls_stx : st->ls_sty;
        st->ls_stmax = st->ls_stx > st->ls_sty ? st->ls_stx : st->ls_sty;
    } else {
        st->ls_stmin = st->stp + 1.1 * (st->stp - st->ls_stx);
        st->ls_stmax = st->stp + 4.0 * (st->stp - st->ls_stx);
    }
    if (st->stp > stpmax) st->stp = stpmax;
    if (st->stp < stpmin) st->stp = stpmin;
    if ((st->ls_brackt && (st->stp <= st->ls_stmin || st->stp >= st->ls_stmax))
        || (st->ls_brackt && st->ls_stmax - st->ls_stmin <= h->ls_xtol * st->ls_stmax))
        st->stp = st->ls_stx;
    return 0;
}

#define FO_IMPL "lbfgsb_impl.h"
#include "fo_instantiate.h"
