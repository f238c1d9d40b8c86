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

import gc
import gzip
import hashlib
import multiprocessing
import os
import uuid
import zipfile
import zlib
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb
import orjson

from workbench.cohort import fhir_import
from workbench.cohort.fhir_import import FileReport, Flattener, TxnBuffer, utcnow
from workbench.cohort.store import ensure_schema
from workbench.errors import RecordFormatError, RecordsError
from workbench.workspace import Workspace

_SNIFF = 64 * 1024


class RecordsPathMissing(RecordsError, FileNotFoundError):
    """A path given to the importer does not exist."""


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
            raise RecordsPathMissing(f"{p}: no such file or folder; check the path given to records import")


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
    from workbench.cohort import wellness  # only when a wellness export is met

    return wellness.import_apple_health if kind == "apple_health" else wellness.import_mfp


def import_paths(
    ws: Workspace,
    paths: Iterable[Path | str],
    *,
    person: str = "self",
    strict: bool = False,
    con: duckdb.DuckDBPyConnection | None = None,
    progress: Callable[[FileReport], None] | None = None,
    txn_rows: int = 20_000,
    workers: int | None = None,
    purpose: str | None = None,
) -> ImportResult:
    """Import every records file under ``paths`` into the workspace; see the module docstring.

    ``person`` is the patient id given to wellness rows (FHIR rows use the Patient id).
    ``purpose`` is the consent purpose recorded for new sources (``personal_care`` or ``research``;
    default ``WB_IMPORT_PURPOSE`` or ``personal_care``).
    With ``strict`` the first bad resource raises :class:`RecordFormatError`; otherwise bad
    resources are skipped or roll back their patient (see :mod:`fhir_import`) and reported.
    ``txn_rows`` is how many rows of whole patients share one transaction (1: a transaction
    per patient); every patient is stored completely or not at all either way.
    ``workers`` processes, this one included, read and flatten bundles in parallel while this
    process also writes (default: up to 4 when there are many bundles and CPUs are idle;
    1 = this process alone).
    """
    with _gc_paused():
        return _import_paths(ws, paths, person, strict, con, progress, txn_rows, workers, purpose)


@contextmanager
def _gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector (reference counting still frees everything).

    Parsed bundles and queued rows are trees of dicts and lists without cycles; the collector
    would walk all of them again and again as they pile up (about a fifth of the import time).
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _import_paths(
    ws: Workspace,
    paths: Iterable[Path | str],
    person: str,
    strict: bool,
    con: duckdb.DuckDBPyConnection | None,
    progress: Callable[[FileReport], None] | None,
    txn_rows: int,
    workers: int | None,
    purpose: str | None,
) -> ImportResult:
    own = con is None
    con = ws.connect() if con is None else con
    # DuckDB keeps every block it wrote cached up to its memory limit (80% of RAM by default),
    # so RSS would grow with the database; a cap for the import keeps memory flat.
    old_limit = con.execute("SELECT current_setting('memory_limit')").fetchone()
    con.execute(f"SET memory_limit = '{int(IMPORT_MEMORY_LIMIT_MB)}MB'")
    # One DuckDB thread: appending Arrow tables in parallel costs about three times the CPU
    # for the same rows (measured), CPU the parsing (or its worker processes) needs more.
    old_threads = con.execute("SELECT current_setting('threads')").fetchone()
    con.execute(f"SET threads = {int(IMPORT_DUCKDB_THREADS)}")
    try:
        ensure_schema(con)
        result = ImportResult(import_id=f"imp-{uuid.uuid4().hex[:16]}")
        flattener = Flattener()
        buffer = TxnBuffer(
            con, import_id=result.import_id, txn_rows=txn_rows, on_logged=progress, background=True
        )
        sources: dict[str, list[FileReport]] = {}
        try:
            for arg in paths:
                for kind, group in _plan(Path(arg), result):
                    buffer.wait()  # the connection is this thread's again
                    done = fhir_import.imported_hashes(con, [rep.sha256 for _p, rep in group])
                    pending = [(path, rep) for path, rep in group if rep.sha256 not in done]
                    for _path, rep in group:
                        if rep.sha256 in done:
                            rep.status = "already_imported"
                    if not pending:
                        continue
                    source_id = _register(ws, Path(arg), kind, group, purpose)
                    for _path, report in pending:
                        report.source_id = source_id
                        sources.setdefault(source_id, []).append(report)
                    n_workers = _workers(workers, len(pending))
                    if kind == "fhir_bundle" and n_workers > 1:
                        _import_bundles_parallel(pending, buffer, strict, n_workers, flattener)
                        continue
                    reads = _read_ahead(pending) if kind == "fhir_bundle" else None
                    try:
                        for k, (path, report) in enumerate(pending):
                            read = reads.take(k) if reads is not None else None
                            _import_one(
                                con, path, report, result.import_id, flattener, buffer, strict, person, read
                            )
                    finally:
                        if reads is not None:
                            reads.close()
        finally:
            buffer.flush()  # whole patients queued so far, and the log of every finished file
            if any(f.rows.get("measurements") for f in result.files):
                from workbench.cohort.wellness import mark_duplicates

                mark_duplicates(con)
            for source_id, reports in sources.items():
                _audit(ws, source_id, reports, result.import_id)
        return result
    finally:
        if old_limit:
            con.execute(f"SET memory_limit = '{old_limit[0]}'")
        if old_threads:
            con.execute(f"SET threads = {int(old_threads[0])}")
        if own:
            con.close()


#: DuckDB memory cap while importing (MB); see :func:`import_paths`. Appends need little: the
#: cache of written blocks is what grows with the database, so a small cap keeps memory flat.
IMPORT_MEMORY_LIMIT_MB = 64

#: DuckDB threads while importing; see :func:`import_paths`.
IMPORT_DUCKDB_THREADS = 1

#: Bundles per worker job: their rows travel as one set of Arrow tables (fewer, larger calls).
PARALLEL_CHUNK_FILES = 4

#: Whether the writing process parses bundles itself while a worker's result is not ready.
PARSE_WHILE_WAITING = True

#: Bundles below this count are not worth starting worker processes for (auto mode).
PARALLEL_MIN_FILES = 16


def _workers(requested: int | None, n_files: int) -> int:
    if requested is not None:
        return max(1, requested) if n_files > 1 else 1
    if n_files < PARALLEL_MIN_FILES:
        return 1
    # Workers only pay where CPUs are idle: a worker costs its start-up and the Arrow hand-over
    # (about a third more CPU in all), so on a busy machine the serial import finishes first.
    cpus = os.cpu_count() or 1
    try:
        spare = cpus - os.getloadavg()[0]
    except (AttributeError, OSError):  # no load average on this platform
        spare = cpus - 1
    return min(4, int(spare + 0.5)) if spare >= 1.5 else 1


_Parsed = list[tuple[FileReport, RecordFormatError | None, Any]]


def _parse_here(chunk: list[tuple[Path, FileReport]], flattener: Flattener, strict: bool) -> _Parsed:
    """Parse a chunk of bundles in this process, as a worker would (Python rows, no Arrow)."""
    out: _Parsed = []
    for path, rep in chunk:
        parsed = FileReport(file=rep.file, kind=rep.kind)
        try:
            out.append((parsed, None, fhir_import.parse_bundle(path, parsed, flattener, strict=strict)))
        except RecordFormatError as exc:
            out.append((parsed, exc, {}))
    return out


def _import_bundles_parallel(
    pending: list[tuple[Path, FileReport]],
    buffer: TxnBuffer,
    strict: bool,
    workers: int,
    flattener: Flattener,
) -> None:
    """``workers - 1`` worker processes and this one parse bundles; this process also queues and writes.

    Workers take chunks of up to :data:`PARALLEL_CHUNK_FILES` bundles and return Arrow tables.
    This process parses the next chunk itself whenever the result it needs next is not ready,
    so both cores of a two-core machine parse with one worker process started, not two.
    At most two chunks per worker and two parsed here wait at any time, so memory stays
    bounded however many files there are; results are queued in file order, so the outcome
    equals a serial import.
    """
    ctx = multiprocessing.get_context("spawn")  # no fork: the parent holds DuckDB threads
    schemas = buffer.writer.schemas()  # before any transaction runs in the background
    n_procs = max(1, workers - 1)
    size = max(1, min(PARALLEL_CHUNK_FILES, len(pending) // (4 * workers)))
    chunks = [pending[i : i + size] for i in range(0, len(pending), size)]
    with ctx.Pool(n_procs, initializer=fhir_import.init_bundle_worker, initargs=(schemas,)) as pool:
        inflight: dict[int, Any] = {}  # chunk index -> async result from a worker
        here: dict[int, _Parsed] = {}  # chunk index -> parsed in this process
        started: dict[int, datetime] = {}
        nxt = 0  # next chunk not handed out yet

        def hand_out() -> None:
            nonlocal nxt
            while nxt < len(chunks) and len(inflight) < 2 * n_procs:
                jobs = [(str(path), rep.file, rep.kind, strict) for path, rep in chunks[nxt]]
                started[nxt] = utcnow()
                inflight[nxt] = pool.apply_async(fhir_import.parse_bundles_job, (jobs,))
                nxt += 1

        hand_out()
        for k, chunk in enumerate(chunks):
            while k not in here:
                fut = inflight.get(k)
                if fut is not None and fut.ready():
                    break
                if PARSE_WHILE_WAITING and nxt < len(chunks) and len(here) < 2:
                    # the worker is not done: parse the next chunk here instead of waiting
                    started[nxt] = utcnow()
                    here[nxt] = _parse_here(chunks[nxt], flattener, strict)
                    nxt += 1
                    hand_out()
                elif fut is not None:
                    fut.wait()
                    break
                else:  # pragma: no cover - every chunk is either handed out or parsed here
                    raise AssertionError(f"chunk {k} was never parsed")
            if k in here:
                parsed_files = here.pop(k)
                arrow: fhir_import.ArrowChunk | None = None
            else:
                arrow = inflight.pop(k).get()
                parsed_files = arrow.files
                hand_out()
            when = started.pop(k)
            for i, ((_path, report), (parsed, error, groups)) in enumerate(zip(chunk, parsed_files)):
                if error is not None:
                    _file_failed(report, error, buffer, when, strict)
                    continue
                report.unknown_types.update(parsed.unknown_types)
                report.duplicates += parsed.duplicates
                report.errors.extend(parsed.errors)
                fhir_import.queue_patients(groups if arrow is None else arrow.patients(i), report, buffer)
                buffer.finish_file(report, when)
                buffer.maybe_flush()
            del arrow, parsed_files


def _plan(arg: Path, result: ImportResult) -> list[tuple[str, list[tuple[Path, FileReport]]]]:
    """The files under one PATH argument, sniffed and hashed, grouped by kind (skipped ones reported)."""
    groups: dict[str, list[tuple[Path, FileReport]]] = {}
    for path, given in iter_files([arg]):
        kind = sniff(path)
        report = FileReport(file=given, kind=kind)
        result.files.append(report)
        if kind == "skipped":
            report.status = "skipped"
            continue
        report.sha256 = fhir_import.sha256_file(path)
        groups.setdefault(kind, []).append((path, report))
    return list(groups.items())


def _register(
    ws: Workspace, arg: Path, kind: str, group: list[tuple[Path, FileReport]], purpose: str | None = None
) -> str:
    """One source per export: a file given on its own, or all files of one kind in a folder given.

    A folder of bundles or a bulk NDJSON export is one export, so it is one source for consent
    and erasure; its sha256 covers every file's name and content.
    """
    if arg.is_file():
        return ws.register_source(arg, kind=kind, sha256=group[0][1].sha256, purpose=purpose)
    h = hashlib.sha256()
    for path, rep in sorted(group, key=lambda g: str(g[0])):
        h.update(f"{path.relative_to(arg).as_posix()}\t{rep.sha256}\n".encode())
    return ws.register_source(arg, kind=f"{kind}_folder", sha256=h.hexdigest(), purpose=purpose)


class _ReadAhead:
    """Reads and gunzips the next bundles in a thread while this one parses the current one.

    Inflating releases the GIL, so it overlaps the parsing; at most :data:`READ_AHEAD` files
    wait decompressed in memory. A read error surfaces when that file's turn comes.
    """

    def __init__(self, files: list[tuple[Path, FileReport]]) -> None:
        self._files = files
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="wb-records-read")
        self._futures: dict[int, Future[bytes]] = {}
        self._next = 0

    def take(self, k: int) -> Callable[[], bytes]:
        """The reader of file ``k`` (files are taken in order); queues the reads of the next ones."""
        while self._next < len(self._files) and self._next <= k + READ_AHEAD:
            path = self._files[self._next][0]
            self._futures[self._next] = self._pool.submit(fhir_import.read_bundle_bytes, path)
            self._next += 1
        return self._futures.pop(k).result

    def close(self) -> None:
        self._futures.clear()
        self._pool.shutdown(wait=True, cancel_futures=True)


def _read_ahead(files: list[tuple[Path, FileReport]]) -> _ReadAhead | None:
    return _ReadAhead(files) if len(files) > 1 else None


#: Bundle files read ahead of the one being parsed (serial import).
READ_AHEAD = 1


def _import_one(
    con: duckdb.DuckDBPyConnection,
    path: Path,
    report: FileReport,
    import_id: str,
    flattener: Flattener,
    buffer: TxnBuffer,
    strict: bool,
    person: str,
    read: Callable[[], bytes] | None = None,
) -> None:
    started = utcnow()
    extra: dict[str, Any] = {"read": read} if read is not None else {}
    if not report.kind.startswith("fhir_"):
        extra["person"] = person
    try:
        _importer(report.kind)(
            con,
            path,
            report,
            import_id=import_id,
            flattener=flattener,
            buffer=buffer,
            strict=strict,
            **extra,
        )
    except RecordFormatError as exc:
        _file_failed(report, exc, buffer, started, strict)
        buffer.flush()
        return
    buffer.finish_file(report, started)
    if report.kind != "fhir_bundle":
        buffer.flush()  # streamed files committed their rows already; log them now
    else:
        buffer.maybe_flush()


def _file_failed(
    report: FileReport, exc: RecordFormatError, buffer: TxnBuffer, started: datetime, strict: bool
) -> None:
    """Mark a file that could not be read as failed and queue its import_log row; re-raise when strict."""
    report.status = "failed"
    report.add_error(exc)
    buffer.finish_file(report, started)
    if strict:
        raise exc


def _audit(ws: Workspace, source_id: str, reports: list[FileReport], import_id: str) -> None:
    """One audit event per source: counts only, never content."""
    rows: Counter[str] = Counter()
    for r in reports:
        rows.update(r.rows)
    ws.audit(
        "records.import",
        source_id=source_id,
        import_id=import_id,
        kind=reports[0].kind,
        files=len(reports),
        status=dict(Counter(r.status for r in reports)),
        counts={
            "resources": sum(sum(r.resources.values()) for r in reports),
            "rows": dict(rows),
            "unknown_types": sum(sum(r.unknown_types.values()) for r in reports),
            "errors": sum(len(r.errors) for r in reports),
        },
    )
