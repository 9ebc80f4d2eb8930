/* lbfgs_impl.h — the L-BFGS state machine, written once in terms of FO_T and instantiated by lbfgs.c for
 * float (FO_SFX = f32) and double (f64) through fo_instantiate.h.  See fo_lbfgs.h for the calling protocol.
 *
 * Mirrors torch/optim/lbfgs.py (LBFGS.step and _strong_wolfe, ported from minFunc/lswolfe.lua): vector
 * arithmetic in FO_T with one rounding per operation as torch does it, scalars (dot products, step lengths,
 * Wolfe tests) in double.  Resume points are the phases below; every scalar that must survive a return
 * lives in the named struct w->st, so the caller can save and restore the whole machine. */


#include "fo_dot_impl.h"

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
    const int64_t len = w->st->hist_len, start = w->st->hist_start;
    const FO_T *g = (const FO_T *)w->g;
    FO_T *q = (FO_T *)w->d;
    for (int64_t j = 0; j < n; ++j) q[j] = -g[j];
    for (int64_t i = len - 1; i >= 0; --i) {
        const int64_t k = (start + i) % m;
        const FO_T *s = (const FO_T *)w->old_stps[k], *y = (const FO_T *)w->old_dirs[k];
        const double al = FO_FN(fo_dot)(s, q, n) * w->ro[k];
        w->al[i] = al;
        const FO_T a = (FO_T)(-al);
        for (int64_t j = 0; j < n; ++j) q[j] = q[j] + a * y[j];
    }
    const FO_T hd = (FO_T)w->st->h_diag;
    for (int64_t j = 0; j < n; ++j) q[j] = q[j] * hd;
    for (int64_t i = 0; i < len; ++i) {
        const int64_t k = (start + i) % m;
        const FO_T *s = (const FO_T *)w->old_stps[k], *y = (const FO_T *)w->old_dirs[k];
        const double be = FO_FN(fo_dot)(y, q, n) * w->ro[k];
        const FO_T a = (FO_T)(w->al[i] - be);
        for (int64_t j = 0; j < n; ++j) q[j] = q[j] + a * s[j];
    }
}

static int FO_FN(lb_check)(const fo_lbfgs_work *w, const fo_lbfgs_hyper *h) {
    if (!w || w->n < 0 || w->m < 1 || !w->st || !w->ro || !w->al || !w->old_dirs || !w->old_stps)
        return FO_LBFGS_ERR_ARG;
    if (w->n > 0 && (!w->x || !w->g || !w->d || !w->x0 || !w->prev_g || !w->gb0 || !w->gb1))
        return FO_LBFGS_ERR_ARG;
    if (h && !h->line_search && w->n > 0 && (!w->xbest || !w->gbest)) return FO_LBFGS_ERR_ARG;
    const int64_t len = w->st->hist_len, start = w->st->hist_start;
    if (len < 0 || len > w->m || start < 0 || start >= w->m || (len < w->m && start != 0)) return FO_LBFGS_ERR_STATE;
    if (w->st->phase < P_IDLE || w->st->phase > P_AFTER) return FO_LBFGS_ERR_STATE;
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
    fo_lbfgs_state *st = w->st;
    FO_T *x = (FO_T *)w->x, *g = (FO_T *)w->g, *d = (FO_T *)w->d, *x0 = (FO_T *)w->x0;
    FO_T *pg = (FO_T *)w->prev_g, *gb[2] = {(FO_T *)w->gb0, (FO_T *)w->gb1};
    FO_T *xbest = (FO_T *)w->xbest, *gbest = (FO_T *)w->gbest;
    double *B = st->b, *BF = st->bf, *BGTD = st->bgtd;
    const double c1 = h->c1, c2 = h->c2;
    double t, f_new, gtd_new;
    int kind;

    if (st->phase != P_IDLE && st->phase != P_AFTER) {   /* f_in is an evaluation the core asked for */
        st->cur_evals += 1;
        st->func_evals += 1;
    }
    switch (st->phase) {
    case P_IDLE: goto start;
    case P_START: goto got_start;
    case P_FIXED: goto got_fixed;
    case P_BRACKET: goto got_bracket;
    case P_ZOOM: goto got_zoom;
    case P_AFTER: goto after_iter;
    default: return FO_LBFGS_ERR_STATE;
    }

start:
    st->cur_evals = 0;
    st->loc_iter = 0;
    st->retried = 0;
    st->have_best = 0;
    st->phase = P_START;
    return FO_LBFGS_EVAL;

got_start:
    st->f = f_in;
    if (!isfinite(f_in)) { kind = FO_LBFGS_NONFINITE; goto stop_with; }
    if (!h->line_search) {
        FO_FN(lb_copy)(xbest, x, n); FO_FN(lb_copy)(gbest, g, n);
        st->fbest = f_in; st->have_best = 1;
    }
    if (FO_FN(lb_absmax)(g, n) <= h->tolerance_grad) { kind = FO_LBFGS_CONV_GRAD; goto stop_with; }

iter_top:
    if (st->loc_iter >= h->max_iter) { kind = FO_LBFGS_MAX_ITER; goto stop_with; }
    st->loc_iter += 1;
    st->n_iter += 1;
    if (st->fresh) {
        for (int64_t j = 0; j < n; ++j) d[j] = -g[j];
        st->hist_len = 0;
        st->hist_start = 0;
        st->h_diag = 1.0;
    } else {
        /* memory update with y = g - prev_g, s = t d, only when the curvature y.s is positive enough */
        const FO_T tt = (FO_T)st->t;
        double yy;
        const double ys = FO_FN(lb_ys)(g, pg, d, tt, n, &yy);
        if (ys > h->curv_abs && ys > h->curv_rel * yy) {
            int64_t len = st->hist_len, start = st->hist_start, k;
            if (len == m) { k = start; st->hist_start = (start + 1) % m; }
            else { k = len; st->hist_len = len + 1; }
            FO_T *y = (FO_T *)w->old_dirs[k], *s = (FO_T *)w->old_stps[k];
            for (int64_t j = 0; j < n; ++j) { y[j] = g[j] - pg[j]; s[j] = d[j] * tt; }
            w->ro[k] = 1.0 / ys;
            st->h_diag = ys / FO_FN(fo_dot)(y, y, n);
        }
        FO_FN(lb_two_loop)(w);
    }
    FO_FN(lb_copy)(pg, g, n);
    st->prev_loss = st->f;
    if (st->fresh) {
        double inv = 1.0 / FO_FN(lb_abssum)(g, n);
        t = (inv < 1.0 ? inv : 1.0) * h->lr;      /* torch: min(1., 1./|g|_1) * lr */
    } else {
        t = h->lr;
    }
    st->t = t;
    st->gtd = FO_FN(fo_dot)(g, d, n);
    if (!(st->gtd <= -h->tolerance_change)) {
        if (h->restart_bad_dir && !st->fresh && !isnan(st->gtd)) {
            /* not a descent direction: forget the memory and take steepest descent (not an iteration) */
            st->loc_iter -= 1; st->n_iter -= 1;
            st->fresh = 1;
            goto iter_top;
        }
        kind = FO_LBFGS_CONV_GTD; goto stop_with;
    }

    if (h->line_search) {
        /* strong-Wolfe line search (torch's _strong_wolfe), origin x0 = x, value f0, slope gtd */
        FO_FN(lb_copy)(x0, x, n);
        st->f0 = st->f;
        st->d_norm = FO_FN(lb_absmax)(d, n);
        int64_t max_ls = h->max_eval - st->cur_evals;
        if (max_ls > h->max_ls) max_ls = h->max_ls;
        st->max_ls = max_ls;
        st->ls_iter = 0;
        st->ls_evals = 0;
        st->done = 0;
        st->t_prev = 0.0;
        st->f_prev = st->f0;
        st->gtd_prev = st->gtd;
        FO_FN(lb_copy)(gb[0], pg, n);              /* g_prev lives in gb0 during bracketing */
        FO_FN(lb_step_from)(x, x0, d, (FO_T)t, n);
        st->phase = P_BRACKET;
        return FO_LBFGS_EVAL;
    }
    /* fixed step */
    for (int64_t j = 0; j < n; ++j) x[j] = x[j] + (FO_T)t * d[j];
    if (st->loc_iter != h->max_iter || h->eval_last) {
        st->phase = P_FIXED;
        return FO_LBFGS_EVAL;
    }
    goto iter_done;

got_fixed:
    st->f = f_in;
    if (!isfinite(f_in)) { kind = FO_LBFGS_NONFINITE; goto fail; }
    if (!st->have_best || f_in < st->fbest) {
        FO_FN(lb_copy)(xbest, x, n); FO_FN(lb_copy)(gbest, g, n);
        st->fbest = f_in; st->have_best = 1;
    }
    st->opt_cond = FO_FN(lb_absmax)(g, n) <= h->tolerance_grad;
    goto iter_done;

got_bracket:
    if (st->ls_evals > 0) st->ls_iter += 1;   /* evaluations after the first end a loop pass */
    st->ls_evals += 1;
    t = st->t;
    f_new = f_in;
    gtd_new = FO_FN(fo_dot)(g, d, n);
    if (!isfinite(f_new) || isnan(gtd_new)) {
        if (st->t_prev > 0.0 && st->f_prev < st->f0) {
            /* keep the last finite point of the bracketing phase, which already decreased f */
            B[0] = st->t_prev; BF[0] = st->f_prev;
            st->low = 0;
            goto ls_end;
        }
        kind = FO_LBFGS_NONFINITE; goto fail;
    }
    st->f_new = f_new; st->gtd_new = gtd_new;
    if (st->ls_iter >= st->max_ls) {
        /* budget exhausted while bracketing: bracket [0, t] */
        B[0] = 0.0; B[1] = t; BF[0] = st->f0; BF[1] = f_new;
        BGTD[0] = st->gtd; BGTD[1] = gtd_new;
        FO_FN(lb_copy)(gb[0], pg, n); FO_FN(lb_copy)(gb[1], g, n);
        st->nb = 2;
        goto zoom_setup;
    }
    {
        const double f0 = st->f0, gtd0 = st->gtd;
        if (f_new > (f0 + c1 * t * gtd0) || (st->ls_iter > 1 && f_new >= st->f_prev)
            || (!(fabs(gtd_new) <= -c2 * gtd0) && gtd_new >= 0)) {
            B[0] = st->t_prev; B[1] = t;
            BF[0] = st->f_prev; BF[1] = f_new;
            BGTD[0] = st->gtd_prev; BGTD[1] = gtd_new;
            FO_FN(lb_copy)(gb[1], g, n);              /* gb0 already holds g_prev */
            st->nb = 2;
            goto zoom_setup;
        }
        if (fabs(gtd_new) <= -c2 * gtd0) {
            B[0] = t; BF[0] = f_new; BGTD[0] = gtd_new;
            FO_FN(lb_copy)(gb[0], g, n);
            st->nb = 1;
            st->done = 1;
            goto zoom_setup;
        }
        /* extrapolate by cubic interpolation within [t + 0.01 (t - t_prev), 10 t] */
        const double t_prev = st->t_prev;
        const double min_step = t + 0.01 * (t - t_prev), max_step = t * 10;
        const double tn = fo_lbfgs_cubic_interpolate(t_prev, st->f_prev, st->gtd_prev,
                                                     t, f_new, gtd_new, 1, min_step, max_step);
        st->t_prev = t;
        st->f_prev = f_new;
        st->gtd_prev = gtd_new;
        FO_FN(lb_copy)(gb[0], g, n);
        st->t = tn;
        FO_FN(lb_step_from)(x, x0, d, (FO_T)tn, n);
        st->phase = P_BRACKET;
        return FO_LBFGS_EVAL;
    }

zoom_setup:
    st->insuf = 0;
    st->low = (BF[0] <= BF[st->nb - 1]) ? 0 : 1;

zoom_loop:
    if (st->done || st->ls_iter >= st->max_ls) goto ls_end;
    if (fabs(B[1] - B[0]) * st->d_norm < h->ls_tolerance_change) goto ls_end;
    {
        t = fo_lbfgs_cubic_interpolate(B[0], BF[0], BGTD[0], B[1], BF[1], BGTD[1], 0, 0.0, 0.0);
        const double bmax = B[1] > B[0] ? B[1] : B[0], bmin = B[1] < B[0] ? B[1] : B[0];
        const double eps = 0.1 * (bmax - bmin);
        const double a1 = bmax - t, a2 = t - bmin;
        if ((a2 < a1 ? a2 : a1) < eps) {
            if (st->insuf || t >= bmax || t <= bmin) {
                t = (fabs(t - bmax) < fabs(t - bmin)) ? bmax - eps : bmin + eps;
                st->insuf = 0;
            } else {
                st->insuf = 1;
            }
        } else {
            st->insuf = 0;
        }
        st->t = t;
        FO_FN(lb_step_from)(x, x0, d, (FO_T)t, n);
        st->phase = P_ZOOM;
        return FO_LBFGS_EVAL;
    }

got_zoom:
    st->ls_evals += 1;
    st->ls_iter += 1;
    t = st->t;
    f_new = f_in;
    gtd_new = FO_FN(fo_dot)(g, d, n);
    if (!isfinite(f_new) || isnan(gtd_new)) {
        if (BF[st->low] < st->f0) goto ls_end;   /* keep the best bracket point */
        kind = FO_LBFGS_NONFINITE; goto fail;
    }
    {
        const int64_t lo = st->low, hi = 1 - lo;
        const double f0 = st->f0, gtd0 = st->gtd;
        if (f_new > (f0 + c1 * t * gtd0) || f_new >= BF[lo]) {
            B[hi] = t; BF[hi] = f_new; BGTD[hi] = gtd_new;
            FO_FN(lb_copy)(gb[hi], g, n);
            st->low = (BF[0] <= BF[1]) ? 0 : 1;
        } else {
            if (fabs(gtd_new) <= -c2 * gtd0) {
                st->done = 1;
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
        const int64_t lo = st->low;
        t = B[lo];
        /* no decrease: a failure, unless the step's evaluation budget (not the search's own cap) cut the
         * search short — then, as torch does, the step ends on the best point (t may be 0) by max_eval */
        if (!(BF[lo] < st->f0)
            && !(st->ls_iter >= st->max_ls && st->max_ls < h->max_ls)) {
            kind = FO_LBFGS_LS_FAILED; goto fail;
        }
        st->t = t;
        st->f = BF[lo];
        FO_FN(lb_copy)(g, gb[lo], n);
        FO_FN(lb_step_from)(x, x0, d, (FO_T)t, n);
        st->opt_cond = FO_FN(lb_absmax)(g, n) <= h->tolerance_grad;
    }

iter_done:
    st->fresh = 0;
    st->retried = 0;
    if (h->report_iter) { st->phase = P_AFTER; return FO_LBFGS_ITER; }

after_iter:
    /* torch's checks, in its order */
    if (st->loc_iter == h->max_iter) { kind = FO_LBFGS_MAX_ITER; goto stop_with; }
    if (st->cur_evals >= h->max_eval) { kind = FO_LBFGS_MAX_EVAL; goto stop_with; }
    if (st->opt_cond) { kind = FO_LBFGS_CONV_GRAD; goto stop_with; }
    if (FO_FN(lb_absmax_scaled)(d, (FO_T)st->t, n) <= h->tolerance_change) { kind = FO_LBFGS_CONV_X; goto stop_with; }
    {
        const double f1 = st->f, f0 = st->prev_loss;
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
        st->f = st->f0;
    } else if (st->have_best) {
        FO_FN(lb_copy)(x, xbest, n); FO_FN(lb_copy)(g, gbest, n);
        st->f = st->fbest;
    }
    st->t = 0.0;
    if (st->retried || st->fresh) goto stop_with;   /* steepest descent failed too */
    st->retried = 1;
    st->fresh = 1;
    goto iter_top;

stop_with:
    st->status = kind;
    st->phase = P_IDLE;
    return kind;
}

