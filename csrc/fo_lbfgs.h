/* fo_lbfgs.h — reverse-communication L-BFGS core (two-loop recursion + strong-Wolfe line search).
 *
 * The caller owns every buffer (NumPy arrays, so a checkpoint can save them); the core only writes into
 * them.  One call of fo_lbfgs_run_{f32,f64} advances the state machine until it needs something from the
 * caller and returns a task:
 *
 *   FO_LBFGS_EVAL   evaluate f and its gradient at w->x, write the gradient into w->g, call again with f
 *   FO_LBFGS_ITER   w->x is a new iterate (value in sc[FO_LBFGS_S_F], gradient in w->g); call again
 *   FO_LBFGS_NEED_SLOT  history slot iv[FO_LBFGS_I_HIST_LEN] must be allocated first; nothing was done
 *   >= FO_LBFGS_STOP  finished; the code says why, w->x holds the best iterate
 *   < 0             an argument error (bad pointer, size or state); nothing was written
 *
 * The algorithm follows torch.optim.LBFGS's step() (minFunc's order of operations) so the iterates match it;
 * the additions are the optional relative f-tolerance (scipy's ftol), the per-search evaluation cap, and the
 * recovery rule: a non-finite value or a line search without decrease restores the best point seen, clears
 * the memory and retries once from steepest descent, then stops. */
#ifndef FO_LBFGS_H
#define FO_LBFGS_H

#include <stdint.h>

/* tasks and stop codes */
enum {
    FO_LBFGS_EVAL = 1,
    FO_LBFGS_ITER = 2,
    FO_LBFGS_NEED_SLOT = 3,       /* history slot HIST_LEN is NULL: allocate it, then call again with the same f */
    FO_LBFGS_STOP = 10,           /* first stop code */
    FO_LBFGS_CONV_GRAD = 10,      /* max|g| <= tolerance_grad */
    FO_LBFGS_CONV_F = 11,         /* |f_k - f_{k+1}| < tolerance_change, or the relative ftol test */
    FO_LBFGS_CONV_X = 12,         /* max|t d| <= tolerance_change */
    FO_LBFGS_CONV_GTD = 13,       /* directional derivative g.d > -tolerance_change */
    FO_LBFGS_MAX_ITER = 14,
    FO_LBFGS_MAX_EVAL = 15,
    FO_LBFGS_LS_FAILED = 16,      /* line search found no decrease, also after a steepest-descent restart */
    FO_LBFGS_NONFINITE = 17,      /* f was NaN/Inf, also after a steepest-descent restart */
    FO_LBFGS_ERR_ARG = -1,
    FO_LBFGS_ERR_STATE = -2
};

/* scalar state (double array of FO_LBFGS_NS entries) */
enum {
    FO_LBFGS_S_F = 0,        /* value at the current iterate (torch's loss) */
    FO_LBFGS_S_T,            /* step length of the last step (torch's t) */
    FO_LBFGS_S_H_DIAG,       /* initial inverse-Hessian scale y.s / y.y */
    FO_LBFGS_S_PREV_LOSS,    /* value at the previous iterate */
    FO_LBFGS_S_GTD,          /* g.d at the start of the current step */
    FO_LBFGS_S_F0,           /* value at the line search origin */
    FO_LBFGS_S_D_NORM,       /* max|d| */
    FO_LBFGS_S_F_NEW, FO_LBFGS_S_GTD_NEW,
    FO_LBFGS_S_T_PREV, FO_LBFGS_S_F_PREV, FO_LBFGS_S_GTD_PREV,
    FO_LBFGS_S_B0, FO_LBFGS_S_B1, FO_LBFGS_S_BF0, FO_LBFGS_S_BF1, FO_LBFGS_S_BGTD0, FO_LBFGS_S_BGTD1,
    FO_LBFGS_S_FBEST,        /* best finite value seen (fixed-step mode) */
    FO_LBFGS_NS
};

/* integer state (int64 array of FO_LBFGS_NI entries) */
enum {
    FO_LBFGS_I_PHASE = 0,    /* resume point; 0 = idle (the next call starts a step) */
    FO_LBFGS_I_N_ITER,       /* iterations over all steps (torch's state['n_iter']) */
    FO_LBFGS_I_FUNC_EVALS,   /* evaluations over all steps (torch's state['func_evals']) */
    FO_LBFGS_I_CUR_EVALS,    /* evaluations in this step */
    FO_LBFGS_I_LOC_ITER,     /* iterations in this step */
    FO_LBFGS_I_HIST_LEN,     /* number of (s, y) pairs stored */
    FO_LBFGS_I_HIST_START,   /* ring slot of the oldest pair */
    FO_LBFGS_I_LS_ITER, FO_LBFGS_I_LS_EVALS, FO_LBFGS_I_MAX_LS,
    FO_LBFGS_I_DONE, FO_LBFGS_I_INSUF, FO_LBFGS_I_LOW, FO_LBFGS_I_NB,
    FO_LBFGS_I_FRESH,        /* 1: the next direction is steepest descent (first iteration or restart) */
    FO_LBFGS_I_RETRIED,      /* 1: the current attempt is the one steepest-descent retry */
    FO_LBFGS_I_OPT_COND,
    FO_LBFGS_I_HAVE_BEST,
    FO_LBFGS_I_STATUS,       /* last stop code */
    FO_LBFGS_I_FAIL_KIND,    /* stop code a failure would report */
    FO_LBFGS_NI
};

typedef struct {
    double lr;                   /* step length scale (torch's lr) */
    double tolerance_grad;       /* stop when max|g| <= this */
    double tolerance_change;     /* stop when |df| < this or max|t d| <= this or g.d > -this */
    double ftol;                 /* > 0: also stop when (f_k - f_{k+1}) <= ftol max(|f_k|, |f_{k+1}|, 1) */
    double ls_tolerance_change;  /* bracket width test in the zoom (torch always passes 1e-9) */
    double c1, c2;               /* Wolfe constants (1e-4, 0.9) */
    double curv_abs, curv_rel;   /* store a pair only if y.s > curv_abs and y.s > curv_rel y.y
                                    (torch: 1e-10 and 0; scale-free choice: 0 and machine epsilon) */
    int64_t max_iter;            /* iterations per call sequence started from phase 0 */
    int64_t max_eval;            /* evaluations per call sequence started from phase 0 */
    int64_t max_ls;              /* cap on one line search's iterations (torch: unlimited = INT64_MAX) */
    int64_t line_search;         /* 0: fixed step lr, 1: strong Wolfe */
    int64_t eval_last;           /* fixed step: evaluate after the last iteration too (torch does not) */
    int64_t report_iter;         /* return FO_LBFGS_ITER after every iteration */
    int64_t restart_bad_dir;     /* a non-descent L-BFGS direction restarts instead of stopping */
} fo_lbfgs_hyper;

/* Buffers. Vectors have n elements of the parameter dtype; history slots are arrays of n_slots pointers,
 * slot k may be NULL until the ring needs it (the caller allocates lazily: slot HIST_LEN must exist before
 * each call while HIST_LEN < m). xbest/gbest are needed only when line_search == 0. */
typedef struct {
    int64_t n, m;
    void *x, *g, *d, *x0, *prev_g, *gb0, *gb1, *xbest, *gbest;
    void **old_dirs, **old_stps;    /* y_k and s_k */
    double *ro, *al;                /* m entries */
    double *sc;                     /* FO_LBFGS_NS */
    int64_t *iv;                    /* FO_LBFGS_NI */
} fo_lbfgs_work;

int fo_lbfgs_run_f32(const fo_lbfgs_work *w, const fo_lbfgs_hyper *h, double f);
int fo_lbfgs_run_f64(const fo_lbfgs_work *w, const fo_lbfgs_hyper *h, double f);

/* The two-loop recursion alone: d = -H g from the stored pairs (ring order), H_diag from sc. Exposed for tests. */
int fo_lbfgs_direction_f32(const fo_lbfgs_work *w);
int fo_lbfgs_direction_f64(const fo_lbfgs_work *w);

/* torch's _cubic_interpolate (bounded when has_bounds != 0). Exposed for tests. */
double fo_lbfgs_cubic_interpolate(double x1, double f1, double g1, double x2, double f2, double g2,
                                  int has_bounds, double lo, double hi);

#endif /* FO_LBFGS_H */
