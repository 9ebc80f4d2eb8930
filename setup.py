"""Build the one extension module, ``fastopt._kernels``: the Cython boundary plus every C kernel in csrc/.

Flags: -O3 and -fno-math-errno (so sqrt vectorises), -ffp-contract=off (no silent FMA: results stay the
same on every CPU and match torch's separate multiply and add), never -ffast-math (it breaks NaN
handling and parity) and never -march=native (the wheel must run on any x86-64; the kernels pick
AVX-512/AVX2 at run time through target_clones). OpenMP is used when the compiler accepts -fopenmp;
without it the build still works and the kernels run on one thread.
"""
import glob
import importlib.util
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile

import numpy as np
from Cython.Build import cythonize
from setuptools import Extension, setup

HERE = os.path.dirname(os.path.abspath(__file__))

# The kernel table's rows: each kernel declares its own in its csrc/<algo>.c (one FO_KERNEL line); they are
# collected into the generated csrc/fo_kernels.h on every run of this file, before anything compiles
# (tools/gen_kernel_rows.py says how).
_spec = importlib.util.spec_from_file_location("gen_kernel_rows", os.path.join(HERE, "tools", "gen_kernel_rows.py"))
_rows = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_rows)
_rows.generate(HERE)


def _compiler_accepts(flag: str) -> bool:
    """Compile and link a tiny OpenMP program with ``flag``; True if that works."""
    cc = os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc"
    cc = cc.split()
    src = "#include <omp.h>\nint main(void){int n=0;\n#pragma omp parallel reduction(+:n)\nn+=1;\nreturn omp_get_max_threads()>0&&n>0?0:1;}\n"
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "probe.c")
        with open(path, "w") as f:
            f.write(src)
        try:
            res = subprocess.run(cc + [flag, path, "-o", os.path.join(tmp, "probe")],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        except OSError:
            return False
        return res.returncode == 0


openmp = os.environ.get("FASTOPT_NO_OPENMP") != "1" and _compiler_accepts("-fopenmp")
if not openmp:
    print("fastopt: building without OpenMP (kernels run on one thread)", file=sys.stderr)

compile_args = ["-O3", "-fno-math-errno", "-ffp-contract=off", "-fopenmp-simd"]
link_args = []
macros = [("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")]
if openmp:
    compile_args.append("-fopenmp")
    link_args.append("-fopenmp")
    macros.append(("FO_HAVE_OPENMP", "1"))

sources = ["fastopt/_kernels.pyx"] + sorted(glob.glob("csrc/*.c"))
ext = Extension(
    "fastopt._kernels",
    sources=sources,
    include_dirs=["csrc", np.get_include()],
    define_macros=macros,
    extra_compile_args=compile_args,
    extra_link_args=link_args,
    libraries=["m"],
    depends=sorted(glob.glob("csrc/*.h")) + sorted(glob.glob("fastopt/*.pxi")) + ["fastopt/_kernels.pxd"],
)

# Compile the C files in parallel (pip and `python -m build` run build_ext without -j).
setup(ext_modules=cythonize([ext], language_level=3, compiler_directives={
    "boundscheck": False, "wraparound": False, "cdivision": True, "initializedcheck": False}),
      options={"build_ext": {"parallel": os.cpu_count() or 1}})
