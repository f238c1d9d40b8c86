"""Egress guard: what may leave the machine in a prompt.

Endpoints listed in ``settings.trusted_endpoints`` may receive identifiable context. Every
other endpoint, loopback included, receives de-identified context only: patient facts are
worded with relative dates and pseudonymous ids, and the whole outgoing prompt is redacted
for the workspace patients' identifiers (names, address, phone, e-mail, SSN, MRN, licence and
passport numbers, birth dates) and for pattern-detected ones (SSN, phone, e-mail, MRN, full
dates). The redacted prompt is then scanned again with looser matching (digits regardless of
separators, names regardless of case and spacing); anything left blocks the call with
:class:`~workbench.errors.EgressBlocked`, whose message names the kind of identifier, never
its value.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from urllib.parse import urlsplit

import duckdb

from workbench.errors import EgressBlocked

#: patients-table column -> identifier kind.
IDENTIFIER_COLUMNS = {
    "family": "name",
    "given": "name",
    "address_line": "address",
    "city": "address",
    "postal_code": "postal code",
    "phone": "phone",
    "email": "email",
    "ssn": "SSN",
    "mrn": "MRN",
    "drivers_license": "driver's licence",
    "passport": "passport",
    "birth_date": "birth date",
}
_DIGIT_KINDS = {"phone", "SSN", "MRN", "driver's licence", "passport", "postal code"}
_MONTHS = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
]

#: Generic recognizers: kind -> pattern. Kept strict so literature text rarely trips them.
PATTERNS: dict[str, re.Pattern[str]] = {
    "SSN": re.compile(r"\b\d{3}-\d{2}-\d{4}\b"),
    "phone": re.compile(r"(?<![\w-])(?:\+?1[\s.-]?)?\(?\d{3}\)?[\s.-]\d{3}[\s.-]\d{4}\b"),
    "email": re.compile(r"\b[\w.+-]+@[\w-]+(?:\.[\w-]+)+\b"),
    "MRN": re.compile(r"\b(?:MRN|medical record (?:number|no\.?))\s*[:#]?\s*[A-Z0-9-]{4,}\b", re.I),
    "date": re.compile(
        r"\b(?:(?:19|20)\d{2}-\d{1,2}-\d{1,2}|\d{1,2}/\d{1,2}/(?:19|20)\d{2}|"
        r"\d{1,2} (?:" + "|".join(_MONTHS) + r") (?:19|20)\d{2}|"
        r"(?:" + "|".join(_MONTHS) + r") \d{1,2}, (?:19|20)\d{2})\b",
        re.I,
    ),
}


@dataclass(frozen=True, slots=True)
class Identifier:
    """A known identifier value of a workspace patient, with its kind."""

    kind: str
    value: str


@dataclass(frozen=True, slots=True)
class Finding:
    """Where an identifier of ``kind`` occurs in a text (the value itself is not kept)."""

    kind: str
    start: int
    end: int


def normalize_endpoint(url: str) -> str:
    """``scheme://host:port/path`` lower-cased, without credentials, query or trailing slash."""
    parts = urlsplit(url.strip())
    host = (parts.hostname or "").lower()
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme.lower()}://{host}{port}{parts.path.rstrip('/')}"


def _date_variants(d: date) -> list[str]:
    m = _MONTHS[d.month - 1]
    return [
        d.isoformat(),
        f"{d.month}/{d.day}/{d.year}",
        f"{d.month:02d}/{d.day:02d}/{d.year}",
        f"{d.day}/{d.month}/{d.year}",
        f"{d.day} {m} {d.year}",
        f"{m} {d.day}, {d.year}",
        f"{d.day:02d}.{d.month:02d}.{d.year}",
    ]


def _value_pattern(kind: str, value: str, *, loose: bool) -> re.Pattern[str] | None:
    value = value.strip()
    digits = re.sub(r"\D", "", value)
    if kind in _DIGIT_KINDS and len(digits) >= 5 and (loose or kind != "postal code"):
        if kind == "phone" and len(digits) == 11 and digits.startswith("1"):
            digits = digits[1:]
        # Same digits whatever the separators: 555-123-4567 == (555) 123 4567 == 5551234567.
        return re.compile(r"(?<!\d)" + r"[\s().-]*".join(digits) + r"(?!\d)")
    if len(value) < 3:
        return None  # an initial alone would match everywhere
    body = r"\s+".join(re.escape(w) for w in value.split())
    if loose:
        # Ignore punctuation and spacing differences between words ("O'Neil" vs "O Neil").
        body = r"[\W_]*".join(re.escape(c) for c in re.sub(r"[\W_]+", "", value))
    flags: int = re.I
    if kind == "name" and len(value.split()) == 1:
        # A single given or family name is matched as written (or in capitals), so a name
        # that is also a word ("May", "Will", "Black") does not trip on the lower-case word.
        upper = r"\s+".join(re.escape(w) for w in value.upper().split())
        body = f"(?:{body}|{upper})"
        flags = 0
    return re.compile(r"(?<![\w])" + body + r"(?![\w])", flags)


class EgressGuard:
    """Decides what a prompt may contain for an endpoint, redacts it and blocks what is left."""

    def __init__(
        self,
        identifiers: Iterable[Identifier] = (),
        *,
        trusted_endpoints: Sequence[str] = (),
        patterns: bool = True,
    ) -> None:
        self.identifiers = [i for i in dict.fromkeys(identifiers) if i.value and i.value.strip()]
        self.trusted = {normalize_endpoint(u) for u in trusted_endpoints if u}
        self.patterns = dict(PATTERNS) if patterns else {}
        strict: list[tuple[str, re.Pattern[str]]] = []
        loose: list[tuple[str, re.Pattern[str]]] = []
        for ident in self.identifiers:
            for target, flag in ((strict, False), (loose, True)):
                p = _value_pattern(ident.kind, ident.value, loose=flag)
                if p is not None:
                    target.append((ident.kind, p))
        # Longest values first so "Jane Doe" is redacted before "Jane".
        self._strict = sorted(strict, key=lambda kp: -len(kp[1].pattern))
        self._loose = loose

    @classmethod
    def from_connection(
        cls, con: duckdb.DuckDBPyConnection | None, *, trusted_endpoints: Sequence[str] = ()
    ) -> EgressGuard:
        """A guard that knows the identifiers of every patient in the workspace database."""
        return cls(workspace_identifiers(con) if con is not None else (), trusted_endpoints=trusted_endpoints)

    def is_trusted(self, endpoint: str) -> bool:
        """True when the user marked ``endpoint`` as allowed to receive identifiable context."""
        return normalize_endpoint(endpoint) in self.trusted

    def findings(self, text: str, *, loose: bool = True) -> list[Finding]:
        """Every identifier (known or pattern-detected) in ``text``."""
        found = []
        for kind, pat in self._loose if loose else self._strict:
            found += [Finding(kind, m.start(), m.end()) for m in pat.finditer(text)]
        for kind, pat in self.patterns.items():
            found += [Finding(kind, m.start(), m.end()) for m in pat.finditer(text)]
        return sorted(found, key=lambda f: (f.start, -f.end))

    def redact(self, text: str) -> str:
        """``text`` with known and pattern-detected identifiers replaced by ``[KIND]`` tags."""
        for kind, pat in self._strict:
            text = pat.sub(f"[{kind.upper()}]", text)
        for kind, pat in self.patterns.items():
            text = pat.sub(f"[{kind.upper()}]", text)
        return text

    def check(self, text: str, *, endpoint: str) -> None:
        """Raise :class:`EgressBlocked` if ``text`` may not go to ``endpoint``."""
        if self.is_trusted(endpoint):
            return
        kinds = sorted({f.kind for f in self.findings(text)})
        if kinds:
            raise EgressBlocked(
                f"blocked a model call to {normalize_endpoint(endpoint)}: the prompt still contains "
                f"identifiers of kind {', '.join(kinds)} and the endpoint is not trusted. Remove them "
                "from the question, or add the endpoint to trusted_endpoints (WB_TRUSTED_ENDPOINTS) "
                "if it may receive identifiable data."
            )


def workspace_identifiers(con: duckdb.DuckDBPyConnection) -> list[Identifier]:
    """Identifiers of every patient in the ``patients`` table (names, address, phone, SSN, ...)."""
    try:
        cols = {
            str(r[0])
            for r in con.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_name = 'patients'"
            ).fetchall()
        }
    except duckdb.Error:
        return []
    wanted = [c for c in IDENTIFIER_COLUMNS if c in cols]
    if not wanted:
        return []
    rows = con.execute("SELECT " + ", ".join(f'"{c}"' for c in wanted) + " FROM patients").fetchall()
    out: list[Identifier] = []
    for row in rows:
        names: list[str] = []
        for col, val in zip(wanted, row):
            if val is None or val == "":
                continue
            kind = IDENTIFIER_COLUMNS[col]
            if isinstance(val, datetime):
                val = val.date()
            if isinstance(val, date):
                out += [Identifier(kind, v) for v in _date_variants(val)]
                continue
            values = [str(v) for v in val] if isinstance(val, list | tuple) else [str(val)]
            for v in values:
                out.append(Identifier(kind, v))
                if kind == "name":
                    names.append(v)
        if len(names) >= 2:
            family = (
                [str(row[wanted.index("family")])]
                if "family" in wanted and row[wanted.index("family")]
                else []
            )
            givens = [n for n in names if n not in family]
            for f in family:
                out.append(Identifier("name", " ".join([*givens, f])))
    return out
