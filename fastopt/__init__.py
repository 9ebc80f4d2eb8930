"""fastopt: torch.optim's optimizers for NumPy, as fused C kernels.

>>> import numpy as np, fastopt as fo
>>> w = fo.Parameter(np.zeros(3, np.float32))
>>> opt = fo.Adam([w], lr=1e-3)
"""
from . import functional, lr_scheduler, swa_utils, tree
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

__version__ = "0.1.0"

__all__ = [
    "ASGD", "Adadelta", "Adafactor", "Adagrad", "Adam", "AdamW", "Adamax", "LBFGS", "Lion", "Muon", "NAdam", "Optimizer",
    "Parameter", "RAdam", "RMSprop", "Rprop", "SGD", "SparseAdam", "SparseGrad", "clip_grad_norm_",
    "clip_grad_value_", "clip_grads_with_norm_", "functional", "get_num_threads", "get_total_norm",
    "have_openmp", "load", "lr_scheduler", "minimize", "save", "scipy_lbfgs", "set_num_threads", "swa_utils", "tree"
]
