"""One entry point for records import: :func:`import_paths` finds files and tells formats apart by content.

Kinds (sniffed from the first bytes, gzip looked through; the file name only breaks ties):

- ``fhir_bundle``: a JSON document whose ``resourceType`` is ``Bundle`` (or a single resource)
- ``fhir_ndjson``: one JSON resource per line (bulk FHIR export)
- ``apple_health``: Apple Health ``export.xml`` or the ``export.zip`` that holds it
- ``mfp_nutrition`` / ``mfp_exercise`` / ``mfp_measurement``: MyFitnessPal CSV exports

Anything else (a README, the bulk export's ``log.ndjson``) is listed as ``skipped`` in the
result, not imported and not an error.
"""

from __future__ import annotations

import gzip
import importlib
import uuid
import zipfile
import zlib
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import orjson

from workbench.cohort import fhir_import
from workbench.cohort.fhir_import import FileReport, Flattener, RecordsWriter, utcnow
from workbench.cohort.store import ensure_schema
from workbench.errors import RecordFormatError
from workbench.workspace import Workspace

_SNIFF = 64 * 1024


@dataclass
class ImportResult:
    """Outcome of one :func:`import_paths` run: one :class:`FileReport` per file found."""

    import_id: str
    files: list[FileReport] = field(default_factory=list)

    def _sum(self, attr: str) -> Counter[str]:
        total: Counter[str] = Counter()
        for f in self.files:
            total.update(getattr(f, attr))
        return total

    @property
    def resources(self) -> Counter[str]:
        """Resources stored, by FHIR type (wellness: by record kind)."""
        return self._sum("resources")

    @property
    def rows(self) -> Counter[str]:
        """Rows inserted, by table."""
        return self._sum("rows")

    @property
    def unknown_types(self) -> Counter[str]:
        """Resources of types without a spec, by type (counted, not stored)."""
        return self._sum("unknown_types")

    @property
    def errors(self) -> list[dict[str, Any]]:
        """Every problem found: ``{file, resource_id, message}``."""
        return [e for f in self.files for e in f.errors]

    @property
    def patients(self) -> int:
        """Patients newly stored."""
        return sum(f.patients for f in self.files)

    @property
    def duplicates(self) -> int:
        """Resources skipped because they were stored already."""
        return sum(f.duplicates for f in self.files)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (metadata only)."""
        return {
            "import_id": self.import_id,
            "patients": self.patients,
            "resources": dict(self.resources),
            "rows": dict(self.rows),
            "unknown_types": dict(self.unknown_types),
            "duplicates": self.duplicates,
            "errors": self.errors,
            "files": [
                {
                    "file": f.file,
                    "kind": f.kind,
                    "status": f.status,
                    "source_id": f.source_id,
                    "resources": sum(f.resources.values()),
                    "rows": sum(f.rows.values()),
                    "unknown_types": dict(f.unknown_types),
                    "errors": len(f.errors),
                }
                for f in self.files
            ],
        }


# --------------------------------------------------------------------------- discovery


def iter_files(paths: Iterable[Path | str]) -> Iterator[tuple[Path, str]]:
    """Yield ``(path, path as given)`` for each file; folders are searched recursively, sorted."""
    for p in paths:
        path = Path(p)
        if path.is_dir():
            for f in sorted(path.rglob("*")):
                if f.is_file() and not f.name.startswith("."):
                    yield f, str(f)
        elif path.exists():
            yield path, str(p)
        else:
            raise FileNotFoundError(f"{p}: no such file or folder")


def _head(path: Path) -> bytes:
    with open(path, "rb") as fh:
        raw = fh.read(_SNIFF)
    if raw[:2] == b"\x1f\x8b":
        try:
            with gzip.open(path, "rb") as gz:
                return gz.read(_SNIFF)
        except (EOFError, OSError, zlib.error):
            # truncated: decompress what is there so the kind can still be told
            return zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(raw)[:_SNIFF]
    return raw


def sniff(path: Path) -> str:
    """The kind of records file at ``path`` (``skipped`` when it is none we know)."""
    try:
        head = _head(path)
    except OSError:
        return "skipped"
    if head[:4] == b"PK\x03\x04":
        try:
            with zipfile.ZipFile(path) as zf:
                names = zf.namelist()
        except zipfile.BadZipFile:
            return "apple_health" if path.suffix.lower() == ".zip" else "skipped"
        if any(n.endswith("export.xml") and not n.startswith("__MACOSX") for n in names):
            return "apple_health"
        return "skipped"
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    if text.startswith(b"<"):
        return "apple_health" if b"<HealthData" in head or b"HealthKit" in head else "skipped"
    if text.startswith(b"{"):
        first, nl, rest = text.partition(b"\n")
        try:
            obj = orjson.loads(first)
        except orjson.JSONDecodeError:
            obj = None
        if isinstance(obj, dict):
            if nl and rest.strip():
                return "fhir_ndjson" if "resourceType" in obj else "skipped"
            # a whole JSON document on one line: a bundle or one resource
            return "fhir_bundle" if "resourceType" in obj else "skipped"
        if not nl and (".ndjson" in path.name):
            return "fhir_ndjson"
        # pretty-printed JSON: judge by the resourceType near the top
        return "fhir_bundle" if b'"resourceType"' in head else "skipped"
    first_line = text.split(b"\n", 1)[0].decode("utf-8", errors="replace").strip().lower()
    if first_line.startswith("date,") or first_line.startswith("date;"):
        if "meal" in first_line and "calories" in first_line:
            return "mfp_nutrition"
        if "exercise" in first_line:
            return "mfp_exercise"
        return "mfp_measurement"
    return "skipped"


# --------------------------------------------------------------------------- import

Importer = Callable[..., None]


def _importer(kind: str) -> Importer:
    if kind == "fhir_bundle":
        return fhir_import.import_bundle
    if kind == "fhir_ndjson":
        return fhir_import.import_ndjson
    wellness = importlib.import_module("workbench.cohort.wellness")  # only when a wellness export is met
    fn: Importer = wellness.import_apple_health if kind == "apple_health" else wellness.import_mfp
    return fn


def import_paths(
    ws: Workspace,
    paths: Iterable[Path | str],
    *,
    person: str = "self",
    strict: bool = False,
    con: duckdb.DuckDBPyConnection | None = None,
    progress: Callable[[FileReport], None] | None = None,
) -> ImportResult:
    """Import every records file under ``paths`` into the workspace; see the module docstring.

    ``person`` is the patient id given to wellness rows (FHIR rows use the Patient id).
    With ``strict`` the first bad resource raises :class:`RecordFormatError`; otherwise bad
    resources are skipped or roll back their patient (see :mod:`fhir_import`) and reported.
    """
    own = con is None
    con = ws.connect() if con is None else con
    try:
        ensure_schema(con)
        result = ImportResult(import_id=f"imp-{uuid.uuid4().hex[:16]}")
        flattener = Flattener()
        writer = RecordsWriter(con)
        for path, given in iter_files(paths):
            kind = sniff(path)
            report = FileReport(file=given, kind=kind)
            result.files.append(report)
            if kind == "skipped":
                report.status = "skipped"
                continue
            started = utcnow()
            report.sha256 = fhir_import.sha256_file(path)
            if fhir_import.already_imported(con, report.sha256):
                report.status = "already_imported"
                continue
            report.source_id = ws.register_source(path, kind=kind, sha256=report.sha256)
            extra = {} if kind.startswith("fhir_") else {"person": person}
            try:
                _importer(kind)(
                    con,
                    path,
                    report,
                    import_id=result.import_id,
                    flattener=flattener,
                    writer=writer,
                    strict=strict,
                    **extra,
                )
            except RecordFormatError as exc:
                report.status = "failed"
                report.add_error(exc)
                if strict:
                    _log(ws, con, report, result.import_id, started)
                    raise
            _log(ws, con, report, result.import_id, started)
            if progress is not None:
                progress(report)
        return result
    finally:
        if own:
            con.close()


def _log(
    ws: Workspace, con: duckdb.DuckDBPyConnection, report: FileReport, import_id: str, started: Any
) -> None:
    fhir_import.import_log_row(con, report, import_id=import_id, started=started)
    ws.audit(
        "records.import",
        source_id=report.source_id,
        import_id=import_id,
        kind=report.kind,
        status=report.status,
        counts={
            "resources": sum(report.resources.values()),
            "rows": dict(report.rows),
            "unknown_types": dict(report.unknown_types),
            "errors": len(report.errors),
        },
    )
