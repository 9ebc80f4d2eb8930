"""Sphinx configuration of fastopt's API reference (built from the docstrings).

Build: ``pip install -r docs/requirements.txt`` then ``sphinx-build -W --keep-going -b html docs docs/_build/html``
with fastopt importable (installed, or built in place and run from the checkout root with PYTHONPATH=.) and
mpi4py with an MPI library installed (the fastopt.distributed section imports it).
"""
from __future__ import annotations

import fastopt

project = "fastopt"
author = "the fastopt authors"
copyright = "2026, the fastopt authors"
release = fastopt.__version__
version = ".".join(release.split(".")[:2])

# napoleon reads the Google-style "Args:" sections the docstrings use; autodoc pulls them from the code;
# mathjax renders their ".. math::" update rules.
extensions = ["sphinx.ext.autodoc", "sphinx.ext.napoleon", "sphinx.ext.mathjax", "sphinx.ext.viewcode"]
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_rtype = False
autodoc_default_options = {"members": True, "show-inheritance": True}
autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_typehints_description_target = "documented_params"  # types join the documented Args, no second list
nitpicky = False
exclude_patterns = ["_build"]
html_theme = "alabaster"
html_title = f"fastopt {release}"
