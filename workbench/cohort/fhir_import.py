"""FHIR R4 import: Bundles (``.json[.gz]``) and bulk NDJSON (``Type.*.ndjson[.gz]``) into DuckDB.

Flattening is driven by the declarative specs in :mod:`workbench.cohort.specs`. Rows are
accumulated per table as column lists and inserted with one ``INSERT ... BY NAME SELECT`` from
an Arrow table per table per transaction, never row by row.

Units of work (all or nothing):

- **Patient** (bundles): a bundle holds one patient (Synthea) or many (collection or
  transaction of several patients); its resources are grouped by the patient they reference.
  A bad resource (missing subject, impossible date, ...) leaves its whole patient out; the
  other patients of the bundle are stored. A resource that names no patient is charged to the
  bundle's only patient, or skipped on its own when the bundle has several. Complete patients
  are queued and committed together, up to ``txn_rows`` rows per transaction (``txn_rows=1``:
  one transaction per patient); a failed commit rolls back whole patients only, so no patient
  is ever half-written. Commits run in a writer thread while the next bundles are parsed (one
  transaction in flight, see :class:`TxnBuffer`). Memory: bundles are parsed one at a time
  (one more is read ahead; with workers, at most two chunks of a few bundles per worker
  process and two parsed by the writing process wait), queued rows are bounded by
  ``txn_rows`` (plus the Arrow tables of the transaction in flight), and DuckDB's cache is
  capped while importing.
- **NDJSON file**: one transaction per file, streamed line by line and inserted in chunks.
  A bad line (malformed JSON, wrong ``resourceType`` for the file, missing required field,
  impossible date) is skipped and reported with its line number and resource id; a broken
  stream (truncated gzip, I/O error) rolls the whole file back. Patients span several files
  in bulk exports, so per-patient atomicity across files is not possible while streaming.

Re-importing adds nothing: a file whose sha256 is in ``import_log`` with status ``ok`` is
skipped, and every resource is keyed by ``(table, resource_id)`` in ``resource_keys``.
Resource types without a spec are counted in ``unknown_types``, never silently dropped.
"""

from __future__ import annotations

import gzip
import hashlib
import threading
import zlib
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import orjson
import pyarrow as pa
from isal import igzip
from isal.igzip_lib import IsalError

from workbench.cohort.measures import LOINC_MEASURES, to_canonical
from workbench.cohort.specs import (
    PROVENANCE_COLUMNS,
    CompiledSpec,
    SpecValueError,
    compiled_specs,
)
from workbench.errors import RecordFormatError, UnitError

#: Rows buffered per NDJSON chunk before an insert (bounded memory).
NDJSON_CHUNK = 5000

_PA_TYPES: dict[str, pa.DataType] = {
    "VARCHAR": pa.string(),
    "DOUBLE": pa.float64(),
    "TIMESTAMP": pa.timestamp("us"),
    "DATE": pa.date32(),
    "JSON": pa.string(),
    "VARCHAR[]": pa.list_(pa.string()),
}


def utcnow() -> datetime:
    """Naive UTC now (TIMESTAMP columns hold naive UTC)."""
    return datetime.now(UTC).replace(tzinfo=None)


@dataclass
class FileReport:
    """What happened to one input file."""

    file: str
    kind: str
    sha256: str = ""
    source_id: str | None = None
    status: str = "ok"  # ok | partial | failed | skipped | already_imported
    resources: Counter[str] = field(default_factory=Counter)
    rows: Counter[str] = field(default_factory=Counter)
    unknown_types: Counter[str] = field(default_factory=Counter)
    duplicates: int = 0
    patients: int = 0
    errors: list[dict[str, Any]] = field(default_factory=list)

    def add_error(self, exc: RecordFormatError, resource_id: str | None = None) -> None:
        self.errors.append({"file": self.file, "resource_id": resource_id, "message": str(exc)})


def sha256_file(path: Path) -> str:
    """Hex sha256 of the file's bytes as stored (compressed files hashed compressed)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def already_imported(con: duckdb.DuckDBPyConnection, sha256: str) -> bool:
    """Whether a file with this content was imported completely before."""
    row = con.execute(
        "SELECT 1 FROM import_log WHERE sha256 = ? AND status = 'ok' LIMIT 1", [sha256]
    ).fetchone()
    return row is not None


def imported_hashes(con: duckdb.DuckDBPyConnection, hashes: list[str]) -> set[str]:
    """Which of ``hashes`` belong to files imported completely before (one query for many files)."""
    if not hashes:
        return set()
    rows = con.execute(
        "SELECT DISTINCT sha256 FROM import_log WHERE status = 'ok' AND list_contains(?, sha256)",
        [hashes],
    ).fetchall()
    return {r[0] for r in rows}


# --------------------------------------------------------------------------- row batches


class Batch:
    """Rows of one patient (bundles) or one chunk (NDJSON, wellness), per table, with their resource keys."""

    def __init__(self) -> None:
        self.rows: dict[str, list[list[Any]]] = {}
        self.names: dict[str, list[str]] = {}
        self.keys: list[tuple[str, str, str, str]] = []  # table, resource_id, type, patient_id
        self.runs: dict[str, list[int]] = {}  # start index of each resource's rows, per table
        self.n_rows = 0

    def __len__(self) -> int:
        return len(self.keys)

    def add(self, table: str, names: list[str], rows: list[list[Any]]) -> None:
        """Add rows that start with ``patient_id, resource_id`` and follow ``names``."""
        if table not in self.rows:
            self.rows[table] = []
            self.names[table] = names
            self.runs[table] = []
        self.runs[table].append(len(self.rows[table]))  # one run per resource
        self.rows[table].extend(rows)
        self.n_rows += len(rows)


class ArrowBatch:
    """A :class:`Batch` as Arrow tables (built in a worker process; cheap to send to the writer).

    ``tables`` hold the batch's columns (``patient_id, resource_id``, then the spec's) typed as
    stored; ``keys`` and ``runs`` are the batch's, so queueing it works as for a :class:`Batch`.
    Pickled, each table travels as an Arrow IPC stream (a fraction of pickling the table).
    """

    __slots__ = ("keys", "n_rows", "runs", "tables")

    def __init__(
        self,
        keys: list[tuple[str, str, str, str]],
        tables: dict[str, pa.Table],
        runs: dict[str, list[int]],
        n_rows: int,
    ) -> None:
        self.keys = keys
        self.tables = tables
        self.runs = runs
        self.n_rows = n_rows

    def __len__(self) -> int:
        return len(self.keys)

    def __reduce__(self) -> tuple[Any, ...]:
        ipc = {t: _to_ipc(tbl) for t, tbl in self.tables.items()}
        return (_arrow_batch_from_ipc, (self.keys, ipc, self.runs, self.n_rows))


def _to_ipc(tbl: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, tbl.schema) as w:
        w.write_table(tbl)
    return bytes(sink.getvalue().to_pybytes())


def _arrow_batch_from_ipc(
    keys: list[tuple[str, str, str, str]], ipc: dict[str, bytes], runs: dict[str, list[int]], n_rows: int
) -> ArrowBatch:
    tables = {t: pa.ipc.open_stream(b).read_all() for t, b in ipc.items()}
    return ArrowBatch(keys, tables, runs, n_rows)


def _rows_to_table(rows: list[list[Any]], names: list[str], schema: pa.Schema) -> pa.Table:
    cols = [list(c) for c in zip(*rows)]  # pyarrow converts lists several times faster than tuples
    arrays = [pa.array(cols[i], type=schema.field(name).type) for i, name in enumerate(names)]
    return pa.Table.from_arrays(arrays, names=names)


def batch_to_arrow(batch: Batch, schemas: Mapping[str, pa.Schema]) -> ArrowBatch:
    """Turn ``batch``'s Python rows into Arrow tables typed by ``schemas`` (one per table)."""
    tables = {
        table: _rows_to_table(rows, batch.names[table], schemas[table])
        for table, rows in batch.rows.items()
        if rows
    }
    return ArrowBatch(batch.keys, tables, batch.runs, batch.n_rows)


#: One patient of an :class:`ArrowChunk`: id, keys, runs, row count, and its (offset, length) per table.
_ChunkPatient = tuple[
    str, list[tuple[str, str, str, str]], dict[str, list[int]], int, dict[str, tuple[int, int]]
]


class ArrowChunk:
    """What a worker made of several bundle files: per file its report (or error) and patients.

    The rows of all patients of the chunk share one Arrow table per table (patient after
    patient), so building and shipping them costs a few calls per table instead of a few per
    patient; :meth:`patients` hands each patient its zero-copy slices.
    """

    __slots__ = ("files", "tables")

    def __init__(
        self,
        files: list[tuple[FileReport, RecordFormatError | None, list[_ChunkPatient]]],
        tables: dict[str, pa.Table],
    ) -> None:
        self.files = files
        self.tables = tables

    def patients(self, i: int) -> dict[str, ArrowBatch]:
        """The patients of the chunk's ``i``-th file, each as an :class:`ArrowBatch`."""
        out: dict[str, ArrowBatch] = {}
        for pid, keys, runs, n_rows, spans in self.files[i][2]:
            tables = {t: self.tables[t].slice(off, n) for t, (off, n) in spans.items()}
            out[pid] = ArrowBatch(keys, tables, runs, n_rows)
        return out

    def __reduce__(self) -> tuple[Any, ...]:
        ipc = {t: _to_ipc(tbl) for t, tbl in self.tables.items()}
        return (_arrow_chunk_from_ipc, (self.files, ipc))


def _arrow_chunk_from_ipc(
    files: list[tuple[FileReport, RecordFormatError | None, list[_ChunkPatient]]], ipc: dict[str, bytes]
) -> ArrowChunk:
    return ArrowChunk(files, {t: pa.ipc.open_stream(b).read_all() for t, b in ipc.items()})


def chunk_to_arrow(
    parsed: list[tuple[FileReport, RecordFormatError | None, dict[str, Batch]]],
    schemas: Mapping[str, pa.Schema],
) -> ArrowChunk:
    """Build an :class:`ArrowChunk` from parsed bundle files (patients in file order)."""
    rows_by_table: dict[str, list[list[Any]]] = {}
    names_by_table: dict[str, list[str]] = {}
    files: list[tuple[FileReport, RecordFormatError | None, list[_ChunkPatient]]] = []
    for report, error, groups in parsed:
        patients: list[_ChunkPatient] = []
        for pid, batch in groups.items():
            spans: dict[str, tuple[int, int]] = {}
            for table, rows in batch.rows.items():
                if not rows:
                    continue
                acc = rows_by_table.setdefault(table, [])
                names_by_table.setdefault(table, batch.names[table])
                spans[table] = (len(acc), len(rows))
                acc.extend(rows)
            patients.append((pid, batch.keys, batch.runs, batch.n_rows, spans))
        files.append((report, error, patients))
    tables = {t: _rows_to_table(rows, names_by_table[t], schemas[t]) for t, rows in rows_by_table.items()}
    return ArrowChunk(files, tables)


def _derived(table: str, rtype: str) -> bool:
    """Rows copied from another resource (FHIR vitals into measurements) are not counted twice."""
    return table == "measurements" and rtype == "Observation"


def _first_runs(
    table: str, rows: list[list[Any]], runs: list[int], drop: set[tuple[str, str]]
) -> list[list[Any]]:
    """Rows minus the runs of ``drop`` ids and minus repeated runs of an id (one run per resource)."""
    kept: list[list[Any]] = []
    done: set[str] = set()
    bounds = [*runs, len(rows)]
    for start, end in zip(bounds, bounds[1:]):
        if start == end:
            continue
        rid = rows[start][1]
        if (table, rid) in drop or rid in done:
            continue
        done.add(rid)
        kept.extend(rows[start:end])
    return kept


def _first_runs_mask(table: str, rids: list[str], runs: list[int], drop: set[tuple[str, str]]) -> list[bool]:
    """:func:`_first_runs` as a row mask over a table's ``resource_id`` column."""
    mask = [False] * len(rids)
    done: set[str] = set()
    bounds = [*runs, len(rids)]
    for start, end in zip(bounds, bounds[1:]):
        if start == end:
            continue
        rid = rids[start]
        if (table, rid) in drop or rid in done:
            continue
        done.add(rid)
        mask[start:end] = [True] * (end - start)
    return mask


@dataclass(slots=True)
class PendingTxn:
    """The rows of whole patients taken from a :class:`TxnBuffer` for one transaction."""

    import_id: str
    rows: dict[str, list[list[Any]]]
    names: dict[str, list[str]]
    keys: list[tuple[str, str, str, str, int]]
    files: list[FileReport]
    #: rows that came as Arrow (worker processes): per table, (table piece, file index)
    pieces: dict[str, list[tuple[pa.Table, int]]] = field(default_factory=dict)


class TxnBuffer:
    """Whole patients (or file chunks) waiting for one transaction, and the import_log rows of finished files.

    Each patient enters whole or not at all, so a transaction holds complete patients only:
    a patient that failed validation never gets here, and a failed write rolls back every
    patient of that transaction, none half-written. ``txn_rows`` bounds the buffer (memory)
    and sets how many patients share a commit; ``txn_rows=1`` commits every patient alone.

    With ``background=True`` a full buffer (:meth:`maybe_flush`) is committed by a writer
    thread while the caller goes on parsing: DuckDB releases the GIL while it inserts, checkpoints
    and encrypts, so reading and writing overlap. At most one transaction is in flight (memory
    stays at two buffers); :meth:`flush` and :meth:`wait` finish it first and raise its error,
    so every other use of the connection sees a quiet one.
    """

    def __init__(
        self,
        con: duckdb.DuckDBPyConnection,
        *,
        import_id: str,
        txn_rows: int = 20_000,
        on_logged: Callable[[FileReport], None] | None = None,
        background: bool = False,
    ) -> None:
        self.con = con
        self.import_id = import_id
        self.txn_rows = txn_rows
        self.on_logged = on_logged
        self.background = background
        self.writer = RecordsWriter(con)
        self._clear()
        self.logs: list[tuple[FileReport, datetime]] = []
        # the writer thread credits reports while this thread may count duplicates on them
        self._credit_lock = threading.Lock()
        self._inflight: _Inflight | None = None

    def _clear(self) -> None:
        self.rows: dict[str, list[list[Any]]] = {}
        self.names: dict[str, list[str]] = {}
        self.keys: list[tuple[str, str, str, str, int]] = []
        self.seen: set[tuple[str, str]] = set()
        self._batch_seen: set[tuple[str, str]] = set()
        self.pieces: dict[str, list[tuple[pa.Table, int]]] = {}
        self.files: list[FileReport] = []
        self.n_rows = 0

    def _take(self) -> PendingTxn:
        txn = PendingTxn(self.import_id, self.rows, self.names, self.keys, self.files, self.pieces)
        self._clear()
        return txn

    def _file_index(self, report: FileReport) -> int:
        if not self.files or self.files[-1] is not report:
            self.files.append(report)
        return len(self.files) - 1

    def add(self, batch: Batch | ArrowBatch, report: FileReport) -> None:
        """Queue ``batch`` (from ``report``'s file); resources queued already count as duplicates.

        A resource repeated inside ``batch`` (identical wellness records hash to one id) keeps
        its first rows only.
        """
        fidx = self._file_index(report)
        queued_before, repeats = self._add_keys(batch, report, fidx)
        if isinstance(batch, ArrowBatch):
            for table, tbl in batch.tables.items():
                if queued_before or repeats:
                    rids = tbl.column("resource_id").to_pylist()
                    mask = _first_runs_mask(table, rids, batch.runs.get(table, [0]), queued_before)
                    tbl = tbl.filter(pa.array(mask, type=pa.bool_()))
                self.pieces.setdefault(table, []).append((tbl, fidx))
                self.n_rows += tbl.num_rows
            return
        for table, rows in batch.rows.items():
            if queued_before or repeats:
                rows = _first_runs(table, rows, batch.runs.get(table, [0]), queued_before)
            for r in rows:
                r.append(fidx)
            if table not in self.rows:
                self.rows[table] = []
                self.names[table] = batch.names[table]
            self.rows[table].extend(rows)
            self.n_rows += len(rows)

    def _add_keys(
        self, batch: Batch | ArrowBatch, report: FileReport, fidx: int
    ) -> tuple[set[tuple[str, str]], bool]:
        """Queue the keys of ``batch``; return the keys queued by earlier batches and whether it repeats one."""
        queued_before: set[tuple[str, str]] = set()
        repeats = False
        seen = self.seen
        dups = 0
        for table, rid, rtype, pid in batch.keys:
            tk = (table, rid)
            if tk in seen:
                if tk in self._batch_seen:
                    repeats = True
                else:
                    queued_before.add(tk)
                if not _derived(table, rtype):
                    dups += 1
            else:
                seen.add(tk)
                self._batch_seen.add(tk)
                self.keys.append((table, rid, rtype, pid, fidx))
        self._batch_seen.clear()
        if dups:
            with self._credit_lock:
                report.duplicates += dups
        return queued_before, repeats

    def finish_file(self, report: FileReport, started: datetime) -> None:
        """Queue the file's import_log row; it is written with (or after) the file's last rows."""
        self.logs.append((report, started))

    def maybe_flush(self) -> None:
        """Commit when the buffer holds ``txn_rows`` rows or more (in the background if enabled)."""
        if self.n_rows < self.txn_rows:
            return
        if not self.background:
            self.flush()
            return
        # Arrow tables are built here, while the previous transaction may still be committing;
        # the writer thread then mostly runs DuckDB, which releases the GIL
        txn = self.writer.prepare(self._take())
        self.wait()
        logs, self.logs = self.logs, []
        self._inflight = _Inflight(self, txn, logs)

    def wait(self) -> None:
        """Finish the transaction in flight, if any; raise its error here."""
        job, self._inflight = self._inflight, None
        if job is None:
            return
        try:
            logs = job.join()
        except BaseException:
            self.logs = job.logs + self.logs  # their files are marked failed or stored: log them later
            raise
        self._logged(logs)

    def write_pending(self) -> None:
        """Insert queued rows inside the caller's open transaction and credit each file's report."""
        self.wait()
        self._write(self._take())

    def _write(self, txn: PendingTxn | PreparedTxn) -> list[FileReport]:
        """Insert ``txn``'s rows and credit the reports; return twins holding just what was credited."""
        if not txn.keys:
            return []
        dup, per_file = self.writer.write(txn)
        credit = [FileReport(file=rep.file, kind=rep.kind) for rep in txn.files]
        for table, rid, rtype, _pid, fidx in txn.keys:
            if _derived(table, rtype):
                continue
            c = credit[fidx]
            if (table, rid) in dup:
                c.duplicates += 1
            else:
                c.resources[rtype] += 1
                if rtype == "Patient":
                    c.patients += 1
        for (fidx, table), n in per_file.items():
            credit[fidx].rows[table] += n
        _credit(txn.files, credit, self._credit_lock, 1)
        return credit

    def _commit(self, txn: PendingTxn | PreparedTxn, logs: list[tuple[FileReport, datetime]]) -> None:
        """Write ``txn`` and the import_log rows of ``logs`` in one transaction."""
        if not txn.keys and not logs:
            return
        con = self.con
        con.execute("BEGIN TRANSACTION")
        credit: list[FileReport] = []
        try:
            credit = self._write(txn)
            if logs:
                with self._credit_lock:
                    import_log_rows(con, logs, import_id=self.import_id)
            con.execute("COMMIT")
        except BaseException as exc:
            _rollback(con)
            _credit(txn.files, credit, self._credit_lock, -1)  # nothing of it is stored
            self._failed(txn, exc)
            raise

    def _failed(self, txn: PendingTxn | PreparedTxn, exc: BaseException) -> None:
        """Mark the files of a rolled-back transaction failed, so none is logged ``ok`` and skipped later.

        Their import_log rows go back to the queue (:meth:`wait`, :meth:`flush`): a later
        transaction records every finished file, failed or not.
        """
        with self._credit_lock:
            for rep in txn.files:
                if rep.status != "failed":
                    rep.status = "failed"
                    rep.errors.append(
                        {
                            "file": rep.file,
                            "resource_id": None,
                            "message": f"{rep.file}: writing to the records database failed "
                            f"({type(exc).__name__}); its patients in that transaction were not stored, "
                            "import the file again",
                        }
                    )

    def _logged(self, logs: list[tuple[FileReport, datetime]]) -> None:
        if self.on_logged is not None:
            for report, _ in logs:
                self.on_logged(report)

    def flush(self) -> None:
        """Write everything queued in one transaction, import_log rows included (waits for one in flight)."""
        self.wait()
        logs, self.logs = self.logs, []
        try:
            self._commit(self._take(), logs)
        except BaseException:
            self.logs = logs + self.logs
            raise
        release_memory()
        self._logged(logs)


def _credit(reports: list[FileReport], credit: list[FileReport], lock: threading.Lock, sign: int) -> None:
    """Add (``sign=1``) or take back (``-1``) the counts of ``credit`` to the matching ``reports``."""
    with lock:
        for rep, c in zip(reports, credit):
            rep.duplicates += sign * c.duplicates
            rep.patients += sign * c.patients
            for rtype, n in c.resources.items():
                rep.resources[rtype] += sign * n
            for table, n in c.rows.items():
                rep.rows[table] += sign * n
            if sign < 0:
                # keep reports free of zero entries a rollback leaves behind
                rep.resources = +rep.resources
                rep.rows = +rep.rows


def _rollback(con: duckdb.DuckDBPyConnection) -> None:
    """Roll back; a failed COMMIT has already ended the transaction, which must not hide its error."""
    try:
        con.execute("ROLLBACK")
    except duckdb.Error:
        pass


class _Inflight:
    """One transaction committed by a writer thread; :meth:`join` returns its logs or raises its error."""

    def __init__(self, buffer: TxnBuffer, txn: PreparedTxn, logs: list[tuple[FileReport, datetime]]) -> None:
        self.logs = logs
        self.error: BaseException | None = None
        self._buffer = buffer
        self._txn: PreparedTxn | None = txn
        self.thread = threading.Thread(target=self._run, name="wb-records-writer", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        txn, self._txn = self._txn, None  # the only reference: its Arrow tables go when done
        assert txn is not None
        try:
            self._buffer._commit(txn, self.logs)
        except BaseException as exc:  # handed to the importing thread by join()
            self.error = exc
        del txn
        release_memory()

    def join(self) -> list[tuple[FileReport, datetime]]:
        self.thread.join()
        if self.error is not None:
            raise self.error
        return self.logs


def release_memory() -> None:
    """Hand memory freed by a finished transaction back to the OS.

    Arrow's pool and glibc's per-thread heaps keep freed blocks for reuse; over a long import
    (DuckDB's threads, the writer thread) that reserve creeps upwards, so RSS would grow with
    the input although the live data does not.
    """
    pa.default_memory_pool().release_unused()
    if _MALLOC_TRIM is not None:
        _MALLOC_TRIM(0)


def _malloc_trim() -> Callable[[int], int] | None:
    try:
        import ctypes
        import ctypes.util

        name = ctypes.util.find_library("c")
        fn: Callable[[int], int] | None = getattr(ctypes.CDLL(name), "malloc_trim", None) if name else None
    except OSError:  # no C library to load: nothing to trim
        return None
    return fn


_MALLOC_TRIM = _malloc_trim()


class PreparedTxn:
    """A :class:`PendingTxn` as Arrow tables, ready to insert (built by the importing thread)."""

    __slots__ = ("files", "import_id", "key_tbl", "keys", "per_file", "tables")

    def __init__(
        self,
        txn: PendingTxn,
        key_tbl: pa.Table,
        tables: dict[str, pa.Table],
        per_file: Counter[tuple[int, str]],
    ) -> None:
        self.import_id = txn.import_id
        self.keys = txn.keys
        self.files = txn.files
        self.key_tbl = key_tbl
        self.tables = tables  # each with a ``_fidx`` column: the row's index into ``files``
        self.per_file = per_file


class RecordsWriter:
    """Inserts a :class:`TxnBuffer`'s rows into the records tables (caller owns the transaction).

    :meth:`prepare` turns Python rows into Arrow tables (needs the GIL); :meth:`write` runs the
    dedup query and the inserts (DuckDB, which releases the GIL), so a writer thread spends
    little time competing with the thread that parses.
    """

    def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
        self.con = con
        self._schemas: dict[str, pa.Schema] | None = None

    def _schema(self, table: str) -> pa.Schema:
        if self._schemas is None:
            # every table at once, before any transaction runs in the background: preparing a
            # later batch must not query the connection a writer thread is using
            cols = self.con.execute(
                "SELECT table_name, column_name, data_type FROM information_schema.columns "
                "WHERE table_schema = 'main' AND table_catalog = current_database() "
                "ORDER BY table_name, ordinal_position"
            ).fetchall()
            fields: dict[str, list[tuple[str, pa.DataType]]] = {}
            for t, n, typ in cols:
                fields.setdefault(t, []).append((n, _PA_TYPES.get(typ, pa.string())))
            self._schemas = {t: pa.schema(f) for t, f in fields.items()}
        return self._schemas[table]

    def prepare(self, txn: PendingTxn) -> PreparedTxn:
        """Arrow tables of ``txn``'s keys and rows, and the rows per (file index, table)."""
        keys = txn.keys
        files = txn.files
        file_names = [f.file for f in files]
        source_ids = [f.source_id for f in files]
        key_tbl = pa.table(
            {
                "table": pa.array([k[0] for k in keys], pa.string()),
                "resource_id": pa.array([k[1] for k in keys], pa.string()),
                "resource_type": pa.array([k[2] for k in keys], pa.string()),
                "patient_id": pa.array([k[3] for k in keys], pa.string()),
                "source_id": pa.array([source_ids[k[4]] for k in keys], pa.string()),
            }
        )
        parts: dict[str, list[pa.Table]] = {}
        per_file: Counter[tuple[int, str]] = Counter()
        for table, rows in txn.rows.items():
            if not rows:
                continue
            names = txn.names[table]
            schema = self._schema(table)
            cols = [list(c) for c in zip(*rows)]  # pyarrow converts lists several times faster than tuples
            arrays: dict[str, pa.Array] = {}
            for i, name in enumerate(names):
                arrays[name] = pa.array(cols[i], type=schema.field(name).type)
            fidx = cols[len(names)]
            arrays["source_file"] = pa.array([file_names[f] for f in fidx], type=pa.string())
            arrays["source_id"] = pa.array([source_ids[f] for f in fidx], type=pa.string())
            arrays["import_id"] = pa.array([txn.import_id] * len(rows), type=pa.string())
            arrays["_fidx"] = pa.array(fidx, type=pa.int32())
            for f, n in Counter(fidx).items():
                per_file[(f, table)] += n
            parts.setdefault(table, []).append(pa.table(arrays))
        names_arr = pa.array(file_names, pa.string())
        ids_arr = pa.array(source_ids, pa.string())
        for table, pieces in txn.pieces.items():
            pieces = [(tbl, f) for tbl, f in pieces if tbl.num_rows]
            if not pieces:
                continue
            tbl = pa.concat_tables([t for t, _ in pieces], promote_options="permissive")
            # each piece comes from one file: its file index, repeated, picks the provenance values
            fidx_arr = pa.array(
                np.repeat(
                    np.fromiter((f for _, f in pieces), np.int32, len(pieces)),
                    np.fromiter((t.num_rows for t, _ in pieces), np.int64, len(pieces)),
                )
            )
            for t, f in pieces:
                per_file[(f, table)] += t.num_rows
            tbl = (
                tbl.append_column("source_file", names_arr.take(fidx_arr))
                .append_column("source_id", ids_arr.take(fidx_arr))
                .append_column("import_id", pa.repeat(pa.scalar(txn.import_id, pa.string()), tbl.num_rows))
                .append_column("_fidx", fidx_arr)
            )
            parts.setdefault(table, []).append(tbl)
        tables = {
            t: ps[0] if len(ps) == 1 else pa.concat_tables(ps, promote_options="permissive")
            for t, ps in parts.items()
        }
        return PreparedTxn(txn, key_tbl, tables, per_file)

    def schemas(self) -> dict[str, pa.Schema]:
        """The Arrow schema of every table, as stored (for :func:`batch_to_arrow` in worker processes)."""
        self._schema("resource_keys")
        assert self._schemas is not None
        return dict(self._schemas)

    def write(self, txn: PendingTxn | PreparedTxn) -> tuple[set[tuple[str, str]], Counter[tuple[int, str]]]:
        """Insert the new rows; return (keys already stored, rows inserted per (file index, table))."""
        prep = txn if isinstance(txn, PreparedTxn) else self.prepare(txn)
        keys = prep.keys
        key_tbl = prep.key_tbl
        con = self.con
        con.register("wb_keys", key_tbl)
        try:
            # IN (subquery) hashes the small batch and streams the stored keys past it; a join
            # could instead hash every stored key, which grows with the database.
            existing = con.execute(
                'SELECT r."table", r.resource_id FROM resource_keys r '
                "WHERE r.resource_id IN (SELECT resource_id FROM wb_keys)"
            ).fetchall()
        finally:
            con.unregister("wb_keys")
        batch_keys = {(k[0], k[1]) for k in keys} if existing else set()
        dup: set[tuple[str, str]] = {(t, r) for t, r in existing if (t, r) in batch_keys}
        per_file = prep.per_file
        tables = prep.tables
        if dup:  # rare: resources stored by an earlier import; leave them out
            key_tbl = key_tbl.filter(pa.array([(k[0], k[1]) not in dup for k in keys], type=pa.bool_()))
            per_file = Counter()
            kept: dict[str, pa.Table] = {}
            for table, tbl in tables.items():
                mask = [(table, rid) not in dup for rid in tbl.column("resource_id").to_pylist()]
                tbl = tbl.filter(pa.array(mask, type=pa.bool_()))
                for f, n in Counter(tbl.column("_fidx").to_pylist()).items():
                    per_file[(f, table)] += n
                kept[table] = tbl
            tables = kept
        con.register("wb_keys", key_tbl)
        try:
            con.execute(
                'INSERT INTO resource_keys ("table", resource_id, resource_type, patient_id, source_id, import_id) '
                'SELECT "table", resource_id, resource_type, patient_id, source_id, ? FROM wb_keys',
                [prep.import_id],
            )
        finally:
            con.unregister("wb_keys")
        for table, tbl in tables.items():
            if tbl.num_rows == 0:
                continue
            con.register("wb_rows", tbl)
            try:
                con.execute(f"INSERT INTO {table} BY NAME SELECT * EXCLUDE (_fidx) FROM wb_rows")
            finally:
                con.unregister("wb_rows")
        return dup, per_file


# --------------------------------------------------------------------------- flattening


class Flattener:
    """Turns FHIR resources into table rows using the compiled specs."""

    def __init__(self) -> None:
        self.specs: dict[str, CompiledSpec] = compiled_specs()
        # the columns each table gets from its spec, plus patient_id/resource_id in front
        self._names: dict[str, list[str]] = {
            rt: ["patient_id", "resource_id", *s.names] for rt, s in self.specs.items()
        }
        self._meas_names = [
            "patient_id",
            "resource_id",
            "measure",
            "value",
            "unit",
            "start",
            "end",
            "source",
            "original_value",
            "original_unit",
            "type_identifier",
        ]
        obs = self.specs["Observation"].names
        self._obs_idx = {
            n: obs.index(n) + 2 for n in ("code", "component", "value_num", "unit_code", "unit", "effective")
        }

    def patient_of(
        self, spec: CompiledSpec, resource: Mapping[str, Any], aliases: Mapping[str, str] | None
    ) -> str | None:
        return spec.patient_id(resource, aliases)

    def flatten(
        self,
        spec: CompiledSpec,
        resource: Mapping[str, Any],
        rid: str,
        patient_id: str,
        aliases: Mapping[str, str] | None,
        batch: Batch,
    ) -> None:
        """Add the rows of one resource to ``batch`` (raises SpecValueError/UnitError on bad data)."""
        spec.check_required(resource)
        rows = spec.flat(resource, aliases, patient_id, rid)
        rtype = spec.spec.resource_type
        batch.add(spec.table, self._names[rtype], rows)
        batch.keys.append((spec.table, rid, rtype, patient_id))
        if rtype == "Observation":
            self._measurements(rows, rid, patient_id, batch)

    def _measurements(self, rows: list[list[Any]], rid: str, patient_id: str, batch: Batch) -> None:
        """Vital signs with a shared measure name also land in ``measurements`` (source 'fhir')."""
        ix = self._obs_idx
        out: list[list[Any]] = []
        for r in rows:
            code = r[ix["component"]] or r[ix["code"]]
            measure = LOINC_MEASURES.get(code) if code else None
            value = r[ix["value_num"]]
            if measure is None or value is None:
                continue
            unit = r[ix["unit_code"]] or r[ix["unit"]]
            try:
                v, u = to_canonical(measure, value, unit)
            except UnitError:
                continue  # the observation row keeps the value; measurements only take known units
            ts = r[ix["effective"]]
            out.append([patient_id, rid, measure, v, u, ts, ts, "fhir", value, unit, f"loinc:{code}"])
        if out:
            batch.add("measurements", self._meas_names, out)
            batch.keys.append(("measurements", rid, "Observation", patient_id))


def _err(
    file: str, rtype: str | None, rid: str | None, msg: str, line: int | None = None
) -> RecordFormatError:
    where = f"{file}"
    if line is not None:
        where += f" line {line}"
    what = f"{rtype or 'resource'}/{rid}" if rid else (rtype or "resource")
    return RecordFormatError(f"{where}: {what}: {msg}")


# --------------------------------------------------------------------------- bundles


#: What a truncated or corrupt gzip raises (ISA-L's own error is typed as an instance in its stubs).
_GZIP_ERRORS: tuple[type[BaseException], ...] = (EOFError, OSError, zlib.error, IsalError)  # type: ignore[assignment]


def read_bundle_bytes(path: Path) -> bytes:
    """A bundle file's bytes, gunzipped when compressed (releases the GIL while it inflates)."""
    return _read_bytes(path)


def _read_bytes(path: Path) -> bytes:
    with open(path, "rb") as fh:
        raw = fh.read()
    if raw[:2] == b"\x1f\x8b":
        try:
            return igzip.decompress(raw)  # ISA-L: a third of zlib's time, same format and checks
        except _GZIP_ERRORS as exc:
            raise RecordFormatError(
                f"{path}: truncated or corrupt gzip ({exc}); re-export or re-download the file"
            ) from None
    return raw


def import_bundle(
    con: duckdb.DuckDBPyConnection,
    path: Path,
    report: FileReport,
    *,
    import_id: str,
    flattener: Flattener,
    buffer: TxnBuffer,
    strict: bool = False,
    read: Callable[[], bytes] | None = None,
) -> None:
    """Import one Bundle (or single-resource JSON) file; each patient all or nothing.

    ``read`` returns the file's bytes when they were read ahead (see :func:`parse_bundle`).
    """
    queue_patients(parse_bundle(path, report, flattener, strict=strict, read=read), report, buffer)


def queue_patients(
    groups: dict[str, Batch] | dict[str, ArrowBatch], report: FileReport, buffer: TxnBuffer
) -> None:
    """Queue a parsed bundle's complete patients for writing; set the file's status."""
    for batch in groups.values():
        buffer.add(batch, report)
        buffer.maybe_flush()
    # the writer thread may have failed a transaction holding this file's patients meanwhile:
    # its "failed" (some patients lost: import the file again) must not turn into "partial"
    with buffer._credit_lock:
        if report.errors and report.status != "failed":
            report.status = "partial" if groups else "failed"


def parse_bundle(
    path: Path,
    report: FileReport,
    flattener: Flattener,
    *,
    strict: bool = False,
    read: Callable[[], bytes] | None = None,
) -> dict[str, Batch]:
    """Read and flatten one bundle file (no database): the rows of every patient that passed.

    Problems go to ``report`` (errors, unknown types, duplicates); a patient with a bad
    resource is left out whole. Runs in worker processes for parallel imports. ``read``
    (default: read and decompress ``path`` now) gives the decompressed bytes, or raises
    :func:`read_bundle_bytes`'s error, when a reader thread fetched them ahead.
    """
    file = report.file
    try:
        doc = orjson.loads(read() if read is not None else _read_bytes(path))
    except orjson.JSONDecodeError as exc:
        raise RecordFormatError(f"{file}: not valid JSON ({exc}); fix or re-export the file") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("resourceType"), str):
        raise RecordFormatError(f"{file}: not a FHIR resource (no resourceType); expected a Bundle")
    if doc["resourceType"] == "Bundle":
        entries = doc.get("entry") or []
        if not isinstance(entries, list):
            raise RecordFormatError(f"{file}: Bundle.entry is not a list")
    elif doc["resourceType"] in flattener.specs:
        entries = [{"resource": doc}]
    else:
        raise RecordFormatError(
            f"{file}: resourceType {doc['resourceType']!r} is neither a Bundle nor a supported resource"
        )
    del doc

    # fullUrl -> id, so that "urn:uuid:..." references resolve to resource ids
    aliases: dict[str, str] = {}
    patient_ids: list[str] = []
    for e in entries:
        r = e.get("resource") if isinstance(e, dict) else None
        if not isinstance(r, dict):
            continue
        rid = r.get("id")
        full = e.get("fullUrl")
        if isinstance(rid, str):
            if isinstance(full, str):
                aliases[full] = rid
            if r.get("resourceType") == "Patient":
                patient_ids.append(rid)
    only_patient = patient_ids[0] if len(patient_ids) == 1 else None

    groups: dict[str, Batch] = {}
    failed: dict[str, RecordFormatError] = {}
    seen: set[tuple[str, str]] = set()
    specs = flattener.specs
    for i, e in enumerate(entries):
        r = e.get("resource") if isinstance(e, dict) else None
        if not isinstance(r, dict):
            problem = _err(file, None, None, f"entry {i} has no resource object")
            _charge(problem, None, only_patient, failed, report, strict)
            continue
        rtype = r.get("resourceType")
        rid = r.get("id")
        if not isinstance(rtype, str) or not rtype:
            problem = _err(
                file, None, rid if isinstance(rid, str) else None, f"entry {i} has no resourceType"
            )
            _charge(problem, None, only_patient, failed, report, strict)
            continue
        spec = specs.get(rtype)
        if spec is None:
            report.unknown_types[rtype] += 1
            continue
        if not isinstance(rid, str) or not rid:
            full = e.get("fullUrl")
            rid = full[9:] if isinstance(full, str) and full.startswith("urn:uuid:") else None
        if not rid:
            problem = _err(file, rtype, None, f"entry {i} has no id; every resource needs one")
            _charge(problem, None, only_patient, failed, report, strict)
            continue
        pid = flattener.patient_of(spec, r, aliases)
        if pid is None:
            problem = _err(file, rtype, rid, "no subject/patient reference (required)")
            _charge(problem, None, only_patient, failed, report, strict)
            continue
        if pid in failed:
            continue
        if (spec.table, rid) in seen:
            report.duplicates += 1
            continue
        seen.add((spec.table, rid))
        batch = groups.get(pid)
        if batch is None:
            batch = groups[pid] = Batch()
        try:
            flattener.flatten(spec, r, rid, pid, aliases, batch)
        except (SpecValueError, UnitError) as exc:
            _charge(_err(file, rtype, rid, str(exc)), pid, only_patient, failed, report, strict)
    del entries
    return {pid: batch for pid, batch in groups.items() if pid not in failed}


_WORKER_FLATTENER: Flattener | None = None
_WORKER_SCHEMAS: dict[str, pa.Schema] | None = None


def init_bundle_worker(schemas: dict[str, pa.Schema] | None) -> None:
    """Worker-process initializer: compile the specs once; with ``schemas``, jobs return Arrow tables."""
    global _WORKER_FLATTENER, _WORKER_SCHEMAS
    import gc

    gc.disable()  # parsed bundles are trees without cycles (see importer._gc_paused)
    _WORKER_FLATTENER = Flattener()
    _WORKER_SCHEMAS = schemas


def parse_bundles_job(jobs: list[tuple[str, str, str, bool]]) -> ArrowChunk:
    """Worker-process entry: parse several bundles into one :class:`ArrowChunk` (needs :func:`init_bundle_worker`).

    A file that cannot be read at all is returned with its error, so the other files of the
    chunk are not lost with it. Arrow buffers cross the process boundary far cheaper than
    pickled rows, and the writer process no longer builds them.
    """
    flattener, schemas = _WORKER_FLATTENER, _WORKER_SCHEMAS
    if flattener is None or schemas is None:
        raise RuntimeError("parse_bundles_job needs init_bundle_worker(schemas) in the worker first")
    parsed: list[tuple[FileReport, RecordFormatError | None, dict[str, Batch]]] = []
    for path, file, kind, strict in jobs:
        report = FileReport(file=file, kind=kind)
        try:
            parsed.append((report, None, parse_bundle(Path(path), report, flattener, strict=strict)))
        except RecordFormatError as exc:
            parsed.append((report, exc, {}))
    return chunk_to_arrow(parsed, schemas)


def _charge(
    exc: RecordFormatError,
    pid: str | None,
    only_patient: str | None,
    failed: dict[str, RecordFormatError],
    report: FileReport,
    strict: bool,
) -> None:
    """Record a bad resource and fail the patient it belongs to (or the bundle's only patient)."""
    if strict:
        raise exc
    report.add_error(exc)
    owner = pid or only_patient
    if owner is not None and owner not in failed:
        failed[owner] = exc


# --------------------------------------------------------------------------- NDJSON


def ndjson_type(path: Path) -> str | None:
    """The resource type a bulk file name declares (``Observation.000.ndjson.gz`` -> Observation)."""
    head = path.name.split(".", 1)[0]
    return head if head[:1].isupper() else None


def _lines(path: Path) -> Iterator[bytes]:
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "rb") as fh:
        yield from fh


def import_ndjson(
    con: duckdb.DuckDBPyConnection,
    path: Path,
    report: FileReport,
    *,
    import_id: str,
    flattener: Flattener,
    buffer: TxnBuffer,
    strict: bool = False,
) -> None:
    """Import one bulk NDJSON file in one transaction, streaming line by line in chunks."""
    file = report.file
    expected = ndjson_type(path)
    specs = flattener.specs
    seen: set[tuple[str, str]] = set()
    buffer.flush()  # commit what other files queued: this file's transaction is its own
    batch = Batch()
    con.execute("BEGIN TRANSACTION")
    n = 0
    try:
        for n, line in enumerate(_lines(path), start=1):
            if not line.strip():
                continue
            try:
                r = orjson.loads(line)
            except orjson.JSONDecodeError as exc:
                _line_error(report, _err(file, None, None, f"not valid JSON ({exc})", n), strict)
                continue
            if not isinstance(r, dict):
                _line_error(report, _err(file, None, None, "not a JSON object", n), strict)
                continue
            rtype = r.get("resourceType")
            rid = r.get("id") if isinstance(r.get("id"), str) else None
            if not isinstance(rtype, str) or not rtype:
                _line_error(report, _err(file, None, rid, "no resourceType", n), strict)
                continue
            if expected and rtype != expected and expected in specs:
                msg = f"resourceType {rtype} in a {expected} file"
                _line_error(report, _err(file, rtype, rid, msg, n), strict)
                continue
            spec = specs.get(rtype)
            if spec is None:
                report.unknown_types[rtype] += 1
                continue
            if not rid:
                _line_error(report, _err(file, rtype, None, "no id; every resource needs one", n), strict)
                continue
            pid = flattener.patient_of(spec, r, None)
            if pid is None:
                _line_error(
                    report, _err(file, rtype, rid, "no subject/patient reference (required)", n), strict
                )
                continue
            if (spec.table, rid) in seen:
                report.duplicates += 1
                continue
            seen.add((spec.table, rid))
            try:
                flattener.flatten(spec, r, rid, pid, None, batch)
            except (SpecValueError, UnitError) as exc:
                # flatten() raises before adding anything, so the batch holds no part of it
                _line_error(report, _err(file, rtype, rid, str(exc), n), strict)
                continue
            if batch.n_rows >= NDJSON_CHUNK:
                buffer.add(batch, report)
                buffer.write_pending()
                batch = Batch()
                # later repeats are found in the table itself (this transaction sees its own
                # rows), so the id set stays the size of one chunk however long the file is
                seen.clear()
        buffer.add(batch, report)
        buffer.write_pending()
        con.execute("COMMIT")
    except (EOFError, OSError, zlib.error) as exc:
        con.execute("ROLLBACK")
        _reset_counts(report)
        raise RecordFormatError(
            f"{file}: truncated or corrupt file after line {n} ({exc}); nothing from it was stored"
        ) from None
    except BaseException:
        con.execute("ROLLBACK")
        _reset_counts(report)
        raise
    if report.errors:
        report.status = "partial"


def _reset_counts(report: FileReport) -> None:
    # the transaction rolled back: nothing of this file is stored
    report.resources.clear()
    report.rows.clear()
    report.patients = 0


def _line_error(report: FileReport, exc: RecordFormatError, strict: bool) -> None:
    if strict:
        raise exc
    report.add_error(exc)


def import_log_rows(
    con: duckdb.DuckDBPyConnection, logs: list[tuple[FileReport, datetime]], *, import_id: str
) -> None:
    """Record the outcome of finished files in ``import_log`` (metadata only), one insert for all."""
    now = utcnow()
    cols: dict[str, list[Any]] = {k: [] for k in _LOG_COLUMNS}
    for report, started in logs:
        counts = {
            "resources": dict(report.resources),
            "rows": dict(report.rows),
            "duplicates": report.duplicates,
            "patients": report.patients,
        }
        # error messages name file, resource type/id and line; never resource content
        for k, v in zip(
            _LOG_COLUMNS,
            (
                import_id,
                report.source_id,
                report.file,
                report.sha256,
                report.kind,
                started,
                now,
                report.status,
                orjson.dumps(counts).decode(),
                orjson.dumps(dict(report.unknown_types)).decode(),
                orjson.dumps(report.errors).decode(),
            ),
        ):
            cols[k].append(v)
    tbl = pa.table(
        {
            k: pa.array(v, pa.timestamp("us") if k in ("started", "finished") else pa.string())
            for k, v in cols.items()
        }
    )
    con.register("wb_log", tbl)
    try:
        con.execute("INSERT INTO import_log BY NAME SELECT * FROM wb_log")
    finally:
        con.unregister("wb_log")


_LOG_COLUMNS = (
    "import_id",
    "source_id",
    "source_file",
    "sha256",
    "kind",
    "started",
    "finished",
    "status",
    "counts",
    "unknown_types",
    "errors",
)


__all__ = [
    "PROVENANCE_COLUMNS",
    "ArrowBatch",
    "ArrowChunk",
    "Batch",
    "FileReport",
    "Flattener",
    "RecordsWriter",
    "TxnBuffer",
    "already_imported",
    "batch_to_arrow",
    "chunk_to_arrow",
    "import_bundle",
    "read_bundle_bytes",
    "import_log_rows",
    "imported_hashes",
    "import_ndjson",
    "sha256_file",
]
