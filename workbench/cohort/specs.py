"""Declarative FHIR R4 resource specs: which path of which resource becomes which column.

The specs are data (:data:`SPECS`); :mod:`workbench.cohort.fhir_import` runs them. A path is a
small FHIRPath subset, compiled once into closures so flattening stays fast:

- ``a.b.c``: walk fields; lists are flattened at every step (FHIRPath collection semantics).
- ``coding[0]``: the first element of the collection built so far.
- ``coding[system=http://loinc.org]``: keep elements whose sub-path equals the value
  (the key may itself be a dotted path: ``identifier[type.coding.code=MR]``).
- ``x|y``: the first alternative that yields anything (``effectiveDateTime|effectivePeriod.start``).

Every column has a type (``str``, ``float``, ``ts``, ``date``, ``ref``, ``json``, ``str[]``,
``b64text``) and a mode: ``first`` value (default), ``join`` (space-joined) or ``all`` (a list).
Timestamps are stored as naive UTC.

Changing a spec's columns needs a named migration in :mod:`workbench.cohort.store`.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

import orjson

Getter = Callable[[Any], list[Any]]

#: DuckDB type of each spec column type.
DUCKDB_TYPES: dict[str, str] = {
    "str": "VARCHAR",
    "float": "DOUBLE",
    "ts": "TIMESTAMP",
    "date": "DATE",
    "ref": "VARCHAR",
    "json": "JSON",
    "str[]": "VARCHAR[]",
    "b64text": "VARCHAR",
}

#: Provenance columns that every records table starts with (docs/records-schema.md).
PROVENANCE_COLUMNS: tuple[str, ...] = ("patient_id", "resource_id", "source_file", "source_id", "import_id")


class SpecValueError(ValueError):
    """A value that does not fit its column type (the importer adds file and resource id)."""


# --------------------------------------------------------------------------- path language


def _split_top(expr: str, sep: str) -> list[str]:
    """Split ``expr`` on ``sep`` outside square brackets (filter values contain dots)."""
    parts: list[str] = []
    depth = 0
    buf: list[str] = []
    for ch in expr:
        if ch == "[":
            depth += 1
        elif ch == "]":
            depth -= 1
        if ch == sep and depth == 0:
            parts.append("".join(buf))
            buf = []
        else:
            buf.append(ch)
    parts.append("".join(buf))
    return parts


def _step_field(name: str) -> Callable[[list[Any]], list[Any]]:
    def step(nodes: list[Any]) -> list[Any]:
        out: list[Any] = []
        for node in nodes:
            if type(node) is dict:
                v = node.get(name)
                if v is None:
                    continue
                if type(v) is list:
                    out.extend(v)
                else:
                    out.append(v)
        return out

    return step


def _step_index(i: int) -> Callable[[list[Any]], list[Any]]:
    def step(nodes: list[Any]) -> list[Any]:
        return [nodes[i]] if -len(nodes) <= i < len(nodes) else []

    return step


def _step_filter(key: str, value: str) -> Callable[[list[Any]], list[Any]]:
    sub = compile_path(key)

    def step(nodes: list[Any]) -> list[Any]:
        return [n for n in nodes if any(_as_text(v) == value for v in sub(n))]

    return step


def _as_text(v: Any) -> str:
    if v is True:
        return "true"
    if v is False:
        return "false"
    return str(v)


def _compile_alternative(expr: str) -> Getter:
    steps: list[Callable[[list[Any]], list[Any]]] = []
    for seg in _split_top(expr, "."):
        seg = seg.strip()
        if not seg:
            raise ValueError(f"empty segment in path {expr!r}")
        name, _, rest = seg.partition("[")
        if name:
            steps.append(_step_field(name))
        while rest:
            inner, _, rest = rest.partition("]")
            rest = rest.removeprefix("[")
            if "=" in inner:
                k, _, v = inner.partition("=")
                steps.append(_step_filter(k, v))
            else:
                steps.append(_step_index(int(inner)))

    def get(node: Any) -> list[Any]:
        nodes = [node]
        for step in steps:
            nodes = step(nodes)
            if not nodes:
                return nodes
        return nodes

    return get


def compile_path(expr: str) -> Getter:
    """Compile a path expression into a function ``resource -> list of values``."""
    alts = [_compile_alternative(a) for a in _split_top(expr, "|")]
    if len(alts) == 1:
        return alts[0]

    def get(node: Any) -> list[Any]:
        for alt in alts:
            out = alt(node)
            if out:
                return out
        return []

    return get


_MISS = object()


def _fast_chain(names: list[str]) -> Callable[[Any], Any]:
    """First value of a plain field chain by walking first elements; ``_MISS`` when a later element might hold it."""
    src = ["def first(n):", "    multi = False"]
    for name in names:
        src += [
            "    if type(n) is not dict:",
            "        return _MISS if multi else None",
            f"    n = n.get({name!r})",
            "    if type(n) is list:",
            "        if not n:",
            "            return _MISS if multi else None",
            "        if len(n) > 1:",
            "            multi = True",
            "        n = n[0]",
        ]
    src += ["    if n is None:", "        return _MISS if multi else None", "    return n"]
    scope: dict[str, Any] = {"_MISS": _MISS}
    # generated from a field-name list (validated identifiers), never from input data
    exec("\n".join(src), scope)  # noqa: S102
    fn: Callable[[Any], Any] = scope["first"]
    return fn


def compile_first(expr: str) -> Callable[[Any], Any]:
    """Compile a path into a function returning its first value (or ``None``), same result as ``compile_path``."""
    alts: list[Callable[[Any], Any]] = []
    for alt in _split_top(expr, "|"):
        segs = [seg.strip() for seg in _split_top(alt, ".")]
        generic = _compile_alternative(alt)
        one: Callable[[Any], Any]
        if all(seg.isidentifier() for seg in segs):
            fast = _fast_chain(segs)

            def quick(node: Any, fast: Callable[[Any], Any] = fast, generic: Getter = generic) -> Any:
                v = fast(node)
                if v is _MISS:
                    vals = generic(node)
                    return vals[0] if vals else None
                return v

            one = quick
        else:

            def slow(node: Any, generic: Getter = generic) -> Any:
                vals = generic(node)
                return vals[0] if vals else None

            one = slow
        alts.append(one)
    if len(alts) == 1:
        return alts[0]

    def first(node: Any) -> Any:
        for alt in alts:
            v = alt(node)
            if v is not None:
                return v
        return None

    return first


# --------------------------------------------------------------------------- value conversion


def parse_fhir_datetime(s: Any) -> datetime:
    """Parse a FHIR date, dateTime or instant into a naive UTC datetime (partial dates -> first day)."""
    if not isinstance(s, str):
        raise SpecValueError(f"expected a date string, got {type(s).__name__}")
    try:
        n = len(s)
        if n == 4:
            return datetime(int(s), 1, 1)
        if n == 7:
            return datetime(int(s[:4]), int(s[5:7]), 1)
        dt = datetime.fromisoformat(s)
    except ValueError as exc:
        raise SpecValueError(f"impossible or malformed date {s!r}") from exc
    if dt.tzinfo is not None:
        dt = dt.astimezone(UTC).replace(tzinfo=None)
    return dt


def parse_fhir_date(s: Any) -> date:
    """Parse a FHIR date (or the date part of a dateTime)."""
    if isinstance(s, str) and len(s) > 10:
        return parse_fhir_datetime(s).date()
    return parse_fhir_datetime(s).date()


def to_float(v: Any) -> float:
    """A FHIR decimal/integer as float; strings that are numbers are accepted."""
    if type(v) is float or type(v) is int:
        return float(v)
    if isinstance(v, str):
        try:
            return float(v)
        except ValueError:
            pass
    raise SpecValueError(f"expected a number, got {type(v).__name__}")


def decode_attachment(v: Any) -> str:
    """Decode a base64 attachment ``data`` into text (UTF-8, undecodable bytes replaced)."""
    if not isinstance(v, str):
        raise SpecValueError("attachment data is not a base64 string")
    try:
        raw = base64.b64decode(v, validate=False)
    except (binascii.Error, ValueError) as exc:
        raise SpecValueError("attachment data is not valid base64") from exc
    return raw.decode("utf-8", errors="replace")


def resolve_reference(ref: Any, aliases: Mapping[str, str] | None = None) -> str | None:
    """Map a FHIR reference (``urn:uuid:x``, ``Patient/x``, ``http://.../Patient/x``) to a resource id."""
    if type(ref) is dict:
        ref = ref.get("reference")
    if not isinstance(ref, str) or not ref:
        return None
    if aliases is not None:
        hit = aliases.get(ref)
        if hit is not None:
            return hit
    if ref.startswith("urn:uuid:"):
        return ref[9:]
    if ref.startswith("#"):
        return None  # contained resource: no row of its own
    if "?" in ref:  # conditional reference (Practitioner?identifier=sys|value): keep the value
        return ref.rsplit("|", 1)[-1]
    parts = ref.rstrip("/").split("/")
    if len(parts) >= 4 and parts[-2] == "_history":
        return parts[-3]
    return parts[-1]


# --------------------------------------------------------------------------- specs


@dataclass(frozen=True)
class Column:
    """One output column: ``name`` <- ``path`` as ``type``; ``each`` overrides the path on exploded rows."""

    name: str
    path: str | None
    type: str = "str"
    mode: str = "first"  # first | join | all
    each: str | None = None
    const: Any = None

    def __post_init__(self) -> None:
        if self.type not in DUCKDB_TYPES:
            raise ValueError(f"column {self.name}: unknown type {self.type!r}")
        if self.mode not in ("first", "join", "all"):
            raise ValueError(f"column {self.name}: unknown mode {self.mode!r}")


@dataclass(frozen=True)
class ResourceSpec:
    """How one FHIR resource type becomes rows of one table."""

    resource_type: str
    table: str
    columns: tuple[Column, ...]
    #: Path to the subject reference; ``None`` means the resource *is* the patient.
    patient: str | None = "subject.reference|patient.reference"
    #: Paths that must yield a value, else the resource is rejected (besides ``patient``).
    required: tuple[str, ...] = ()
    #: Explode into one row per element of this path (Observation.component); the
    #: resource gives a single row when the path yields nothing.
    explode: str | None = None
    #: Columns whose value is fixed for this resource type (e.g. medications.kind).
    constants: Mapping[str, Any] = field(default_factory=dict)


def _c(
    name: str, path: str | None, type: str = "str", mode: str = "first", each: str | None = None
) -> Column:
    return Column(name, path, type, mode, each)


_CODE = (
    _c("code_system", "code.coding.system"),
    _c("code", "code.coding.code"),
    _c("display", "code.coding.display|code.text"),
)
_ENC = _c("encounter_id", "encounter.reference|context.encounter.reference", "ref")

_RACE = "http://hl7.org/fhir/us/core/StructureDefinition/us-core-race"
_ETHN = "http://hl7.org/fhir/us/core/StructureDefinition/us-core-ethnicity"
_GEO = "http://hl7.org/fhir/StructureDefinition/geolocation"

SPECS: tuple[ResourceSpec, ...] = (
    ResourceSpec(
        "Patient",
        "patients",
        (
            _c("family", "name[use=official].family|name.family"),
            _c("given", "name[use=official][0].given|name[0].given", mode="join"),
            _c("prefix", "name[use=official][0].prefix|name[0].prefix", mode="join"),
            _c("birth_date", "birthDate", "date"),
            _c("deceased_date", "deceasedDateTime", "date"),
            _c("gender", "gender"),
            _c("race", f"extension[url={_RACE}].extension[url=text].valueString"),
            _c("ethnicity", f"extension[url={_ETHN}].extension[url=text].valueString"),
            _c("marital_status", "maritalStatus.coding.code|maritalStatus.text"),
            _c("address_line", "address[0].line", mode="join"),
            _c("city", "address.city"),
            _c("state", "address.state"),
            _c("postal_code", "address.postalCode"),
            _c("country", "address.country"),
            _c("lat", f"address.extension[url={_GEO}].extension[url=latitude].valueDecimal", "float"),
            _c("lon", f"address.extension[url={_GEO}].extension[url=longitude].valueDecimal", "float"),
            _c("phone", "telecom[system=phone].value"),
            _c("email", "telecom[system=email].value"),
            _c(
                "ssn",
                "identifier[system=http://hl7.org/fhir/sid/us-ssn].value|identifier[type.coding.code=SS].value",
            ),
            _c("mrn", "identifier[type.coding.code=MR].value"),
            _c("drivers_license", "identifier[type.coding.code=DL].value"),
            _c("passport", "identifier[type.coding.code=PPN].value"),
            _c("language", "communication.language.coding.code|communication.language.text"),
            _c("deceased", "deceasedBoolean"),
        ),
        patient=None,
    ),
    ResourceSpec(
        "Encounter",
        "encounters",
        (
            _c("encounter_id", "id"),
            _c("start", "period.start", "ts"),
            _c("end", "period.end", "ts"),
            _c("class", "class.code"),
            _c("status", "status"),
            _c("type_code", "type.coding.code"),
            _c("type_display", "type.coding.display|type.text"),
            _c("reason_code", "reasonCode.coding.code"),
            _c("reason_display", "reasonCode.coding.display|reasonCode.text"),
            _c("provider", "participant.individual.reference", "ref"),
            _c("organization", "serviceProvider.reference", "ref"),
        ),
        required=("status",),
    ),
    ResourceSpec(
        "Condition",
        "conditions",
        (
            _ENC,
            *_CODE,
            _c("clinical_status", "clinicalStatus.coding.code"),
            _c("verification_status", "verificationStatus.coding.code"),
            _c("onset", "onsetDateTime|onsetPeriod.start", "ts"),
            _c("abatement", "abatementDateTime|abatementPeriod.start", "ts"),
            _c("recorded", "recordedDate", "ts"),
            _c("category", "category.coding.code"),
        ),
        required=("code",),
    ),
    ResourceSpec(
        "Observation",
        "observations",
        (
            _ENC,
            _c("category", "category.coding.code"),
            _c("code_system", "code.coding.system"),
            _c("code", "code.coding.code"),
            _c("display", "code.coding.display|code.text", each="code.coding.display|code.text"),
            _c("component", None, each="code.coding.code"),
            _c(
                "value_num",
                "valueQuantity.value|valueInteger",
                "float",
                each="valueQuantity.value|valueInteger",
            ),
            _c(
                "value_text",
                "valueString|valueCodeableConcept.text|valueCodeableConcept.coding.display|valueBoolean",
                each="valueString|valueCodeableConcept.text|valueCodeableConcept.coding.display",
            ),
            _c("unit", "valueQuantity.unit", each="valueQuantity.unit"),
            _c("unit_code", "valueQuantity.code", each="valueQuantity.code"),
            _c("effective", "effectiveDateTime|effectivePeriod.start|effectiveInstant|issued", "ts"),
            _c("status", "status"),
            _c("interpretation", "interpretation.coding.code", each="interpretation.coding.code"),
            _c("ref_low", "referenceRange.low.value", "float", each="referenceRange.low.value"),
            _c("ref_high", "referenceRange.high.value", "float", each="referenceRange.high.value"),
        ),
        required=("code", "status"),
        explode="component",
    ),
    ResourceSpec(
        "MedicationRequest",
        "medications",
        (
            _ENC,
            _c("kind", None),
            _c("status", "status"),
            _c("intent", "intent"),
            _c("code_system", "medicationCodeableConcept.coding.system"),
            _c("code", "medicationCodeableConcept.coding.code"),
            _c("display", "medicationCodeableConcept.coding.display|medicationCodeableConcept.text"),
            _c("medication_ref", "medicationReference.reference", "ref"),
            _c("authored", "authoredOn", "ts"),
            _c("dosage_text", "dosageInstruction.text"),
            _c("reason_code", "reasonCode.coding.code|reasonReference.reference"),
        ),
        required=("status",),
        constants={"kind": "request"},
    ),
    ResourceSpec(
        "MedicationStatement",
        "medications",
        (
            _ENC,
            _c("kind", None),
            _c("status", "status"),
            _c("intent", None),
            _c("code_system", "medicationCodeableConcept.coding.system"),
            _c("code", "medicationCodeableConcept.coding.code"),
            _c("display", "medicationCodeableConcept.coding.display|medicationCodeableConcept.text"),
            _c("medication_ref", "medicationReference.reference", "ref"),
            _c("authored", "effectiveDateTime|effectivePeriod.start|dateAsserted", "ts"),
            _c("dosage_text", "dosage.text"),
            _c("reason_code", "reasonCode.coding.code|reasonReference.reference"),
        ),
        required=("status",),
        constants={"kind": "statement"},
    ),
    ResourceSpec(
        "Immunization",
        "immunizations",
        (
            _ENC,
            _c("status", "status"),
            _c("code_system", "vaccineCode.coding.system"),
            _c("code", "vaccineCode.coding.code"),
            _c("display", "vaccineCode.coding.display|vaccineCode.text"),
            _c("occurrence", "occurrenceDateTime", "ts"),
        ),
        required=("vaccineCode",),
    ),
    ResourceSpec(
        "Procedure",
        "procedures",
        (
            _ENC,
            _c("status", "status"),
            *_CODE,
            _c("performed_start", "performedPeriod.start|performedDateTime", "ts"),
            _c("performed_end", "performedPeriod.end", "ts"),
            _c("reason_code", "reasonCode.coding.code|reasonReference.reference"),
        ),
        required=("code",),
    ),
    ResourceSpec(
        "AllergyIntolerance",
        "allergies",
        (
            *_CODE,
            _c("clinical_status", "clinicalStatus.coding.code"),
            _c("criticality", "criticality"),
            _c("category", "category"),
            _c("recorded", "recordedDate|onsetDateTime", "ts"),
        ),
        required=("code",),
    ),
    ResourceSpec(
        "DiagnosticReport",
        "diagnostic_reports",
        (
            _ENC,
            _c("status", "status"),
            _c("category", "category.coding.code"),
            _c("code", "code.coding.code"),
            _c("display", "code.coding.display|code.text"),
            _c("effective", "effectiveDateTime|effectivePeriod.start|issued", "ts"),
            _c("result_ids", "result.reference", "str[]", mode="all"),
        ),
        required=("code",),
    ),
    ResourceSpec(
        "DocumentReference",
        "documents",
        (
            _ENC,
            _c("status", "status"),
            _c("type_code", "type.coding.code"),
            _c("type_display", "type.coding.display|type.text"),
            _c("date", "date|context.period.start", "ts"),
            _c("content_type", "content.attachment.contentType"),
            _c("text", "content.attachment.data", "b64text"),
        ),
        required=("content",),
    ),
    ResourceSpec(
        "Claim",
        "claims",
        (
            _c("encounter_id", "item.encounter.reference", "ref"),
            _c("status", "status"),
            _c("type", "type.coding.code"),
            _c("created", "created", "ts"),
            _c("billable_start", "billablePeriod.start", "ts"),
            _c("total", "total.value", "float"),
            _c("currency", "total.currency"),
            _c("items", "item", "json", mode="all"),
        ),
    ),
    ResourceSpec(
        "ExplanationOfBenefit",
        "eobs",
        (
            _c("encounter_id", "item.encounter.reference", "ref"),
            _c("claim_id", "claim.reference", "ref"),
            _c("status", "status"),
            _c("type", "type.coding.code"),
            _c("created", "created", "ts"),
            _c("total", "total[category.coding.code=submitted].amount.value|total.amount.value", "float"),
            _c("payment", "payment.amount.value", "float"),
            _c("currency", "total.amount.currency|payment.amount.currency"),
        ),
    ),
    ResourceSpec(
        "Coverage",
        "coverage",
        (
            _c("status", "status"),
            _c("type", "type.coding.code|type.text"),
            _c("payor", "payor.display|payor.reference"),
            _c("period_start", "period.start", "ts"),
            _c("period_end", "period.end", "ts"),
        ),
        patient="beneficiary.reference|subscriber.reference",
    ),
)

SPECS_BY_TYPE: dict[str, ResourceSpec] = {s.resource_type: s for s in SPECS}


def table_columns() -> dict[str, list[tuple[str, str]]]:
    """``{table: [(column, duckdb_type), ...]}`` with provenance columns first, from all specs."""
    out: dict[str, list[tuple[str, str]]] = {}
    for spec in SPECS:
        cols = out.setdefault(spec.table, [(c, "VARCHAR") for c in PROVENANCE_COLUMNS])
        names = {n for n, _ in cols}
        for col in spec.columns:
            if col.name not in names:
                cols.append((col.name, DUCKDB_TYPES[col.type]))
                names.add(col.name)
    return out


# --------------------------------------------------------------------------- compiled runner


def _column_fn(name: str, expr: str | None, typ: str, mode: str, const: Any) -> Callable[[Any, Any], Any]:
    """One function ``(node, aliases) -> value`` per column: path, mode and type conversion together."""
    if expr is None:
        return lambda _node, _aliases: const
    if mode == "first":
        first = compile_first(expr)
        if typ == "str":

            def value(node: Any, aliases: Any) -> Any:
                v = first(node)
                if v is None or type(v) is str:
                    return v
                return _convert(v, "str", aliases)

        else:

            def value(node: Any, aliases: Any) -> Any:
                v = first(node)
                if v is None:
                    return None
                try:
                    return _convert(v, typ, aliases)
                except SpecValueError as exc:
                    raise SpecValueError(f"column {name}: {exc}") from None

        return value
    get = compile_path(expr)

    def many(node: Any, aliases: Any) -> Any:
        vals = get(node)
        if not vals:
            return None
        try:
            if mode == "all":
                if typ == "json":
                    return orjson.dumps(vals).decode()
                return [_convert(v, "str" if typ == "str[]" else typ, aliases) for v in vals]
            return " ".join(_as_text(v) for v in vals if not isinstance(v, dict | list))
        except SpecValueError as exc:
            raise SpecValueError(f"column {name}: {exc}") from None

    return many


class CompiledSpec:
    """A :class:`ResourceSpec` with its paths compiled, ready to flatten resources into rows."""

    def __init__(self, spec: ResourceSpec) -> None:
        self.spec = spec
        self.table = spec.table
        self.names: list[str] = [c.name for c in spec.columns]
        self._fns = [
            _column_fn(c.name, c.path, c.type, c.mode, spec.constants.get(c.name)) for c in spec.columns
        ]
        # on exploded rows (Observation.component), columns with ``each`` read the element
        self._each_fns = [
            _column_fn(c.name, c.each, c.type, c.mode, None) if c.each else None for c in spec.columns
        ]
        self._patient = compile_first(spec.patient) if spec.patient else None
        self._required = [(p, compile_first(p)) for p in spec.required]
        self._explode = compile_path(spec.explode) if spec.explode else None
        gen = _generate(spec)
        self._one = gen["one"]
        self._many = gen.get("many")
        self._patient_id = gen.get("patient")
        self.check_required: Callable[[Mapping[str, Any]], None] = gen["required"]

    def patient_ref(self, resource: Mapping[str, Any]) -> Any:
        """The raw subject reference (``None`` for Patient itself, which is its own subject)."""
        if self._patient is None:
            return None
        return self._patient(resource)

    def check_required_interpreted(self, resource: Mapping[str, Any]) -> None:
        """:meth:`check_required` by interpreting the paths (the reference semantics)."""
        for path, first in self._required:
            if first(resource) is None:
                raise SpecValueError(f"required field {path!r} is missing")

    def patient_id(self, resource: Mapping[str, Any], aliases: Mapping[str, str] | None) -> str | None:
        """The id of the patient ``resource`` belongs to (its own id for a Patient)."""
        if self._patient_id is None:
            rid = resource.get("id")
            return rid if isinstance(rid, str) else None
        pid: str | None = self._patient_id(resource, aliases)
        return pid

    def flat(
        self, resource: Mapping[str, Any], aliases: Mapping[str, str] | None, pid: Any, rid: Any
    ) -> list[list[Any]]:
        """Rows of ``resource`` (one, or one per exploded element), each ``[pid, rid, *columns]``.

        Runs the code generated from the spec (:func:`_generate`): one function call per
        resource instead of several per column; same values as :meth:`rows_interpreted`.
        """
        if self._many is not None:
            assert self._explode is not None
            items = self._explode(resource)
            if items:
                return self._many(resource, items, aliases, pid, rid)
        return self._one(resource, aliases, pid, rid)

    def rows(self, resource: Mapping[str, Any], aliases: Mapping[str, str] | None) -> list[list[Any]]:
        """Flatten ``resource`` into rows of the spec's columns (one, or one per exploded element)."""
        return [r[2:] for r in self.flat(resource, aliases, None, None)]

    def rows_interpreted(
        self, resource: Mapping[str, Any], aliases: Mapping[str, str] | None
    ) -> list[list[Any]]:
        """:meth:`rows` by interpreting the compiled paths column by column (the reference semantics)."""
        items = self._explode(resource) if self._explode is not None else None
        if not items:
            return [[fn(resource, aliases) for fn in self._fns]]
        base = [None if e is not None else fn(resource, aliases) for fn, e in zip(self._fns, self._each_fns)]
        out: list[list[Any]] = []
        for item in items:
            out.append([b if e is None else e(item, aliases) for b, e in zip(base, self._each_fns)])
        return out


def _convert(v: Any, typ: str, aliases: Mapping[str, str] | None) -> Any:
    if typ == "str":
        if isinstance(v, dict | list):
            return orjson.dumps(v).decode()
        return _as_text(v)
    if typ == "ts":
        return parse_fhir_datetime(v)
    if typ == "float":
        return to_float(v)
    if typ == "ref":
        return resolve_reference(v, aliases)
    if typ == "date":
        return parse_fhir_date(v)
    if typ == "json":
        return orjson.dumps(v).decode()
    if typ == "b64text":
        return decode_attachment(v)
    raise SpecValueError(f"unknown type {typ}")


# --------------------------------------------------------------------------- generated flatteners


class _Source:
    """Python source of one generated flattening function, and the objects it refers to."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.scope: dict[str, Any] = {
            "SpecValueError": SpecValueError,
            "_conv": _convert,
            "_ts": parse_fhir_datetime,
            "_date": parse_fhir_date,
            "_float": to_float,
            "_ref": resolve_reference,
            "_b64": decode_attachment,
            "_dumps": orjson.dumps,
        }

    def ref(self, obj: Any) -> str:
        """A name in the generated code's scope bound to ``obj``."""
        name = f"_o{len(self.scope)}"
        self.scope[name] = obj
        return name

    def add(self, ind: str, line: str) -> None:
        self.lines.append(ind + line)


def _gen_chain(src: _Source, names: list[str], ind: str) -> None:
    """Walk a plain field chain taking first elements, as :func:`_fast_chain` does, into ``n``."""
    name = names[0]
    src.add(ind, "if type(n) is dict:")
    src.add(ind, f"    n = n.get({name!r})")
    src.add(ind, "    if type(n) is list:")
    src.add(ind, "        if len(n) > 1:")
    src.add(ind, "            m = True")
    src.add(ind, "        n = n[0] if n else None")
    if names[1:]:
        _gen_chain(src, names[1:], ind + "    ")
    src.add(ind, "else:")
    src.add(ind, "    n = None")


def _gen_first(src: _Source, expr: str, root: str, ind: str) -> None:
    """Code that leaves the first value of ``expr`` (or ``None``) in ``n``: same as :func:`compile_first`."""
    for k, alt in enumerate(_split_top(expr, "|")):
        if k:
            src.add(ind, "if n is None:")
            ind += "    "
        generic = _compile_alternative(alt)

        def first(node: Any, generic: Getter = generic) -> Any:
            vals = generic(node)
            return vals[0] if vals else None

        segs = [seg.strip() for seg in _split_top(alt, ".")]
        if all(seg.isidentifier() for seg in segs):
            src.add(ind, "m = False")
            src.add(ind, f"n = {root}")
            _gen_chain(src, segs, ind)
            # a later element of a list met on the way may hold the value: the full path decides
            src.add(ind, "if n is None and m:")
            src.add(ind, f"    n = {src.ref(first)}({root})")
        else:
            src.add(ind, f"n = {src.ref(first)}({root})")


def _gen_column(
    src: _Source, col: Column, expr: str | None, const: Any, root: str, var: str, ind: str
) -> None:
    """Code that sets ``var`` to the column's value read from ``root``, as :func:`_column_fn` does."""
    if expr is None:
        src.add(ind, f"{var} = {src.ref(const)}")
        return
    if col.mode != "first":
        src.add(ind, "c = None")  # the function names the column in its own errors
        src.add(
            ind, f"{var} = {src.ref(_column_fn(col.name, expr, col.type, col.mode, None))}({root}, aliases)"
        )
        return
    _gen_first(src, expr, root, ind)
    typ = col.type
    if typ == "str":
        src.add(ind, "if n is not None and type(n) is not str:")
        src.add(ind, "    n = _conv(n, 'str', aliases)")
    elif typ == "ref":
        src.add(ind, "if n is not None:")
        src.add(ind, "    n = _ref(n, aliases)")
    elif typ == "float":
        src.add(ind, "if n is not None and type(n) is not float:")
        src.add(ind, f"    c = {col.name!r}")
        src.add(ind, "    n = _float(n)")
    else:
        fn = {"ts": "_ts", "date": "_date", "b64text": "_b64"}.get(typ)
        src.add(ind, "if n is not None:")
        src.add(ind, f"    c = {col.name!r}")
        if fn is not None:
            src.add(ind, f"    n = {fn}(n)")
        else:
            src.add(ind, f"    n = _conv(n, {typ!r}, aliases)")
    src.add(ind, f"{var} = n")


def _generate(spec: ResourceSpec) -> dict[str, Any]:
    """Generate ``one(resource, aliases, pid, rid)`` and, for exploding specs, ``many(resource, items, ...)``.

    Also ``required(resource)`` (raises when a required path yields nothing) and, unless the
    resource is the patient, ``patient(resource, aliases)`` (the resolved subject id).

    The code is generated from the spec (column names, field names and values are only ever
    embedded through ``repr`` or bound as objects), never from input data. Both give the rows
    that :meth:`CompiledSpec.rows_interpreted` gives, with ``pid, rid`` in front.
    """
    cols = spec.columns
    row = "[pid, rid, " + ", ".join(f"v{i}" for i in range(len(cols))) + "]"
    handler = [
        "except SpecValueError as exc:",
        "    if c is None:",
        "        raise",
        "    raise SpecValueError(f'column {c}: {exc}') from None",
    ]
    src = _Source()
    src.add("", "def one(r, aliases, pid, rid):")
    src.add("    ", "c = None")
    src.add("    ", "try:")
    for i, col in enumerate(cols):
        _gen_column(src, col, col.path, spec.constants.get(col.name), "r", f"v{i}", "        ")
    for line in handler:
        src.add("    ", line)
    src.add("    ", f"return [{row}]")
    if spec.explode is not None:
        src.add("", "def many(r, items, aliases, pid, rid):")
        src.add("    ", "c = None")
        src.add("    ", "out = []")
        src.add("    ", "try:")
        for i, col in enumerate(cols):
            if col.each is None:
                _gen_column(src, col, col.path, spec.constants.get(col.name), "r", f"v{i}", "        ")
        src.add("        ", "for it in items:")
        for i, col in enumerate(cols):
            if col.each is not None:
                _gen_column(src, col, col.each, None, "it", f"v{i}", "            ")
        src.add("            ", f"out.append({row})")
        for line in handler:
            src.add("    ", line)
        src.add("    ", "return out")
    if spec.patient is not None:
        src.add("", "def patient(r, aliases):")
        _gen_first(src, spec.patient, "r", "    ")
        src.add("    ", "return _ref(n, aliases)")
    src.add("", "def required(r):")
    for path in spec.required:
        _gen_first(src, path, "r", "    ")
        src.add("    ", "if n is None:")
        src.add("    ", f"    raise SpecValueError({f'required field {path!r} is missing'!r})")
    src.add("    ", "return None")
    scope = src.scope
    # generated from the declarative specs above (identifiers and repr'd literals), never from input data
    exec(compile("\n".join(src.lines), f"<spec {spec.resource_type}>", "exec"), scope)  # noqa: S102
    return {k: scope[k] for k in ("one", "many", "patient", "required") if k in scope}


def compiled_specs() -> dict[str, CompiledSpec]:
    """Compiled specs keyed by resource type (compile once per import)."""
    return {s.resource_type: CompiledSpec(s) for s in SPECS}


def spec_tables() -> Sequence[str]:
    """Names of the FHIR tables, in spec order."""
    return list(dict.fromkeys(s.table for s in SPECS))
