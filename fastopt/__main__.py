"""``fastopt`` command line (``python -m fastopt`` or the ``fastopt`` console script)."""
from __future__ import annotations

import sys
from collections.abc import Sequence

USAGE = """usage: fastopt COMMAND [options]

commands:
  bench    time fastopt against NumPy, torch.optim and the memory ceiling (fastopt bench --help)
"""


def main(argv: Sequence[str] | None = None) -> int:
    """Dispatch ``argv`` (default: ``sys.argv[1:]``) to a subcommand; returns the exit status."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        print(USAGE, end="")
        return 0 if args else 2
    cmd, rest = args[0], args[1:]
    if cmd == "bench":
        from .bench import main as bench_main
        return bench_main(rest)
    print(f"fastopt: unknown command {cmd!r}\n{USAGE}", end="", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
