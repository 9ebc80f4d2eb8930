/* fo_lbfgsb.h — reverse-communication L-BFGS-B core (bound-constrained limited-memory BFGS).
 *
 * Algorithm: Byrd, Lu, Nocedal & Zhu (1995) "A limited memory algorithm for bound constrained optimization",
 * with the subspace step of Morales & Nocedal (2011) "Remark on Algorithm 778". Each iteration
 *   1. finds the generalized Cauchy point (GCP): the first local minimiser of the quadratic model
 *      m(x) = f + g'(x - x_k) + 1/2 (x - x_k)' B (x - x_k), B = theta I - W M W' (compact form, W = [Y, theta S]),
 *      along the projected steepest-descent path P(x_k - t g), visiting the breakpoints in increasing order;
 *   2. minimises the model over the variables that are free at the GCP (direct primal method with the
 *      Sherman-Morrison-Woodbury inverse of the reduced B), projects that point onto the box and keeps the
 *      projection if it is a descent direction, otherwise backtracks it into the box (Morales-Nocedal);
 *   3. runs the Moré-Thuente line search (sufficient decrease 1e-3, curvature 0.9, xtol 0.1) on
 *      x_k + t (xbar - x_k), t <= the largest feasible step: every trial point is inside the box.
 * The pair (s, y) is stored unless y's <= eps (-g's); a failed line search or a singular factor clears the
 * memory and retries from the GCP with B = I, and stops (ABNORMAL) when the memory was already empty.
 *
 * The caller owns every buffer (NumPy arrays); one call of fo_lbfgsb_run_{f32,f64} advances the state machine
 * until it needs the caller and returns a task:
 *   FO_LBFGSB_EVAL   evaluate f and its gradient at w->x (always inside [lo, hi]), write the gradient into w->g,
 *                    call again with f
 *   FO_LBFGSB_ITER   w->x is a new iterate (st->f, gradient in w->g); call again (f is ignored)
 *   >= FO_LBFGSB_STOP  finished, the code says why (fo_lbfgsb_message); w->x holds the last accepted iterate
 *   < 0              an argument or state error; nothing was written
 * Scalars that survive a return live in the named struct fo_lbfgsb_state; its layout is published in
 * fo_lbfgsb_fields so that the Python side builds a matching NumPy record type and checks it at import. */
#ifndef FO_LBFGSB_H
#define FO_LBFGSB_H

#include <stdint.h>

#include "fo_lbfgs.h"   /* fo_state_field, fo_stop_code */

/* tasks and stop codes (messages and scipy status in fo_lbfgsb_codes, the only table) */
enum {
    FO_LBFGSB_EVAL = 1,
    FO_LBFGSB_ITER = 2,
    FO_LBFGSB_STOP = 10,            /* first stop code */
    FO_LBFGSB_CONV_PGTOL = 10,      /* max_i |proj g_i| <= gtol */
    FO_LBFGSB_CONV_FTOL = 11,       /* (f_k - f_{k+1}) <= ftol max(|f_k|, |f_{k+1}|, 1) */
    FO_LBFGSB_MAX_ITER = 12,
    FO_LBFGSB_MAX_FUN = 13,
    FO_LBFGSB_ABNORMAL = 14,        /* no decrease along the direction, also with an empty memory */
    FO_LBFGSB_NONFINITE = 15,       /* f or g NaN/Inf at the start, or along every trial of an empty-memory search */
    FO_LBFGSB_CALLBACK = 16,        /* set by the caller: its callback asked to stop */
    FO_LBFGSB_FUN_ERROR = 17,       /* set by the caller: fun raised or returned something unusable */
    FO_LBFGSB_CONV_FABS = 18,       /* |f_k - f_{k+1}| < fabs_tol (torch's tolerance_change) */
    FO_LBFGSB_CONV_XABS = 19,       /* max_i |x_{k+1} - x_k| <= xabs_tol (torch's tolerance_change) */
    FO_LBFGSB_NCODES = 10,
    FO_LBFGSB_ERR_ARG = -1,
    FO_LBFGSB_ERR_STATE = -2
};

extern const fo_stop_code fo_lbfgsb_codes[FO_LBFGSB_NCODES];

typedef struct {
    double ftol;       /* relative reduction test (scipy: factr * eps, default 2.22e-9); 0 disables */
    double gtol;       /* projected-gradient infinity-norm test (scipy: pgtol, default 1e-5) */
    double eps;        /* machine epsilon of the element type (update skip rule, GCP curvature floor) */
    double lr;         /* fixed-step mode only: the step along xbar - x, capped at the largest feasible step */
    double ls_ftol, ls_gtol, ls_xtol;   /* Moré-Thuente constants (1e-3, 0.9, 0.1) */
    double fabs_tol;   /* > 0: also stop when |f_k - f_{k+1}| < fabs_tol */
    double xabs_tol;   /* > 0: also stop when max_i |x_{k+1} - x_k| <= xabs_tol */
    int64_t max_iter;  /* iterations per run started from phase 0 */
    int64_t max_fun;   /* stop after an iteration once this many evaluations were made in the run */
    int64_t max_ls;    /* trial points per line search (scipy: maxls, default 20) */
    int64_t line_search;   /* 1: Moré-Thuente, 0: fixed step lr */
    int64_t report_iter;   /* return FO_LBFGSB_ITER after every iteration */
} fo_lbfgsb_hyper;

typedef struct {
    /* counters */
    int64_t phase;      /* resume point; 0 = idle (the next call starts a run at w->x) */
    int64_t nit;        /* iterations over all runs */
    int64_t nfev;       /* evaluations over all runs */
    int64_t loc_iter;   /* iterations in this run */
    int64_t loc_fev;    /* evaluations in this run */
    int64_t col;        /* (s, y) pairs stored */
    int64_t head;       /* ring slot of the oldest pair */
    int64_t nskip;      /* pairs skipped by the curvature rule */
    int64_t nrefresh;   /* memory refreshes (line-search failure, singular factor) */
    int64_t nfree;      /* variables free at the last GCP */
    int64_t nbreak;     /* breakpoints passed by the last GCP search */
    int64_t status;     /* last stop code */
    int64_t constrained, boxed;   /* some finite bound / every variable bounded on both sides */
    int64_t ls_iter, ls_stage, ls_brackt, ls_nonfinite;
    /* scalars */
    double f;           /* value at the current iterate */
    double f_old;       /* value at the previous iterate */
    double theta;       /* B's scale y'y / s'y of the newest pair (1 when the memory is empty) */
    double sbgnrm;      /* max_i |proj g_i| at the current iterate */
    double f0, gd0;     /* value and slope g'd at the line-search origin */
    double stp, stpmax, dnorm;
    double ls_stx, ls_fx, ls_gx, ls_sty, ls_fy, ls_gy, ls_stmin, ls_stmax, ls_width, ls_width1;
} fo_lbfgsb_state;

/* the layout of fo_lbfgsb_state, field by field */
extern const fo_state_field fo_lbfgsb_fields[];
extern const int64_t fo_lbfgsb_nfields;
extern const int64_t fo_lbfgsb_state_size;

/* doubles of w->mw needed for history size m */
#define FO_LBFGSB_MW_SIZE(m) (5 * (m) * (m) + 3 * 4 * (m) * (m) + 16 * (m) + 8)

/* Buffers. Vectors have n elements of the parameter dtype; S and Y hold m slots of n (slot k at k*n). */
typedef struct {
    int64_t n, m;
    void *x, *g;        /* iterate and gradient */
    const void *lo, *hi;   /* bounds, -inf/+inf for an open side; lo <= hi, lo == hi fixes the variable */
    void *x0, *g0;      /* line-search origin and its gradient */
    void *d, *z;        /* search direction; GCP, then the subspace point xbar */
    void *S, *Y;        /* m * n each */
    double *tb;         /* n: breakpoints */
    int64_t *iw;        /* 3n: where (0 free, 1 at a bound at the GCP, 2 fixed), free list, heap */
    double *mw;         /* FO_LBFGSB_MW_SIZE(m) doubles: small matrices and vectors */
    fo_lbfgsb_state *st;
} fo_lbfgsb_work;

FO_LBFGS_F32_F64(int, fo_lbfgsb_run, (const fo_lbfgsb_work *w, const fo_lbfgsb_hyper *h, double f));

/* max_i |proj g_i| at w->x (scipy's projgr), for tests and for the caller's final report */
FO_LBFGS_F32_F64(double, fo_lbfgsb_projgr, (const fo_lbfgsb_work *w));

#endif /* FO_LBFGSB_H */
