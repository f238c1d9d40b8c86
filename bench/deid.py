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
import platform
import re
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

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


def evaluate_structured(paths: list[Path]) -> dict[str, Any]:
    """Import FHIR files into a scratch workspace, export every table de-identified, search for leaks.

    Searched in the whole export: every name part (with and without Synthea's digits), street
    line, city, telecom value (also with other separators) and identifier value of every source
    patient; in each patient's own rows: the exact birth date (ISO and US forms).
    """
    import os
    import secrets
    import tempfile

    from workbench.cohort.deid import deidentified_table, k_anonymity, pseudonym, workspace_key
    from workbench.cohort.importer import import_paths
    from workbench.cohort.store import RECORD_TABLES, table_counts
    from workbench.workspace import open_workspace

    os.environ.setdefault("WB_PASSPHRASE", secrets.token_hex(16))
    with tempfile.TemporaryDirectory(prefix="wb-deid-bench-") as tmp:
        ws = open_workspace(Path(tmp) / "ws")
        t0 = time.perf_counter()
        result = import_paths(ws, paths)
        t_import = time.perf_counter() - t0
        key = workspace_key(ws)
        con = ws.connect()
        t0 = time.perf_counter()
        try:
            counts = table_counts(con)
            frames = {t: deidentified_table(con, t, key) for t in RECORD_TABLES if counts.get(t)}
        finally:
            con.close()
        t_deid = time.perf_counter() - t0
        ws.close()
    blobs = {t: df.to_csv(index=False) for t, df in frames.items()}
    whole = "\n".join(blobs.values())
    patients = _source_patients(paths)
    searched = leaks = birth_leaks = 0
    leak_kinds: Counter[str] = Counter()
    by_patient: dict[str, list[str]] = defaultdict(list)
    for df in frames.values():
        if "patient_id" in df.columns:
            for pid, part in df.groupby("patient_id"):
                by_patient[str(pid)].append(part.to_csv(index=False))
    for p in patients:
        values: list[tuple[str, str]] = []
        for n in p.get("name", []):
            for part in [n.get("family", ""), *n.get("given", [])]:
                for v in {part, re.sub(r"\d+$", "", part)}:
                    if len(v) >= 3:
                        values.append(("name", v))
        for a in p.get("address", []):
            values += [("street", line) for line in a.get("line", [])]
            if a.get("city"):
                values.append(("city", a["city"]))
        values += [("telecom", t["value"]) for t in p.get("telecom", []) if t.get("value")]
        values += [("identifier", i["value"]) for i in p.get("identifier", []) if i.get("value")]
        for kind, v in values:
            searched += 1
            if re.search(rf"(?<![\w-]){re.escape(v)}(?![\w-])", whole):
                leaks += 1
                leak_kinds[kind] += 1
            digits = re.sub(r"\D", "", v)
            if kind == "telecom" and len(digits) >= 7:
                if re.search(r"(?<!\d)" + r"[\s().-]*".join(digits) + r"(?!\d)", whole):
                    leaks += 1
                    leak_kinds["telecom (reformatted)"] += 1
        birth = p.get("birthDate")
        if birth:
            own = "\n".join(by_patient.get(pseudonym(key, p["id"], "patient"), []))
            y, m, d = birth.split("-")[:3]
            searched += 1
            if any(form in own for form in (birth, f"{int(m)}/{int(d)}/{y}", f"{m}/{d}/{y}")):
                birth_leaks += 1
    k = k_anonymity(frames["patients"]) if "patients" in frames else None
    return {
        "paths": [str(p) for p in paths],
        "patients_in_sources": len(patients),
        "patients_imported": result.patients,
        "rows_exported": {t: len(df) for t, df in frames.items()},
        "import_seconds": round(t_import, 2),
        "deidentify_seconds": round(t_deid, 2),
        "values_searched": searched,
        "identifier_leaks": leaks,
        "leaks_by_kind": dict(leak_kinds),
        "birth_date_leaks": birth_leaks,
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


def to_markdown(res: dict[str, Any]) -> str:
    p = res["presidio"]
    lines = [
        "# Free-text de-identification",
        "",
        f"Data: `{Path(p['data']).name}`, {p['records']} records, {p['seconds']} s "
        f"({p['records_per_s']} records/s). spaCy pipeline: `{res['analyzer']['spacy_model']}`.",
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
        st = res["structured"]
        ka = st["k_anonymity"] or {}
        lines += [
            "",
            "## Structured Safe Harbor export",
            "",
            f"{st['patients_imported']} patients imported from {', '.join(Path(p).name for p in st['paths'])} "
            f"in {st['import_seconds']} s; every records table de-identified in {st['deidentify_seconds']} s "
            f"({sum(st['rows_exported'].values())} rows).",
            f"Searched {st['values_searched']} identifying values of {st['patients_in_sources']} source patients: "
            f"**{st['identifier_leaks']} identifier leaks, {st['birth_date_leaks']} exact birth dates** left with their patient.",
            f"k-anonymity over {', '.join(ka.get('quasi', []))}: k = {ka.get('k')}, {ka.get('classes')} classes, "
            f"{ka.get('classes_below_threshold')} below k = {ka.get('threshold')} "
            f"({ka.get('records_in_small_classes')} patients).",
        ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, required=True, help="presidio-research style JSON with gold spans")
    ap.add_argument("--aci", type=Path, default=None, help="ACI-BENCH folder (default: next to the data)")
    ap.add_argument("--no-aci", action="store_true", help="skip the ACI-BENCH name check")
    ap.add_argument(
        "--fhir",
        type=Path,
        nargs="*",
        default=None,
        help="FHIR bundle/NDJSON folders: import, export de-identified, search for every source identifier",
    )
    ap.add_argument("--json", type=Path, default=None, help="also write the results JSON here")
    ap.add_argument("--limit", type=int, default=None, help="only the first N records")
    ap.add_argument("--show-misses", type=int, default=0, help="print up to N missed spans per type")
    args = ap.parse_args(argv)

    res: dict[str, Any] = {
        "benchmark": "deid",
        "python": platform.python_version(),
        "analyzer": analyzer_info(),
        "presidio": evaluate_presidio(args.data, limit=args.limit, show_misses=args.show_misses),
    }
    aci = args.aci or args.data.resolve().parent.parent / "clinical_notes" / "aci_bench"
    if not args.no_aci and aci.is_dir():
        res["aci"] = evaluate_aci(aci)
    if args.fhir:
        res["structured"] = evaluate_structured(list(args.fhir))
    out_dir = REPO / "bench" / "results"
    out_dir.mkdir(parents=True, exist_ok=True)
    payload = json.dumps(res, indent=2)
    (out_dir / "deid.json").write_text(payload + "\n", encoding="utf-8")
    md = to_markdown(res)
    (out_dir / "deid.md").write_text(md, encoding="utf-8")
    if args.json:
        args.json.write_text(payload + "\n", encoding="utf-8")
    print(md)
    ok = all(res["presidio"]["targets_met"].values())
    if "structured" in res:
        ok = ok and res["structured"]["identifier_leaks"] == 0 and res["structured"]["birth_date_leaks"] == 0
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
