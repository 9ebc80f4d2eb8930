"""The optimizers' updates as plain functions over lists of arrays, for code that keeps its own storage.

Each takes the parameters, their gradients and the state buffers as lists of NumPy arrays (updated in place) and
the options as keyword arguments, with torch.optim.functional's names.
"""
from .optim.adadelta import adadelta
from .optim.adafactor import adafactor
from .optim.adagrad import adagrad
from .optim.adam import adam, adamw
from .optim.asgd import asgd
from .optim.muon import muon
from .optim.adamax import adamax
from .optim.lion import lion
from .optim.nadam import nadam
from .optim.radam import radam
from .optim.rmsprop import rmsprop
from .optim.rprop import rprop
from .optim.sgd import sgd
from .optim.sparse_adam import sparse_adam

__all__ = [
    "adadelta", "adafactor", "adagrad", "adam", "adamax", "adamw", "asgd", "lion", "muon", "nadam", "radam", "rmsprop",
    "rprop", "sgd", "sparse_adam"
]
