"""Write fastopt/_kernels.pyi, the type stub of the compiled extension, from its Cython sources.

    python tools/gen_kernels_stub.py            # rewrite fastopt/_kernels.pyi
    python tools/gen_kernels_stub.py --check    # exit 1 (and say so) if the committed stub is out of date

It reads fastopt/_kernels.pyx with the .pxi files it includes, and turns every Python-visible name into a
stub line: module constants (``NAME = ...``), ``def`` functions, ``cdef class`` types with their
``cdef readonly`` attributes and their ``def``/``cpdef`` methods. Argument types come from the Cython
declarations (``double`` -> float, ``int``/``int64_t`` -> int, ``bint`` -> bool, ``list`` -> list[Any], a
cdef class -> that class); an untyped argument or a missing return annotation is ``Any``. Nothing is written
by hand, so the stub follows the extension's surface whenever that changes: regenerate, then check it against
the built module with ``python -m mypy.stubtest fastopt._kernels`` (CI does both).
"""
from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYX = ROOT / "fastopt" / "_kernels.pyx"
PYI = ROOT / "fastopt" / "_kernels.pyi"

C_TYPES = {
    "double": "float", "float": "float", "int": "int", "long": "int", "int64_t": "int", "Py_ssize_t": "int",
    "size_t": "int", "bint": "bool", "list": "list[Any]", "tuple": "tuple[Any, ...]", "dict": "dict[str, Any]",
    "str": "str", "object": "Any", "cnp.ndarray": "np.ndarray", "ndarray": "np.ndarray", "None": "None",
    "bool": "bool",
}


def source_lines() -> list[str]:
    """The .pyx with each ``include "x.pxi"`` replaced by that file's lines."""
    out: list[str] = []
    for line in PYX.read_text().splitlines():
        m = re.match(r'include\s+"([^"]+)"', line)
        out += (PYX.parent / m.group(1)).read_text().splitlines() if m else [line]
    return out


def split_args(text: str) -> list[str]:
    """Split an argument list at top-level commas."""
    parts, depth, cur = [], 0, ""
    for ch in text:
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(cur.strip())
            cur = ""
        else:
            cur += ch
    if cur.strip():
        parts.append(cur.strip())
    return parts


def py_type(ctype: str | None, classes: set[str]) -> str:
    if ctype is None:
        return "Any"
    ctype = ctype.strip().strip("'\"")
    if ctype in classes:
        return ctype
    return C_TYPES.get(ctype, "Any")


def stub_arg(arg: str, classes: set[str]) -> str:
    name, _, default = arg.partition("=")
    words = name.split()
    if words[0] in ("self", "*"):  # "*" alone: the keyword-only marker, kept as is
        return words[0]
    pname, ctype = words[-1], (" ".join(words[:-1]) or None)
    t = py_type(ctype, classes)
    if default.strip() == "None" and t not in ("Any", "None"):
        t += " | None"
    return f"{pname}: {t}" + (" = ..." if default else "")


#: module constants built by a cdef helper of the extension: helper name -> the type it returns
CONSTANT_BUILDERS = {
    "_codes": "dict[int, tuple[int, str]]",         # stop code -> (scipy status, message)
    "_fields": "tuple[tuple[str, int, str, int], ...]",  # (name, byte offset, kind, count) per struct field
}


def constant_type(value: str, makers: dict[str, str] | None = None) -> str:
    """The stub type of a module constant from the text on the right of its ``=``. ``makers`` maps a cdef helper
    that returns a cdef class instance to that class: a dict comprehension whose values are the loop variable over
    that helper's results (``KERNELS = {k.name: k for k in (_kernel_row(i) ...)}``) maps str to that class."""
    m = re.match(r"\{[^:]+:\s*(\w+)\s+for\s+(\w+)\s+in\b(.*)\}$", value)
    if m and m.group(1) == m.group(2):
        made = {makers[h] for h in re.findall(r"(\w+)\(", m.group(3)) if h in (makers or {})}
        if len(made) == 1:
            return f"dict[str, {made.pop()}]"
    if m := re.match(r"(\w+)\(", value):
        if m.group(1) in CONSTANT_BUILDERS:
            return CONSTANT_BUILDERS[m.group(1)]
        if m.group(1) == "dict":
            return "dict[str, int]"
    if value.startswith("{"):
        return "dict[str, int]"
    if value.startswith(("(\"", "('")):
        return "tuple[str, ...]"
    return "int"


def signature(lines: list[str], i: int) -> tuple[str, int]:
    """The text of a def/cpdef header starting at line i (it may span lines), and the next line index."""
    text = lines[i].strip()
    while not re.search(r"\)\s*(->[^:]+)?(except[^:]*)?:\s*(#.*)?$", text):
        i += 1
        text += " " + lines[i].strip()
    return text, i + 1


def function(header: str, classes: set[str], indent: str) -> str:
    m = re.match(r"(?:cpdef\s+(?:(?P<ctype>[\w.]+)\s+)?|def\s+)(?P<name>\w+)\s*\((?P<args>.*)\)\s*"
                 r"(?:->\s*(?P<ret>[^:]+?))?\s*(?:except[^:]*)?:", header)
    if m is None:
        raise SystemExit(f"gen_kernels_stub: cannot parse {header!r}")
    name = m.group("name")
    ret = m.group("ret") or m.group("ctype")   # None (an untyped cpdef) becomes Any
    args = [stub_arg(a, classes) for a in split_args(m.group("args"))]
    if name in ("__cinit__", "__init__"):
        name, ret = "__init__", "None"
    return f"{indent}def {name}({', '.join(args)}) -> {py_type(ret, classes)}: ..."


def generate() -> str:
    lines = source_lines()
    classes = {m.group(1) for ln in lines if (m := re.match(r"cdef class (\w+)", ln))}
    makers = {m.group(2): m.group(1) for ln in lines
              if (m := re.match(r"cdef (\w+) (\w+)\(", ln)) and m.group(1) in classes}
    out = ['"""Type stub of the compiled extension fastopt._kernels.',
           "",
           "Generated by tools/gen_kernels_stub.py from fastopt/_kernels.pyx and its .pxi includes: do not edit;",
           "regenerate after changing the extension (CI checks it is current and matches the built module).",
           '"""', "from typing import Any", "", "import numpy as np", "from typing_extensions import disjoint_base",
           ""]
    i, cls, members = 0, None, {}
    while i < len(lines):
        line = lines[i]
        if re.match(r"\S", line) and cls is not None:  # a class body ends at the next top-level line
            out += members.pop("__init__", []) + members.pop("body", []) or ["    ..."]
            out.append("")
            cls = None
        if m := re.match(r"cdef class (\w+)", line):
            cls, members = m.group(1), {}
            out += ["@disjoint_base", f"class {cls}:"]  # a cdef class cannot share a base layout
            i += 1
            continue
        if cls is not None:
            if m := re.match(r"    cdef readonly ([\w.]+) (.+)$", line):
                t = py_type(m.group(1), classes)
                members.setdefault("body", []).extend(f"    {n.strip()}: {t}" for n in m.group(2).split(","))
            elif re.match(r"    (def|cpdef) ", line):
                header, i = signature(lines, i)
                name = re.search(r"(\w+)\s*\(", header).group(1)
                if name == "__dealloc__" or (name == "__cinit__" and "__init__" in members):
                    continue
                key = "__init__" if name in ("__cinit__", "__init__") else "body"
                text = function(header, classes, "    ")
                members[key] = [text] if key == "__init__" else members.get("body", []) + [text]
                continue
            i += 1
            continue
        if m := re.match(r"([A-Za-z_]\w*)\s*=\s*(.*)$", line):
            out.append(f"{m.group(1)}: {constant_type(m.group(2), makers)}")
        elif line.startswith(("def ", "cpdef ")):                # top-level functions, cpdef ones too
            header, i = signature(lines, i)
            out.append(function(header, classes, ""))
            continue
        i += 1
    if cls is not None:
        out += members.pop("__init__", []) + members.pop("body", []) or ["    ..."]
    return "\n".join(out).rstrip() + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="only check that fastopt/_kernels.pyi is current")
    args = ap.parse_args(argv)
    text = generate()
    if args.check:
        if not PYI.exists() or PYI.read_text() != text:
            print("fastopt/_kernels.pyi is out of date: run python tools/gen_kernels_stub.py", file=sys.stderr)
            return 1
        return 0
    PYI.write_text(text)
    print(f"wrote {PYI.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
