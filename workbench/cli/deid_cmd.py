"""``workbench deid text FILE``: de-identify free text, one record per line, as JSON lines."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from workbench.errors import DeidError


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add the ``deid`` commands to ``sub``."""
    deid = sub.add_parser("deid", help="De-identify free text (Presidio, offline).")
    deid_sub = deid.add_subparsers(dest="deid_command", metavar="SUBCOMMAND")
    text = deid_sub.add_parser(
        "text",
        help="De-identify FILE, one record per line; print JSON lines {line, spans, text}.",
        description=(
            "Each input line is one record. Output: one JSON object per line with the line number "
            "(from 1), the detected spans {start, end, type} on the original line and the redacted text. "
            "Use - to read standard input."
        ),
    )
    text.add_argument("file", help="UTF-8 text file (or - for standard input)")
    text.add_argument(
        "--entities",
        default=None,
        help="Comma-separated entity types to redact (default: all identifier types).",
    )
    text.add_argument("--out", type=Path, default=None, help="Write the JSON lines here instead of stdout.")
    text.set_defaults(func=_text)
    deid.set_defaults(func=lambda _args: (deid.print_help(), 2)[1])


_BLOCK = 256  # lines de-identified per batch call


def _text(args: argparse.Namespace) -> int:
    from workbench.cohort.deid.text import deidentify_texts

    entities = [e.strip() for e in args.entities.split(",") if e.strip()] if args.entities else None
    if args.file == "-":
        lines = sys.stdin.read().splitlines()
    else:
        path = Path(args.file)
        try:
            raw = path.read_bytes()
        except OSError as exc:
            raise DeidError(f"cannot read {path}: {exc.strerror}") from None
        try:
            lines = raw.decode("utf-8-sig").splitlines()
        except UnicodeDecodeError as exc:
            raise DeidError(
                f"{path} is not UTF-8 text (byte {exc.start}); convert it to UTF-8 first"
            ) from None
    out = open(args.out, "w", encoding="utf-8") if args.out else sys.stdout  # noqa: SIM115
    try:
        # Blocks of lines share spaCy batches and repeated paragraphs (same spans as one at a
        # time, tested); output still streams block by block.
        for start in range(0, len(lines), _BLOCK):
            results = deidentify_texts(lines[start : start + _BLOCK], entities=entities)
            for n, res in enumerate(results, start=start + 1):
                out.write(
                    json.dumps({"line": n, "spans": res.spans, "text": res.text}, ensure_ascii=False) + "\n"
                )
    finally:
        if out is not sys.stdout:
            out.close()
    return 0
