"""fastopt: torch.optim's optimizers for NumPy, as fused C kernels.

>>> import numpy as np, fastopt as fo
>>> w = fo.Parameter(np.zeros(3, np.float32))
>>> opt = fo.Adam([w], lr=1e-3)
"""
from . import functional, lr_scheduler
from ._kernels import get_num_threads, have_openmp, set_num_threads
from .optim.adam import Adam, AdamW
from .optim.asgd import ASGD
from .optim.muon import Muon
from .optim.rmsprop import RMSprop
from .optim.rprop import Rprop
from .optim.sgd import SGD
from .optim.sparse_adam import SparseAdam, SparseGrad
from .io import load, save
from .optimizer import Optimizer
from .parameter import Parameter

__version__ = "0.1.0"

__all__ = ["ASGD", "Adam", "AdamW", "Muon", "Optimizer", "Parameter", "RMSprop", "Rprop", "SGD", "SparseAdam",
           "SparseGrad", "functional", "get_num_threads", "have_openmp", "load", "lr_scheduler", "save",
           "set_num_threads"]
