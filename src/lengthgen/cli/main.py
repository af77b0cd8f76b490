"""The `lengthgen` command: the parser, dispatch to a command, and one line per user error.

Each command module (data, train, runs, sweeps) adds its own subcommands with
`add_parsers(sub)`; a handler receives the parsed arguments. Every user error ends with one line
on stderr and exit status 2, never a traceback; SIGTERM stops like Ctrl-C, checkpoints kept.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading

from ..errors import UserError
from ..store.fileio import is_disk_full
from . import data, runs, sweeps, train

COMMAND_MODULES = (data, train, runs, sweeps)


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line and exit status 2."""

    def error(self, message):
        raise UserError(f"{self.prog}: {message}")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand."""
    parser = _Parser(prog="lengthgen", description="Length generalization bench for transformers.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    for module in COMMAND_MODULES:
        module.add_parsers(sub)
    return parser


class Terminated(KeyboardInterrupt):
    """SIGTERM (a scheduler's preemption, `kill`, `timeout`): stop as Ctrl-C does, checkpoints kept."""


def _terminate(signum, frame) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # once: a second signal must not cut the cleanup short
    raise Terminated()


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `lengthgen` console script."""
    # Without a handler SIGTERM kills at once: a sweep's worker processes would train on unowned
    # and the sweep's session record would be lost. Only the main thread may set handlers.
    in_main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _terminate) if in_main_thread else None
    try:
        parser = build_parser()
        args, extra = parser.parse_known_args(argv)
        # Overrides may come after options (`train cfg.yaml --quiet a.b=1`): argparse leaves them over.
        if extra and hasattr(args, "overrides") and not any(x.startswith("-") for x in extra):
            args.overrides = [*args.overrides, *extra]
        elif extra:
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
        args.fn(args)
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except OSError as err:  # the environment (a full disk, a permission), not a bug: one line too
        why = "disk full" if is_disk_full(err) else (err.strerror or str(err))
        print(f"error: {why}" + (f": {err.filename}" if err.filename else ""), file=sys.stderr)
        return 2
    except KeyboardInterrupt as stop:
        how = "stopped by SIGTERM" if isinstance(stop, Terminated) else "interrupted"
        print(f"{how}; run the same command again to resume from the last checkpoints", file=sys.stderr)
        return 143 if isinstance(stop, Terminated) else 130
    finally:
        if in_main_thread:
            signal.signal(signal.SIGTERM, previous)
    return 0


if __name__ == "__main__":
    sys.exit(main())
