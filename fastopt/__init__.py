"""fastopt: torch.optim's optimizers for NumPy, as fused C kernels.

>>> import numpy as np, fastopt as fo
>>> w = fo.Parameter(np.zeros(3, np.float32))
>>> opt = fo.Adam([w], lr=1e-3)
"""
__version__ = "0.1.0"  # the one version source: pyproject.toml reads it, `fastopt --version` prints it


def _check_extension() -> None:
    """Import the compiled extension first, so that a source tree without it says so plainly (instead of
    Python's "cannot import name '_kernels' from partially initialized module")."""
    import importlib.machinery
    import os

    try:
        from . import _kernels  # noqa: F401
    except ImportError as exc:
        here = os.path.dirname(os.path.abspath(__file__))
        if not os.path.exists(os.path.join(here, "_kernels.pyx")):
            raise  # an installed package whose extension fails to load: Python's own message says why
        built = [f for f in os.listdir(here) if f.startswith("_kernels.")
                 and f.endswith(tuple(importlib.machinery.EXTENSION_SUFFIXES))]
        what = (f"fastopt's compiled extension in this source tree ({here}) does not load ({exc}): rebuild it"
                if built else f"fastopt's compiled extension (fastopt._kernels) is not built in this source tree "
                f"({here})")
        raise ImportError(
            f"{what}. Either run from another directory, so that the installed fastopt is imported, or build the "
            f"extension here: 'pip install -e .' (editable install) or 'python setup.py build_ext --inplace' "
            f"(in-place build)."
        ) from None  # the chained "partially initialized module" error would only confuse


_check_extension()
del _check_extension

from . import functional, lr_scheduler, swa_utils, tree  # noqa: E402
from ._kernels import get_num_threads, have_openmp, set_num_threads
from .clip import clip_grad_norm_, clip_grad_value_, clip_grads_with_norm_, get_total_norm
from .optim.adadelta import Adadelta
from .optim.adafactor import Adafactor
from .optim.adagrad import Adagrad
from .optim.adam import Adam, AdamW
from .optim.adamax import Adamax
from .optim.lbfgs import LBFGS
from .optim.asgd import ASGD
from .optim.muon import Muon
from .optim.lion import Lion
from .optim.nadam import NAdam
from .optim.radam import RAdam
from .optim.rmsprop import RMSprop
from .optim.rprop import Rprop
from .optim.sgd import SGD
from .optim.sparse_adam import SparseAdam, SparseGrad
from .io import load, save
from .minimize import minimize, scipy_lbfgs
from .optimizer import Optimizer
from .parameter import Parameter
from .optim.ademamix import AdEMAMix  # beyond torch.optim (issue #15): AdEMAMix, LAMB, LARS, Lookahead
from .optim.lamb import LAMB
from .optim.lars import LARS
from .optim.lookahead import Lookahead
from .optim.schedulefree import ScheduleFreeAdamW, ScheduleFreeSGD  # beyond torch.optim
from .optim.prodigy import Prodigy  # beyond torch.optim

__all__ = [
    "ASGD", "Adadelta", "Adafactor", "Adagrad", "Adam", "AdamW", "Adamax", "LBFGS", "Lion", "Muon", "NAdam", "Optimizer",
    "Parameter", "RAdam", "RMSprop", "Rprop", "SGD", "SparseAdam", "SparseGrad", "clip_grad_norm_",
    "clip_grad_value_", "clip_grads_with_norm_", "functional", "get_num_threads", "get_total_norm",
    "have_openmp", "load", "lr_scheduler", "minimize", "save", "scipy_lbfgs", "set_num_threads", "swa_utils", "tree",
    "AdEMAMix", "LAMB", "LARS", "Lookahead",
    "ScheduleFreeSGD", "ScheduleFreeAdamW", "Prodigy",
]
