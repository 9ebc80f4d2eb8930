"""The optimizers' updates as plain functions over lists of arrays, for code that keeps its own storage.

Each takes the parameters, their gradients and the state buffers as lists of NumPy arrays (updated in place) and
the options as keyword arguments, with torch.optim.functional's names.

The functions are the lowercase names each ``fastopt/optim/<algo>.py`` module exports (its ``__all__``), collected
here, so a new algorithm's functional form appears without a line in this file.
"""
from __future__ import annotations

import importlib
import pkgutil

from . import optim as _optim

__all__: list[str] = []
for _info in sorted(pkgutil.iter_modules(_optim.__path__), key=lambda m: m.name):
    if _info.name.startswith("_"):
        continue
    _module = importlib.import_module(f"{_optim.__name__}.{_info.name}")
    for _name in getattr(_module, "__all__", ()):
        if _name[:1].islower():
            globals()[_name] = getattr(_module, _name)
            __all__.append(_name)
__all__.sort()
del _info, _module, _name
