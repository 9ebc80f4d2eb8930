"""The ``fastopt`` command: ``fastopt demo`` (the optimizer comparison) and ``fastopt bench`` (the benchmark)."""
from __future__ import annotations

import sys

COMMANDS = {
    "demo": "train a small network with SGD, momentum, RMSprop and Adam; print the losses, plot the curves",
    "bench": "time fastopt's optimizers against NumPy and torch.optim; write the results to a new directory",
}

USAGE = "\n".join(
    ["usage: fastopt [--version] [--help] COMMAND [options]", "", "commands:"]
    + [f"  {name:<7} {text}" for name, text in COMMANDS.items()]
    + ["", "'fastopt COMMAND --help' shows a command's options."])


def main(argv: list[str] | None = None) -> int:
    """Run the command line with ``argv`` (default: ``sys.argv[1:]``); returns the exit status."""
    args = sys.argv[1:] if argv is None else list(argv)
    if not args:
        print(USAGE, file=sys.stderr)
        return 2
    if args[0] in ("-h", "--help", "help"):
        print(USAGE)
        return 0
    if args[0] in ("-V", "--version"):
        from . import __version__
        print(f"fastopt {__version__}")
        return 0
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
