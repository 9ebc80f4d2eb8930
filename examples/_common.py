"""What every example shares: the command line (--quick, --out-dir) and an optional matplotlib."""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

DEFAULT_OUT = Path(__file__).resolve().parent / "out"


def parser(doc: str, writes: bool = True) -> argparse.ArgumentParser:
    """An argument parser with the flags every example takes: --quick and (if it writes files) --out-dir."""
    ap = argparse.ArgumentParser(description=doc.strip().split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true",
                    help="a few seconds instead of up to a minute (fewer steps, smaller data); used by the tests")
    if writes:
        ap.add_argument("--out-dir", default=str(DEFAULT_OUT),
                        help=f"where PNGs and files go (default: {os.path.relpath(DEFAULT_OUT)})")
    return ap


def out_path(args: argparse.Namespace, name: str) -> Path:
    """``out_dir / name``, creating the directory."""
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    return out / name


def pyplot():
    """matplotlib.pyplot with the file-only Agg backend, or None (with a note on stderr) if it is not installed."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed, so no plot is written (pip install matplotlib)", file=sys.stderr)
        return None
    return plt


def save_figure(plt, fig, args: argparse.Namespace, name: str, dpi: int = 110) -> Path:
    """Lay ``fig`` out, write it to ``out_dir / name``, close it and say where it went."""
    fig.tight_layout()
    path = out_path(args, name)
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    print(f"plot written to {path}")
    return path
