#!/bin/sh
# Build and run the Schedule-Free kernel microbenchmarks from the worktree root (after `python setup.py build_ext
# --inplace`, which writes csrc/fo_kernels.h):
#   sh bench/sf_micro.sh ab [rev [n reps rounds]]   in-process A/B (bench/sf_micro.c): csrc/ of git revision rev
#                                                   (default 4e06525, before round 6's kernel change) against the
#                                                   worktree's, e.g. `ab 4e06525 10000 300 41`, `ab 4e06525 1000000 5 41`
#   sh bench/sf_micro.sh check [seed count]         the exhaustive check of FO_DIV_BY_INV (bench/sf_div_check.c)
set -e
out=${TMPDIR:-/tmp}/sf_micro.$$
F="-O3 -fno-math-errno -ffp-contract=off -fopenmp-simd -fopenmp"
mode=${1:-ab}
[ $# -gt 0 ] && shift
if [ "$mode" = check ]; then
    gcc -O3 -mavx512f -mavx512vl -ffp-contract=off -fno-math-errno -o "$out" bench/sf_div_check.c -lm
    rc=0; "$out" "$@" || rc=$?
    rm -f "$out"
    exit $rc
fi
rev=${1:-4e06525}
[ $# -gt 0 ] && shift
mkdir -p "$out.old"
git archive "$rev" csrc | tar -x -C "$out.old"
cp csrc/fo_kernels.h "$out.old/csrc/"  # (generated; the same rows for these kernels)
o="$out.old/csrc"
gcc $F -Icsrc -I"$o" -c "$o/schedulefree.c" -o "$out.sf_old.o"
gcc $F -Icsrc -I"$o" -c "$o/lookahead.c" -o "$out.la_old.o"
gcc $F -Icsrc -Dfo_sf_sgd_f32=fo_sf_sgd_f32_new -Dfo_sf_adamw_f32=fo_sf_adamw_f32_new -Dfo_sf_sgd_f64=fo_sf_sgd_f64_new \
    -Dfo_sf_adamw_f64=fo_sf_adamw_f64_new -c csrc/schedulefree.c -o "$out.sf_new.o"
gcc $F -Icsrc -Dfo_lookahead_f32=fo_lookahead_f32_new -Dfo_lookahead_f64=fo_lookahead_f64_new -c csrc/lookahead.c \
    -o "$out.la_new.o"
gcc $F -Icsrc -o "$out" bench/sf_micro.c "$out.sf_old.o" "$out.la_old.o" "$out.sf_new.o" "$out.la_new.o" csrc/table.c \
    csrc/probe.c -lm -lpthread
rc=0; "$out" "$@" || rc=$?
rm -rf "$out" "$out".*
exit $rc
