"""CLI of the private workspace: ``workspace``, ``consent``, ``erase``, ``audit`` and ``export``.

Every command takes ``--workspace DIR`` (default ``WB_HOME/workspace``), ``--compartment NAME``
and ``--json``. The passphrase comes from ``WB_PASSPHRASE`` or a prompt; ``rotate-key`` reads the
new one from ``WB_NEW_PASSPHRASE`` or a prompt (asked twice).
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from workbench.cli._common import add_json_flag, add_workspace_option, print_json
from workbench.errors import WorkspaceError
from workbench.settings import default_home


def _common(p: argparse.ArgumentParser, *, role: bool = False) -> None:
    add_workspace_option(p)
    add_json_flag(p)
    p.add_argument("--compartment", default=None, help="Compartment (default: WB_COMPARTMENT or 'default').")
    if role:
        p.add_argument(
            "--role",
            choices=("owner", "clinician", "researcher"),
            default=None,
            help="Act as this role (default: WB_ROLE or owner).",
        )


def _prompt(label: str, *, confirm: bool = False) -> str:
    if not sys.stdin or not sys.stdin.isatty():
        raise WorkspaceError(f"{label}: no terminal to prompt on; set WB_PASSPHRASE")
    first = getpass.getpass(f"{label}: ")
    if confirm and getpass.getpass(f"{label} (again): ") != first:
        raise WorkspaceError("the two passphrases differ; nothing was changed")
    if not first:
        raise WorkspaceError("an empty passphrase is not allowed")
    return first


def _passphrase(*, confirm: bool = False) -> str:
    return os.environ.get("WB_PASSPHRASE") or _prompt("Workspace passphrase", confirm=confirm)


def _root(args: argparse.Namespace) -> Path:
    return Path(args.workspace) if args.workspace else default_home() / "workspace"


def _open(args: argparse.Namespace, *, create: bool = False) -> Any:
    from workbench.workspace import keyring, open_workspace

    root = _root(args)
    if not keyring.exists(root) and not create:
        raise WorkspaceError(f"{root}: no workspace here; run `workbench workspace init` first")
    os.umask(0o077)  # everything the CLI makes (DuckDB WAL included) is owner-only
    return open_workspace(
        root,
        create=create,
        passphrase=_passphrase(confirm=create and not keyring.exists(root)),
        compartment=args.compartment,
        role=getattr(args, "role", None),
    )


def _out(args: argparse.Namespace, data: Any, lines: list[str]) -> None:
    if args.json:
        print_json(data)
    else:
        for line in lines:
            print(line)


# -- workspace -------------------------------------------------------------------------------
def cmd_init(args: argparse.Namespace) -> int:
    from workbench.workspace import keyring

    root = _root(args)
    existed = keyring.exists(root)
    ws = _open(args, create=True)
    info = _status(ws)
    info["created"] = not existed
    ws.close()
    _out(
        args,
        info,
        [f"{'opened' if existed else 'initialised'} workspace {root} (compartment {info['compartment']})"],
    )
    return 0


def _status(ws: Any) -> dict[str, Any]:
    from workbench.workspace import keyring
    from workbench.workspace.retention import get_retention

    data = keyring.load(ws.root)
    sources = ws.sources()
    grants = ws.consent.list()
    report = ws.trail.verify()
    return {
        "workspace": str(ws.root),
        "compartment": ws.compartment,
        "role": ws.role,
        "compartments": sorted(data["compartments"]),
        "kdf": {k: v for k, v in data["kdf"].items() if k != "salt"},
        "encryption": {
            "database": "DuckDB AES-GCM (per-generation key)",
            "files": "AES-256-GCM, one key per source",
            "keys": "AES-256-GCM envelope under an Argon2id-derived key",
        },
        "db_generation": ws.db_generation,
        "tables": ws.tables(),
        "sources": {
            "active": sum(1 for s in sources if s["status"] == "active"),
            "erased": sum(1 for s in sources if s["status"] == "erased"),
        },
        "active_grants": sum(1 for g in grants if g["active"]),
        "memory_entries": len(ws.memory),
        "retention_days": get_retention(ws),
        "audit": {"entries": report.entries, "ok": report.ok},
    }


def cmd_status(args: argparse.Namespace) -> int:
    ws = _open(args)
    info = _status(ws)
    ws.close()
    lines = [f"{k}: {v}" for k, v in info.items()]
    _out(args, info, lines)
    return 0


def cmd_rotate(args: argparse.Namespace) -> int:
    from workbench.workspace import keyring

    root = _root(args)
    if not keyring.exists(root):
        raise WorkspaceError(f"{root}: no workspace here")
    old = _passphrase()
    new = os.environ.get("WB_NEW_PASSPHRASE") or _prompt("New passphrase", confirm=True)
    ws = _open(args)  # proves the old passphrase before anything changes
    ws.rotate_key(new, old_passphrase=old, new_master=args.new_master)
    ws.close()
    _out(args, {"rotated": True, "new_master": bool(args.new_master)}, ["passphrase rotated"])
    return 0


def cmd_retention(args: argparse.Namespace) -> int:
    from workbench.workspace.retention import apply_retention, get_retention, set_retention

    ws = _open(args)
    if args.clear:
        set_retention(ws, None)
    elif args.days is not None:
        set_retention(ws, args.days)
    purged = apply_retention(ws) if args.apply else {}
    info = {"retention_days": get_retention(ws), "purged": purged}
    ws.close()
    _out(args, info, [f"retention: {info['retention_days'] or 'keep forever'} days; purged {purged}"])
    return 0


# -- consent ---------------------------------------------------------------------------------
def _parse_expiry(text: str | None) -> datetime | None:
    if not text:
        return None
    value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def cmd_grant(args: argparse.Namespace) -> int:
    ws = _open(args)
    scope = [s.strip() for s in args.scope.split(",") if s.strip()] if args.scope else None
    grant = ws.consent.grant(
        args.source,
        purpose=args.purpose,
        scope=scope,
        granted_by=args.granted_by,
        expires=_parse_expiry(args.expires),
    )
    ws.close()
    _out(args, grant, [f"granted {grant['grant_id']} for {args.source} ({args.purpose})"])
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    ws = _open(args)
    grants = ws.consent.list(include_revoked=not args.active)
    ws.close()
    lines = [
        f"{g['grant_id']}  {g['source_id']}  {g['purpose']:<13} {'active' if g['active'] else 'inactive':<8} "
        f"scope={','.join(g['scope']) if g['scope'] else 'all'} expires={g['expires'] or '-'} by={g['granted_by']}"
        for g in grants
    ] or ["no grants"]
    _out(args, grants, lines)
    return 0


def cmd_revoke(args: argparse.Namespace) -> int:
    ws = _open(args)
    report = ws.consent.revoke(args.source, erase=not args.keep_data)
    ws.close()
    _out(
        args,
        report,
        [f"revoked {args.source}; erased={report.get('erased')} verified={report.get('verified')}"],
    )
    return 0


def cmd_erase(args: argparse.Namespace) -> int:
    from workbench.workspace.erasure import erase_source

    ws = _open(args)
    report = erase_source(ws, args.source, reason="erase command")
    ws.close()
    _out(args, report, [f"erased {args.source}: {report['rows_deleted']} verified={report['verified']}"])
    return 0


# -- audit -----------------------------------------------------------------------------------
def cmd_verify(args: argparse.Namespace) -> int:
    ws = _open(args)
    report = ws.trail.verify()
    ws.close()
    data = {
        "ok": report.ok,
        "entries": report.entries,
        "head_seq": report.head_seq,
        "problems": report.problems,
    }
    _out(
        args,
        data,
        [f"audit trail {'verifies' if report.ok else 'TAMPERED'}: {report.entries} entries"]
        + report.problems,
    )
    return 0 if report.ok else 1


def cmd_show(args: argparse.Namespace) -> int:
    ws = _open(args)
    if args.head:
        head = ws.trail.head()
        ws.close()
        _out(args, head, [str(head)])
        return 0
    entries = list(ws.trail.entries())
    ws.close()
    if args.action:
        entries = [e for e in entries if e.get("action", "").startswith(args.action)]
    entries = entries[-args.limit :] if args.limit else entries
    lines = [
        f"{e['seq']:>6} {e['ts']} {e['action']:<18} {e.get('compartment') or '-':<10} {e['meta']}"
        for e in entries
    ]
    _out(args, entries, lines)
    return 0


# -- export ----------------------------------------------------------------------------------
def cmd_export(args: argparse.Namespace) -> int:
    from workbench.workspace.export import export_compartment

    ws = _open(args)
    formats = [f.strip() for f in args.format.split(",") if f.strip()]
    report = export_compartment(ws, args.out, formats=formats)
    ws.close()
    _out(
        args,
        report,
        [
            f"exported {report.get('bundles', 0)} FHIR bundles and {len(report.get('csv_tables', {}))} CSV tables to {args.out}"
        ],
    )
    return 0


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add this module's commands to ``sub``."""
    ws = sub.add_parser("workspace", help="Private workspace: init, status, rotate-key, retention.")
    wsub = ws.add_subparsers(dest="workspace_command", metavar="ACTION", required=True)
    p = wsub.add_parser("init", help="Create the encrypted workspace (asks for a passphrase).")
    _common(p)
    p.set_defaults(func=cmd_init)
    p = wsub.add_parser("status", help="Compartments, sources, grants, audit state.")
    _common(p, role=True)
    p.set_defaults(func=cmd_status)
    p = wsub.add_parser("rotate-key", help="Re-wrap the keys under a new passphrase (atomic).")
    _common(p)
    p.add_argument("--new-master", action="store_true", help="Also replace the master key.")
    p.set_defaults(func=cmd_rotate)
    p = wsub.add_parser("retention", help="Show, set or apply the compartment's retention policy.")
    _common(p)
    p.add_argument("--days", type=float, default=None, help="Keep conversation memory this many days.")
    p.add_argument("--clear", action="store_true", help="Keep memory forever.")
    p.add_argument("--apply", action="store_true", help="Purge what is older now.")
    p.set_defaults(func=cmd_retention)

    consent = sub.add_parser("consent", help="Consent ledger: grant, list, revoke.")
    csub = consent.add_subparsers(dest="consent_command", metavar="ACTION", required=True)
    p = csub.add_parser("grant", help="Grant use of a source for a purpose.")
    _common(p)
    p.add_argument("source", help="Source id (see `workbench consent list`).")
    p.add_argument("--purpose", choices=("research", "personal_care"), default="personal_care")
    p.add_argument("--scope", default=None, help="Resource types, comma-separated (default: all).")
    p.add_argument("--granted-by", default=None, help="Who grants (default: WB_USER or the OS user).")
    p.add_argument("--expires", default=None, help="ISO date-time the grant ends (UTC if no zone).")
    p.set_defaults(func=cmd_grant)
    p = csub.add_parser("list", help="List grants.")
    _common(p)
    p.add_argument("--active", action="store_true", help="Only grants not revoked.")
    p.set_defaults(func=cmd_list)
    p = csub.add_parser("revoke", help="Revoke a source's consent and erase everything derived from it.")
    _common(p)
    p.add_argument("source")
    p.add_argument("--keep-data", action="store_true", help="Only revoke (data stays, hidden); no erasure.")
    p.set_defaults(func=cmd_revoke)

    p = sub.add_parser("erase", help="Erase a source and everything derived from it, then verify.")
    _common(p)
    p.add_argument("source")
    p.set_defaults(func=cmd_erase)

    audit = sub.add_parser("audit", help="Audit trail: verify, show.")
    asub = audit.add_subparsers(dest="audit_command", metavar="ACTION", required=True)
    p = asub.add_parser("verify", help="Check the hash chain; exits 1 when tampered with.")
    _common(p)
    p.set_defaults(func=cmd_verify)
    p = asub.add_parser("show", help="Print audit entries (metadata only).")
    _common(p)
    p.add_argument("--limit", type=int, default=50, help="Last N entries (0 = all).")
    p.add_argument("--action", default=None, help="Only actions starting with this.")
    p.add_argument(
        "--head", action="store_true", help="Print the signed head anchor (keep a copy elsewhere)."
    )
    p.set_defaults(func=cmd_show)

    p = sub.add_parser("export", help="Export the compartment as FHIR R4 bundles and CSV.")
    _common(p, role=True)
    p.add_argument("--out", type=Path, required=True, help="Output folder (outside the workspace).")
    p.add_argument("--format", default="fhir,csv", help="fhir, csv or both (default).")
    p.set_defaults(func=cmd_export)
