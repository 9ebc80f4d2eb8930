"""The ``fastopt`` command: ``fastopt demo`` (the optimizer comparison) and ``fastopt bench`` (the benchmark)."""
from __future__ import annotations

import sys

USAGE = """usage: fastopt COMMAND [options]

commands:
  demo    train a 1-20-1 MLP with SGD, momentum, RMSprop and Adam; print the losses, plot the curves
  bench   measure fastopt against NumPy and torch.optim; write bench/RESULTS.md

'fastopt COMMAND --help' shows a command's options."""


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else list(argv)
    if not args or args[0] in ("-h", "--help"):
        print(USAGE)
        return 0 if args else 2
    cmd, rest = args[0], args[1:]
    if cmd == "demo":
        from .demo import main as demo_main
        return demo_main(rest)
    if cmd == "bench":
        from .bench import main as bench_main
        return bench_main(rest)
    print(f"fastopt: unknown command {cmd!r}\n\n{USAGE}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
