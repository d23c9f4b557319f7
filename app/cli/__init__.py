"""The `infinibook` command line: one subcommand module per area, all on the engine API.

Every command takes `--data-dir` (and honours $INFINIBOOK_DATA_DIR); engine errors are printed
as one sentence on stderr with a non-zero exit status and no traceback. A reader that stops
early (`infinibook export 1 | head`) ends the command quietly with status 141, as SIGPIPE would.
"""

import argparse
import os
import sys
from collections.abc import Sequence

from engine.errors import InfinibookError

from . import bench, books, evaluate, gui, reading, train
from .common import fail, silence_stdout

# Each module exposes register(subparsers); a subcommand sets `handler` to a function(args) -> int.
COMMAND_MODULES = [books, reading, bench, train, evaluate, gui]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="infinibook",
        description="Read whole books into an Infini-attention memory, then ask and summarise.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in COMMAND_MODULES:
        module.register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        parser.print_help()
        return 1
    if getattr(args, "allow_download", False):
        os.environ["INFINIBOOK_ALLOW_DOWNLOAD"] = "1"  # read by the model loader, nowhere else
    try:
        return int(args.handler(args) or 0)
    except InfinibookError as error:
        return fail(str(error))
    except KeyboardInterrupt:
        return fail("interrupted; finished work is kept.", 130)
    except BrokenPipeError:
        silence_stdout()
        return 128 + 13  # SIGPIPE: the output was cut short, which a pipeline can tell


if __name__ == "__main__":
    sys.exit(main())
