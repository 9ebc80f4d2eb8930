/* lbfgsb_impl.h — the L-BFGS-B state machine, written once in terms of FO_T and instantiated by lbfgsb.c for
 * float (f32) and double (f64) through fo_instantiate.h. See fo_lbfgsb.h for the algorithm and the protocol.
 *
 * Vectors (x, g, S, Y, ...) are FO_T; every reduction and every small matrix is double. Notation follows
 * Byrd, Lu, Nocedal & Zhu (1995): B = theta I - W M W', W = [Y, theta S] (n x 2k for k = col stored pairs,
 * oldest first), M = [[-D, L'], [L, theta S'S]]^{-1}, D = diag(s_i'y_i), L_ij = s_i'y_j for i > j. */

#include "fo_dot_impl.h"

static FO_T FO_FN(bb_clamp)(FO_T v, FO_T lo, FO_T hi) {
    if (v < lo) return lo;
    if (v > hi) return hi;
    return v;
}

/* row i of W (2k entries, oldest pair first) */
static void FO_FN(bb_wrow)(const fo_lbfgsb_work *w, int64_t i, double *wb) {
    const fo_lbfgsb_state *st = w->st;
    const int64_t k = st->col, m = w->m, n = w->n, head = st->head;
    const FO_T *S = (const FO_T *)w->S, *Y = (const FO_T *)w->Y;
    const double theta = st->theta;
    for (int64_t j = 0; j < k; ++j) {
        const int64_t slot = (head + j) % m;
        wb[j] = (double)Y[slot * n + i];
        wb[k + j] = theta * (double)S[slot * n + i];
    }
}

double FO_FN(fo_lbfgsb_projgr)(const fo_lbfgsb_work *w) {
    const FO_T *x = (const FO_T *)w->x, *g = (const FO_T *)w->g;
    const FO_T *lo = (const FO_T *)w->lo, *hi = (const FO_T *)w->hi;
    double mx = 0.0;
    for (int64_t i = 0; i < w->n; ++i) {
        double gi = (double)g[i];
        if (gi < 0.0) {
            if (isfinite((double)hi[i])) { double t = (double)x[i] - (double)hi[i]; if (t > gi) gi = t; }
        } else if (gi > 0.0) {
            if (isfinite((double)lo[i])) { double t = (double)x[i] - (double)lo[i]; if (t < gi) gi = t; }
        }
        const double a = fabs(gi);
        if (a > mx || a != a) mx = a;
        if (mx != mx) return mx;   /* a NaN gradient propagates, as in scipy */
    }
    return mx;
}

/* small-matrix layout of w->mw */
#define BB_SS(w) ((w)->mw)
#define BB_SY(w) ((w)->mw + (w)->m * (w)->m)
#define BB_YY(w) ((w)->mw + 2 * (w)->m * (w)->m)
#define BB_T(w) ((w)->mw + 3 * (w)->m * (w)->m)
#define BB_TMP(w) ((w)->mw + 4 * (w)->m * (w)->m)
#define BB_M(w) ((w)->mw + 5 * (w)->m * (w)->m)
#define BB_N(w) ((w)->mw + 9 * (w)->m * (w)->m)
#define BB_N2(w) ((w)->mw + 13 * (w)->m * (w)->m)
#define BB_VEC(w, j) ((w)->mw + 17 * (w)->m * (w)->m + (j) * 2 * (w)->m)

/* M from S'S and S'Y (packed 2k x 2k into BB_M) through the Schur complement T = theta S'S + L D^-1 L':
 * M22 = T^-1, M12 = D^-1 L' T^-1 = M21', M11 = -D^-1 + D^-1 L' T^-1 L D^-1. Returns 1 if T is not SPD. */
static int FO_FN(bb_formm)(const fo_lbfgsb_work *w) {
    const int64_t m = w->m, k = w->st->col, k2 = 2 * k;
    const double theta = w->st->theta;
    const double *SS = BB_SS(w), *SY = BB_SY(w);
    double *T = BB_T(w), *A = BB_TMP(w), *M = BB_M(w);
    for (int64_t i = 0; i < k; ++i)
        if (!(SY[i * m + i] > 0.0)) return 1;
    for (int64_t i = 0; i < k; ++i)
        for (int64_t j = 0; j <= i; ++j) {
            double t = theta * SS[i * m + j];
            const int64_t pmax = j;           /* L_ip L_jp nonzero only for p < min(i, j) = j */
            for (int64_t p = 0; p < pmax; ++p) t += SY[i * m + p] * SY[j * m + p] / SY[p * m + p];
            T[i * k + j] = t;
            T[j * k + i] = t;
        }
    if (lb_chol_inverse(T, k, k, A)) return 1;
    /* A = D^-1 L' T^-1: A_ij = (1/D_i) sum_{p > i} L_pi Tinv_pj */
    for (int64_t i = 0; i < k; ++i)
        for (int64_t j = 0; j < k; ++j) {
            double t = 0.0;
            for (int64_t p = i + 1; p < k; ++p) t += SY[p * m + i] * T[p * k + j];
            A[i * k + j] = t / SY[i * m + i];
        }
    for (int64_t i = 0; i < k; ++i)
        for (int64_t j = 0; j < k; ++j) {
            /* (A L)_ij = sum_{p > j} A_ip L_pj */
            double t = 0.0;
            for (int64_t p = j + 1; p < k; ++p) t += A[i * k + p] * SY[p * m + j];
            M[i * k2 + j] = t / SY[j * m + j] - (i == j ? 1.0 / SY[i * m + i] : 0.0);
            M[i * k2 + k + j] = A[i * k + j];
            M[(k + j) * k2 + i] = A[i * k + j];
            M[(k + i) * k2 + k + j] = T[i * k + j];
        }
    return 0;
}

/* min-heap of variable indices keyed by tb */
static void FO_FN(bb_sift)(int64_t *hp, int64_t nh, int64_t i, const double *tb) {
    for (;;) {
        int64_t l = 2 * i + 1, r = l + 1, s = i;
        if (l < nh && tb[hp[l]] < tb[hp[s]]) s = l;
        if (r < nh && tb[hp[r]] < tb[hp[s]]) s = r;
        if (s == i) return;
        int64_t t = hp[i]; hp[i] = hp[s]; hp[s] = t;
        i = s;
    }
}

/* The generalized Cauchy point: z = x(t*) on the path P(x - t g), t* the first local minimiser of the
 * model; marks where[] and leaves c = W'(z - x) in BB_VEC(w, 1) (section 4 of Byrd et al.). */
static void FO_FN(bb_gcp)(const fo_lbfgsb_work *w, const fo_lbfgsb_hyper *h) {
    fo_lbfgsb_state *st = w->st;
    const int64_t n = w->n, m = w->m, k = st->col, k2 = 2 * k;
    const FO_T *x = (const FO_T *)w->x, *g = (const FO_T *)w->g;
    const FO_T *lo = (const FO_T *)w->lo, *hi = (const FO_T *)w->hi;
    FO_T *z = (FO_T *)w->z, *d = (FO_T *)w->d;
    const FO_T *S = (const FO_T *)w->S, *Y = (const FO_T *)w->Y;
    double *tb = w->tb, *M = BB_M(w);
    int64_t *where = w->iw, *hp = w->iw + 2 * n;
    double *p = BB_VEC(w, 0), *c = BB_VEC(w, 1), *Mp = BB_VEC(w, 2), *Mc = BB_VEC(w, 3);
    double *wb = BB_VEC(w, 4), *Mwb = BB_VEC(w, 5);
    const double theta = st->theta;
    int64_t nh = 0;
    double f1 = 0.0;
    for (int64_t i = 0; i < n; ++i) {
        z[i] = x[i];
        if (lo[i] == hi[i]) { where[i] = LB_FIXED; d[i] = 0; continue; }
        const double gi = (double)g[i];
        double t = INFINITY;
        if (gi < 0.0 && isfinite((double)hi[i])) t = ((double)x[i] - (double)hi[i]) / gi;
        else if (gi > 0.0 && isfinite((double)lo[i])) t = ((double)x[i] - (double)lo[i]) / gi;
        if (t <= 0.0) { where[i] = LB_AT_BOUND; d[i] = 0; continue; }
        where[i] = LB_FREE;
        d[i] = -g[i];
        f1 -= gi * gi;
        if (t < INFINITY) { tb[i] = t; hp[nh++] = i; }
    }
    for (int64_t j = 0; j < k2; ++j) { c[j] = 0.0; Mc[j] = 0.0; p[j] = 0.0; }
    st->nbreak = 0;
    if (f1 == 0.0) return;                 /* no descent along the path: z = x */
    for (int64_t j = 0; j < k; ++j) {
        const int64_t slot = (st->head + j) % m;
        p[j] = FO_FN(fo_dot)(Y + slot * n, d, n);
        p[k + j] = theta * FO_FN(fo_dot)(S + slot * n, d, n);
    }
    lb_matvec(M, p, Mp, k2);
    double f2 = -theta * f1 - lb_vdot(p, Mp, k2);
    const double f2_org = f2;
    double dtm = -f1 / f2, tsum = 0.0;
    for (int64_t i = nh / 2 - 1; i >= 0; --i) FO_FN(bb_sift)(hp, nh, i, tb);
    while (nh > 0) {
        const int64_t b = hp[0];
        const double dt = tb[b] - tsum;
        if (dtm < dt) break;
        hp[0] = hp[--nh];
        FO_FN(bb_sift)(hp, nh, 0, tb);
        /* move to breakpoint b: variable b reaches its bound and leaves the path */
        const FO_T bound = d[b] > 0 ? hi[b] : lo[b];
        const double zb = (double)bound - (double)x[b], gb = (double)g[b];
        z[b] = bound;
        where[b] = LB_AT_BOUND;
        st->nbreak += 1;
        tsum = tb[b];
        for (int64_t j = 0; j < k2; ++j) { c[j] += dt * p[j]; Mc[j] += dt * Mp[j]; }
        f1 += dt * f2 + gb * gb + theta * gb * zb;
        f2 -= theta * gb * gb;
        if (k > 0) {
            FO_FN(bb_wrow)(w, b, wb);
            lb_matvec(M, wb, Mwb, k2);
            f1 -= gb * lb_vdot(wb, Mc, k2);
            f2 -= 2.0 * gb * lb_vdot(wb, Mp, k2) + gb * gb * lb_vdot(wb, Mwb, k2);
            for (int64_t j = 0; j < k2; ++j) { p[j] += gb * wb[j]; Mp[j] += gb * Mwb[j]; }
        }
        d[b] = 0;
        if (f2 < h->eps * f2_org) f2 = h->eps * f2_org;
        if (f1 >= 0.0) { dtm = 0.0; break; }
        dtm = -f1 / f2;
    }
    if (!(dtm > 0.0)) dtm = 0.0;
    tsum += dtm;
    for (int64_t i = 0; i < n; ++i)
        if (where[i] == LB_FREE && d[i] != 0) z[i] = FO_FN(bb_clamp)((FO_T)((double)x[i] + tsum * (double)d[i]), lo[i], hi[i]);
    for (int64_t j = 0; j < k2; ++j) c[j] += dtm * p[j];
}

/* Minimise the model over the free variables from the GCP z (direct primal method, Byrd et al. section 5.1:
 * dhat = -Bhat^-1 rhat with the Sherman-Morrison-Woodbury form of the reduced B), then the Morales-Nocedal
 * rule: the projection of z + dhat onto the box if that is a descent direction from x, else z + alpha dhat
 * with alpha <= 1 the largest feasible step. Leaves the result in z. Returns 1 on a singular system. */
static int FO_FN(bb_subsm)(const fo_lbfgsb_work *w) {
    fo_lbfgsb_state *st = w->st;
    const int64_t n = w->n, m = w->m, k = st->col, k2 = 2 * k, nfree = st->nfree;
    if (k == 0 || nfree == 0) return 0;
    const FO_T *x = (const FO_T *)w->x, *g = (const FO_T *)w->g;
    const FO_T *lo = (const FO_T *)w->lo, *hi = (const FO_T *)w->hi;
    FO_T *z = (FO_T *)w->z;
    const int64_t *where = w->iw, *fl = w->iw + n;
    double *tb = w->tb, *M = BB_M(w), *N = BB_N(w), *N2 = BB_N2(w);
    double *c = BB_VEC(w, 1), *Mc = BB_VEC(w, 3), *wb = BB_VEC(w, 4), *v = BB_VEC(w, 5), *u = BB_VEC(w, 6);
    const double theta = st->theta;
    lb_matvec(M, c, Mc, k2);
    for (int64_t j = 0; j < k2; ++j) v[j] = 0.0;
    for (int64_t q = 0; q < nfree; ++q) {
        const int64_t i = fl[q];
        FO_FN(bb_wrow)(w, i, wb);
        const double r = (double)g[i] + theta * ((double)z[i] - (double)x[i]) - lb_vdot(wb, Mc, k2);
        tb[i] = r;
        for (int64_t j = 0; j < k2; ++j) v[j] += r * wb[j];
    }
    lb_matvec(M, v, u, k2);
    /* W'ZZ'W: summed over the free rows, or W'W (from the small matrices) minus the other rows */
    if (2 * nfree <= n) {
        for (int64_t j = 0; j < k2 * k2; ++j) N2[j] = 0.0;
        for (int64_t q = 0; q < nfree; ++q) {
            FO_FN(bb_wrow)(w, fl[q], wb);
            for (int64_t a = 0; a < k2; ++a)
                for (int64_t b = 0; b < k2; ++b) N2[a * k2 + b] += wb[a] * wb[b];
        }
    } else {
        const double *SS = BB_SS(w), *SY = BB_SY(w), *YY = BB_YY(w);
        for (int64_t a = 0; a < k; ++a)
            for (int64_t b = 0; b < k; ++b) {
                N2[a * k2 + b] = YY[a * m + b];
                N2[a * k2 + k + b] = theta * SY[b * m + a];        /* y_a's_b */
                N2[(k + a) * k2 + b] = theta * SY[a * m + b];      /* s_a'y_b */
                N2[(k + a) * k2 + k + b] = theta * theta * SS[a * m + b];
            }
        for (int64_t i = 0; i < n; ++i) {
            if (where[i] == LB_FREE) continue;
            FO_FN(bb_wrow)(w, i, wb);
            for (int64_t a = 0; a < k2; ++a)
                for (int64_t b = 0; b < k2; ++b) N2[a * k2 + b] -= wb[a] * wb[b];
        }
    }
    /* N = I - (1/theta) M W'ZZ'W; solve N u = M W'Z rhat */
    for (int64_t a = 0; a < k2; ++a)
        for (int64_t b = 0; b < k2; ++b) {
            double t = 0.0;
            for (int64_t q = 0; q < k2; ++q) t += M[a * k2 + q] * N2[q * k2 + b];
            N[a * k2 + b] = (a == b ? 1.0 : 0.0) - t / theta;
        }
    if (lb_solve(N, u, k2)) return 1;
    int projected = 0;
    for (int64_t q = 0; q < nfree; ++q) {
        const int64_t i = fl[q];
        FO_FN(bb_wrow)(w, i, wb);
        const double dh = -tb[i] / theta - lb_vdot(wb, u, k2) / (theta * theta);
        if (!isfinite(dh)) return 1;
        tb[i] = dh;
        const double xb = (double)z[i] + dh;
        if (xb < (double)lo[i] || xb > (double)hi[i]) projected = 1;
    }
    if (!projected) {
        for (int64_t q = 0; q < nfree; ++q) { const int64_t i = fl[q]; z[i] = FO_FN(bb_clamp)((FO_T)((double)z[i] + tb[i]), lo[i], hi[i]); }
        return 0;
    }
    /* is the projected point a descent direction from x? (x_p - x)'g over all variables */
    double ddp = 0.0;
    for (int64_t i = 0; i < n; ++i) {
        double xp = (double)z[i];
        if (where[i] == LB_FREE) {
            xp += tb[i];
            if (xp < (double)lo[i]) xp = (double)lo[i];
            if (xp > (double)hi[i]) xp = (double)hi[i];
        }
        ddp += (xp - (double)x[i]) * (double)g[i];
    }
    if (ddp <= 0.0) {
        for (int64_t q = 0; q < nfree; ++q) { const int64_t i = fl[q]; z[i] = FO_FN(bb_clamp)((FO_T)((double)z[i] + tb[i]), lo[i], hi[i]); }
        return 0;
    }
    double alpha = 1.0;
    for (int64_t q = 0; q < nfree; ++q) {
        const int64_t i = fl[q];
        const double dh = tb[i];
        double a = alpha;
        if (dh < 0.0 && isfinite((double)lo[i])) a = ((double)lo[i] - (double)z[i]) / dh;
        else if (dh > 0.0 && isfinite((double)hi[i])) a = ((double)hi[i] - (double)z[i]) / dh;
        if (a < alpha) alpha = a;
    }
    if (alpha < 0.0) alpha = 0.0;
    for (int64_t q = 0; q < nfree; ++q) { const int64_t i = fl[q]; z[i] = FO_FN(bb_clamp)((FO_T)((double)z[i] + alpha * tb[i]), lo[i], hi[i]); }
    return 0;
}

/* Store s = x - x0, y = g - g0 unless y's <= eps (-g0's); update S'S, S'Y, Y'Y and theta. */
static void FO_FN(bb_update)(const fo_lbfgsb_work *w, const fo_lbfgsb_hyper *h) {
    fo_lbfgsb_state *st = w->st;
    const int64_t n = w->n, m = w->m;
    const FO_T *x = (const FO_T *)w->x, *g = (const FO_T *)w->g, *x0 = (const FO_T *)w->x0, *g0 = (const FO_T *)w->g0;
    double ys = 0.0, gs = 0.0;
    for (int64_t i = 0; i < n; ++i) {
        const FO_T si = x[i] - x0[i], yi = g[i] - g0[i];
        ys += (double)si * (double)yi;
        gs += (double)g0[i] * (double)si;
    }
    if (!(ys > h->eps * (-gs)) || !(ys > 0.0) || !isfinite(ys)) { st->nskip += 1; return; }
    double *SS = BB_SS(w), *SY = BB_SY(w), *YY = BB_YY(w);
    int64_t slot;
    if (st->col < m) {
        slot = st->col;
        st->col += 1;
    } else {
        slot = st->head;
        st->head = (st->head + 1) % m;
        for (int64_t i = 0; i + 1 < m; ++i)
            for (int64_t j = 0; j + 1 < m; ++j) {
                SS[i * m + j] = SS[(i + 1) * m + j + 1];
                SY[i * m + j] = SY[(i + 1) * m + j + 1];
                YY[i * m + j] = YY[(i + 1) * m + j + 1];
            }
    }
    FO_T *S = (FO_T *)w->S + slot * n, *Y = (FO_T *)w->Y + slot * n;
    for (int64_t i = 0; i < n; ++i) { S[i] = x[i] - x0[i]; Y[i] = g[i] - g0[i]; }
    const int64_t k = st->col, j = k - 1;
    for (int64_t i = 0; i < k; ++i) {
        const int64_t si = (st->head + i) % m;
        const FO_T *Si = (const FO_T *)w->S + si * n, *Yi = (const FO_T *)w->Y + si * n;
        const double ss = FO_FN(fo_dot)(Si, S, n), yy = FO_FN(fo_dot)(Yi, Y, n);
        SS[i * m + j] = ss; SS[j * m + i] = ss;
        YY[i * m + j] = yy; YY[j * m + i] = yy;
        SY[i * m + j] = FO_FN(fo_dot)(Si, Y, n);
        SY[j * m + i] = FO_FN(fo_dot)(S, Yi, n);
    }
    st->theta = YY[j * m + j] / SY[j * m + j];
}

static void FO_FN(bb_refresh)(fo_lbfgsb_state *st) {
    st->col = 0;
    st->head = 0;
    st->theta = 1.0;
    st->nrefresh += 1;
}

static int FO_FN(bb_check)(const fo_lbfgsb_work *w, const fo_lbfgsb_hyper *h) {
    if (!w || !h || !w->st || w->n < 0 || w->m < 1 || !w->mw) return FO_LBFGSB_ERR_ARG;
    if (w->n > 0 && (!w->x || !w->g || !w->lo || !w->hi || !w->x0 || !w->g0 || !w->d || !w->z || !w->S || !w->Y
                     || !w->tb || !w->iw))
        return FO_LBFGSB_ERR_ARG;
    if (h->max_ls < 1 || h->max_iter < 0 || h->max_fun < 0 || !(h->ftol >= 0.0) || !(h->gtol >= 0.0)
        || !(h->eps > 0.0) || !(h->ls_ftol > 0.0) || !(h->ls_gtol > h->ls_ftol) || !(h->ls_xtol >= 0.0)
        || (!h->line_search && !(h->lr > 0.0)))
        return FO_LBFGSB_ERR_ARG;
    const fo_lbfgsb_state *st = w->st;
    if (st->col < 0 || st->col > w->m || st->head < 0 || st->head >= w->m || (st->col < w->m && st->head != 0))
        return FO_LBFGSB_ERR_STATE;
    if (st->phase < LB_IDLE || st->phase > LB_AFTER) return FO_LBFGSB_ERR_STATE;
    if (st->col > 0 && !(st->theta > 0.0)) return FO_LBFGSB_ERR_STATE;
    return 0;
}

int FO_FN(fo_lbfgsb_run)(const fo_lbfgsb_work *w, const fo_lbfgsb_hyper *h, double f_in) {
    int rc = FO_FN(bb_check)(w, h);
    if (rc) return rc;
    fo_lbfgsb_state *st = w->st;
    const int64_t n = w->n;
    FO_T *x = (FO_T *)w->x, *g = (FO_T *)w->g, *x0 = (FO_T *)w->x0, *g0 = (FO_T *)w->g0;
    FO_T *d = (FO_T *)w->d, *z = (FO_T *)w->z;
    const FO_T *lo = (const FO_T *)w->lo, *hi = (const FO_T *)w->hi;
    int64_t *where = w->iw, *fl = w->iw + n;
    int kind;

    if (st->phase == LB_START || st->phase == LB_SEARCH) {   /* f_in is an evaluation the core asked for */
        st->nfev += 1;
        st->loc_fev += 1;
    }
    switch (st->phase) {
    case LB_IDLE: goto start;
    case LB_START: goto got_start;
    case LB_SEARCH: goto got_search;
    case LB_AFTER: goto after_iter;
    default: return FO_LBFGSB_ERR_STATE;
    }

start:
    st->loc_iter = 0;
    st->loc_fev = 0;
    st->constrained = 0;
    st->boxed = 1;
    for (int64_t i = 0; i < n; ++i) {
        const int lf = isfinite((double)lo[i]), hf = isfinite((double)hi[i]);
        if (lf || hf) st->constrained = 1;
        if (!(lf && hf)) st->boxed = 0;
        x[i] = FO_FN(bb_clamp)(x[i], lo[i], hi[i]);
    }
    if (st->col == 0) st->theta = 1.0;
    st->phase = LB_START;
    return FO_LBFGSB_EVAL;

got_start:
    st->f = f_in;
    st->sbgnrm = FO_FN(fo_lbfgsb_projgr)(w);
    if (!isfinite(f_in) || !isfinite(st->sbgnrm)) { kind = FO_LBFGSB_NONFINITE; goto stop; }
    if (st->sbgnrm <= h->gtol) { kind = FO_LBFGSB_CONV_PGTOL; goto stop; }
    if (st->loc_iter >= h->max_iter) { kind = FO_LBFGSB_MAX_ITER; goto stop; }

iter_top:
    /* 1. the compact factor M, 2. the GCP (skipped without bounds once B has curvature), 3. the subspace step */
    if (st->col > 0 && FO_FN(bb_formm)(w)) { FO_FN(bb_refresh)(st); goto iter_top; }
    if (!st->constrained && st->col > 0) {
        for (int64_t i = 0; i < n; ++i) { z[i] = x[i]; where[i] = LB_FREE; }
        for (int64_t j = 0; j < 2 * st->col; ++j) BB_VEC(w, 1)[j] = 0.0;
        st->nbreak = 0;
    } else {
        FO_FN(bb_gcp)(w, h);
    }
    {
        int64_t nf = 0;
        for (int64_t i = 0; i < n; ++i)
            if (where[i] == LB_FREE) fl[nf++] = i;
        st->nfree = nf;
    }
    if (FO_FN(bb_subsm)(w)) { FO_FN(bb_refresh)(st); goto iter_top; }
    {
        double gd = 0.0, dd = 0.0;
        for (int64_t i = 0; i < n; ++i) {
            d[i] = z[i] - x[i];
            gd += (double)g[i] * (double)d[i];
            dd += (double)d[i] * (double)d[i];
        }
        if (!(gd < 0.0)) {
            /* not a descent direction (rounding, or a poor memory): start again from steepest descent */
            if (st->col > 0) { FO_FN(bb_refresh)(st); goto iter_top; }
            kind = FO_LBFGSB_ABNORMAL; goto stop;
        }
        st->gd0 = gd;
        st->dnorm = sqrt(dd);
    }
    memcpy(x0, x, (size_t)n * sizeof(FO_T));
    memcpy(g0, g, (size_t)n * sizeof(FO_T));
    st->f0 = st->f;
    /* the largest step that keeps x + t d in the box (>= 1 up to rounding, since z is feasible) */
    if (!st->constrained) {
        st->stpmax = 1e10;
    } else if (st->nit == 0) {
        st->stpmax = 1.0;
    } else {
        double smax = 1e10;
        for (int64_t i = 0; i < n; ++i) {
            const double di = (double)d[i];
            double a = smax;
            if (di < 0.0 && isfinite((double)lo[i])) a = ((double)lo[i] - (double)x[i]) / di;
            else if (di > 0.0 && isfinite((double)hi[i])) a = ((double)hi[i] - (double)x[i]) / di;
            if (a < smax) smax = a;
        }
        st->stpmax = smax > 0.0 ? smax : 0.0;
        if (!(st->stpmax > 0.0)) {
            /* no room along d (rounding put x on a bound d points through): do not evaluate x again */
            if (st->col > 0) { FO_FN(bb_refresh)(st); goto iter_top; }
            kind = FO_LBFGSB_ABNORMAL; goto stop;
        }
    }
    if (!h->line_search) st->stp = h->lr;
    else if (st->nit == 0 && !st->boxed) st->stp = 1.0 / st->dnorm;
    else st->stp = 1.0;
    if (st->stp > st->stpmax) st->stp = st->stpmax;
    lb_mt_init(st);
    st->ls_iter = 0;
    st->ls_nonfinite = 0;

trial:
    if (st->stp == 1.0) {
        memcpy(x, z, (size_t)n * sizeof(FO_T));
    } else {
        const FO_T t = (FO_T)st->stp;
        for (int64_t i = 0; i < n; ++i) x[i] = FO_FN(bb_clamp)(x0[i] + t * d[i], lo[i], hi[i]);
    }
    st->phase = LB_SEARCH;
    return FO_LBFGSB_EVAL;

got_search:
    st->ls_iter += 1;
    {
        const double gd = FO_FN(fo_dot)(g, d, n);
        if (!isfinite(f_in) || !isfinite(gd)) {
            /* no value here: back off toward the best trial and never extrapolate past this one again */
            st->ls_nonfinite = 1;
            if (st->ls_iter >= h->max_ls) goto ls_fail;
            st->stp = st->ls_stx + 0.5 * (st->stp - st->ls_stx);
            st->stpmax = st->stp;
            if (st->ls_stmax > st->stp) st->ls_stmax = st->stp;
            if (!(st->stp > st->ls_stx)) goto ls_fail;
            goto trial;
        }
        if (h->line_search) {
            const int r = lb_mt_next(st, h, f_in, gd);
            if (r == 2 || (r == 0 && st->ls_iter >= h->max_ls)) goto ls_fail;
            if (r == 0) goto trial;
        }
        st->f_old = st->f0;
        st->f = f_in;
    }
    FO_FN(bb_update)(w, h);
    st->nit += 1;
    st->loc_iter += 1;
    st->sbgnrm = FO_FN(fo_lbfgsb_projgr)(w);
    if (h->report_iter) { st->phase = LB_AFTER; return FO_LBFGSB_ITER; }

after_iter:
    if (st->sbgnrm <= h->gtol) { kind = FO_LBFGSB_CONV_PGTOL; goto stop; }
    {
        const double f1 = st->f, f0 = st->f_old;
        double sc = fabs(f0) > fabs(f1) ? fabs(f0) : fabs(f1);
        if (sc < 1.0) sc = 1.0;
        if (f0 - f1 <= h->ftol * sc) { kind = FO_LBFGSB_CONV_FTOL; goto stop; }
        if (h->fabs_tol > 0.0 && fabs(f0 - f1) < h->fabs_tol) { kind = FO_LBFGSB_CONV_FABS; goto stop; }
    }
    if (h->xabs_tol > 0.0) {
        double mx = 0.0;
        for (int64_t i = 0; i < n; ++i) { const double a = fabs((double)x[i] - (double)x0[i]); if (a > mx) mx = a; }
        if (mx <= h->xabs_tol) { kind = FO_LBFGSB_CONV_XABS; goto stop; }
    }
    if (st->loc_iter >= h->max_iter) { kind = FO_LBFGSB_MAX_ITER; goto stop; }
    if (st->loc_fev > h->max_fun) { kind = FO_LBFGSB_MAX_FUN; goto stop; }
    goto iter_top;

ls_fail:
    /* back to the line-search origin; retry from steepest descent once the memory is not empty */
    memcpy(x, x0, (size_t)n * sizeof(FO_T));
    memcpy(g, g0, (size_t)n * sizeof(FO_T));
    st->f = st->f0;
    if (st->col > 0) { FO_FN(bb_refresh)(st); goto iter_top; }
    kind = st->ls_nonfinite ? FO_LBFGSB_NONFINITE : FO_LBFGSB_ABNORMAL;

stop:
    st->status = kind;
    st->phase = LB_IDLE;
    return kind;
}

#undef BB_SS
#undef BB_SY
#undef BB_YY
#undef BB_T
#undef BB_TMP
#undef BB_M
#undef BB_N
#undef BB_N2
#undef BB_VEC
