"""Collect the kernel table's rows from the kernels' own files into csrc/fo_kernels.h (run by setup.py).

Each table kernel declares itself in its csrc/<algo>.c with one line starting at column 0 (it may run on over
several lines), right after ``#include "fastopt.h"``::

    FO_KERNEL(<name>, <n_bufs>, <n_scalars>, D(<double field>) ... I(<int field>) ...)
    FO_KERNEL_STEP_SCALARS(<name>)              (the kernel defines fo_<name>_step_scalars)
    FO_REDUCER(<name>, <kernel>, <n_out>)      (a group reduction over <kernel>'s tensor list)

``generate()`` writes them, in file-name order, into csrc/fo_kernels.h as the lists ``FO_KERNELS`` (with one
``FO_<NAME>_FIELDS(D, I, S)`` per kernel), ``FO_STEP_SCALARS`` and ``FO_REDUCERS`` that csrc/fastopt.h includes.
setup.py runs it on every invocation (a clean clone, the sdist -> wheel build, an editable install, the sanitizer
build), so the header is never committed (.gitignore) nor shipped (MANIFEST.in); compiled, each line is a static
check that the header it was built with matches it (fastopt.h, ``FO_KERNEL``).

    usage: python tools/gen_kernel_rows.py [ROOT]      (ROOT: the source tree, default this checkout)
"""
from __future__ import annotations

import glob
import os
import re
import sys

GENERATED_HEADER = os.path.join("csrc", "fo_kernels.h")
_DECL = re.compile(r"^(FO_KERNEL|FO_KERNEL_STEP_SCALARS|FO_REDUCER)\(", re.M)
_IDENT = r"[A-Za-z_][A-Za-z0-9_]*"


def _call_args(text: str, start: int, where: str) -> str:
    """The text between the parenthesis at ``start`` and its match."""
    depth = 0
    for i in range(start, len(text)):
        depth += {"(": 1, ")": -1}.get(text[i], 0)
        if depth == 0:
            return text[start + 1:i]
    raise SystemExit(f"{where}: unbalanced parentheses in the declaration line")


def _parse_kernel(args: str, where: str) -> tuple[str, int, int, list[tuple[str, str]]]:
    m = re.fullmatch(rf"\s*({_IDENT})\s*,\s*(\d+)\s*,\s*(\d+)\s*,(.*)", args, re.S)
    if not m:
        raise SystemExit(f"{where}: expected FO_KERNEL(name, n_bufs, n_scalars, D(field) ... I(field) ...)")
    name, nb, ns, rest = m.group(1), int(m.group(2)), int(m.group(3)), m.group(4)
    fields = re.findall(rf"\b([DI])\(\s*({_IDENT})\s*\)", rest)
    if not fields or re.sub(rf"\b[DI]\(\s*{_IDENT}\s*\)", "", rest).strip():
        raise SystemExit(f"{where}: the fields of FO_KERNEL({name}, ...) must be D(name) or I(name) entries only, "
                         f"got {rest.strip()!r}")
    dup = sorted({f for _, f in fields if [g for _, g in fields].count(f) > 1})
    if dup:
        raise SystemExit(f"{where}: FO_KERNEL({name}, ...) names fields {dup} twice")
    return name, nb, ns, fields


def collect(root: str) -> tuple[list, list, list]:
    """The declaration lines of root/csrc/*.c, checked: ``kernels`` [(name, n_bufs, n_scalars, [(kind, field)],
    where)], ``steps`` [(kernel, where)], ``reducers`` [(name, kernel, n_out, where)], where = "csrc/<file>.c:<line>".
    SystemExit naming the file and line on a malformed line, a name declared twice, or a reference to no kernel."""
    kernels: list = []
    steps: list = []
    reducers: list = []
    for path in sorted(glob.glob(os.path.join(root, "csrc", "*.c"))):
        with open(path) as f:
            text = f.read()
        for m in _DECL.finditer(text):
            where = f"{os.path.relpath(path, root)}:{text.count(chr(10), 0, m.start()) + 1}"
            args = _call_args(text, m.end() - 1, where)
            if m.group(1) == "FO_KERNEL":
                kernels.append(_parse_kernel(args, where) + (where,))
            elif m.group(1) == "FO_KERNEL_STEP_SCALARS":
                if not re.fullmatch(rf"\s*{_IDENT}\s*", args):
                    raise SystemExit(f"{where}: expected FO_KERNEL_STEP_SCALARS(name)")
                steps.append((args.strip(), where))
            else:
                r = re.fullmatch(rf"\s*({_IDENT})\s*,\s*({_IDENT})\s*,\s*(\d+)\s*", args)
                if not r:
                    raise SystemExit(f"{where}: expected FO_REDUCER(name, kernel, n_out)")
                reducers.append((r.group(1), r.group(2), int(r.group(3)), where))
    names = [k[0] for k in kernels]
    for name, where in [(k[0], k[4]) for k in kernels] + [(r[0], r[3]) for r in reducers]:
        if (names + [r[0] for r in reducers]).count(name) > 1:
            raise SystemExit(f"{where}: the kernel or reducer name '{name}' is declared more than once")
    for name, where in steps + [(r[1], r[3]) for r in reducers]:
        if name not in names:
            raise SystemExit(f"{where}: '{name}' is not a kernel declared with FO_KERNEL")
    if not kernels:
        raise SystemExit("no FO_KERNEL line found in csrc/*.c")
    return kernels, steps, reducers


def generate(root: str) -> str:
    """Write root/csrc/fo_kernels.h from the declaration lines (``collect``); a file whose text would not change is
    not rewritten (it keeps its mtime, so an unchanged table recompiles nothing). Returns its path."""
    kernels, steps, reducers = collect(root)
    out = ["/* fo_kernels.h - GENERATED by setup.py (tools/gen_kernel_rows.py) from the FO_KERNEL,",
           " * FO_KERNEL_STEP_SCALARS and FO_REDUCER lines of the csrc/<name>.c files; included by fastopt.h.",
           " * Do not edit and do not commit (.gitignore): edit the line in the kernel's own file and rebuild. */",
           "#ifndef FO_KERNELS_H", "#define FO_KERNELS_H", ""]
    for name, nb, ns, fields, where in kernels:
        body = " ".join(f"{kind}(S, {field})" for kind, field in fields)
        out.append(f"/* {where} */")
        out.append(f"#define FO_{name.upper()}_FIELDS(D, I, S) {body}")
    out.append("")
    for macro, rows in (("FO_KERNELS", [f"X({n}, FO_{n.upper()}_FIELDS, {nb}, {ns})" for n, nb, ns, _, _ in kernels]),
                        ("FO_STEP_SCALARS", [f"X({n})" for n, _ in steps]),
                        ("FO_REDUCERS", [f"X({n}, {k}, {no})" for n, k, no, _ in reducers])):
        out.append(" \\\n    ".join([f"#define {macro}(X)"] + rows))
    out += ["", "#endif /* FO_KERNELS_H */", ""]
    text = "\n".join(out)
    path = os.path.join(root, GENERATED_HEADER)
    try:
        with open(path) as f:
            same = f.read() == text
    except OSError:
        same = False
    if not same:
        with open(path, "w") as f:
            f.write(text)
    return path


if __name__ == "__main__":
    print(generate(os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__),
                                                                                       ".."))))
