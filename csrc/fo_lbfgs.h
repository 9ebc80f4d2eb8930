/* fo_lbfgs.h — reverse-communication L-BFGS core (two-loop recursion + strong-Wolfe line search).
 *
 * The caller owns every buffer (NumPy arrays, so a checkpoint can save them); the core only writes into
 * them.  One call of fo_lbfgs_run_{f32,f64} advances the state machine until it needs something from the
 * caller and returns a task:
 *
 *   FO_LBFGS_EVAL   evaluate f and its gradient at w->x, write the gradient into w->g, call again with f
 *   FO_LBFGS_ITER   w->x is a new iterate (value in w->st->f, gradient in w->g); call again
 *   FO_LBFGS_NEED_SLOT  history slot w->st->hist_len must be allocated first; nothing was done
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

/* The state that survives a return (one struct, read by name on both sides of the boundary). */
typedef struct {
    int64_t phase;       /* resume point; 0 = idle (the next call starts a step) */
    int64_t n_iter;      /* iterations over all steps (torch's state['n_iter']) */
    int64_t func_evals;  /* evaluations over all steps (torch's state['func_evals']) */
    int64_t cur_evals;   /* evaluations in this step */
    int64_t loc_iter;    /* iterations in this step */
    int64_t hist_len;    /* number of (s, y) pairs stored */
    int64_t hist_start;  /* ring slot of the oldest pair */
    int64_t ls_iter, ls_evals, max_ls;   /* line-search counters and this search's cap */
    int64_t done, insuf, low, nb;        /* zoom phase: converged, insufficient progress, low end, bracket size */
    int64_t fresh;       /* 1: the next direction is steepest descent (first iteration or restart) */
    int64_t retried;     /* 1: the current attempt is the one steepest-descent retry */
    int64_t opt_cond;
    int64_t have_best;
    int64_t status;      /* last stop code */
    int64_t fail_kind;   /* stop code a failure would report */
    double f;            /* value at the current iterate (torch's loss) */
    double t;            /* step length of the last step (torch's t) */
    double h_diag;       /* initial inverse-Hessian scale y.s / y.y */
    double prev_loss;    /* value at the previous iterate */
    double gtd;          /* g.d at the start of the current step */
    double f0;           /* value at the line search origin */
    double d_norm;       /* max|d| */
    double f_new, gtd_new, t_prev, f_prev, gtd_prev;
    double b[2], bf[2], bgtd[2];          /* the bracket: step lengths, values, slopes */
    double fbest;        /* best finite value seen (fixed-step mode) */
} fo_lbfgs_state;

/* Layout of a state struct, field by field (kind 'i' = int64_t, 'f' = double; count > 1 for an array), so the
 * Python side builds a matching NumPy record type from the extension itself and checks it at import. */
typedef struct {
    const char *name;
    int64_t offset;
    char kind;
    int64_t count;
} fo_state_field;

extern const fo_state_field fo_lbfgs_fields[];
extern const int64_t fo_lbfgs_nfields;
extern const int64_t fo_lbfgs_state_size;

/* The one table of stop codes: scipy's OptimizeResult.status for each, and the message. */
typedef struct {
    int code;
    int status;
    const char *message;
} fo_stop_code;

#define FO_LBFGS_NCODES 8
extern const fo_stop_code fo_lbfgs_codes[FO_LBFGS_NCODES];

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
    fo_lbfgs_state *st;
} fo_lbfgs_work;

/* Declares name_f32 and name_f64, the core's entry point for each element type: the buffers are void *, so
 * both take the same parameters (used by fo_lbfgsb.h too). */
#define FO_LBFGS_F32_F64(ret, name, params) ret name##_f32 params; ret name##_f64 params

FO_LBFGS_F32_F64(int, fo_lbfgs_run, (const fo_lbfgs_work *w, const fo_lbfgs_hyper *h, double f));

/* The two-loop recursion alone: d = -H g from the stored pairs (ring order), st->h_diag. Exposed for tests. */
FO_LBFGS_F32_F64(int, fo_lbfgs_direction, (const fo_lbfgs_work *w));

/* torch's _cubic_interpolate (bounded when has_bounds != 0). Exposed for tests. */
double fo_lbfgs_cubic_interpolate(double x1, double f1, double g1, double x2, double f2, double g2,
                                  int has_bounds, double lo, double hi);

#endif /* FO_LBFGS_H */
