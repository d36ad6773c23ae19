"""The ``pyro-hea`` command line.

Each command lives in its own module under :mod:`pyro_hea.commands` with
``add_parser(subparsers)`` and ``run(args) -> int``; this file only
dispatches and turns every error into one line on stderr:

- bad input (:class:`~pyro_hea.errors.PyroHeaError`, a missing or unwritable
  file): ``pyro-hea COMMAND: error: ...``, exit status 2;
- anything unexpected: one line naming the exception, exit status 1, with a
  hint to run again with ``--debug``, which shows the full traceback;
- Ctrl-C or SIGTERM: ``interrupted``, exit status 130 (files being written
  are removed, the old ones kept).

The command modules import their heavy dependencies (torch, pyro, arviz,
pandas) only when a command runs, so ``--help`` and ``--version`` answer at once.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import signal
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
#: Longest error line printed; longer messages (a huge formula echoed back) are cut.
MAX_MESSAGE = 500


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line (with a pointer to ``--help``), exit status 2."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {one_line(message)} (see {self.prog} --help)\n")


def one_line(message: str, limit: int = MAX_MESSAGE) -> str:
    """``message`` on one line, at most ``limit`` characters.

    Examples
    --------
    >>> one_line("a\\n  b")
    'a b'
    >>> one_line("x" * 10_000).endswith("... (10000 characters)")
    True
    """
    text = " ".join(str(message).split())
    return text if len(text) <= limit else text[: limit - 25] + f"... ({len(text)} characters)"


def build_parser() -> argparse.ArgumentParser:
    """The ``pyro-hea`` parser; importing the commands' parsers loads no torch."""
    from pyro_hea import __version__

    parser = _Parser(
        prog="pyro-hea",
        description="Semi-supervised disentangled VAE for high-entropy alloy phase prediction and design.",
    )
    parser.add_argument("--version", action="version", version=f"pyro-hea {__version__}")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    for module in COMMANDS.values():
        importlib.import_module(f"pyro_hea.commands.{module}").add_parser(sub)
    for command in sub.choices.values():  # --debug after the command too: pyro-hea train --debug ...
        command.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                             help="show full tracebacks on errors")
    return parser


def _terminate_on_sigterm() -> None:
    """Turn SIGTERM into KeyboardInterrupt, so that temporary files and folders are cleaned up."""

    def handler(signum, frame):
        raise KeyboardInterrupt

    try:
        signal.signal(signal.SIGTERM, handler)
    except ValueError:  # pragma: no cover - not the main thread
        pass


def main(argv: list[str] | None = None) -> int:
    """Run ``pyro-hea`` with ``argv`` and return the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    _terminate_on_sigterm()
    where = f"pyro-hea {args.command}"
    try:
        return int(args.run(args) or 0)
    except KeyboardInterrupt:
        if args.debug:
            raise
        print(f"{where}: interrupted", file=sys.stderr)
        return 130
    except (PyroHeaError, OSError) as err:
        if args.debug:
            raise
        print(f"{where}: error: {one_line(_describe(err))}", file=sys.stderr)
        return 2
    except Exception as err:  # a bug, not bad input: still one line, the traceback with --debug
        if args.debug:
            raise
        print(f"{where}: unexpected error: {type(err).__name__}: {one_line(str(err))} "
              "(run again with --debug for the traceback, and please report it)", file=sys.stderr)
        return 1


def _describe(err: BaseException) -> str:
    if isinstance(err, OSError) and not isinstance(err, PyroHeaError) and err.strerror:
        where = f": {err.filename!r}" if err.filename else ""
        return f"{err.strerror}{where}"
    return str(err)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
