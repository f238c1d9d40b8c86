"""``workbench ask``, ``explain-labs``, ``prepare-visit`` and ``plain-language``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from workbench.cli._common import add_json_flag, add_workspace_option, print_json


def _common(p: argparse.ArgumentParser) -> None:
    add_json_flag(p)
    p.add_argument(
        "--offline", action="store_true", help="Use the offline extractive answerer even if a model is set."
    )
    p.add_argument(
        "--html", type=Path, default=None, metavar="FILE", help="Also write the answer as HTML to FILE."
    )


def _emit(answer: Any, args: argparse.Namespace) -> int:
    if args.html is not None:
        args.html.write_text(answer.to_html(), encoding="utf-8")
    if args.json:
        print_json(answer.to_dict())
    else:
        sys.stdout.write(answer.to_markdown() + "\n")
    return 0


def _offline(args: argparse.Namespace) -> bool | None:
    return True if args.offline else None


def _ask(args: argparse.Namespace) -> int:
    from workbench.answer import ask

    if args.patient and args.workspace is None:
        args.workspace = None  # open_workspace's default folder (WB_HOME/workspace)
    answer = ask(
        args.question,
        index=args.index,
        patient=args.patient,
        workspace=args.workspace,
        k=args.k,
        offline=_offline(args),
    )
    return _emit(answer, args)


def _explain(args: argparse.Namespace) -> int:
    from workbench.answer import explain_labs

    index = args.index
    if not args.no_evidence and index is None:
        index = _default_index()
    answer = explain_labs(
        args.patient,
        workspace=args.workspace,
        index=None if args.no_evidence else index,
        offline=_offline(args),
    )
    return _emit(answer, args)


def _default_index() -> Any:
    """The default evidence index, or None (with a note) when it has not been built yet."""
    from workbench.errors import IndexMissing

    try:
        from workbench.retrieval import EvidenceIndex

        return EvidenceIndex.load(None)
    except (IndexMissing, ImportError):
        print(
            "note: no evidence index found; explaining results without literature (run `workbench index build`)",
            file=sys.stderr,
        )
        return None


def _visit(args: argparse.Namespace) -> int:
    from workbench.answer import prepare_visit

    return _emit(prepare_visit(args.patient, workspace=args.workspace, offline=_offline(args)), args)


def _plain(args: argparse.Namespace) -> int:
    from workbench.answer import plain_language

    return _emit(plain_language(Path(args.file), offline=_offline(args)), args)


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add this module's commands to ``sub``."""
    p = sub.add_parser("ask", help="Answer a question with cited evidence (and a patient's records).")
    p.add_argument("question", help="The question, in quotes.")
    p.add_argument(
        "--patient", default=None, metavar="ID", help="Patient id as listed by `workbench records patients`."
    )
    add_workspace_option(p)
    p.add_argument(
        "--index", type=Path, default=None, metavar="DIR", help="Evidence index folder (default: settings)."
    )
    p.add_argument("--k", type=int, default=8, help="Passages to retrieve (default 8).")
    _common(p)
    p.set_defaults(func=_ask)

    p = sub.add_parser(
        "explain-labs", help="Explain a patient's abnormal or changing results, with evidence."
    )
    p.add_argument("--patient", required=True, metavar="ID")
    add_workspace_option(p)
    p.add_argument(
        "--index", type=Path, default=None, metavar="DIR", help="Evidence index folder (default: settings)."
    )
    p.add_argument("--no-evidence", action="store_true", help="Do not search the literature.")
    _common(p)
    p.set_defaults(func=_explain)

    p = sub.add_parser("prepare-visit", help="Changes since the last visit, open problems, questions to ask.")
    p.add_argument("--patient", required=True, metavar="ID")
    add_workspace_option(p)
    _common(p)
    p.set_defaults(func=_visit)

    p = sub.add_parser(
        "plain-language", help="Rewrite a clinical note in plain language, traceable to the note."
    )
    p.add_argument("file", help="A UTF-8 text file with the note.")
    _common(p)
    p.set_defaults(func=_plain)
