/* lbfgs_impl.h — the L-BFGS state machine, written once in terms of FO_T and instantiated by lbfgs.c for
 * float (FO_SFX = f32) and double (f64) through fo_instantiate.h.  See fo_lbfgs.h for the calling protocol.
 *
 * Mirrors torch/optim/lbfgs.py (LBFGS.step and _strong_wolfe, ported from minFunc/lswolfe.lua): vector
 * arithmetic in FO_T with one rounding per operation as torch does it, scalars (dot products, step lengths,
 * Wolfe tests) in double.  Resume points are the phases below; every scalar that must survive a return
 * lives in w->sc / w->iv, so the caller can save and restore the whole machine. */


/* sum_i a_i b_i in double, four fixed accumulators (order independent of CPU and thread count). */
static double FO_FN(lb_dot)(const FO_T *FO_RESTRICT a, const FO_T *FO_RESTRICT b, int64_t n) {
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

/* ys = (g - prev_g) . (d * t) and yy = |g - prev_g|^2, rounding y and s to FO_T first as torch does;
 * nothing is written. */
static double FO_FN(lb_ys)(const FO_T *g, const FO_T *pg, const FO_T *d, FO_T t, int64_t n, double *yy) {
    double s0 = 0.0, s1 = 0.0, q0 = 0.0, q1 = 0.0;
    int64_t i = 0;
    for (; i + 2 <= n; i += 2) {
        FO_T y0 = g[i] - pg[i], y1 = g[i + 1] - pg[i + 1];
        FO_T z0 = d[i] * t, z1 = d[i + 1] * t;
        s0 += (double)y0 * (double)z0;
        s1 += (double)y1 * (double)z1;
        q0 += (double)y0 * (double)y0;
        q1 += (double)y1 * (double)y1;
    }
    for (; i < n; ++i) {
        FO_T y0 = g[i] - pg[i], z0 = d[i] * t;
        s0 += (double)y0 * (double)z0;
        q0 += (double)y0 * (double)y0;
    }
    *yy = q0 + q1;
    return s0 + s1;
}

static double FO_FN(lb_absmax)(const FO_T *a, int64_t n) {
    double m = 0.0;
    for (int64_t i = 0; i < n; ++i) {
        double v = fabs((double)a[i]);
        if (v > m || v != v) m = v;      /* NaN propagates like torch's max */
        if (m != m) return m;
    }
    return m;
}

static double FO_FN(lb_abssum)(const FO_T *a, int64_t n) {
    double s0 = 0.0, s1 = 0.0, s2 = 0.0, s3 = 0.0;
    int64_t i = 0;
    for (; i + 4 <= n; i += 4) {
        s0 += fabs((double)a[i]); s1 += fabs((double)a[i + 1]);
        s2 += fabs((double)a[i + 2]); s3 += fabs((double)a[i + 3]);
    }
    for (; i < n; ++i) s0 += fabs((double)a[i]);
    return (s0 + s1) + (s2 + s3);
}

/* max_i |d_i t| with the product rounded to FO_T (torch: d.mul(t).abs().max()) */
static double FO_FN(lb_absmax_scaled)(const FO_T *d, FO_T t, int64_t n) {
    double m = 0.0;
    for (int64_t i = 0; i < n; ++i) {
        FO_T p = d[i] * t;
        double v = fabs((double)p);
        if (v > m || v != v) m = v;
        if (m != m) return m;
    }
    return m;
}

/* x = x0 + t d (torch: p.add_(d, alpha=t) on a copy of x0) */
static void FO_FN(lb_step_from)(FO_T *FO_RESTRICT x, const FO_T *FO_RESTRICT x0, const FO_T *FO_RESTRICT d,
                                FO_T t, int64_t n) {
    for (int64_t i = 0; i < n; ++i) x[i] = x0[i] + t * d[i];
}

static void FO_FN(lb_copy)(FO_T *FO_RESTRICT dst, const FO_T *FO_RESTRICT src, int64_t n) {
    if (n > 0) memcpy(dst, src, (size_t)n * sizeof(FO_T));
}

/* d = -H g by the two-loop recursion over the ring (torch's "collapsed" single-buffer version). */
static void FO_FN(lb_two_loop)(const fo_lbfgs_work *w) {
    const int64_t n = w->n, m = w->m;
    const int64_t len = w->iv[FO_LBFGS_I_HIST_LEN], start = w->iv[FO_LBFGS_I_HIST_START];
    const FO_T *g = (const FO_T *)w->g;
    FO_T *q = (FO_T *)w->d;
    for (int64_t j = 0; j < n; ++j) q[j] = -g[j];
    for (int64_t i = len - 1; i >= 0; --i) {
        const int64_t k = (start + i) % m;
        const FO_T *s = (const FO_T *)w->old_stps[k], *y = (const FO_T *)w->old_dirs[k];
        const double al = FO_FN(lb_dot)(s, q, n) * w->ro[k];
        w->al[i] = al;
        const FO_T a = (FO_T)(-al);
        for (int64_t j = 0; j < n; ++j) q[j] = q[j] + a * y[j];
    }
    const FO_T hd = (FO_T)w->sc[FO_LBFGS_S_H_DIAG];
    for (int64_t j = 0; j < n; ++j) q[j] = q[j] * hd;
    for (int64_t i = 0; i < len; ++i) {
        const int64_t k = (start + i) % m;
        const FO_T *s = (const FO_T *)w->old_stps[k], *y = (const FO_T *)w->old_dirs[k];
        const double be = FO_FN(lb_dot)(y, q, n) * w->ro[k];
        const FO_T a = (FO_T)(w->al[i] - be);
        for (int64_t j = 0; j < n; ++j) q[j] = q[j] + a * s[j];
    }
}

static int FO_FN(lb_check)(const fo_lbfgs_work *w, const fo_lbfgs_hyper *h) {
    if (!w || w->n < 0 || w->m < 1 || !w->sc || !w->iv || !w->ro || !w->al || !w->old_dirs || !w->old_stps)
        return FO_LBFGS_ERR_ARG;
    if (w->n > 0 && (!w->x || !w->g || !w->d || !w->x0 || !w->prev_g || !w->gb0 || !w->gb1))
        return FO_LBFGS_ERR_ARG;
    if (h && !h->line_search && w->n > 0 && (!w->xbest || !w->gbest)) return FO_LBFGS_ERR_ARG;
    const int64_t len = w->iv[FO_LBFGS_I_HIST_LEN], start = w->iv[FO_LBFGS_I_HIST_START];
    if (len < 0 || len > w->m || start < 0 || start >= w->m || (len < w->m && start != 0)) return FO_LBFGS_ERR_STATE;
    if (w->iv[FO_LBFGS_I_PHASE] < P_IDLE || w->iv[FO_LBFGS_I_PHASE] > P_AFTER) return FO_LBFGS_ERR_STATE;
    /* every live slot must exist, and the next one to fill before a step may need it */
    for (int64_t k = 0; k < len; ++k)
        if (!w->old_dirs[k] || !w->old_stps[k]) return FO_LBFGS_ERR_ARG;
    if (h && len < w->m && (!w->old_dirs[len] || !w->old_stps[len])) return FO_LBFGS_NEED_SLOT;
    return 0;
}

int FO_FN(fo_lbfgs_direction)(const fo_lbfgs_work *w) {
    int rc = FO_FN(lb_check)(w, NULL);
    if (rc) return rc;
    FO_FN(lb_two_loop)(w);
    return 0;
}

int FO_FN(fo_lbfgs_run)(const fo_lbfgs_work *w, const fo_lbfgs_hyper *h, double f_in) {
    int rc = FO_FN(lb_check)(w, h);
    if (rc) return rc;
    if (!h || !(h->lr >= 0.0) || h->max_ls < 0) return FO_LBFGS_ERR_ARG;
    const int64_t n = w->n, m = w->m;
    double *sc = w->sc;
    int64_t *iv = w->iv;
    FO_T *x = (FO_T *)w->x, *g = (FO_T *)w->g, *d = (FO_T *)w->d, *x0 = (FO_T *)w->x0;
    FO_T *pg = (FO_T *)w->prev_g, *gb[2] = {(FO_T *)w->gb0, (FO_T *)w->gb1};
    FO_T *xbest = (FO_T *)w->xbest, *gbest = (FO_T *)w->gbest;
    double *B = sc + FO_LBFGS_S_B0, *BF = sc + FO_LBFGS_S_BF0, *BGTD = sc + FO_LBFGS_S_BGTD0;
    const double c1 = h->c1, c2 = h->c2;
    double t, f_new, gtd_new;
    int kind;

    switch (iv[FO_LBFGS_I_PHASE]) {
    case P_IDLE: goto start;
    case P_START: goto got_start;
    case P_FIXED: goto got_fixed;
    case P_BRACKET: goto got_bracket;
    case P_ZOOM: goto got_zoom;
    case P_AFTER: goto after_iter;
    default: return FO_LBFGS_ERR_STATE;
    }

start:
    iv[FO_LBFGS_I_CUR_EVALS] = 0;
    iv[FO_LBFGS_I_LOC_ITER] = 0;
    iv[FO_LBFGS_I_RETRIED] = 0;
    iv[FO_LBFGS_I_HAVE_BEST] = 0;
    iv[FO_LBFGS_I_PHASE] = P_START;
    return FO_LBFGS_EVAL;

got_start:
    iv[FO_LBFGS_I_CUR_EVALS] += 1;
    iv[FO_LBFGS_I_FUNC_EVALS] += 1;
    sc[FO_LBFGS_S_F] = f_in;
    if (!isfinite(f_in)) { kind = FO_LBFGS_NONFINITE; goto stop_with; }
    if (!h->line_search) {
        FO_FN(lb_copy)(xbest, x, n); FO_FN(lb_copy)(gbest, g, n);
        sc[FO_LBFGS_S_FBEST] = f_in; iv[FO_LBFGS_I_HAVE_BEST] = 1;
    }
    if (FO_FN(lb_absmax)(g, n) <= h->tolerance_grad) { kind = FO_LBFGS_CONV_GRAD; goto stop_with; }

iter_top:
    if (iv[FO_LBFGS_I_LOC_ITER] >= h->max_iter) { kind = FO_LBFGS_MAX_ITER; goto stop_with; }
    iv[FO_LBFGS_I_LOC_ITER] += 1;
    iv[FO_LBFGS_I_N_ITER] += 1;
    if (iv[FO_LBFGS_I_FRESH]) {
        for (int64_t j = 0; j < n; ++j) d[j] = -g[j];
        iv[FO_LBFGS_I_HIST_LEN] = 0;
        iv[FO_LBFGS_I_HIST_START] = 0;
        sc[FO_LBFGS_S_H_DIAG] = 1.0;
    } else {
        /* memory update with y = g - prev_g, s = t d, only when the curvature y.s is positive enough */
        const FO_T tt = (FO_T)sc[FO_LBFGS_S_T];
        double yy;
        const double ys = FO_FN(lb_ys)(g, pg, d, tt, n, &yy);
        if (ys > h->curv_abs && ys > h->curv_rel * yy) {
            int64_t len = iv[FO_LBFGS_I_HIST_LEN], st = iv[FO_LBFGS_I_HIST_START], k;
            if (len == m) { k = st; iv[FO_LBFGS_I_HIST_START] = (st + 1) % m; }
            else { k = len; iv[FO_LBFGS_I_HIST_LEN] = len + 1; }
            FO_T *y = (FO_T *)w->old_dirs[k], *s = (FO_T *)w->old_stps[k];
            for (int64_t j = 0; j < n; ++j) { y[j] = g[j] - pg[j]; s[j] = d[j] * tt; }
            w->ro[k] = 1.0 / ys;
            sc[FO_LBFGS_S_H_DIAG] = ys / FO_FN(lb_dot)(y, y, n);
        }
        FO_FN(lb_two_loop)(w);
    }
    FO_FN(lb_copy)(pg, g, n);
    sc[FO_LBFGS_S_PREV_LOSS] = sc[FO_LBFGS_S_F];
    if (iv[FO_LBFGS_I_FRESH]) {
        double inv = 1.0 / FO_FN(lb_abssum)(g, n);
        t = (inv < 1.0 ? inv : 1.0) * h->lr;      /* torch: min(1., 1./|g|_1) * lr */
    } else {
        t = h->lr;
    }
    sc[FO_LBFGS_S_T] = t;
    sc[FO_LBFGS_S_GTD] = FO_FN(lb_dot)(g, d, n);
    if (!(sc[FO_LBFGS_S_GTD] <= -h->tolerance_change)) {
        if (h->restart_bad_dir && !iv[FO_LBFGS_I_FRESH] && !isnan(sc[FO_LBFGS_S_GTD])) {
            /* not a descent direction: forget the memory and take steepest descent (not an iteration) */
            iv[FO_LBFGS_I_LOC_ITER] -= 1; iv[FO_LBFGS_I_N_ITER] -= 1;
            iv[FO_LBFGS_I_FRESH] = 1;
            goto iter_top;
        }
        kind = FO_LBFGS_CONV_GTD; goto stop_with;
    }

    if (h->line_search) {
        /* strong-Wolfe line search (torch's _strong_wolfe), origin x0 = x, value f0, slope gtd */
        FO_FN(lb_copy)(x0, x, n);
        sc[FO_LBFGS_S_F0] = sc[FO_LBFGS_S_F];
        sc[FO_LBFGS_S_D_NORM] = FO_FN(lb_absmax)(d, n);
        int64_t max_ls = h->max_eval - iv[FO_LBFGS_I_CUR_EVALS];
        if (max_ls > h->max_ls) max_ls = h->max_ls;
        iv[FO_LBFGS_I_MAX_LS] = max_ls;
        iv[FO_LBFGS_I_LS_ITER] = 0;
        iv[FO_LBFGS_I_LS_EVALS] = 0;
        iv[FO_LBFGS_I_DONE] = 0;
        sc[FO_LBFGS_S_T_PREV] = 0.0;
        sc[FO_LBFGS_S_F_PREV] = sc[FO_LBFGS_S_F0];
        sc[FO_LBFGS_S_GTD_PREV] = sc[FO_LBFGS_S_GTD];
        FO_FN(lb_copy)(gb[0], pg, n);              /* g_prev lives in gb0 during bracketing */
        FO_FN(lb_step_from)(x, x0, d, (FO_T)t, n);
        iv[FO_LBFGS_I_PHASE] = P_BRACKET;
        return FO_LBFGS_EVAL;
    }
    /* fixed step */
    for (int64_t j = 0; j < n; ++j) x[j] = x[j] + (FO_T)t * d[j];
    if (iv[FO_LBFGS_I_LOC_ITER] != h->max_iter || h->eval_last) {
        iv[FO_LBFGS_I_PHASE] = P_FIXED;
        return FO_LBFGS_EVAL;
    }
    goto iter_done;

got_fixed:
    iv[FO_LBFGS_I_CUR_EVALS] += 1;
    iv[FO_LBFGS_I_FUNC_EVALS] += 1;
    sc[FO_LBFGS_S_F] = f_in;
    if (!isfinite(f_in)) { kind = FO_LBFGS_NONFINITE; goto fail; }
    if (!iv[FO_LBFGS_I_HAVE_BEST] || f_in < sc[FO_LBFGS_S_FBEST]) {
        FO_FN(lb_copy)(xbest, x, n); FO_FN(lb_copy)(gbest, g, n);
        sc[FO_LBFGS_S_FBEST] = f_in; iv[FO_LBFGS_I_HAVE_BEST] = 1;
    }
    iv[FO_LBFGS_I_OPT_COND] = FO_FN(lb_absmax)(g, n) <= h->tolerance_grad;
    goto iter_done;

got_bracket:
    iv[FO_LBFGS_I_CUR_EVALS] += 1;
    iv[FO_LBFGS_I_FUNC_EVALS] += 1;
    if (iv[FO_LBFGS_I_LS_EVALS] > 0) iv[FO_LBFGS_I_LS_ITER] += 1;   /* evaluations after the first end a loop pass */
    iv[FO_LBFGS_I_LS_EVALS] += 1;
    t = sc[FO_LBFGS_S_T];
    f_new = f_in;
    gtd_new = FO_FN(lb_dot)(g, d, n);
    if (!isfinite(f_new) || isnan(gtd_new)) {
        if (sc[FO_LBFGS_S_T_PREV] > 0.0 && sc[FO_LBFGS_S_F_PREV] < sc[FO_LBFGS_S_F0]) {
            /* keep the last finite point of the bracketing phase, which already decreased f */
            B[0] = sc[FO_LBFGS_S_T_PREV]; BF[0] = sc[FO_LBFGS_S_F_PREV];
            iv[FO_LBFGS_I_LOW] = 0;
            goto ls_end;
        }
        kind = FO_LBFGS_NONFINITE; goto fail;
    }
    sc[FO_LBFGS_S_F_NEW] = f_new; sc[FO_LBFGS_S_GTD_NEW] = gtd_new;
    if (iv[FO_LBFGS_I_LS_ITER] >= iv[FO_LBFGS_I_MAX_LS]) {
        /* budget exhausted while bracketing: bracket [0, t] */
        B[0] = 0.0; B[1] = t; BF[0] = sc[FO_LBFGS_S_F0]; BF[1] = f_new;
        BGTD[0] = sc[FO_LBFGS_S_GTD]; BGTD[1] = gtd_new;
        FO_FN(lb_copy)(gb[0], pg, n); FO_FN(lb_copy)(gb[1], g, n);
        iv[FO_LBFGS_I_NB] = 2;
        goto zoom_setup;
    }
    {
        const double f0 = sc[FO_LBFGS_S_F0], gtd0 = sc[FO_LBFGS_S_GTD];
        if (f_new > (f0 + c1 * t * gtd0) || (iv[FO_LBFGS_I_LS_ITER] > 1 && f_new >= sc[FO_LBFGS_S_F_PREV])
            || (!(fabs(gtd_new) <= -c2 * gtd0) && gtd_new >= 0)) {
            B[0] = sc[FO_LBFGS_S_T_PREV]; B[1] = t;
            BF[0] = sc[FO_LBFGS_S_F_PREV]; BF[1] = f_new;
            BGTD[0] = sc[FO_LBFGS_S_GTD_PREV]; BGTD[1] = gtd_new;
            FO_FN(lb_copy)(gb[1], g, n);              /* gb0 already holds g_prev */
            iv[FO_LBFGS_I_NB] = 2;
            goto zoom_setup;
        }
        if (fabs(gtd_new) <= -c2 * gtd0) {
            B[0] = t; BF[0] = f_new; BGTD[0] = gtd_new;
            FO_FN(lb_copy)(gb[0], g, n);
            iv[FO_LBFGS_I_NB] = 1;
            iv[FO_LBFGS_I_DONE] = 1;
            goto zoom_setup;
        }
        /* extrapolate by cubic interpolation within [t + 0.01 (t - t_prev), 10 t] */
        const double t_prev = sc[FO_LBFGS_S_T_PREV];
        const double min_step = t + 0.01 * (t - t_prev), max_step = t * 10;
        const double tn = fo_lbfgs_cubic_interpolate(t_prev, sc[FO_LBFGS_S_F_PREV], sc[FO_LBFGS_S_GTD_PREV],
                                                     t, f_new, gtd_new, 1, min_step, max_step);
        sc[FO_LBFGS_S_T_PREV] = t;
        sc[FO_LBFGS_S_F_PREV] = f_new;
        sc[FO_LBFGS_S_GTD_PREV] = gtd_new;
        FO_FN(lb_copy)(gb[0], g, n);
        sc[FO_LBFGS_S_T] = tn;
        FO_FN(lb_step_from)(x, x0, d, (FO_T)tn, n);
        iv[FO_LBFGS_I_PHASE] = P_BRACKET;
        return FO_LBFGS_EVAL;
    }

zoom_setup:
    iv[FO_LBFGS_I_INSUF] = 0;
    iv[FO_LBFGS_I_LOW] = (BF[0] <= BF[iv[FO_LBFGS_I_NB] - 1]) ? 0 : 1;

zoom_loop:
    if (iv[FO_LBFGS_I_DONE] || iv[FO_LBFGS_I_LS_ITER] >= iv[FO_LBFGS_I_MAX_LS]) goto ls_end;
    if (fabs(B[1] - B[0]) * sc[FO_LBFGS_S_D_NORM] < h->ls_tolerance_change) goto ls_end;
    {
        t = fo_lbfgs_cubic_interpolate(B[0], BF[0], BGTD[0], B[1], BF[1], BGTD[1], 0, 0.0, 0.0);
        const double bmax = B[1] > B[0] ? B[1] : B[0], bmin = B[1] < B[0] ? B[1] : B[0];
        const double eps = 0.1 * (bmax - bmin);
        const double a1 = bmax - t, a2 = t - bmin;
        if ((a2 < a1 ? a2 : a1) < eps) {
            if (iv[FO_LBFGS_I_INSUF] || t >= bmax || t <= bmin) {
                t = (fabs(t - bmax) < fabs(t - bmin)) ? bmax - eps : bmin + eps;
                iv[FO_LBFGS_I_INSUF] = 0;
            } else {
                iv[FO_LBFGS_I_INSUF] = 1;
            }
        } else {
            iv[FO_LBFGS_I_INSUF] = 0;
        }
        sc[FO_LBFGS_S_T] = t;
        FO_FN(lb_step_from)(x, x0, d, (FO_T)t, n);
        iv[FO_LBFGS_I_PHASE] = P_ZOOM;
        return FO_LBFGS_EVAL;
    }

got_zoom:
    iv[FO_LBFGS_I_CUR_EVALS] += 1;
    iv[FO_LBFGS_I_FUNC_EVALS] += 1;
    iv[FO_LBFGS_I_LS_EVALS] += 1;
    iv[FO_LBFGS_I_LS_ITER] += 1;
    t = sc[FO_LBFGS_S_T];
    f_new = f_in;
    gtd_new = FO_FN(lb_dot)(g, d, n);
    if (!isfinite(f_new) || isnan(gtd_new)) {
        if (BF[iv[FO_LBFGS_I_LOW]] < sc[FO_LBFGS_S_F0]) goto ls_end;   /* keep the best bracket point */
        kind = FO_LBFGS_NONFINITE; goto fail;
    }
    {
        const int64_t lo = iv[FO_LBFGS_I_LOW], hi = 1 - lo;
        const double f0 = sc[FO_LBFGS_S_F0], gtd0 = sc[FO_LBFGS_S_GTD];
        if (f_new > (f0 + c1 * t * gtd0) || f_new >= BF[lo]) {
            B[hi] = t; BF[hi] = f_new; BGTD[hi] = gtd_new;
            FO_FN(lb_copy)(gb[hi], g, n);
            iv[FO_LBFGS_I_LOW] = (BF[0] <= BF[1]) ? 0 : 1;
        } else {
            if (fabs(gtd_new) <= -c2 * gtd0) {
                iv[FO_LBFGS_I_DONE] = 1;
            } else if (gtd_new * (B[hi] - B[lo]) >= 0) {
                B[hi] = B[lo]; BF[hi] = BF[lo]; BGTD[hi] = BGTD[lo];
                FO_FN(lb_copy)(gb[hi], gb[lo], n);
            }
            B[lo] = t; BF[lo] = f_new; BGTD[lo] = gtd_new;
            FO_FN(lb_copy)(gb[lo], g, n);
        }
    }
    goto zoom_loop;

ls_end:
    {
        const int64_t lo = iv[FO_LBFGS_I_LOW];
        t = B[lo];
        /* no decrease: a failure, unless the step's evaluation budget (not the search's own cap) cut the
         * search short — then, as torch does, the step ends on the best point (t may be 0) by max_eval */
        if (!(BF[lo] < sc[FO_LBFGS_S_F0])
            && !(iv[FO_LBFGS_I_LS_ITER] >= iv[FO_LBFGS_I_MAX_LS] && iv[FO_LBFGS_I_MAX_LS] < h->max_ls)) {
            kind = FO_LBFGS_LS_FAILED; goto fail;
        }
        sc[FO_LBFGS_S_T] = t;
        sc[FO_LBFGS_S_F] = BF[lo];
        FO_FN(lb_copy)(g, gb[lo], n);
        FO_FN(lb_step_from)(x, x0, d, (FO_T)t, n);
        iv[FO_LBFGS_I_OPT_COND] = FO_FN(lb_absmax)(g, n) <= h->tolerance_grad;
    }

iter_done:
    iv[FO_LBFGS_I_FRESH] = 0;
    iv[FO_LBFGS_I_RETRIED] = 0;
    if (h->report_iter) { iv[FO_LBFGS_I_PHASE] = P_AFTER; return FO_LBFGS_ITER; }

after_iter:
    /* torch's checks, in its order */
    if (iv[FO_LBFGS_I_LOC_ITER] == h->max_iter) { kind = FO_LBFGS_MAX_ITER; goto stop_with; }
    if (iv[FO_LBFGS_I_CUR_EVALS] >= h->max_eval) { kind = FO_LBFGS_MAX_EVAL; goto stop_with; }
    if (iv[FO_LBFGS_I_OPT_COND]) { kind = FO_LBFGS_CONV_GRAD; goto stop_with; }
    if (FO_FN(lb_absmax_scaled)(d, (FO_T)sc[FO_LBFGS_S_T], n) <= h->tolerance_change) { kind = FO_LBFGS_CONV_X; goto stop_with; }
    {
        const double f1 = sc[FO_LBFGS_S_F], f0 = sc[FO_LBFGS_S_PREV_LOSS];
        if (fabs(f1 - f0) < h->tolerance_change) { kind = FO_LBFGS_CONV_F; goto stop_with; }
        if (h->ftol > 0.0) {
            double sc_ = fabs(f0) > fabs(f1) ? fabs(f0) : fabs(f1);
            if (sc_ < 1.0) sc_ = 1.0;
            if (f0 - f1 <= h->ftol * sc_) { kind = FO_LBFGS_CONV_F; goto stop_with; }
        }
    }
    goto iter_top;

fail:
    /* back to the best point seen: the line-search origin, or the best fixed-step iterate */
    if (h->line_search) {
        FO_FN(lb_copy)(x, x0, n); FO_FN(lb_copy)(g, pg, n);
        sc[FO_LBFGS_S_F] = sc[FO_LBFGS_S_F0];
    } else if (iv[FO_LBFGS_I_HAVE_BEST]) {
        FO_FN(lb_copy)(x, xbest, n); FO_FN(lb_copy)(g, gbest, n);
        sc[FO_LBFGS_S_F] = sc[FO_LBFGS_S_FBEST];
    }
    sc[FO_LBFGS_S_T] = 0.0;
    if (iv[FO_LBFGS_I_RETRIED] || iv[FO_LBFGS_I_FRESH]) goto stop_with;   /* steepest descent failed too */
    iv[FO_LBFGS_I_RETRIED] = 1;
    iv[FO_LBFGS_I_FRESH] = 1;
    goto iter_top;

stop_with:
    iv[FO_LBFGS_I_STATUS] = kind;
    iv[FO_LBFGS_I_PHASE] = P_IDLE;
    return kind;
}

