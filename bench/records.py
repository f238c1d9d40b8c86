"""Benchmark: FHIR bundle import into queryable DuckDB tables, side by side with fhiry.

    python bench/records.py --fhir ../shared/data/synthea_r4/bundles [--json OUT] [--scale 10] [--repeat 3]

Each engine runs in its own subprocess; peak RSS is sampled over that process and its children
(our import workers) while the work runs, after imports and workspace unlock for both tools:

- ``ours``: ``workbench.cohort.importer.import_paths`` into a fresh (encrypted) workspace,
  default transaction size (whole patients, up to ``--txn-rows`` rows per commit);
- ``ours_serial``: the same without worker processes (``workers=1``);
- ``ours_parallel``: the same with two parsing processes (``workers=2``: one worker process, and
  the writing process parses while it waits), whatever the machine's load;
- ``ours_txn1``: the same with one transaction per patient (``txn_rows=1``);
- ``fhiry``: fhiry's bundle-to-DataFrame path (``Fhiry.process_bundle_dict``), one bundle at a time.

Resource counts are cross-checked: ours (stored + types without a spec) against fhiry's rows per
resourceType, against a direct count of entries in the files, and against ``manifest.csv``'s
``n_entries`` when the folder has one. ``--scale N`` also imports an N-times larger copy
(every bundle copied N times with fresh ids) to show peak memory stays flat as input grows.
Each engine runs ``--repeat`` times (default 3), interleaved round-robin so that load from other
work on the machine falls on every engine alike; the run with the median time is reported, with
its CPU seconds (process and children), so a busy machine shows as wall time well above CPU time.
Writes ``bench/results/records.json`` and ``records.md`` and prints a table.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import json
import os
import platform
import re
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
_UUID = re.compile(rb"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def _bundles(folder: Path, limit: int | None) -> list[Path]:
    files = sorted(p for p in folder.iterdir() if p.name.endswith((".json", ".json.gz")))
    return files[:limit] if limit else files


def _load(path: Path) -> Any:
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    return json.loads(raw)


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _cpu_s() -> float:
    """CPU seconds of this process (all threads) and of its finished children (import workers)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


class TreeRSS:
    """Samples the RSS of this process plus its children (import workers) while work runs."""

    def __init__(self, every_s: float = 0.02) -> None:
        import threading

        import psutil

        self._proc = psutil.Process()
        self._every = every_s
        self.peak = 0
        self._n = 0
        self._children: list[Any] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self) -> None:
        total = 0
        self._n += 1
        if self._n % 25 == 1:
            # listing children walks all of /proc: every 0.5 s is enough (workers live for the
            # whole import), and sampling stays cheap for the process being measured
            try:
                self._children = self._proc.children(recursive=True)
            except Exception:  # noqa: BLE001 - a child may exit while we look
                self._children = []
        for p in [self._proc, *self._children]:
            try:
                total += p.memory_info().rss
            except Exception:  # noqa: BLE001
                pass
        self.peak = max(self.peak, total)

    def _run(self) -> None:
        while not self._stop.wait(self._every):
            self._sample()

    def __enter__(self) -> TreeRSS:
        self._sample()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()

    @property
    def peak_mb(self) -> float:
        return self.peak / (1024.0 * 1024.0)


# --------------------------------------------------------------------------- workers (subprocesses)


def worker_ours(folder: Path, txn_rows: int, workers: int | None) -> dict[str, Any]:
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("WB_PASSPHRASE", "benchmark-only passphrase")
    import pandas  # noqa: F401 - DuckDB loads it on first Arrow scan; fhiry's import pays it before timing too

    from workbench.cohort.importer import _workers, import_paths
    from workbench.cohort.store import table_counts
    from workbench.workspace import open_workspace

    with tempfile.TemporaryDirectory(prefix="wb-bench-") as tmp:
        ws = open_workspace(Path(tmp) / "ws")
        base = _peak_mb()
        # what auto mode picks now (it looks at the load average), for the record
        chose = _workers(workers, len(_bundles(folder, None)))
        with TreeRSS() as rss:
            c0 = _cpu_s()
            t0 = time.perf_counter()
            result = import_paths(ws, [folder], txn_rows=txn_rows, workers=workers)
            seconds = time.perf_counter() - t0
            cpu = _cpu_s() - c0
        con = ws.connect()
        try:
            tables = table_counts(con)
            stored = dict(
                con.execute(
                    "SELECT resource_type, count(*) FROM resource_keys WHERE NOT "
                    "(\"table\" = 'measurements' AND resource_type = 'Observation') GROUP BY 1"
                ).fetchall()
            )
        finally:
            con.close()
        ws.close()
    by_type = Counter(result.resources)
    by_type.update(result.unknown_types)
    return {
        "seconds": seconds,
        "cpu_s": cpu,
        "peak_rss_mb": rss.peak_mb,
        "process_max_rss_mb": _peak_mb(),
        "baseline_rss_mb": base,
        "workers": workers,
        "workers_used": chose,
        "resources": sum(by_type.values()),
        "by_type": dict(by_type),
        "stored_by_type": stored,
        "patients": result.patients,
        "tables": tables,
        "errors": len(result.errors),
        "files": len(result.files),
    }


def worker_fhiry(folder: Path, limit: int | None) -> dict[str, Any]:
    import logging

    from fhiry import Fhiry

    logging.disable(logging.WARNING)
    files = _bundles(folder, limit)
    base = _peak_mb()
    by_type: Counter[str] = Counter()
    rows = 0
    with TreeRSS() as rss:
        c0 = _cpu_s()
        t0 = time.perf_counter()
        for path in files:
            f = Fhiry()
            df = f.process_bundle_dict(_load(path))
            rows += len(df)
            if "resourceType" in df.columns:
                by_type.update(df["resourceType"].value_counts().to_dict())
            del df, f
        seconds = time.perf_counter() - t0
        cpu = _cpu_s() - c0
    return {
        "seconds": seconds,
        "cpu_s": cpu,
        "peak_rss_mb": rss.peak_mb,
        "process_max_rss_mb": _peak_mb(),
        "baseline_rss_mb": base,
        "resources": rows,
        "by_type": dict(by_type),
        "patients": by_type.get("Patient", 0),
        "files": len(files),
    }


# --------------------------------------------------------------------------- driver


def _run_worker(args: list[str]) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, __file__, "--worker", *args], capture_output=True, text=True, check=False
    )
    if out.returncode != 0:
        raise RuntimeError(f"worker {args[0]} failed:\n{out.stderr[-3000:]}")
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def direct_count(files: list[Path]) -> Counter[str]:
    """Resources per type counted straight from the files (no importer involved)."""
    c: Counter[str] = Counter()
    for p in files:
        doc = _load(p)
        c.update(e["resource"]["resourceType"] for e in doc.get("entry", []))
    return c


def manifest_total(folder: Path, files: list[Path]) -> int | None:
    man = folder / "manifest.csv"
    if not man.exists():
        man = folder.parent / "manifest.csv"
    if not man.exists():
        return None
    names = {p.name for p in files}
    with open(man, newline="") as fh:
        return sum(int(r["n_entries"]) for r in csv.DictReader(fh) if r["file"] in names)


def make_scaled_copy(files: list[Path], n: int, dest: Path) -> int:
    """Write ``n`` copies of every bundle with every UUID replaced (consistently within a copy)."""
    count = 0
    for k in range(n):
        ns = uuid.uuid5(uuid.NAMESPACE_OID, f"workbench-bench-copy-{k}")

        def fresh(m: re.Match[bytes], ns: uuid.UUID = ns) -> bytes:
            return str(uuid.uuid5(ns, m.group(0).decode())).encode()

        for p in files:
            raw = p.read_bytes()
            if raw[:2] == b"\x1f\x8b":
                raw = gzip.decompress(raw)
            new = _UUID.sub(fresh, raw)
            target = dest / f"copy{k:02d}_{p.name.removesuffix('.gz')}.gz"
            with gzip.open(target, "wb", compresslevel=1) as fh:
                fh.write(new)
            count += 1
    return count


def _fmt_row(name: str, r: dict[str, Any]) -> str:
    return (
        f"| {name} | {r.get('workers_used', '')} | {r['resources']:,} | {r['seconds']:.2f} | "
        f"{r.get('cpu_s', float('nan')):.2f} | "
        f"{r['resources'] / r['seconds']:,.0f} | "
        f"{r['patients'] / r['seconds']:,.1f} | {r['peak_rss_mb']:.0f} | {r['baseline_rss_mb']:.0f} |"
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--fhir", type=Path, help="Folder of FHIR bundles (.json / .json.gz).")
    ap.add_argument(
        "--json", type=Path, default=RESULTS / "records.json", help="Where to write JSON results."
    )
    ap.add_argument("--md", type=Path, default=None, help="Markdown results (default: next to --json).")
    ap.add_argument(
        "--scale", type=int, default=0, help="Also import an N-times larger re-id'd copy (ours only)."
    )
    ap.add_argument("--limit", type=int, default=None, help="Use only the first N bundles.")
    ap.add_argument("--txn-rows", type=int, default=20_000, help="Rows of whole patients per transaction.")
    ap.add_argument("--workers", type=int, default=None, help="Import worker processes (default: auto).")
    ap.add_argument(
        "--engines",
        default="ours,ours_serial,ours_parallel,ours_txn1,fhiry",
        help="Comma-separated: ours (default settings), ours_serial (no workers), "
        "ours_parallel (two parsing processes), ours_txn1 (one transaction per patient), fhiry.",
    )
    ap.add_argument(
        "--repeat",
        type=int,
        default=3,
        help="Runs per engine, interleaved round-robin so machine load hits every engine alike; "
        "the run with the median time is reported (all times are kept in the JSON).",
    )
    ap.add_argument("--worker", nargs="+", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    if args.worker:
        kind, folder = args.worker[0], Path(args.worker[1])
        extra = args.worker[2] if len(args.worker) > 2 else ""
        if kind == "ours":
            txn, _, w = extra.partition(":")
            res = worker_ours(folder, int(txn or 20_000), int(w) if w else None)
        else:
            res = worker_fhiry(folder, int(extra) if extra else None)
        print(json.dumps(res))
        return 0

    if args.fhir is None:
        ap.error("--fhir DIR is required")
    files = _bundles(args.fhir, args.limit)
    with tempfile.TemporaryDirectory(prefix="wb-bench-in-") as tmp:
        src = args.fhir
        if args.limit:
            src = Path(tmp) / "subset"
            src.mkdir()
            for p in files:
                (src / p.name).symlink_to(p.resolve())
        engines = [e.strip() for e in args.engines.split(",") if e.strip()]
        worker_args = {
            "ours": ["ours", str(src), f"{args.txn_rows}:{args.workers or ''}"],
            "ours_serial": ["ours", str(src), f"{args.txn_rows}:1"],
            "ours_parallel": ["ours", str(src), f"{args.txn_rows}:2"],
            "ours_txn1": ["ours", str(src), f"1:{args.workers or ''}"],
            "fhiry": ["fhiry", str(src)],
        }
        for eng in engines:
            if eng not in worker_args:
                ap.error(f"unknown engine {eng}")
        load_at_start = os.getloadavg()
        all_runs: dict[str, list[dict[str, Any]]] = {e: [] for e in engines}
        for k in range(max(1, args.repeat)):
            for eng in engines:
                print(f"running {eng} on {len(files)} bundles (run {k + 1}) ...", file=sys.stderr)
                all_runs[eng].append(_run_worker(worker_args[eng]))
        runs: dict[str, dict[str, Any]] = {}
        for eng, rs in all_runs.items():
            median = sorted(rs, key=lambda r: r["seconds"])[len(rs) // 2]
            runs[eng] = {
                **median,
                "seconds_all": [r["seconds"] for r in rs],
                "cpu_s_all": [r["cpu_s"] for r in rs],
                "peak_rss_mb_all": [r["peak_rss_mb"] for r in rs],
                "by_type_same_in_all_runs": all(r["by_type"] == rs[0]["by_type"] for r in rs),
            }
        direct = direct_count(files)
        scaled: dict[str, Any] | None = None
        if args.scale and args.scale > 1:
            big = Path(tmp) / f"scale{args.scale}"
            big.mkdir()
            print(f"writing a {args.scale}x re-id'd copy ...", file=sys.stderr)
            n_files = make_scaled_copy(files, args.scale, big)
            print(f"running ours on {n_files} bundles ...", file=sys.stderr)
            scaled = _run_worker(["ours", str(big), f"{args.txn_rows}:{args.workers or ''}"])
            scaled["scale"] = args.scale
            scaled["expected_resources"] = sum(direct.values()) * args.scale

    total = sum(direct.values())
    man = manifest_total(args.fhir, files)
    checks: dict[str, Any] = {"direct_count": total, "manifest_n_entries": man}
    for name, r in runs.items():
        checks[f"{name}_matches_direct"] = r["by_type"] == dict(direct) and r["by_type_same_in_all_runs"]
    if scaled is not None:
        checks["scaled_matches_direct_x_scale"] = scaled["resources"] == scaled["expected_resources"]
    speedups: dict[str, float] = {}
    cpu_speedups: dict[str, float] = {}
    if "fhiry" in runs:
        f_rate = runs["fhiry"]["resources"] / runs["fhiry"]["seconds"]
        for name, r in runs.items():
            if name != "fhiry":
                speedups[name] = (r["resources"] / r["seconds"]) / f_rate
        # per CPU second (median over runs): less swayed by other work on a shared machine
        f_cpu = sorted(runs["fhiry"]["cpu_s_all"])[len(runs["fhiry"]["cpu_s_all"]) // 2]
        for name, r in runs.items():
            if name != "fhiry":
                cpu = sorted(r["cpu_s_all"])[len(r["cpu_s_all"]) // 2]
                cpu_speedups[name] = f_cpu / cpu
    out = {
        "benchmark": "records-import",
        "input": str(args.fhir),
        "bundles": len(files),
        "txn_rows": args.txn_rows,
        "repeat": args.repeat,
        "machine": {
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "loadavg_at_start": load_at_start,
            "loadavg_at_end": os.getloadavg(),
            "platform": platform.platform(),
        },
        "runs": runs,
        "scaled": scaled,
        "checks": checks,
        "speedup_vs_fhiry": speedups,
        "cpu_speedup_vs_fhiry": cpu_speedups,
        "timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(out, indent=2, default=str) + "\n")

    lines = [
        f"# Records import benchmark ({len(files)} bundles, {total:,} resources)",
        "",
        "| engine | parsing processes | resources | seconds | CPU s | resources/s | patients/s | peak RSS MB (all processes) | max RSS before work MB (incl. workspace unlock) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, r in runs.items():
        lines.append(_fmt_row(name, r))
    if scaled is not None:
        lines.append(_fmt_row(f"ours x{scaled['scale']}", scaled))
    lines += ["", "Speed-up vs fhiry: " + ", ".join(f"{k} {v:.1f}x" for k, v in speedups.items())]
    if cpu_speedups:
        lines += [
            "",
            "CPU seconds, fhiry's over ours (median of each engine's runs; counts worker processes): "
            + ", ".join(f"{k} {v:.1f}x" for k, v in cpu_speedups.items()),
        ]
    if scaled is not None and "ours" in runs:
        ratio = scaled["peak_rss_mb"] / runs["ours"]["peak_rss_mb"]
        lines += [
            "",
            f"Peak RSS, {scaled['scale']}x the input vs 1x (ours): {scaled['peak_rss_mb']:.0f} / "
            f"{runs['ours']['peak_rss_mb']:.0f} MB = {ratio:.2f}",
        ]
    times = "; ".join(f"{k} " + ", ".join(f"{s:.2f}" for s in r["seconds_all"]) for k, r in runs.items())
    cpus = "; ".join(f"{k} " + ", ".join(f"{s:.2f}" for s in r["cpu_s_all"]) for k, r in runs.items())
    lines += ["", f"Runs per engine: {args.repeat}, interleaved; median reported. All times (s): {times}"]
    lines += ["", f"All CPU seconds: {cpus}"]
    lines += ["", "Checks: " + ", ".join(f"{k}={v}" for k, v in checks.items())]
    lines += [
        "",
        f"Machine: {os.cpu_count()} CPUs, load average at start {load_at_start[0]:.1f}, "
        f"at end {os.getloadavg()[0]:.1f}; "
        f"command: `python bench/records.py --fhir {args.fhir}"
        + (f" --scale {args.scale}`" if args.scale else "`"),
    ]
    md = args.md or args.json.with_suffix(".md")
    md.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
