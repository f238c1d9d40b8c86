"""Free-text de-identification benchmark: recall and precision per entity type.

    python bench/deid.py --data /work/shared/data/deid_notes/presidio_synth_v2_dev.json [--json OUT]
        [--fhir ../shared/data/synthea_r4/bundles ../shared/data/synthea_bulk_ndjson_10]

A gold span counts as found when the redaction covers it: every letter and digit of the
gold span lies inside some predicted span (whatever type the detector gave it; spaces and
punctuation left between two redactions reveal nothing). Precision is the share of
predicted spans that overlap a gold span of any PHI type. Typed recall (the covering span
has the mapped type) is reported beside it.

With ``--aci DIR`` (default: the ACI-BENCH folder next to the data, when present) it also
measures recall of the patients' first and family names (from ``*_metadata.csv``) wherever
they occur in the notes, without and with those names passed as known identifiers.

Writes ``bench/results/deid.json`` and ``deid.md`` (numbers only, no text from the data).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import re
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import pandas as pd

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from workbench.cohort.deid.text import analyzer_info, deidentify_text  # noqa: E402

# Gold type -> our type. Types we do not redact by default map to None.
TYPE_MAP: dict[str, str | None] = {
    "PERSON": "PERSON",
    "STREET_ADDRESS": "STREET_ADDRESS",
    "DATE_TIME": "DATE_TIME",
    "PHONE_NUMBER": "PHONE_NUMBER",
    "EMAIL_ADDRESS": "EMAIL_ADDRESS",
    "US_SSN": "US_SSN",
    "GPE": "LOCATION",
    "ZIP_CODE": "ZIP_CODE",
    "AGE": "AGE",
    "CREDIT_CARD": "CREDIT_CARD",
    "IBAN_CODE": "IBAN_CODE",
    "IP_ADDRESS": "IP_ADDRESS",
    "DOMAIN_NAME": "URL",
    "US_DRIVER_LICENSE": "US_DRIVER_LICENSE",
    "ORGANIZATION": None,
    "TITLE": None,
    "NRP": None,
}

TARGETS = {
    "PERSON": 0.90,
    "STREET_ADDRESS": 0.90,
    "DATE_TIME": 0.90,
    "PHONE_NUMBER": 0.98,
    "EMAIL_ADDRESS": 0.98,
    "US_SSN": 0.98,
}

_ALNUM = re.compile(r"\w", re.UNICODE)


def covered(text: str, start: int, end: int, spans: list[dict[str, Any]], typ: str | None = None) -> bool:
    """True when every letter/digit of text[start:end] lies inside a predicted span (of ``typ``)."""
    mask = [False] * (end - start)
    for s in spans:
        if typ is not None and s["type"] != typ:
            continue
        lo, hi = max(start, s["start"]), min(end, s["end"])
        for i in range(lo, hi):
            mask[i - start] = True
    need = [i for i, ch in enumerate(text[start:end]) if _ALNUM.match(ch)]
    return bool(need) and all(mask[i] for i in need)


def evaluate_presidio(path: Path, *, limit: int | None = None, show_misses: int = 0) -> dict[str, Any]:
    """Per-type recall and precision on a presidio-research style JSON file."""
    records = json.loads(path.read_text("utf-8"))
    if limit:
        records = records[:limit]
    gold_n: Counter[str] = Counter()
    found: Counter[str] = Counter()
    found_typed: Counter[str] = Counter()
    pred_n: Counter[str] = Counter()
    pred_ok: Counter[str] = Counter()
    misses: dict[str, list[str]] = defaultdict(list)
    t0 = time.perf_counter()
    for rec in records:
        text = rec["full_text"]
        spans = [dict(s) for s in deidentify_text(text).spans]
        gold = rec["spans"]
        for g in gold:
            gt = g["entity_type"]
            gs, ge = g["start_position"], g["end_position"]
            gold_n[gt] += 1
            if covered(text, gs, ge, spans):
                found[gt] += 1
            elif show_misses:
                misses[gt].append(f"{text[gs:ge]!r} in {text!r}")
            ours = TYPE_MAP.get(gt)
            if ours is not None and covered(text, gs, ge, spans, ours):
                found_typed[gt] += 1
        for s in spans:
            pred_n[s["type"]] += 1
            if any(s["start"] < g["end_position"] and g["start_position"] < s["end"] for g in gold):
                pred_ok[s["type"]] += 1
    seconds = time.perf_counter() - t0
    per_type = {}
    for gt in sorted(gold_n, key=lambda t: -gold_n[t]):
        per_type[gt] = {
            "ours": TYPE_MAP.get(gt),
            "gold": gold_n[gt],
            "found": found[gt],
            "recall": round(found[gt] / gold_n[gt], 4),
            "recall_typed": round(found_typed[gt] / gold_n[gt], 4) if TYPE_MAP.get(gt) else None,
            "target": TARGETS.get(gt),
        }
    precision = {
        t: {
            "predicted": pred_n[t],
            "overlapping_gold": pred_ok[t],
            "precision": round(pred_ok[t] / pred_n[t], 4),
        }
        for t in sorted(pred_n, key=lambda t: -pred_n[t])
    }
    total_pred = sum(pred_n.values())
    if show_misses:
        for gt, items in misses.items():
            print(f"--- misses {gt} ({len(items)})")
            for m in items[:show_misses]:
                print("   ", m)
    return {
        "data": str(path),
        "records": len(records),
        "seconds": round(seconds, 2),
        "records_per_s": round(len(records) / seconds, 1) if seconds else None,
        "per_gold_type": per_type,
        "per_predicted_type": precision,
        "precision_overall": round(sum(pred_ok.values()) / total_pred, 4) if total_pred else None,
        "targets_met": {t: per_type.get(t, {}).get("recall", 0.0) >= v for t, v in TARGETS.items()},
    }


def _read_csv(path: Path) -> list[dict[str, str]]:
    csv.field_size_limit(1 << 30)
    with open(path, encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


def evaluate_aci(folder: Path) -> dict[str, Any]:
    """Recall of patients' names in ACI-BENCH notes, blind and with the names as known identifiers."""
    n_notes = 0
    occurrences = 0
    found_blind = 0
    found_known = 0
    chars = redacted = 0
    types: Counter[str] = Counter()
    t0 = time.perf_counter()
    for meta_path in sorted(folder.glob("*_metadata.csv")):
        notes_path = meta_path.with_name(meta_path.name.replace("_metadata", ""))
        if not notes_path.exists():
            continue
        meta = {row["encounter_id"]: row for row in _read_csv(meta_path)}
        for row in _read_csv(notes_path):
            m = meta.get(row["encounter_id"])
            if m is None:
                continue
            names = [n.strip() for n in (m["patient_firstname"], m["patient_familyname"]) if n and n.strip()]
            text = row["note"]
            gold = [
                (mt.start(), mt.end())
                for n in names
                for mt in re.finditer(rf"(?<!\w){re.escape(n)}(?!\w)", text, flags=re.IGNORECASE)
            ]
            if not gold:
                continue
            n_notes += 1
            occurrences += len(gold)
            blind = [dict(s) for s in deidentify_text(text).spans]
            known = [
                dict(s)
                for s in deidentify_text(
                    text, known_identifiers={"given": names[:-1], "family": names[-1:]}
                ).spans
            ]
            found_blind += sum(covered(text, s, e, blind) for s, e in gold)
            chars += len(text)
            redacted += sum(s["end"] - s["start"] for s in blind)
            for s in blind:
                types[s["type"]] += 1
            found_known += sum(covered(text, s, e, known) for s, e in gold)
    return {
        "folder": str(folder),
        "notes_with_names": n_notes,
        "name_occurrences": occurrences,
        "recall_blind": round(found_blind / occurrences, 4) if occurrences else None,
        "recall_with_known_identifiers": round(found_known / occurrences, 4) if occurrences else None,
        # How much of the notes the blind pass redacts (over-redaction costs readability).
        "share_of_characters_redacted": round(redacted / chars, 4) if chars else None,
        "spans_per_type": dict(types.most_common()),
        "seconds": round(time.perf_counter() - t0, 2),
    }


def _source_patients(paths: list[Path]) -> list[dict[str, Any]]:
    """Every Patient resource in the FHIR bundles and NDJSON files under ``paths``."""
    import gzip

    out: list[dict[str, Any]] = []
    for root in paths:
        files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
        for f in files:
            name = f.name
            opener = gzip.open if name.endswith(".gz") else open
            if ".ndjson" in name and name.startswith("Patient"):
                with opener(f, "rt", encoding="utf-8") as fh:
                    out.extend(json.loads(line) for line in fh if line.strip())
            elif name.endswith((".json", ".json.gz")):
                with opener(f, "rt", encoding="utf-8") as fh:
                    doc = json.load(fh)
                for e in doc.get("entry", []) if isinstance(doc, dict) else []:
                    if e.get("resource", {}).get("resourceType") == "Patient":
                        out.append(e["resource"])
    return out


# Identifier type codes (HL7 v2-0203) -> the kind reported.
_ID_KINDS = {"SS": "ssn", "DL": "drivers_license", "PPN": "passport", "MR": "mrn"}
_MONTHS = "January February March April May June July August September October November December".split()

#: Every kind the leak check reports, in report order. Kinds searched only in the patient's
#: own rows (a date or a ZIP code is not rare enough to search across all patients).
LEAK_KINDS = (
    "name",
    "street_address",
    "city",
    "phone",
    "email",
    "ssn",
    "mrn",
    "drivers_license",
    "passport",
    "other_identifier",
    "patient_id",
    "birth_date",
    "zip5",
)
OWN_ROW_KINDS = frozenset({"birth_date", "zip5"})
# Kinds also searched as their digits with any separators ("555 810 7203", "999945397").
DIGIT_KINDS = frozenset({"phone", "ssn"})


def identifying_values(p: dict[str, Any]) -> list[tuple[str, tuple[str, ...]]]:
    """(kind, forms) for every identifying value of one FHIR Patient resource.

    A value is found when any of its forms is: a Synthea name part with and without the
    digits Synthea appends ("Larue605", "Larue"), a birth date in ISO, US and written forms.
    """
    values: list[tuple[str, tuple[str, ...]]] = []
    for n in p.get("name", []):
        # Official and maiden names alike.
        for part in [n.get("family", ""), *n.get("given", [])]:
            forms = tuple(v for v in dict.fromkeys((part, re.sub(r"\d+$", "", part))) if len(v) >= 3)
            if forms:
                values.append(("name", forms))
    for a in p.get("address", []):
        values += [("street_address", (line,)) for line in a.get("line", []) if line]
        if a.get("city"):
            values.append(("city", (a["city"],)))
    for t in p.get("telecom", []):
        if t.get("value"):
            values.append(("email" if t.get("system") == "email" else "phone", (t["value"],)))
    for i in p.get("identifier", []):
        if i.get("value"):
            codes = [c.get("code") for c in (i.get("type") or {}).get("coding", [])]
            kind = next((_ID_KINDS[c] for c in codes if c in _ID_KINDS), "other_identifier")
            values.append((kind, (i["value"],)))
    if p.get("id"):
        values.append(("patient_id", (p["id"],)))
    birth = p.get("birthDate")
    if birth and re.fullmatch(r"\d{4}-\d{2}-\d{2}", birth[:10]):
        y, m, d = birth[:10].split("-")
        month = _MONTHS[int(m) - 1]
        values.append(
            (
                "birth_date",
                (
                    f"{y}-{m}-{d}",
                    f"{int(m)}/{int(d)}/{y}",
                    f"{m}/{d}/{y}",
                    f"{y}{m}{d}",
                    f"{month} {int(d)}, {y}",
                    f"{int(d)} {month} {y}",
                ),
            )
        )
    for a in p.get("address", []):
        z = re.match(r"\d{5}", str(a.get("postalCode") or ""))
        if z:
            values.append(("zip5", (z.group(0),)))
    return list(dict.fromkeys(values))


_EDGE = re.compile(r"[\w-]")
_DIGIT_RUN = re.compile(r"\d(?:[\s().-]*\d)*")


class LeakSearch:
    r"""Finds values in an exported text as whole tokens, fast enough for a whole export.

    ``occurs`` is ``re.search(r"(?<![\w-])" + re.escape(v) + r"(?![\w-])", text)`` done with
    ``str.find``; ``digits_occur`` finds the digits of a phone or SSN with any separators
    (``(?<!\d)5[\s().-]*5...(?!\d)``), run only where the digits occur in a run of the text.
    """

    def __init__(self, text: str) -> None:
        self.text = text
        self._folded: str | None = None
        self._runs: str | None = None

    def occurs(self, value: str, *, ignore_case: bool = False) -> bool:
        """``value`` occurs with no letter, digit, underscore or hyphen on either side."""
        hay = self.text
        if ignore_case:
            if self._folded is None:
                self._folded = self.text.lower()
            hay, value = self._folded, value.lower()
        if not value:
            return False
        i = hay.find(value)
        while i >= 0:
            j = i + len(value)
            if (i == 0 or not _EDGE.match(hay[i - 1])) and (j >= len(hay) or not _EDGE.match(hay[j])):
                return True
            i = hay.find(value, i + 1)
        return False

    def digits_occur(self, value: str) -> bool:
        """The digits of ``value`` (7 or more) occur with any separators between them."""
        digits = re.sub(r"\D", "", value)
        if len(digits) < 7:
            return False
        if self._runs is None:
            self._runs = "|".join(re.sub(r"\D", "", m.group(0)) for m in _DIGIT_RUN.finditer(self.text))
        if digits not in self._runs:
            return False
        return re.search(r"(?<!\d)" + r"[\s().-]*".join(digits) + r"(?!\d)", self.text) is not None


def search_leaks(
    tables: dict[str, pd.DataFrame],
    patients: list[dict[str, Any]],
    own_key: Any,
) -> dict[str, Any]:
    """Search exported ``tables`` for every identifying value of every source patient.

    Names, addresses, phones, identifiers, ... are searched in the whole export (as written
    and ignoring case; phones and SSNs also as digits with other separators); birth dates
    and ZIP codes in the patient's own rows (``own_key(patient)`` is their ``patient_id`` in
    the export). Returns counts per kind and the tables where values were found; never the
    values themselves.
    """
    csv_of = {t: df.to_csv(index=False) for t, df in tables.items()}
    whole = LeakSearch("\n".join(csv_of.values()))
    per_table = {t: LeakSearch(text) for t, text in csv_of.items()}
    own_parts: dict[str, list[str]] = defaultdict(list)
    for df in tables.values():
        if "patient_id" in df.columns:
            for pid, part in df.groupby(df["patient_id"].astype(str)):
                own_parts[str(pid)].append(part.to_csv(index=False))
    kinds: dict[str, dict[str, Any]] = {
        k: {
            "searched": 0,
            "found": 0,
            "found_ignoring_case": 0,
            "patients_with_a_leak": 0,
            "found_in": Counter(),
        }
        for k in LEAK_KINDS
    }
    for p in patients:
        values = identifying_values(p)
        own = LeakSearch("\n".join(own_parts.get(str(own_key(p)), [])))
        leaked: set[str] = set()
        for kind, forms in values:
            stats = kinds[kind]
            hay = own if kind in OWN_ROW_KINDS else whole

            def found(ls: LeakSearch, kind: str = kind, forms: tuple[str, ...] = forms) -> bool:
                return any(ls.occurs(v) or (kind in DIGIT_KINDS and ls.digits_occur(v)) for v in forms)

            stats["searched"] += 1
            hit = found(hay)
            if hit:
                stats["found"] += 1
                leaked.add(kind)
                if kind not in OWN_ROW_KINDS:
                    for t, ls in per_table.items():
                        if found(ls):
                            stats["found_in"][t] += 1
            if hit or any(hay.occurs(v, ignore_case=True) for v in forms):
                stats["found_ignoring_case"] += 1
        for kind in leaked:
            kinds[kind]["patients_with_a_leak"] += 1
    for stats in kinds.values():
        stats["found_in"] = dict(stats["found_in"].most_common())
    return {
        "per_kind": kinds,
        "values_searched": sum(k["searched"] for k in kinds.values()),
        "values_found": sum(k["found"] for k in kinds.values()),
        "export_bytes": len(whole.text.encode("utf-8")),
    }


def evaluate_structured(paths: list[Path], *, control: bool = False) -> dict[str, Any]:
    """Import FHIR files into a scratch workspace, run the de-identified export, search it for leaks.

    The export is the product's own (:func:`workbench.cohort.records.export_deidentified`,
    what ``workbench records export --deidentified`` runs); its CSV files are read back and
    searched with :func:`search_leaks`. With ``control`` the raw (not de-identified) tables are
    searched the same way, which shows the search finds every kind when it is there.
    """
    import secrets
    import tempfile

    from workbench.cohort.deid import k_anonymity, pseudonym, workspace_key
    from workbench.cohort.importer import import_paths
    from workbench.cohort.records import export_deidentified
    from workbench.cohort.store import table_counts
    from workbench.workspace import open_workspace

    os.environ.setdefault("WB_PASSPHRASE", secrets.token_hex(16))
    raw: dict[str, pd.DataFrame] = {}
    with tempfile.TemporaryDirectory(prefix="wb-deid-bench-") as tmp:
        ws = open_workspace(Path(tmp) / "ws")
        t0 = time.perf_counter()
        result = import_paths(ws, paths)
        t_import = time.perf_counter() - t0
        key = workspace_key(ws)
        if control:
            con = ws.connect()
            try:
                raw = {t: con.execute(f'SELECT * FROM "{t}"').df() for t, n in table_counts(con).items() if n}
            finally:
                con.close()
        t0 = time.perf_counter()
        written = export_deidentified(ws, Path(tmp) / "export")
        t_deid = time.perf_counter() - t0
        frames = {
            t: pd.read_csv(Path(tmp) / "export" / f"{t}.csv", dtype=str, keep_default_na=False)
            for t in written["tables"]
        }
        n_docs = 0
        con = ws.connect()
        try:
            n_docs = table_counts(con).get("documents", 0)
        finally:
            con.close()
        ws.close()
    patients = _source_patients(paths)
    t0 = time.perf_counter()
    leaks = search_leaks(frames, patients, lambda p: pseudonym(key, p["id"], "patient"))
    t_search = time.perf_counter() - t0
    k = k_anonymity(frames["patients"].replace("", None)) if "patients" in frames else None
    res: dict[str, Any] = {
        "paths": [str(p) for p in paths],
        "patients_in_sources": len(patients),
        "patients_imported": result.patients,
        "rows_exported": written["tables"],
        "notes_exported": n_docs,
        "import_seconds": round(t_import, 2),
        "export_seconds": round(t_deid, 2),
        "search_seconds": round(t_search, 2),
        "leaks": leaks,
        "k_anonymity": None
        if k is None
        else {
            "quasi": list(k.quasi),
            "k": k.k,
            "threshold": k.threshold,
            "classes": k.n_classes,
            "classes_below_threshold": len(k.small_classes),
            "records_in_small_classes": k.records_in_small_classes,
        },
    }
    if control:
        res["control_raw_tables"] = search_leaks(raw, patients, lambda p: p["id"])
    return res


def _structured_markdown(st: dict[str, Any]) -> list[str]:
    ka = st["k_anonymity"] or {}
    lk = st["leaks"]
    ctl = st.get("control_raw_tables")
    lines = [
        f"{st['patients_imported']} patients imported from {', '.join(Path(p).name for p in st['paths'])} "
        f"in {st['import_seconds']} s; `export_deidentified` wrote {sum(st['rows_exported'].values())} rows "
        f"({st['notes_exported']} notes) in {st['export_seconds']} s; the search took {st['search_seconds']} s.",
        "",
        f"Searched {lk['values_searched']} identifying values of {st['patients_in_sources']} source patients "
        f"in the {lk['export_bytes'] / 1e6:.1f} MB export: **{lk['values_found']} found**.",
        "",
        "| kind | searched in | values searched | found | found ignoring case | found in raw tables (control) |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for kind, r in lk["per_kind"].items():
        where = "patient's own rows" if kind in OWN_ROW_KINDS else "whole export"
        c = ctl["per_kind"][kind]["found"] if ctl else "-"
        lines.append(
            f"| {kind} | {where} | {r['searched']} | {r['found']} | {r['found_ignoring_case']} | {c} |"
        )
    lines += [
        "",
        f"k-anonymity over {', '.join(ka.get('quasi', []))}: k = {ka.get('k')}, {ka.get('classes')} classes, "
        f"{ka.get('classes_below_threshold')} below k = {ka.get('threshold')} "
        f"({ka.get('records_in_small_classes')} patients).",
    ]
    return lines


def to_markdown(res: dict[str, Any]) -> str:
    if "presidio" not in res:
        st = res["structured"]
        head = [
            "# De-identified export: leak check",
            "",
            f"`{res.get('command', 'python bench/deid.py --fhir ...')}` on {res.get('cpus')} CPUs, "
            f"load average {res.get('load_avg_start')} at the start, {res.get('load_avg_end')} at the end.",
            "",
        ]
        return "\n".join([*head, *_structured_markdown(st)]) + "\n"
    p = res["presidio"]
    lines = [
        "# Free-text de-identification",
        "",
        f"Data: `{Path(p['data']).name}`, {p['records']} records, {p['seconds']} s "
        f"({p['records_per_s']} records/s). spaCy pipeline: `{res['analyzer']['spacy_model']}`.",
        f"Command `{res.get('command')}`, {res.get('cpus')} CPUs, load average {res.get('load_avg_start')} "
        f"at the start, {res.get('load_avg_end')} at the end.",
        "",
        "A gold span is found when the redaction covers all its letters and digits.",
        "",
        "| gold type | ours | gold | recall | typed recall | target |",
        "|---|---|---:|---:|---:|---|",
    ]
    for gt, r in p["per_gold_type"].items():
        target = (
            f">= {r['target']:.2f} {'met' if r['recall'] >= r['target'] else 'NOT met'}"
            if r["target"]
            else ""
        )
        typed = f"{r['recall_typed']:.3f}" if r["recall_typed"] is not None else ""
        lines.append(f"| {gt} | {r['ours'] or '-'} | {r['gold']} | {r['recall']:.3f} | {typed} | {target} |")
    lines += [
        "",
        f"Overall precision: {p['precision_overall']}",
        "",
        "| predicted type | spans | precision |",
        "|---|---:|---:|",
    ]
    for t, r in p["per_predicted_type"].items():
        lines.append(f"| {t} | {r['predicted']} | {r['precision']:.3f} |")
    if res.get("aci"):
        a = res["aci"]
        lines += [
            "",
            "## ACI-BENCH patient names",
            "",
            f"{a['name_occurrences']} occurrences of patients' first/family names in {a['notes_with_names']} notes: "
            f"recall {a['recall_blind']} without known identifiers, {a['recall_with_known_identifiers']} with them. "
            f"The blind pass redacts {a['share_of_characters_redacted']:.1%} of the notes' characters; "
            f"spans by type: {', '.join(f'{k} {v}' for k, v in a['spans_per_type'].items())}.",
        ]
    if res.get("structured"):
        lines += ["", "## Structured Safe Harbor export", "", *_structured_markdown(res["structured"])]
    return "\n".join(lines) + "\n"


def evaluate_notes_speed(paths: list[Path], *, repeats: int = 1) -> dict[str, Any]:
    """Notes per second of the de-identified export of the ``documents`` table (import not timed)."""
    import secrets
    import tempfile

    from workbench.cohort.deid import deidentified_table, workspace_key
    from workbench.cohort.deid.text import analyzer_info as _info
    from workbench.cohort.importer import import_paths
    from workbench.workspace import open_workspace

    os.environ.setdefault("WB_PASSPHRASE", secrets.token_hex(16))
    _info()  # load spaCy and Presidio before the clock starts
    with tempfile.TemporaryDirectory(prefix="wb-deid-speed-") as tmp:
        ws = open_workspace(Path(tmp) / "ws")
        import_paths(ws, paths)
        key = workspace_key(ws)
        con = ws.connect()
        runs = []
        try:
            for _ in range(repeats):
                t0 = time.perf_counter()
                n = len(deidentified_table(con, "documents", key))
                runs.append(time.perf_counter() - t0)
        finally:
            con.close()
        ws.close()
    best = min(runs)
    return {
        "paths": [str(p) for p in paths],
        "notes": n,
        "seconds": [round(r, 2) for r in runs],
        "notes_per_s": round(n / best, 2) if best else None,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=None, help="presidio-research style JSON with gold spans")
    ap.add_argument("--aci", type=Path, default=None, help="ACI-BENCH folder (default: next to the data)")
    ap.add_argument("--no-aci", action="store_true", help="skip the ACI-BENCH name check")
    ap.add_argument(
        "--fhir",
        type=Path,
        nargs="*",
        default=None,
        help="FHIR bundle/NDJSON folders: import, export de-identified, search for every source identifier",
    )
    ap.add_argument(
        "--control",
        action="store_true",
        help="with --fhir: also search the raw tables (the search must find them)",
    )
    ap.add_argument(
        "--notes-speed",
        type=int,
        default=0,
        metavar="N",
        help="with --fhir: time the notes export N times instead",
    )
    ap.add_argument("--json", type=Path, default=None, help="also write the results JSON here")
    ap.add_argument("--out", type=Path, default=None, help="results folder (default bench/results)")
    ap.add_argument("--limit", type=int, default=None, help="only the first N records")
    ap.add_argument("--show-misses", type=int, default=0, help="print up to N missed spans per type")
    args = ap.parse_args(argv)
    if args.data is None and not args.fhir:
        ap.error("give --data (free-text benchmark) and/or --fhir (structured leak check)")

    res: dict[str, Any] = {
        "benchmark": "deid",
        "command": "python bench/deid.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "load_avg_start": [round(x, 2) for x in os.getloadavg()],
        "analyzer": analyzer_info(),
    }
    if args.notes_speed and args.fhir:
        res["notes_speed"] = evaluate_notes_speed(list(args.fhir), repeats=args.notes_speed)
        res["load_avg_end"] = [round(x, 2) for x in os.getloadavg()]
        payload = json.dumps(res, indent=2)
        if args.json:
            args.json.write_text(payload + "\n", encoding="utf-8")
        print(payload)
        return 0
    if args.data is not None:
        res["presidio"] = evaluate_presidio(args.data, limit=args.limit, show_misses=args.show_misses)
        aci = args.aci or args.data.resolve().parent.parent / "clinical_notes" / "aci_bench"
        if not args.no_aci and aci.is_dir():
            res["aci"] = evaluate_aci(aci)
    if args.fhir:
        res["structured"] = evaluate_structured(list(args.fhir), control=args.control)
    res["load_avg_end"] = [round(x, 2) for x in os.getloadavg()]
    out_dir = args.out or REPO / "bench" / "results"
    out_dir.mkdir(parents=True, exist_ok=True)
    # The free-text benchmark and the structured leak check are written to separate files,
    # so re-running one leaves the other's results in place.
    name = "deid" if "presidio" in res else "deid_structured"
    payload = json.dumps(res, indent=2)
    (out_dir / f"{name}.json").write_text(payload + "\n", encoding="utf-8")
    md = to_markdown(res)
    (out_dir / f"{name}.md").write_text(md, encoding="utf-8")
    if args.json:
        args.json.write_text(payload + "\n", encoding="utf-8")
    print(md)
    ok = all(res["presidio"]["targets_met"].values()) if "presidio" in res else True
    if "structured" in res:
        ok = ok and res["structured"]["leaks"]["values_found"] == 0
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
