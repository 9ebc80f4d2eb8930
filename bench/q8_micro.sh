#!/bin/sh
# Build and run bench/q8_micro.c (per-phase profile / exhaustive check of the 8-bit quantizer) from the worktree
# root after `python setup.py build_ext --inplace`: links the in-place build's objects except lowp.o.
#   sh bench/q8_micro.sh prof [n reps]  |  sh bench/q8_micro.sh check [scale ...]  (~1 min per scale)
set -e
out=${TMPDIR:-/tmp}/q8_micro.$$
PY=${PYTHON:-python}
$PY -c "import numpy as np; from fastopt import _lowp as L; np.concatenate([L.QMAP1, L.QLEV1, L.QMAP2, L.QLEV2]).astype(np.float32).tofile('$out.maps')"
objs=$(ls build/temp.*/csrc/*.o | grep -v '/lowp\.o$')
gcc -O3 -fno-math-errno -ffp-contract=off -fopenmp-simd -fopenmp -Icsrc -DNDEBUG -o "$out" bench/q8_micro.c $objs -lm
"$out" "$out.maps" "$@"
rc=$?
rm -f "$out" "$out.maps"
exit $rc
