"""Tamper-evident audit trail: append-only, hash-chained, HMAC-signed, with a signed head anchor.

Each line of ``audit/log.jsonl`` is canonical JSON with ``seq`` (1, 2, ...), ``prev`` (the
previous entry's hash), ``hash`` (SHA-256 over the entry without ``hash``/``mac``) and ``mac``
(HMAC-SHA256 of the hash with the workspace's audit key). Without the key an edited entry cannot
be re-chained. ``audit/head.json`` is a signed anchor (last seq + hash) written after every append,
so cutting entries off the end is detected too. For protection against rolling back *both* files,
record ``workbench audit show --head`` somewhere else now and then.

Entries carry metadata only: :func:`scrub` redacts PHI-bearing keys (names, text, questions) and
turns file paths into keyed digests, since file names of exports often contain patient names.
"""

from __future__ import annotations

import getpass
import hashlib
import hmac
import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from workbench.errors import AuditTampered
from workbench.workspace._fs import FILE_MODE, atomic_write, locked, private_dir

GENESIS = "0" * 64
_REDACT_KEYS = {
    "name",
    "names",
    "family",
    "given",
    "address",
    "address_line",
    "phone",
    "email",
    "birth_date",
    "birthdate",
    "dob",
    "ssn",
    "mrn",
    "text",
    "note",
    "content",
    "snippet",
    "message",
    "prompt",
    "answer",
}
_DIGEST_KEYS = {"query", "question", "q", "sql"}
_MAX_STR = 120


def canonical(obj: Any) -> bytes:
    """Canonical JSON (sorted keys, no spaces, UTF-8) that the hashes are computed over."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str).encode()


def current_actor() -> str:
    """Who is acting: ``WB_USER`` or the OS user name."""
    env = os.environ.get("WB_USER")
    if env:
        return env
    try:
        return getpass.getuser()
    except Exception:  # noqa: BLE001 - no passwd entry in some containers
        return "unknown"


@dataclass(slots=True)
class AuditReport:
    """Outcome of :meth:`AuditTrail.verify`."""

    ok: bool
    entries: int
    head_seq: int | None
    problems: list[str] = field(default_factory=list)


class AuditTrail:
    """The workspace's audit log (one per workspace; entries name their compartment)."""

    def __init__(self, folder: Path, key: bytes) -> None:
        self.folder = folder
        self._key = key

    @property
    def log_path(self) -> Path:
        return self.folder / "log.jsonl"

    @property
    def head_path(self) -> Path:
        return self.folder / "head.json"

    def _digest(self, value: str) -> str:
        return "hmac:" + hmac.new(self._key, value.encode(), hashlib.sha256).hexdigest()[:16]

    def scrub(self, meta: dict[str, Any], depth: int = 0) -> dict[str, Any]:
        """Metadata with PHI-bearing values redacted or digested (never raises)."""
        out: dict[str, Any] = {}
        for k, v in meta.items():
            key = str(k)
            low = key.lower()
            if low in _REDACT_KEYS:
                out[key] = f"[redacted len={len(str(v))}]"
            elif low in _DIGEST_KEYS or low.endswith(("file", "path", "files", "paths", "filename", "dir")):
                out[key] = None if v is None else self._digest(str(v))
            else:
                out[key] = self._scrub_value(v, depth)
        return out

    def _scrub_value(self, v: Any, depth: int) -> Any:
        if v is None or isinstance(v, bool | int | float):
            return v
        if isinstance(v, dict):
            return self.scrub(v, depth + 1) if depth < 3 else "[nested]"
        if isinstance(v, list | tuple | set):
            return [self._scrub_value(x, depth + 1) for x in list(v)[:50]]
        s = str(v)
        # Long free strings are where names and note text hide; keep a digest instead.
        return s if len(s) <= _MAX_STR else self._digest(s)

    def _mac(self, text: str) -> str:
        return hmac.new(self._key, text.encode(), hashlib.sha256).hexdigest()

    def _repair_tail(self) -> None:
        """Drop a half-written last line left by a crash mid-append."""
        path = self.log_path
        if not path.exists() or path.stat().st_size == 0:
            return
        with open(path, "rb+") as fh:
            fh.seek(-1, os.SEEK_END)
            if fh.read(1) == b"\n":
                return
            data = path.read_bytes()
            cut = data.rfind(b"\n") + 1
            fh.truncate(cut)
            fh.flush()
            os.fsync(fh.fileno())

    def recover(self) -> None:
        """Repair a torn last line left by a killed writer (the head anchor still covers the rest)."""
        if self.log_path.exists():
            with locked(self.folder / ".lock"):
                self._repair_tail()

    def _last(self) -> tuple[int, str]:
        path = self.log_path
        if not path.exists() or path.stat().st_size == 0:
            return 0, GENESIS
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            back = min(size, 65536)
            fh.seek(size - back)
            tail = fh.read().rstrip(b"\n").rsplit(b"\n", 1)[-1]
        entry = json.loads(tail)
        return int(entry["seq"]), str(entry["hash"])

    def append(self, action: str, *, compartment: str | None = None, **meta: Any) -> dict[str, Any]:
        """Append one event; returns the stored entry."""
        private_dir(self.folder)
        with locked(self.folder / ".lock"):
            self._repair_tail()
            seq, prev = self._last()
            body = {
                "seq": seq + 1,
                "ts": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "action": str(action),
                "compartment": compartment,
                "actor": current_actor(),
                "meta": self.scrub(meta),
                "prev": prev,
            }
            digest = hashlib.sha256(canonical(body)).hexdigest()
            entry = {**body, "hash": digest, "mac": self._mac(digest)}
            fd = os.open(self.log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, FILE_MODE)
            try:
                os.write(fd, canonical(entry) + b"\n")
                os.fsync(fd)
            finally:
                os.close(fd)
            head = {"seq": seq + 1, "hash": digest}
            head["mac"] = self._mac(f"head|{head['seq']}|{digest}")
            atomic_write(self.head_path, canonical(head))
            return entry

    def entries(self) -> Iterator[dict[str, Any]]:
        """Stored entries in file order (unverified)."""
        if not self.log_path.exists():
            return
        with open(self.log_path, encoding="utf-8") as fh:
            for line in fh:
                if line.strip():
                    yield json.loads(line)

    def head(self) -> dict[str, Any] | None:
        """The signed head anchor, if any."""
        try:
            data: dict[str, Any] = json.loads(self.head_path.read_text(encoding="utf-8"))
            return data
        except FileNotFoundError:
            return None

    def verify(self) -> AuditReport:
        """Check chain, MACs, sequence and head anchor; lists every problem found."""
        problems: list[str] = []
        prev, expected_seq, hashes = GENESIS, 1, []
        lines = self.log_path.read_bytes().split(b"\n") if self.log_path.exists() else []
        if lines and lines[-1] == b"":
            lines.pop()
        elif lines:
            problems.append("last line is incomplete")
        for n, raw in enumerate(lines, start=1):
            try:
                entry = json.loads(raw)
                seq, digest, mac = int(entry["seq"]), str(entry["hash"]), str(entry["mac"])
            except (ValueError, KeyError, TypeError):
                problems.append(f"line {n}: not a valid audit entry")
                prev, expected_seq = "?", expected_seq + 1
                hashes.append("?")
                continue
            body = {k: v for k, v in entry.items() if k not in ("hash", "mac")}
            if seq != expected_seq:
                problems.append(f"line {n}: sequence {seq}, expected {expected_seq} (deleted or reordered)")
            if entry.get("prev") != prev:
                problems.append(f"line {n} (seq {seq}): previous-hash link broken")
            if hashlib.sha256(canonical(body)).hexdigest() != digest:
                problems.append(f"line {n} (seq {seq}): content does not match its hash (edited)")
            if not hmac.compare_digest(self._mac(digest), mac):
                problems.append(f"line {n} (seq {seq}): MAC invalid (forged without the workspace key)")
            prev, expected_seq = digest, seq + 1
            hashes.append(digest)
        head = self.head()
        head_seq: int | None = None
        if head is None:
            if hashes:
                problems.append("head anchor is missing")
        else:
            try:
                head_seq = int(head["seq"])
                if not hmac.compare_digest(self._mac(f"head|{head_seq}|{head['hash']}"), str(head["mac"])):
                    problems.append("head anchor MAC invalid")
                if head_seq > len(hashes):
                    problems.append(f"log truncated: head says {head_seq} entries, log has {len(hashes)}")
                elif head_seq >= 1 and hashes[head_seq - 1] != head["hash"]:
                    problems.append(f"entry {head_seq} does not match the head anchor")
            except (KeyError, TypeError, ValueError):
                problems.append("head anchor is damaged")
        return AuditReport(ok=not problems, entries=len(hashes), head_seq=head_seq, problems=problems)

    def verify_or_raise(self) -> AuditReport:
        """:meth:`verify`, raising :class:`AuditTampered` with the first problems."""
        report = self.verify()
        if not report.ok:
            raise AuditTampered(f"{self.log_path}: " + "; ".join(report.problems[:5]))
        return report
