"""``workbench records import|summary|patients|export``: the records tables from the command line."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from workbench.cli._common import add_json_flag, add_workspace_option, print_json
from workbench.workspace import open_workspace


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add this module's commands to ``sub``."""
    records = sub.add_parser("records", help="Import and inspect health records (FHIR, wellness).")
    rsub = records.add_subparsers(dest="records_command", metavar="ACTION")

    p = rsub.add_parser(
        "import",
        help="Import FHIR bundles/NDJSON, Apple Health and MyFitnessPal exports.",
        description="Each PATH is a file or a folder searched recursively; formats are told apart by content.",
    )
    p.add_argument("paths", nargs="+", type=Path, metavar="PATH")
    add_workspace_option(p)
    p.add_argument("--person", default="self", help="Patient id for wellness rows (default: self).")
    p.add_argument("--strict", action="store_true", help="Stop at the first bad resource.")
    p.add_argument(
        "--purpose",
        choices=["personal_care", "research"],
        default=None,
        help="Consent purpose recorded for new sources (default: WB_IMPORT_PURPOSE or personal_care).",
    )
    p.add_argument(
        "--workers",
        type=int,
        default=None,
        help="Processes reading bundles in parallel (default: auto, 1 = none).",
    )
    p.add_argument(
        "--txn-rows",
        type=int,
        default=20_000,
        help="Rows of whole patients per transaction (1 = one transaction per patient).",
    )
    add_json_flag(p)
    p.set_defaults(func=cmd_import)

    p = rsub.add_parser("summary", help="Row counts per table and the patient count.")
    add_workspace_option(p)
    add_json_flag(p)
    p.set_defaults(func=cmd_summary)

    p = rsub.add_parser("patients", help="Pseudonymous patient ids with age band, sex and record counts.")
    add_workspace_option(p)
    add_json_flag(p)
    p.set_defaults(func=cmd_patients)

    p = rsub.add_parser("export", help="Export the records tables (de-identified) as Parquet + CSV.")
    add_workspace_option(p)
    p.add_argument("--deidentified", action="store_true", help="Required: export only de-identified data.")
    p.add_argument("--out", type=Path, required=True, help="Output folder.")
    p.add_argument(
        "--date-mode",
        choices=["shift", "year"],
        default="shift",
        help="Shift dates per patient or keep the year.",
    )
    add_json_flag(p)
    p.set_defaults(func=cmd_export)

    records.set_defaults(func=lambda args: (records.print_help(), 2)[1])


def cmd_import(args: argparse.Namespace) -> int:
    from workbench.cohort.importer import import_paths

    ws = open_workspace(args.workspace)

    def progress(report: Any) -> None:
        if args.verbose and not args.json:
            print(f"{report.status:>9}  {report.file}", file=sys.stderr)

    result = import_paths(
        ws,
        args.paths,
        person=args.person,
        strict=args.strict,
        progress=progress,
        workers=args.workers,
        txn_rows=args.txn_rows,
        purpose=args.purpose,
    )
    data = result.to_dict()
    if args.json:
        print_json(data)
    else:
        print(f"import {data['import_id']}: {len(data['files'])} files, {data['patients']} new patients")
        for name, n in sorted(data["rows"].items()):
            print(f"  {name:<20} {n:>9} rows")
        if data["unknown_types"]:
            kinds = ", ".join(f"{k} {v}" for k, v in sorted(data["unknown_types"].items()))
            print(f"  not stored (no spec): {kinds}")
        if data["duplicates"]:
            print(f"  already stored, skipped: {data['duplicates']}")
        for err in data["errors"]:
            print(f"  error: {err['message']}", file=sys.stderr)
    return 1 if data["errors"] else 0


def cmd_summary(args: argparse.Namespace) -> int:
    from workbench.cohort.records import summary

    ws = open_workspace(args.workspace)
    data = summary(ws)
    if args.json:
        print_json(data)
    else:
        print(f"patients: {data['patients']}")
        for name, n in data["tables"].items():
            print(f"  {name:<20} {n:>9}")
    return 0


def cmd_patients(args: argparse.Namespace) -> int:
    from workbench.cohort.records import list_patients

    ws = open_workspace(args.workspace)
    rows = list_patients(ws)
    if args.json:
        print_json(rows)
    else:
        print(f"{'patient':<22} {'age':<7} {'sex':<7} records")
        for r in rows:
            print(f"{r['patient']:<22} {r['age_band'] or '?':<7} {r['sex'] or '?':<7} {r['records']}")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from workbench.cohort.records import export_deidentified

    if not args.deidentified:
        print("error: only de-identified export is offered; add --deidentified", file=sys.stderr)
        return 2
    ws = open_workspace(args.workspace)
    data = export_deidentified(ws, args.out, date_mode=args.date_mode)
    if args.json:
        print_json(data)
    else:
        for name, n in data["tables"].items():
            print(f"  {name:<20} {n:>9} rows")
        print(f"written to {data['out']}")
    return 0
