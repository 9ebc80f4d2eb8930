/* lbfgs.c — instantiates the L-BFGS state machine (lbfgs_impl.h) for float and double. */
#include <math.h>
#include <string.h>

#include "fo_common.h"
#include "fo_lbfgs.h"

/* resume points of the state machine (w->iv[FO_LBFGS_I_PHASE]) */
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
