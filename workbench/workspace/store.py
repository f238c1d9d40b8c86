"""The private health workspace: one folder, encrypted at rest, split into compartments.

Layout of a workspace folder (folders 0700, files 0600)::

    keyring.json                 KDF header + every wrapped key (see :mod:`.crypto`)
    audit/log.jsonl, head.json   hash-chained, HMAC-signed audit trail (see :mod:`.audit`)
    compartments/<name>/
        records-<gen>.duckdb     the records database, DuckDB-encrypted with the compartment's db key
        files/<source_id>.bin    encrypted copies of imported source files (one data key per source)
        cache/                   encrypted derived blobs (answers, personal-document indexes)
        tmp/                     DuckDB spill folder (spill files are encrypted too)

Every module that stores personal data goes through this interface: ``connect`` for DuckDB,
``register_source`` for imported files, ``audit`` for the trail, ``memory``/``cache_put`` for
derived data, ``secret`` for keyed pseudonyms. Importers write base tables through
``connect()``; readers use ``connect(read_only=True)``, whose tables are views that only show rows
of sources with an active consent grant for the role's purpose (see :mod:`.consent`).

The passphrase comes from ``passphrase=``, else ``WB_PASSPHRASE``; the derived master key is
cached in this process's memory so reopening costs no KDF.
"""

from __future__ import annotations

import getpass
import os
import re
import sys
import threading
import time
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import duckdb

from workbench.errors import AccessDenied, WorkspaceError
from workbench.settings import default_home
from workbench.workspace import crypto, keyring
from workbench.workspace._fs import (
    FILE_MODE,
    atomic_write,
    clean_stale_tmp,
    fsync_dir,
    private_dir,
    remove,
)
from workbench.workspace.audit import AuditTrail, current_actor

if TYPE_CHECKING:
    from workbench.workspace.consent import ConsentLedger
    from workbench.workspace.memory import ConversationMemory
    from workbench.workspace.personal import PersonalIndex

Role = Literal["owner", "clinician", "researcher"]
Purpose = Literal["research", "personal_care"]
ROLES: tuple[str, ...] = ("owner", "clinician", "researcher")
PURPOSES: tuple[str, ...] = ("research", "personal_care")
DEFAULT_COMPARTMENT = "default"
_NAME_RE = re.compile(r"[a-z0-9][a-z0-9_.-]{0,63}")

#: Which FHIR resource type a records table holds, for consent scopes (wellness tables: "Wellness").
TABLE_RESOURCE_TYPES: dict[str, tuple[str, ...]] = {
    "patients": ("Patient",),
    "encounters": ("Encounter",),
    "conditions": ("Condition",),
    "observations": ("Observation",),
    "medications": ("MedicationRequest", "MedicationStatement"),
    "immunizations": ("Immunization",),
    "procedures": ("Procedure",),
    "allergies": ("AllergyIntolerance",),
    "diagnostic_reports": ("DiagnosticReport",),
    "documents": ("DocumentReference",),
    "claims": ("Claim",),
    "eobs": ("ExplanationOfBenefit",),
    "coverage": ("Coverage",),
    "measurements": ("Wellness", "Observation"),
    "workouts": ("Wellness",),
    "activity_summaries": ("Wellness",),
    "nutrition": ("Wellness",),
    "personal_chunks": ("DocumentReference", "Document"),
}

_SCHEMA = [
    "CREATE SCHEMA IF NOT EXISTS records.wb",
    """CREATE TABLE IF NOT EXISTS records.wb.sources (
        source_id VARCHAR, kind VARCHAR, sha256 VARCHAR, name VARCHAR, size BIGINT,
        registered TIMESTAMP, status VARCHAR, erased TIMESTAMP)""",
    """CREATE TABLE IF NOT EXISTS records.wb.grants (
        grant_id VARCHAR, source_id VARCHAR, scope VARCHAR[], purpose VARCHAR, granted_by VARCHAR,
        granted TIMESTAMP, expires TIMESTAMP, revoked TIMESTAMP, revoked_by VARCHAR, note VARCHAR)""",
    """CREATE TABLE IF NOT EXISTS records.wb.memory (
        entry_id VARCHAR, conversation_id VARCHAR, created TIMESTAMP, role VARCHAR, kind VARCHAR,
        text VARCHAR, source_ids VARCHAR[], meta JSON)""",
    """CREATE TABLE IF NOT EXISTS records.wb.cache (
        key VARCHAR, file VARCHAR, created TIMESTAMP, source_ids VARCHAR[])""",
    """CREATE TABLE IF NOT EXISTS records.wb.erasures (
        source_id VARCHAR, erased TIMESTAMP, rows_deleted BIGINT, verified BOOLEAN, report JSON)""",
    """CREATE OR REPLACE VIEW records.wb.active_grants AS
        SELECT * FROM records.wb.grants
        WHERE revoked IS NULL AND (expires IS NULL OR expires > (now() AT TIME ZONE 'UTC'))""",
]


#: SQL for "now" as a naive UTC timestamp (every ``wb`` timestamp is naive UTC).
NOW_SQL = "(now() AT TIME ZONE 'UTC')"


def utcnow() -> datetime:
    """Now as a naive UTC datetime (what ``wb`` tables store)."""
    return datetime.now(UTC).replace(tzinfo=None)


def to_utc_naive(value: datetime | None) -> datetime | None:
    """Aware datetimes converted to naive UTC; naive ones are taken as UTC already."""
    if value is None or value.tzinfo is None:
        return value
    return value.astimezone(UTC).replace(tzinfo=None)


def _resolve_passphrase(passphrase: str | None) -> str | None:
    if passphrase is not None:
        return passphrase
    env = os.environ.get("WB_PASSPHRASE")
    if env:
        return env
    path = os.environ.get("WB_PASSPHRASE_FILE")
    if path:
        return Path(path).read_text(encoding="utf-8").rstrip("\n")
    return None


def _prompt_passphrase(root: Path) -> str | None:
    """Ask on the terminal when there is one (CLI and console use); None otherwise."""
    if sys.stdin is None or not sys.stdin.isatty():
        return None
    return getpass.getpass(f"Passphrase for workspace {root}: ") or None


def _check_name(name: str, what: str) -> str:
    if not _NAME_RE.fullmatch(name):
        raise WorkspaceError(f"invalid {what} name {name!r}: use 1-64 of a-z 0-9 _ . - (start alphanumeric)")
    return name


def _private_db_files(db: Path) -> None:
    """DuckDB creates its files with the process umask; the database and WAL must be 0600."""
    for p in (db, db.with_name(db.name + ".wal")):
        try:
            os.chmod(p, FILE_MODE)
        except FileNotFoundError:
            pass


class _Instance:
    """One DuckDB database instance per records file per process (shared by every Workspace)."""

    def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
        self.con = con
        self.refs = 0
        self.lock = threading.Lock()


_INSTANCES: dict[str, _Instance] = {}
_INSTANCES_LOCK = threading.Lock()


def _sql_str(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _open_duckdb(db_path: Path, key: bytes, tmp_dir: Path) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB with the encrypted records file attached as ``records``."""
    con = duckdb.connect(":memory:")
    try:
        con.execute("SET autoinstall_known_extensions = false")
        try:
            # OpenSSL (via httpfs) is DuckDB's preferred crypto provider when it is installed.
            con.execute("LOAD httpfs")
        except duckdb.Error:
            # Without httpfs DuckDB 2.0 refuses to *write* with its bundled mbedtls because that
            # build draws GCM nonces from a non-cryptographic (randomly seeded) generator.
            # We accept that: keys are 256-bit random, one per database generation.
            con.execute("SET force_mbedtls_unsafe = true")
        con.execute("SET temp_file_encryption = true")
        con.execute(f"SET temp_directory = {_sql_str(str(tmp_dir))}")
        con.execute(f"ATTACH {_sql_str(str(db_path))} AS records (ENCRYPTION_KEY {_sql_str(key.hex())})")
        con.execute("USE records")
        for stmt in _SCHEMA:
            con.execute(stmt)
    except duckdb.IOException as exc:
        con.close()
        if "lock" in str(exc).lower():
            raise WorkspaceError(
                f"{db_path}: the records database is open in another process; close it and retry"
            ) from exc
        raise WorkspaceError(f"{db_path}: cannot open the records database ({exc})") from exc
    except duckdb.Error as exc:
        con.close()
        raise WorkspaceError(f"{db_path}: cannot open the encrypted records database ({exc})") from exc
    return con


class Workspace:
    """An open compartment of a workspace folder, acting under one role."""

    DB_NAME = "records.duckdb"  # kept for callers of the earlier plain-folder layout

    def __init__(
        self, root: Path, *, compartment: str, role: str, master: bytes, keyring_data: dict[str, Any]
    ) -> None:
        self.root = root
        self.compartment = compartment
        self.role = role
        self._master = master
        comp = keyring_data["compartments"][compartment]
        self._ckey = crypto.unwrap(master, comp["key"], name=f"compartment:{compartment}")
        self._audit_key = crypto.unwrap(master, keyring_data["audit_key"], name="audit")
        self._instance: _Instance | None = None
        self._instance_path: str | None = None
        self._closed = False
        self.trail = AuditTrail(root / "audit", self._audit_key)

    # -- paths -------------------------------------------------------------------------------
    @property
    def compartment_dir(self) -> Path:
        return self.root / "compartments" / self.compartment

    @property
    def db_generation(self) -> int:
        return int(self._compartment_entry()["db"]["generation"])

    @property
    def db_path(self) -> Path:
        return self.compartment_dir / f"records-{self.db_generation}.duckdb"

    @property
    def files_dir(self) -> Path:
        return self.compartment_dir / "files"

    @property
    def cache_dir(self) -> Path:
        return self.compartment_dir / "cache"

    @property
    def tmp_dir(self) -> Path:
        return self.compartment_dir / "tmp"

    def _compartment_entry(self) -> dict[str, Any]:
        entry: dict[str, Any] = keyring.load(self.root)["compartments"][self.compartment]
        return entry

    # -- keys --------------------------------------------------------------------------------
    def _db_key(self, entry: dict[str, Any] | None = None) -> bytes:
        db = (entry or self._compartment_entry())["db"]
        return crypto.unwrap(self._ckey, db["key"], name=f"db:{self.compartment}:{db['generation']}")

    def secret(self, name: str) -> bytes:
        """A stable 32-byte secret for ``name`` in this compartment (e.g. ``"deid"`` pseudonym keys).

        Derived from the compartment key, never written anywhere, and destroyed with the compartment.
        """
        return crypto.subkey(self._ckey, f"secret:{name}")

    def source_key(self, source_id: str, *, create: bool = False) -> bytes | None:
        """The data key of ``source_id`` (None when it was erased or never registered)."""
        label = f"source:{self.compartment}:{source_id}"
        wrapped = self._compartment_entry()["sources"].get(source_id)
        if wrapped is None and create:
            fresh = crypto.new_key()

            def add(data: dict[str, Any]) -> None:
                srcs = data["compartments"][self.compartment]["sources"]
                srcs.setdefault(source_id, crypto.wrap(self._ckey, fresh, name=label))

            wrapped = keyring.update(self.root, add)["compartments"][self.compartment]["sources"][source_id]
        if wrapped is None:
            return None
        return crypto.unwrap(self._ckey, wrapped, name=label)

    # -- database ------------------------------------------------------------------------------
    def _base(self) -> duckdb.DuckDBPyConnection:
        if self._closed:
            raise WorkspaceError(f"{self.root}: workspace was closed; open it again")
        path = os.path.realpath(self.db_path)
        if self._instance is not None and self._instance_path == path:
            return self._instance.con
        with _INSTANCES_LOCK:
            inst = _INSTANCES.get(path)
            if inst is None:
                private_dir(self.tmp_dir)
                con = _open_duckdb(Path(path), self._db_key(), self.tmp_dir)
                inst = _INSTANCES[path] = _Instance(con)
                _private_db_files(Path(path))
            inst.refs += 1
        self._release_instance()
        self._instance, self._instance_path = inst, path
        return inst.con

    def _release_instance(self) -> None:
        if self._instance is None or self._instance_path is None:
            return
        with _INSTANCES_LOCK:
            inst = self._instance
            inst.refs -= 1
            if inst.refs <= 0 and _INSTANCES.get(self._instance_path) is inst:
                del _INSTANCES[self._instance_path]
                try:
                    inst.con.execute("CHECKPOINT")
                except duckdb.Error:
                    pass
                inst.con.close()
                _private_db_files(Path(self._instance_path))
        self._instance = self._instance_path = None

    def _admin(self) -> duckdb.DuckDBPyConnection:
        """A connection with full access to base and ``wb`` tables (workspace-internal)."""
        cur = self._base().cursor()
        cur.execute("USE records")
        return cur

    def connect(self, read_only: bool = False, *, purpose: str | None = None) -> duckdb.DuckDBPyConnection:
        """A DuckDB connection whose default catalog is the records database.

        ``read_only=False`` (owner only) gives the base tables, for importers. ``read_only=True``
        gives the governed view: every table with a ``source_id`` column is shadowed by a view that
        keeps only rows of sources whose consent grant is active, covers the table's resource type
        and allows the purpose (clinician: personal_care; researcher: research, de-identified).
        """
        if not read_only:
            if self.role != "owner":
                raise AccessDenied(
                    f"role {self.role!r} may not write to compartment {self.compartment!r}; "
                    "open the workspace as owner"
                )
            return self._admin()
        from workbench.workspace.consent import governed_connection

        return governed_connection(self, purpose=purpose)

    def tables(self) -> list[str]:
        """Records tables (schema ``main``) in this compartment."""
        rows = self._admin().execute(
            "SELECT table_name FROM duckdb_tables() WHERE database_name = 'records' AND schema_name = 'main' "
            "ORDER BY table_name"
        )
        return [r[0] for r in rows.fetchall()]

    # -- audit ---------------------------------------------------------------------------------
    def audit(self, action: str, **meta: Any) -> None:
        """Append an event (metadata only; PHI-bearing keys are redacted) to the audit trail."""
        self.trail.append(action, compartment=self.compartment, role=self.role, **meta)

    # -- sources and their files ---------------------------------------------------------------
    def register_source(
        self,
        source_file: Path | str,
        *,
        kind: str,
        sha256: str,
        purpose: str | None = None,
        granted_by: str | None = None,
        scope: Iterable[str] | None = None,
        expires: datetime | None = None,
        copy_file: bool = True,
    ) -> str:
        """Record an imported source and return its id (stable for the same content).

        Importing is an act of consent: unless the source already has an active grant, one is
        recorded for ``purpose`` (default ``WB_IMPORT_PURPOSE`` or ``personal_care``) by
        ``granted_by`` (default the current user) with ``scope`` (default all resource types).
        The file itself, when it exists on disk, is copied in encrypted under a new per-source key.
        """
        if self.role != "owner":
            raise AccessDenied(f"role {self.role!r} may not import into compartment {self.compartment!r}")
        source_id = f"src-{sha256[:16]}"
        key = self.source_key(source_id, create=True)
        assert key is not None
        path = Path(source_file)
        size = path.stat().st_size if path.is_file() else None
        if copy_file and path.is_file() and os.environ.get("WB_KEEP_SOURCE_COPIES", "1") != "0":
            self._store_encrypted_copy(source_id, path, key)
        con = self._admin()
        con.execute("BEGIN TRANSACTION")
        try:
            exists = con.execute("SELECT status FROM wb.sources WHERE source_id = ?", [source_id]).fetchone()
            if exists is None:
                con.execute(
                    "INSERT INTO wb.sources VALUES (?, ?, ?, ?, ?, ?, 'active', NULL)",
                    [source_id, kind, sha256, path.name, size, utcnow()],
                )
            else:
                con.execute(
                    "UPDATE wb.sources SET status = 'active', erased = NULL, kind = ?, sha256 = ?, name = ?, "
                    "size = ? WHERE source_id = ?",
                    [kind, sha256, path.name, size, source_id],
                )
            active = con.execute(
                "SELECT count(*) FROM wb.active_grants WHERE source_id = ?", [source_id]
            ).fetchone()
            granted = None
            if not active or active[0] == 0:
                from workbench.workspace.consent import insert_grant

                granted = insert_grant(
                    con,
                    source_id,
                    purpose=purpose or os.environ.get("WB_IMPORT_PURPOSE", "personal_care"),
                    granted_by=granted_by or current_actor(),
                    scope=scope,
                    expires=expires,
                    note="recorded at import",
                )
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
        self.audit("source.register", source_id=source_id, kind=kind)
        if granted is not None:
            self.audit(
                "consent.grant",
                source_id=source_id,
                grant_id=granted["grant_id"],
                purpose=granted["purpose"],
                scope=granted["scope"],
                expires=granted["expires"],
                implicit=True,
            )
        return source_id

    def _store_encrypted_copy(self, source_id: str, path: Path, key: bytes) -> Path:
        private_dir(self.files_dir)
        dst = self.files_dir / f"{source_id}.bin"
        tmp = self.files_dir / f".{source_id}.bin.{os.getpid()}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
        with os.fdopen(fd, "wb") as fh:
            crypto.encrypt_file(key, path, fh, aad=f"file:{self.compartment}:{source_id}")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, dst)
        fsync_dir(self.files_dir)
        return dst

    def read_source_file(self, source_id: str) -> bytes:
        """Decrypt the stored copy of a source file (owner only)."""
        if self.role != "owner":
            raise AccessDenied(f"role {self.role!r} may not read original source files")
        key = self.source_key(source_id)
        path = self.files_dir / f"{source_id}.bin"
        if key is None or not path.exists():
            raise WorkspaceError(f"no stored copy of source {source_id} in compartment {self.compartment!r}")
        return b"".join(crypto.decrypt_file(key, path, aad=f"file:{self.compartment}:{source_id}"))

    def sources(self) -> list[dict[str, Any]]:
        """Registered sources with their status (no PHI beyond the original file name)."""
        cur = self._admin().execute(
            "SELECT source_id, kind, status, registered, erased, size FROM wb.sources ORDER BY registered"
        )
        cols = [d[0] for d in cur.description]
        return [dict(zip(cols, r)) for r in cur.fetchall()]

    # -- consent, memory, cache ----------------------------------------------------------------
    @property
    def consent(self) -> ConsentLedger:
        """The consent ledger of this compartment."""
        from workbench.workspace.consent import ConsentLedger

        return ConsentLedger(self)

    def active_sources(self, purpose: str | None = None, *, resource_type: str | None = None) -> list[str]:
        """Source ids whose grant is active now (for ``purpose`` and ``resource_type`` if given)."""
        return self.consent.active_sources(purpose, resource_type=resource_type)

    @property
    def memory(self) -> ConversationMemory:
        """Conversation memory of this compartment (entries list the source ids they used)."""
        from workbench.workspace.memory import ConversationMemory

        return ConversationMemory(self)

    @property
    def personal(self) -> PersonalIndex:
        """The personal-document index (chunks + embeddings) of this compartment."""
        from workbench.workspace.personal import PersonalIndex

        return PersonalIndex(self)

    def _cache_key(self) -> bytes:
        return crypto.subkey(self._ckey, "cache")

    def cache_put(self, key: str, data: bytes, *, source_ids: Iterable[str]) -> None:
        """Store a derived blob (encrypted) and the sources it came from, so erasure finds it."""
        ids = sorted(set(source_ids))
        private_dir(self.cache_dir)
        name = crypto.subkey(self._cache_key(), f"name:{key}").hex()[:32] + ".bin"
        atomic_write(self.cache_dir / name, crypto.encrypt_blob(self._cache_key(), data, aad=f"cache:{key}"))
        con = self._admin()
        con.execute("BEGIN TRANSACTION")
        con.execute("DELETE FROM wb.cache WHERE key = ?", [key])
        con.execute("INSERT INTO wb.cache VALUES (?, ?, ?, ?)", [key, name, utcnow(), ids])
        con.execute("COMMIT")

    def cache_get(self, key: str) -> bytes | None:
        """A blob stored by :meth:`cache_put`, or None (also when one of its sources lost consent)."""
        row = self._admin().execute("SELECT file, source_ids FROM wb.cache WHERE key = ?", [key]).fetchone()
        if row is None:
            return None
        active = set(self.active_sources())
        if not set(row[1] or []) <= active:
            return None
        try:
            blob = (self.cache_dir / row[0]).read_bytes()
        except FileNotFoundError:
            return None
        return crypto.decrypt_blob(self._cache_key(), blob, aad=f"cache:{key}")

    # -- keys ----------------------------------------------------------------------------------
    def rotate_key(
        self, new_passphrase: str, *, old_passphrase: str | None = None, new_master: bool = False
    ) -> None:
        """Re-wrap the workspace keys under ``new_passphrase`` (one atomic keyring write), audited.

        ``old_passphrase`` defaults to the cached master key of this process; ``new_master`` also
        replaces the master key itself.
        """
        if self.role != "owner":
            raise AccessDenied(f"role {self.role!r} may not rotate keys")
        keyring.rotate_passphrase(self.root, old_passphrase, new_passphrase, new_master=new_master)
        self.audit("key.rotate", new_master=new_master)

    # -- lifecycle -----------------------------------------------------------------------------
    def close(self) -> None:
        """Release this workspace's share of the database (checkpointed when the last one goes)."""
        self._release_instance()
        self._closed = True

    def _reopen(self) -> None:
        """Drop the cached database handle (after a re-key the file changed)."""
        self._release_instance()

    def __enter__(self) -> Workspace:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Workspace({str(self.root)!r}, compartment={self.compartment!r}, role={self.role!r})"


def _close_all_instances_for(prefix: str) -> None:
    """Close shared DuckDB instances under ``prefix`` (before replacing their files)."""
    with _INSTANCES_LOCK:
        for path in [p for p in _INSTANCES if p.startswith(prefix)]:
            inst = _INSTANCES.pop(path)
            try:
                inst.con.execute("CHECKPOINT")
            except duckdb.Error:
                pass
            inst.con.close()


def _new_compartment_entry(ckey_wrapped: str, db_key_wrapped: str) -> dict[str, Any]:
    return {
        "key": ckey_wrapped,
        "created": time.time(),
        "db": {"generation": 1, "key": db_key_wrapped},
        "sources": {},
        "pending_erasures": [],
        "retention_days": None,
    }


def create_compartment(root: Path, master: bytes, name: str) -> None:
    """Add compartment ``name`` with its own keys (no-op when it exists)."""
    _check_name(name, "compartment")
    ckey, dbkey = crypto.new_key(), crypto.new_key()

    def add(data: dict[str, Any]) -> None:
        if name in data["compartments"]:
            return
        data["compartments"][name] = _new_compartment_entry(
            crypto.wrap(master, ckey, name=f"compartment:{name}"),
            crypto.wrap(ckey, dbkey, name=f"db:{name}:1"),
        )

    keyring.update(root, add)
    private_dir(root / "compartments")
    comp = private_dir(root / "compartments" / name)
    for sub in ("files", "cache", "tmp"):
        private_dir(comp / sub)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _recover(ws: Workspace) -> None:
    """Finish work a killed process left: stale temp files, old db generations, pending erasures."""
    comp = ws.compartment_dir
    # A kill between the keyring write and the mkdirs of a new compartment leaves them missing.
    for folder in (ws.root / "compartments", comp, ws.files_dir, ws.cache_dir, ws.tmp_dir):
        private_dir(folder)
    for folder in (comp, ws.files_dir, ws.cache_dir, ws.root, ws.root / "audit"):
        clean_stale_tmp(folder)
    ws.trail.recover()
    entry = ws._compartment_entry()
    current = f"records-{entry['db']['generation']}.duckdb"
    for p in comp.glob("records-*.duckdb*"):
        if p.name != current and not p.name.startswith(current + "."):
            remove(p)
    # Spill files are named duckdb_temp_<pid>_...: only those of dead processes are removed.
    for p in ws.tmp_dir.glob("duckdb_temp_*"):
        parts = p.name.split("_")
        if len(parts) > 2 and parts[2].isdigit() and not _pid_alive(int(parts[2])):
            remove(p)
    pending = list(entry.get("pending_erasures", []))
    if pending and ws.role == "owner":
        from workbench.workspace.erasure import erase_source

        for source_id in pending:
            try:
                erase_source(ws, source_id, reason="resumed after interruption")
            except WorkspaceError:
                # Traces another module keeps outside the provenance columns must not lock the
                # user out; the audit trail and wb.erasures record the unverified erasure.
                ws.audit("erasure.unverified", source_id=source_id)


def open_workspace(
    path: Path | str | None = None,
    *,
    create: bool = True,
    passphrase: str | None = None,
    compartment: str | None = None,
    role: str | None = None,
) -> Workspace:
    """Open (and by default create) the workspace at ``path`` (default ``WB_HOME/workspace``).

    ``passphrase`` defaults to ``WB_PASSPHRASE`` (or the file named by ``WB_PASSPHRASE_FILE``);
    ``compartment`` to ``WB_COMPARTMENT`` or ``"default"``; ``role`` to ``WB_ROLE`` or ``"owner"``.
    A wrong passphrase raises :class:`~workbench.errors.WrongPassphrase` and changes nothing.
    """
    root = Path(path) if path is not None else default_home() / "workspace"
    root = root.expanduser()
    comp_name = _check_name(
        compartment or os.environ.get("WB_COMPARTMENT") or DEFAULT_COMPARTMENT, "compartment"
    )
    role_name = role or os.environ.get("WB_ROLE") or "owner"
    if role_name not in ROLES:
        raise WorkspaceError(f"unknown role {role_name!r}; use one of {', '.join(ROLES)}")
    secret = _resolve_passphrase(passphrase)
    fresh = False
    if not keyring.exists(root):
        if not create:
            raise WorkspaceError(f"{root}: no workspace here (run `workbench workspace init`)")
        secret = secret or _prompt_passphrase(root)
        if not secret:
            raise WorkspaceError(
                f"{root}: a new workspace needs a passphrase; set WB_PASSPHRASE or run `workbench workspace init`"
            )
        private_dir(root)
        keyring.create(root, secret)
        fresh = True
    data = keyring.load(root)
    if secret is None and not keyring.is_cached(root, data):
        secret = _prompt_passphrase(root)
    master = keyring.unlock(root, data, secret)  # WrongPassphrase before anything is written
    if comp_name not in data["compartments"]:
        if not create:
            raise WorkspaceError(f"{root}: no compartment {comp_name!r} (create it with compartment=)")
        create_compartment(root, master, comp_name)
        data = keyring.load(root)
        ws = Workspace(root, compartment=comp_name, role=role_name, master=master, keyring_data=data)
        if fresh:
            ws.audit("workspace.init", kdf=data["kdf"]["algorithm"])
        ws.audit("compartment.create")
    ws = Workspace(root, compartment=comp_name, role=role_name, master=master, keyring_data=data)
    _recover(ws)
    from workbench.workspace.retention import apply_retention

    apply_retention(ws, on_open=True)
    return ws


def new_id(prefix: str) -> str:
    """A random id such as ``grant-1f3a...``."""
    return f"{prefix}-{uuid.uuid4().hex[:16]}"
