/* lbfgs.c — instantiates the L-BFGS state machine (lbfgs_impl.h) for float and double. */
#include <math.h>
#include <stddef.h>
#include <string.h>

#include "fo_common.h"
#include "fo_lbfgs.h"

const fo_stop_code fo_lbfgs_codes[FO_LBFGS_NCODES] = {
    {FO_LBFGS_CONV_GRAD, 0, "Converged: max|g_i| <= the gradient tolerance (gtol / tolerance_grad)."},
    {FO_LBFGS_CONV_F, 0, "Converged: the change of f is below the tolerance (ftol / tolerance_change)."},
    {FO_LBFGS_CONV_X, 0, "Converged: the step is below tolerance_change (zero for minimize)."},
    {FO_LBFGS_CONV_GTD, 0, "Converged: no descent direction left (g.d > -tolerance_change)."},
    {FO_LBFGS_MAX_ITER, 1, "Stopped: the iteration limit was reached."},
    {FO_LBFGS_MAX_EVAL, 1, "Stopped: the evaluation limit was reached."},
    {FO_LBFGS_LS_FAILED, 2, "Stopped: the line search found no decrease of f, also after restarting from steepest "
                            "descent; x is the best point found."},
    {FO_LBFGS_NONFINITE, 2, "Stopped: f was NaN or Inf, also after restarting from steepest descent; x is the best "
                            "point found."},
};

#define FO_F(name, kind, count) {#name, (int64_t)offsetof(fo_lbfgs_state, name), kind, count}
const fo_state_field fo_lbfgs_fields[] = {
    FO_F(phase, 'i', 1), FO_F(n_iter, 'i', 1), FO_F(func_evals, 'i', 1), FO_F(cur_evals, 'i', 1),
    FO_F(loc_iter, 'i', 1), FO_F(hist_len, 'i', 1), FO_F(hist_start, 'i', 1), FO_F(ls_iter, 'i', 1),
    FO_F(ls_evals, 'i', 1), FO_F(max_ls, 'i', 1), FO_F(done, 'i', 1), FO_F(insuf, 'i', 1), FO_F(low, 'i', 1),
    FO_F(nb, 'i', 1), FO_F(fresh, 'i', 1), FO_F(retried, 'i', 1), FO_F(opt_cond, 'i', 1), FO_F(have_best, 'i', 1),
    FO_F(status, 'i', 1), FO_F(fail_kind, 'i', 1),
    FO_F(f, 'f', 1), FO_F(t, 'f', 1), FO_F(h_diag, 'f', 1), FO_F(prev_loss, 'f', 1), FO_F(gtd, 'f', 1),
    FO_F(f0, 'f', 1), FO_F(d_norm, 'f', 1), FO_F(f_new, 'f', 1), FO_F(gtd_new, 'f', 1), FO_F(t_prev, 'f', 1),
    FO_F(f_prev, 'f', 1), FO_F(gtd_prev, 'f', 1), FO_F(b, 'f', 2), FO_F(bf, 'f', 2), FO_F(bgtd, 'f', 2),
    FO_F(fbest, 'f', 1),
};
#undef FO_F
const int64_t fo_lbfgs_nfields = (int64_t)(sizeof fo_lbfgs_fields / sizeof fo_lbfgs_fields[0]);
const int64_t fo_lbfgs_state_size = (int64_t)sizeof(fo_lbfgs_state);

/* resume points of the state machine (w->st->phase) */
enum { P_IDLE = 0, P_START = 1, P_FIXED = 2, P_BRACKET = 3, P_ZOOM = 4, P_AFTER = 5 };

/* torch's _cubic_interpolate (minFunc's polyinterp for two points with values and slopes): the minimiser
 * of the cubic through (x1, f1, g1) and (x2, f2, g2), clamped to the bounds (default: the two points);
 * the midpoint of the bounds when the cubic has no real minimiser.  Python's min/max tie rules kept. */
double fo_lbfgs_cubic_interpolate(double x1, double f1, double g1, double x2, double f2, double g2,
                                  int has_bounds, double lo, double hi) {
    double xmin_bound, xmax_bound;
    if (has_bounds) { xmin_bound = lo; xmax_bound = hi; }
    else if (x1 <= x2) { xmin_bound = x1; xmax_bound = x2; }
    else { xmin_bound = x2; xmax_bound = x1; }
    const double d1 = g1 + g2 - 3 * (f1 - f2) / (x1 - x2);
    const double d2_square = d1 * d1 - g1 * g2;
    if (d2_square >= 0) {
        const double d2 = sqrt(d2_square);
        double min_pos;
        if (x1 <= x2) min_pos = x2 - (x2 - x1) * ((g2 + d2 - d1) / (g2 - g1 + 2 * d2));
        else min_pos = x1 - (x1 - x2) * ((g1 + d2 - d1) / (g1 - g2 + 2 * d2));
        double v = (xmin_bound > min_pos) ? xmin_bound : min_pos;   /* Python max(min_pos, xmin_bound) */
        return (xmax_bound < v) ? xmax_bound : v;                  /* Python min(v, xmax_bound) */
    }
    return (xmin_bound + xmax_bound) / 2.0;
}

#define FO_IMPL "lbfgs_impl.h"
#include "fo_instantiate.h"
