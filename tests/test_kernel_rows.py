"""The kernel table's rows come from one declaration line in each kernel's own file (FO_KERNEL in csrc/<algo>.c,
collected by tools/gen_kernel_rows.py into the generated csrc/fo_kernels.h): the built table is exactly those lines,
and a malformed line stops the build naming its file and line."""
from __future__ import annotations

import importlib.util
import os
import tarfile
from pathlib import Path

import pytest

from fastopt import _kernels as K

ROOT = Path(__file__).resolve().parents[1]
TOOL = ROOT / "tools" / "gen_kernel_rows.py"
if not TOOL.exists() or not (ROOT / "csrc" / "fastopt.h").exists():
    pytest.skip("not run from a source tree (csrc/ and tools/ absent)", allow_module_level=True)
_spec = importlib.util.spec_from_file_location("gen_kernel_rows", TOOL)
G = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(G)


def test_the_built_table_is_the_declaration_lines():
    kernels, steps, reducers = G.collect(str(ROOT))
    assert {k[0] for k in kernels} == set(K.KERNELS)
    for name, nb, ns, fields, where in kernels:
        k = K.KERNELS[name]
        assert (k.n_bufs, k.n_scalars) == (nb, ns), where
        assert k.fields == tuple(f for _, f in fields), where
    assert {s for s, _ in steps} == {n for n, k in K.KERNELS.items() if k.has_step_scalars}
    assert {(r[0], r[1], r[2]) for r in reducers} == {(n, r.kernel, r.n_out) for n, r in K.REDUCERS.items()}


def test_each_line_sits_in_its_kernels_file_after_the_header():
    kernels, _, _ = G.collect(str(ROOT))
    for name, _, _, _, where in kernels:
        path, line = where.rsplit(":", 1)
        text = (ROOT / path).read_text().splitlines()
        include = text.index('#include "fastopt.h"')  # the line compiles as a check against the generated header
        assert include < int(line) - 1, where


def _tree(tmp_path: Path, **files: str) -> str:
    (tmp_path / "csrc").mkdir()
    for name, text in files.items():
        (tmp_path / "csrc" / f"{name}.c").write_text(text)
    return str(tmp_path)


GOOD = '#include "fastopt.h"\nFO_KERNEL(toy, 3, 1, D(lr)\n    I(maximize))\nFO_KERNEL_STEP_SCALARS(toy)\n'


@pytest.mark.parametrize("text,message", [
    ('#include "fastopt.h"\n\nFO_KERNEL(toy, 3, D(lr))\n', "csrc/bad.c:3: expected FO_KERNEL(name, n_bufs"),
    ('#include "fastopt.h"\nFO_KERNEL(toy, 3, 1, D(lr) F(x))\n', "csrc/bad.c:2: the fields of FO_KERNEL(toy"),
    ('#include "fastopt.h"\nFO_KERNEL(toy, 3, 1, D(lr) I(lr))\n', "names fields ['lr'] twice"),
    ('#include "fastopt.h"\nFO_KERNEL(toy, 3, 1, D(lr)\n', "csrc/bad.c:2: unbalanced parentheses"),
    ('FO_REDUCER(toy_sum, nothing, 2)\n', "csrc/bad.c:1: 'nothing' is not a kernel declared with FO_KERNEL"),
    ('FO_KERNEL(toy, 2, 0, D(w))\n', "the kernel or reducer name 'toy' is declared more than once"),
])
def test_a_malformed_line_stops_the_build_naming_file_and_line(tmp_path, text, message):
    root = _tree(tmp_path, bad=text, good=GOOD)
    with pytest.raises(SystemExit) as e:
        G.generate(root)
    assert message in str(e.value)
    assert not os.path.exists(os.path.join(root, G.GENERATED_HEADER))


def test_generated_header_holds_the_rows_and_is_rewritten_only_on_change(tmp_path):
    root = _tree(tmp_path, toy=GOOD)
    path = G.generate(root)
    text = Path(path).read_text()
    assert "#define FO_TOY_FIELDS(D, I, S) D(S, lr) I(S, maximize)" in text
    assert "X(toy, FO_TOY_FIELDS, 3, 1)" in text and "X(toy)" in text
    os.utime(path, (1, 1))
    G.generate(root)
    assert os.stat(path).st_mtime == 1
    (tmp_path / "csrc" / "toy.c").write_text(GOOD.replace("3, 1", "4, 1"))
    G.generate(root)
    assert "X(toy, FO_TOY_FIELDS, 4, 1)" in Path(path).read_text()


def test_the_sdist_ships_the_generator_not_its_output():
    if not os.environ.get("FASTOPT_SDIST"):
        pytest.skip("FASTOPT_SDIST is set by .ci/run")
    with tarfile.open(os.environ["FASTOPT_SDIST"]) as tar:
        tails = {n.partition("/")[2] for n in tar.getnames()}
    assert "tools/gen_kernel_rows.py" in tails and "csrc/fo_kernels.h" not in tails
