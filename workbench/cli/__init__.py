"""The ``workbench`` command line: one subcommand group per module, all over the public API.

Each module in :data:`COMMAND_MODULES` exposes ``register(subparsers)`` that adds its
commands and sets ``func`` on each parser; ``func(args) -> int`` returns the exit code.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

from workbench.errors import WorkbenchError

COMMAND_MODULES = (
    "workbench.cli.index_cmd",  # index build|info, search
    "workbench.cli.records_cmd",  # records import|summary|patients|export
    "workbench.cli.deid_cmd",  # deid text
    "workbench.cli.cohort_cmd",  # cohort run
    "workbench.cli.answer_cmd",  # ask, explain-labs, prepare-visit, plain-language
    "workbench.cli.workspace_cmd",  # workspace, consent, erase, audit, export
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="workbench",
        description="Health Evidence Workbench: cited evidence, de-identified records, private workspace.",
    )
    parser.add_argument("--verbose", "-v", action="store_true", help="Show progress and debug logging.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help()
        return 2
    try:
        code = int(func(args) or 0)
        sys.stdout.flush()  # inside the try: a closed pipe must surface here, not at exit
        return code
    except BrokenPipeError:
        # The reader went away (`workbench ... | head`): stop quietly, as Unix tools do, and keep
        # the interpreter's final flush from reporting the same error again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)  # stdout's descriptor now points at /dev/null; this copy is not needed
        return 141  # 128 + SIGPIPE, what a shell reports for a tool stopped by a closed pipe
    except WorkbenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
