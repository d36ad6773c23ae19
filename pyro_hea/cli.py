"""The ``pyro-hea`` command line.

Each command lives in its own module under :mod:`pyro_hea.commands` with
``add_parser(subparsers)`` and ``run(args) -> int``; this file only
dispatches and turns bad input into a one-line error with exit status 2.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from pyro_hea.errors import PyroHeaError

#: Command name -> module under pyro_hea.commands.
COMMANDS = {
    "data": "data",
    "train": "train",
    "inspect": "inspect",
    "explain": "explain",
    "design": "design",
}


def build_parser() -> argparse.ArgumentParser:
    from pyro_hea import __version__

    parser = argparse.ArgumentParser(
        prog="pyro-hea",
        description="Semi-supervised disentangled VAE for high-entropy alloy phase prediction and design.",
    )
    parser.add_argument("--version", action="version", version=f"pyro-hea {__version__}")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name, module in COMMANDS.items():
        importlib.import_module(f"pyro_hea.commands.{module}").add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run ``pyro-hea`` with ``argv`` and return the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        return int(args.run(args) or 0)
    except (PyroHeaError, FileNotFoundError, FileExistsError, NotADirectoryError) as err:
        if args.debug:
            raise
        print(f"pyro-hea {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
