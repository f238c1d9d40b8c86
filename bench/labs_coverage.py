"""How many imported observation rows get a normalised unit and a reference range.

    python bench/labs_coverage.py --fhir ../shared/data/synthea_r4/bundles --limit 20

Imports the first ``--limit`` bundles (sorted by name) into a throw-away workspace with the
real importer, runs :func:`workbench.cohort.labs.lab_results` and reports the shares, the
codes most often left without a range and every unit that could not be normalised. Writes
``bench/results/labs_coverage.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--fhir", type=Path, required=True, help="Folder of FHIR bundles (*.json, *.json.gz).")
    ap.add_argument("--limit", type=int, default=20, help="Use the first N bundles by name (default 20).")
    ap.add_argument("--out", type=Path, default=RESULTS / "labs_coverage.json")
    args = ap.parse_args(argv)

    files = sorted(p for p in args.fhir.iterdir() if p.name.endswith((".json", ".json.gz")))[: args.limit]
    if not files:
        print(f"no bundles in {args.fhir}", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["WB_HOME"] = str(Path(tmp) / "home")
        os.environ["WB_PASSPHRASE"] = secrets.token_urlsafe(16)
        from workbench.cohort.importer import import_paths
        from workbench.cohort.labs import lab_results
        from workbench.workspace import open_workspace

        ws = open_workspace(Path(tmp) / "ws")
        t0 = time.perf_counter()
        import_paths(ws, files)
        con = ws.connect()
        total = con.execute("SELECT count(*) FROM observations").fetchone()[0]  # type: ignore[index]
        t1 = time.perf_counter()
        df = lab_results(con)
        t2 = time.perf_counter()
        ws.close()

    numeric = len(df)
    normalised = int(df["unit_norm"].notna().sum())
    ranged = int(df["flag"].notna().sum())
    flags = Counter(df["flag"].dropna())
    no_range = Counter(df.loc[df["flag"].isna() & df["unit_norm"].notna(), "code"]).most_common(12)
    unit_errors = Counter(
        (c, str(u))
        for c, u in zip(df.loc[df["unit_error"].notna(), "code"], df.loc[df["unit_error"].notna(), "unit"])
    )
    report = {
        "bundles": len(files),
        "observation_rows": int(total),
        "numeric_rows": numeric,
        "non_numeric_rows": int(total) - numeric,
        "normalised_unit": normalised,
        "with_reference_range": ranged,
        "share_normalised_of_all_rows": round(normalised / total, 4) if total else None,
        "share_ranged_of_all_rows": round(ranged / total, 4) if total else None,
        "share_normalised_of_numeric": round(normalised / numeric, 4) if numeric else None,
        "share_ranged_of_numeric": round(ranged / numeric, 4) if numeric else None,
        "flags": dict(flags),
        "top_codes_without_range": [{"code": c, "rows": n} for c, n in no_range],
        "unit_errors": [{"code": c, "unit": u, "rows": n} for (c, u), n in unit_errors.most_common()],
        "import_s": round(t1 - t0, 2),
        "lab_results_s": round(t2 - t1, 2),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    md = [
        f"# Lab coverage on {len(files)} bundles",
        "",
        "| measure | rows | share of all observation rows | share of numeric rows |",
        "|---|---|---|---|",
        f"| observation rows | {total} | 1.0 | |",
        f"| numeric (value_num) | {numeric} | {numeric / total:.3f} | 1.0 |",
        f"| normalised unit | {normalised} | {normalised / total:.3f} | {normalised / numeric:.3f} |",
        f"| reference range + flag | {ranged} | {ranged / total:.3f} | {ranged / numeric:.3f} |",
    ]
    args.out.with_suffix(".md").write_text("\n".join(md) + "\n", encoding="utf-8")
    print("\n".join(md))
    print(json.dumps({k: report[k] for k in ("flags", "top_codes_without_range", "unit_errors")}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
