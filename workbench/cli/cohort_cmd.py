"""``workbench cohort run|sql|patterns``: cohorts, plain SQL and pattern review over a workspace.

Patient ids leave the command only as keyed pseudonyms (``workbench.cohort.deid``), never raw.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import Any

import duckdb

from workbench.cli._common import add_json_flag, add_workspace_option, print_json
from workbench.errors import CohortError


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add this module's commands to ``sub``."""
    parser = sub.add_parser("cohort", help="Build cohorts, run read-only SQL and review chronic patterns.")
    csub = parser.add_subparsers(dest="cohort_command", metavar="SUBCOMMAND")

    run = csub.add_parser("run", help="Run a cohort definition (JSON) and print attrition and N.")
    run.add_argument("definition", type=Path, help="Cohort definition file (JSON, schema_version 1).")
    add_workspace_option(run)
    run.add_argument("--index-date", type=date.fromisoformat, default=None, help="Override the index date.")
    run.add_argument("--show-sql", action="store_true", help="Also print the compiled SQL.")
    add_json_flag(run)
    run.set_defaults(func=_run)

    sql = csub.add_parser("sql", help="Run one read-only SELECT on the records tables.")
    sql.add_argument("query", help='The SELECT statement, e.g. "SELECT count(*) FROM patients".')
    add_workspace_option(sql)
    sql.add_argument("--limit", type=int, default=1000, help="At most this many rows (default 1000).")
    add_json_flag(sql)
    sql.set_defaults(func=_sql)

    pat = csub.add_parser(
        "patterns", help="Patterns in the records worth discussing with a clinician (never a diagnosis)."
    )
    add_workspace_option(pat)
    add_json_flag(pat)
    pat.set_defaults(func=_patterns)

    parser.set_defaults(func=lambda args: (parser.print_help(), 2)[1])


@contextmanager
def _read_connection(path: Path | None) -> Iterator[tuple[Any, duckdb.DuckDBPyConnection]]:
    from workbench.workspace import open_workspace

    ws = open_workspace(path, create=False) if path is not None else open_workspace(create=False)
    try:
        yield ws, ws.connect(read_only=True)
    finally:
        ws.close()


def _pseudonymiser(ws: Any) -> tuple[Callable[..., str], bool]:
    """A function ``(raw_id, kind="patient") -> pseudonym``, and whether it pseudonymises at all."""
    if getattr(ws, "role", "owner") == "researcher":
        # A researcher's tables are already de-identified: their ids are pseudonyms.
        return (lambda value, kind="patient": value), True
    try:
        deid = importlib.import_module("workbench.cohort.deid.pseudonym")
    except ImportError:
        print(
            "warning: workbench.cohort.deid is not installed; patient ids are shown unpseudonymised",
            file=sys.stderr,
        )
        return (lambda value, kind="patient": value), False
    key = deid.workspace_key(ws)
    return (lambda value, kind="patient": str(deid.pseudonym(key, value, kind))), True


def _run(args: argparse.Namespace) -> int:
    from workbench.cohort.cohort_builder import load_definition, run_cohort

    definition = load_definition(args.definition)
    with _read_connection(args.workspace) as (ws, con):
        result = run_cohort(con, definition, index_date=args.index_date)
        alias, pseudonymised = _pseudonymiser(ws)
        ids = sorted(alias(str(p)) for p in result.patients["patient_id"])
        ws.audit("cohort.run", steps=len(definition.criteria), n=result.n)
    if args.json:
        out = result.to_dict()
        out["patients"] = ids
        out["pseudonymised"] = pseudonymised
        if args.show_sql:
            out["sql"] = result.sql
        print_json(out)
        return 0
    print(f"cohort: {definition.name} (index date {result.index_date.isoformat()})")
    width = max(len(str(n)) for n in result.attrition["n"])
    for step, crit, n in zip(result.attrition["step"], result.attrition["criterion"], result.attrition["n"]):
        print(f"  {int(step):>3}  {int(n):>{width}}  {crit}")
    print(f"N = {result.n}")
    for w in result.warnings:
        print(f"warning: {w}", file=sys.stderr)
    if args.show_sql:
        print(result.sql)
    return 0


def _sql(args: argparse.Namespace) -> int:
    from workbench.cohort.cohort_builder import run_sql

    if args.limit is not None and args.limit < 1:
        raise CohortError("--limit must be 1 or more")
    with _read_connection(args.workspace) as (ws, con):
        df = run_sql(con, args.query, limit=args.limit)
        ws.audit("cohort.sql", rows=len(df))
    if args.json:
        print_json({"columns": list(df.columns), "rows": df.to_dict(orient="records")})
    else:
        print(df.to_string(index=False) if len(df) else "(no rows)")
    return 0


def _patterns(args: argparse.Namespace) -> int:
    from workbench.cohort.patterns import load_patterns, review_cohort

    with _read_connection(args.workspace) as (ws, con):
        df = review_cohort(con)
        alias, pseudonymised = _pseudonymiser(ws)
        ws.audit("cohort.patterns", findings=len(df))
    findings = []
    for rec in df.to_dict(orient="records"):
        rec["patient_id"] = alias(str(rec["patient_id"]))
        rec["record_ids"] = [alias(str(r), "resource") for r in rec["record_ids"]]
        for ev in rec["evidence"]:
            ev["resource_id"] = alias(str(ev["resource_id"]), "resource")
        findings.append(rec)
    if args.json:
        print_json(
            {"statement": load_patterns().statement, "pseudonymised": pseudonymised, "findings": findings}
        )
        return 0
    print(load_patterns().statement)
    for f in findings:
        print(f"{f['patient_id']}  {f['label']}: {f['stage']}  ({len(f['record_ids'])} records)")
    print(f"{len(findings)} finding(s)")
    return 0
