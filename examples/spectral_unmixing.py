"""Non-negative spectral unmixing with fastopt.minimize(method="L-BFGS-B"): abundances can't be negative.

Each measured spectrum d_p (one per pixel) is a mixture of K known component spectra (the columns of E,
Gaussian absorption bands here) with abundances a_p >= 0, plus noise:

    d_p = E a_p + noise,       minimise  f(A) = 1/2 sum_p |E a_p - d_p|^2   subject to  A >= 0

All pixels are fitted in one call (A has pixels x K entries, the gradient is (E^T (E A^T - D^T))^T), with the
bounds [(0, None)] * A.size. Prints the fit, how many abundances sit on the bound, what plain least squares
(no bounds) would have given (negative abundances), the largest difference from scipy.optimize.nnls solved
pixel by pixel, and how many evaluations fell outside the bounds (none: L-BFGS-B never evaluates there).
Writes the spectra, one fitted pixel and the abundance map to spectral_unmixing.png.

    python examples/spectral_unmixing.py
    python examples/spectral_unmixing.py --quick
"""
from __future__ import annotations

import numpy as np
from _common import out_path, parser, pyplot

import fastopt as fo


def components(wl: np.ndarray) -> np.ndarray:
    """K = 4 overlapping absorption spectra (sums of Gaussian bands), one per column."""
    bands = [[(450, 30, 1.0), (620, 50, 0.4)], [(500, 40, 0.8)], [(560, 25, 1.0), (700, 60, 0.5)],
             [(480, 80, 0.6), (650, 30, 0.7)]]
    return np.stack([sum(h * np.exp(-0.5 * ((wl - c) / w) ** 2) for c, w, h in comp) for comp in bands], axis=1)


def main() -> None:
    args = parser(__doc__).parse_args()
    rng = np.random.default_rng(0)
    n_wl, n_pix = (120, 40) if args.quick else (400, 400)
    wl = np.linspace(400, 800, n_wl)
    E = components(wl)                                          # (n_wl, K)
    K = E.shape[1]
    A_true = rng.gamma(0.6, 1.0, (n_pix, K)) * (rng.random((n_pix, K)) > 0.35)   # sparse: many zeros
    D = A_true @ E.T + 0.03 * rng.standard_normal((n_pix, n_wl))

    outside = [0]

    def fun(a: np.ndarray) -> tuple[float, np.ndarray]:
        outside[0] += int(np.sum(a < 0))
        A = a.reshape(n_pix, K)
        R = A @ E.T - D                                          # residuals, (n_pix, n_wl)
        return 0.5 * float(np.sum(R * R)), (R @ E).reshape(-1)

    res = fo.minimize(fun, np.zeros(n_pix * K), jac=True, method="L-BFGS-B", bounds=[(0, None)] * (n_pix * K),
                      options={"ftol": 1e-13, "gtol": 1e-8})
    A = res.x.reshape(n_pix, K)
    print(f"fastopt L-BFGS-B: {res.message}")
    print(f"  f = {res.fun:.6f}, {res.nit} iterations, {res.nfev} evaluations; "
          f"{int(np.sum(A == 0))} of {A.size} abundances on the bound a = 0")
    A_ls = np.linalg.lstsq(E, D.T, rcond=None)[0].T
    print(f"plain least squares: {int(np.sum(A_ls < 0))} negative abundances (min {A_ls.min():.3f}), which are "
          "physically meaningless")
    try:
        from scipy.optimize import nnls
    except ImportError:
        print("scipy is not installed: no nnls comparison")
    else:
        A_nnls = np.stack([nnls(E, D[p])[0] for p in range(n_pix)])
        diff = float(np.max(np.abs(A - A_nnls)))
        print(f"max |abundance difference| vs scipy.optimize.nnls (pixel by pixel): {diff:.1e}")
    print(f"evaluations outside the bounds: {outside[0]}")
    print(f"max |abundance - truth|: {np.max(np.abs(A - A_true)):.3f} (noise level 0.03 per wavelength)")

    plt = pyplot()
    if plt is not None:
        fig, ax = plt.subplots(1, 3, figsize=(14, 4))
        ax[0].plot(wl, E)
        ax[0].set(title="component spectra", xlabel="wavelength (nm)")
        p = int(np.argmax(np.sum(A_true == 0, axis=1) > 0))
        ax[1].plot(wl, D[p], ".", ms=3, label="measured")
        ax[1].plot(wl, E @ A[p], label="L-BFGS-B fit")
        ax[1].set(title=f"pixel {p}", xlabel="wavelength (nm)")
        ax[1].legend()
        ax[2].imshow(A[: min(n_pix, 60)].T, aspect="auto", cmap="viridis")
        ax[2].set(title="abundances (first pixels)", xlabel="pixel", ylabel="component")
        fig.tight_layout()
        fig.savefig(out_path(args, "spectral_unmixing.png"), dpi=80)
        print(f"wrote {out_path(args, 'spectral_unmixing.png')}")


if __name__ == "__main__":
    main()
