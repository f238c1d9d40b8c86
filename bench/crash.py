"""Crash safety of the private workspace: SIGKILL a worker at random points, then check the workspace.

A worker process loops over real operations on one workspace: records imports (the real
importer on generated FHIR bundles), erasures, passphrase rotations (alternating two passphrases,
sometimes with a new master key) and memory writes. It journals each operation to a file outside
the workspace (fsync) *before* starting it and again *after* it completed. The driver kills it
with SIGKILL after a random delay, then reopens the workspace and checks:

- it opens with one of the two passphrases (a rotation is atomic), and every table can be read;
- the audit trail verifies;
- every completed import still has exactly the rows it had when it completed (zero lost rows),
  its encrypted file copy decrypts to the original bytes, unless an erasure of it was started;
- every completed erasure left no trace (``verify_erasure``); an interrupted one is all-or-nothing;
- every completed memory write is still there unless one of its sources was erased.

The same workspace carries on across kills, so recovery runs again and again.

    python bench/crash.py --n 100            # 100 kill points, JSON in bench/results/crash.json
    WB_KDF_PROFILE=default python bench/crash.py --n 40 --json /tmp/crash-kdf.json
                                             # real Argon2id cost: rotations are slow enough to be hit
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

PASSPHRASES = ("crash-pass-A", "crash-pass-B")
FAMILIES = ("Oakhurst", "Bramblewood", "Quillfeather", "Thistledown", "Marrowgate", "Fennimore")
GIVEN = ("Aurelio", "Berenike", "Casimir", "Delphine", "Evander", "Fiorella")


def make_bundle(path: Path, rng: random.Random, n_obs: int = 40) -> None:
    """Write a small synthetic FHIR R4 transaction bundle (one patient) gzipped at ``path``."""
    pid = str(uuid.UUID(int=rng.getrandbits(128)))
    enc = str(uuid.UUID(int=rng.getrandbits(128)))
    patient = {
        "resourceType": "Patient",
        "id": pid,
        "name": [{"family": rng.choice(FAMILIES), "given": [rng.choice(GIVEN)]}],
        "gender": rng.choice(["male", "female"]),
        "birthDate": f"19{rng.randint(30, 99)}-0{rng.randint(1, 9)}-1{rng.randint(0, 9)}",
        "address": [{"line": [f"{rng.randint(1, 999)} Crashtest Lane"], "city": "Boston", "state": "MA"}],
        "telecom": [{"system": "phone", "value": f"555-{rng.randint(100, 999)}-{rng.randint(1000, 9999)}"}],
    }
    entries: list[dict[str, Any]] = [
        patient,
        {
            "resourceType": "Encounter",
            "id": enc,
            "status": "finished",
            "class": {"code": "AMB"},
            "subject": {"reference": f"urn:uuid:{pid}"},
            "period": {"start": "2020-01-01T10:00:00Z", "end": "2020-01-01T11:00:00Z"},
        },
    ]
    for _ in range(n_obs):
        entries.append(
            {
                "resourceType": "Observation",
                "id": str(uuid.UUID(int=rng.getrandbits(128))),
                "status": "final",
                "code": {"coding": [{"system": "http://loinc.org", "code": "2339-0", "display": "Glucose"}]},
                "subject": {"reference": f"urn:uuid:{pid}"},
                "encounter": {"reference": f"urn:uuid:{enc}"},
                "effectiveDateTime": f"2020-0{rng.randint(1, 9)}-1{rng.randint(0, 9)}T08:00:00Z",
                "valueQuantity": {"value": round(rng.uniform(70, 140), 1), "unit": "mg/dL", "code": "mg/dL"},
            }
        )
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "fullUrl": f"urn:uuid:{r['id']}",
                "resource": r,
                "request": {"method": "POST", "url": r["resourceType"]},
            }
            for r in entries
        ],
    }
    path.write_bytes(gzip.compress(json.dumps(bundle).encode(), mtime=0))


# -- journal ---------------------------------------------------------------------------------
def journal_append(journal: Path, record: dict[str, Any]) -> None:
    fd = os.open(journal, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, (json.dumps(record) + "\n").encode())
        os.fsync(fd)
    finally:
        os.close(fd)


def journal_read(journal: Path) -> list[dict[str, Any]]:
    if not journal.exists():
        return []
    out = []
    for line in journal.read_text().splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            break  # a torn last line from the kill
    return out


def _state(records: list[dict[str, Any]]) -> dict[str, Any]:
    imported: dict[str, dict[str, Any]] = {}
    erase_started: set[str] = set()
    erased: set[str] = set()
    memory: dict[str, list[str]] = {}
    files_used: set[str] = set()
    for r in records:
        op = r["op"]
        if op == "import-start":
            files_used.add(r["file"])
        elif op == "import-done":
            imported[r["source_id"]] = r
        elif op == "erase-start":
            erase_started.add(r["source_id"])
        elif op == "erase-done":
            erased.add(r["source_id"])
        elif op == "memory-done":
            memory[r["entry_id"]] = r["source_ids"]
    return {
        "imported": imported,
        "erase_started": erase_started,
        "erased": erased,
        "memory": memory,
        "files_used": files_used,
    }


def _open(root: Path) -> tuple[Any, str]:
    from workbench.errors import WrongPassphrase
    from workbench.workspace import keyring, open_workspace

    keyring.forget_cached_keys()
    last: Exception | None = None
    for p in PASSPHRASES:
        try:
            return open_workspace(root, passphrase=p), p
        except WrongPassphrase as exc:
            last = exc
    raise RuntimeError(f"no passphrase opens the workspace: {last}")


def _rows_for(ws: Any, source_id: str) -> dict[str, int]:
    from workbench.workspace.consent import source_tables

    con = ws.connect()
    out = {}
    for table, column in source_tables(con):
        if column != "source_id":
            continue
        row = con.execute(f'SELECT count(*) FROM "{table}" WHERE source_id = ?', [source_id]).fetchone()
        if row and row[0]:
            out[table] = int(row[0])
    return out


# -- worker ----------------------------------------------------------------------------------
#: Operation weights; the driver cycles the focus so kills land in each kind of operation.
WEIGHTS = {
    "mixed": (0.5, 0.2, 0.15, 0.15),
    "import": (0.8, 0.1, 0.05, 0.05),
    "erase": (0.3, 0.6, 0.05, 0.05),
    "rotate": (0.3, 0.05, 0.6, 0.05),
}
FOCUS_CYCLE = ("import", "erase", "rotate", "mixed")


def worker(root: Path, journal: Path, data: Path, seed: int, focus: str = "mixed") -> None:
    """Run operations until killed (or out of bundles)."""
    w_import, w_erase, w_rotate, _ = WEIGHTS[focus]
    from workbench.cohort.importer import import_paths
    from workbench.workspace import keyring
    from workbench.workspace.erasure import erase_source

    rng = random.Random(seed)
    if not keyring.exists(root):
        from workbench.workspace import open_workspace

        open_workspace(root, passphrase=PASSPHRASES[0]).close()
    ws, current = _open(root)
    print("ready", flush=True)
    while True:
        st = _state(journal_read(journal))
        live = [s for s in st["imported"] if s not in st["erase_started"]]
        roll = rng.random()
        todo = [p for p in sorted(data.glob("*.json.gz")) if p.name not in st["files_used"]]
        if not todo and (roll < w_import or not live):
            # out of bundles: keep working (a key rotation) so the worker runs until it is killed
            roll = w_import + w_erase
        if todo and (roll < w_import or not live):
            path = todo[0]
            journal_append(journal, {"op": "import-start", "file": path.name})
            result = import_paths(ws, [path])
            sid = str(result.files[0].source_id)
            sha = hashlib.sha256(path.read_bytes()).hexdigest()
            journal_append(
                journal,
                {
                    "op": "import-done",
                    "file": path.name,
                    "source_id": sid,
                    "sha": sha,
                    "rows": _rows_for(ws, sid),
                },
            )
        elif roll < w_import + w_erase:
            sid = rng.choice(live)
            journal_append(journal, {"op": "erase-start", "source_id": sid})
            erase_source(ws, sid, reason="crash bench")
            journal_append(journal, {"op": "erase-done", "source_id": sid})
        elif roll < w_import + w_erase + w_rotate:
            new = PASSPHRASES[1] if current == PASSPHRASES[0] else PASSPHRASES[0]
            master = rng.random() < 0.5
            journal_append(journal, {"op": "rotate-start", "to": new, "new_master": master})
            ws.close()
            keyring.rotate_passphrase(root, current, new, new_master=master)
            current = new
            ws, _ = _open(root)
            ws.audit("key.rotate", new_master=master)
            journal_append(journal, {"op": "rotate-done", "to": new})
        else:
            ids = rng.sample(live, k=min(len(live), rng.randint(1, 2)))
            journal_append(journal, {"op": "memory-start"})
            entry = ws.memory.add("remembered answer", source_ids=ids, kind="answer")
            journal_append(journal, {"op": "memory-done", "entry_id": entry, "source_ids": ids})


# -- checker ---------------------------------------------------------------------------------
def check(root: Path, journal: Path, data: Path) -> list[str]:
    """Problems found in the workspace after a kill (empty list = consistent, nothing lost)."""
    from workbench.workspace.erasure import verify_erasure

    problems: list[str] = []
    try:
        ws, _ = _open(root)
    except Exception as exc:  # noqa: BLE001 - any failure to open is the finding
        return [f"cannot open: {type(exc).__name__}: {exc}"]
    try:
        st = _state(journal_read(journal))
        con = ws.connect()
        for table in ws.tables():
            con.execute(f'SELECT count(*) FROM "{table}"').fetchall()
        report = ws.trail.verify()
        if not report.ok:
            problems.append(f"audit: {report.problems[:3]}")
        for sid, rec in st["imported"].items():
            rows = _rows_for(ws, sid)
            if sid in st["erased"]:
                continue
            if sid in st["erase_started"]:
                if rows and rows != rec["rows"]:
                    problems.append(
                        f"{sid}: interrupted erasure left partial rows {rows} (had {rec['rows']})"
                    )
                if not rows and not verify_erasure(ws, sid)["ok"]:
                    problems.append(
                        f"{sid}: interrupted erasure left traces {verify_erasure(ws, sid)['remaining']}"
                    )
                continue
            if rows != rec["rows"]:
                problems.append(f"{sid}: rows {rows} != completed import {rec['rows']} (lost rows)")
            blob = ws.read_source_file(sid)
            if hashlib.sha256(blob).hexdigest() != rec["sha"]:
                problems.append(f"{sid}: encrypted source copy does not match the original")
        for sid in st["erased"]:
            v = verify_erasure(ws, sid)
            if not v["ok"]:
                problems.append(f"{sid}: completed erasure left traces {v['remaining']}")
        present = {e.entry_id for e in ws.memory.entries()}
        present |= {r[0] for r in ws._admin().execute("SELECT entry_id FROM wb.memory").fetchall()}
        for entry_id, ids in st["memory"].items():
            if not set(ids) & st["erase_started"] and entry_id not in present:
                problems.append(f"memory entry {entry_id} lost")
    except Exception as exc:  # noqa: BLE001
        problems.append(f"check failed: {type(exc).__name__}: {exc}")
    finally:
        ws.close()
    return problems


def run(
    n: int, *, workdir: Path, seed: int = 0, max_delay: float = 2.5, bundles: int | None = None
) -> dict[str, Any]:
    """``n`` kill points on one workspace under ``workdir``; returns the summary."""
    rng = random.Random(seed)
    root, journal, data = workdir / "ws", workdir / "journal.jsonl", workdir / "data"
    data.mkdir(parents=True, exist_ok=True)
    for i in range(bundles or max(12, n * 3)):
        make_bundle(data / f"b{i:05d}.json.gz", random.Random(seed * 100003 + i))
    env = {**os.environ, "WB_KDF_PROFILE": os.environ.get("WB_KDF_PROFILE", "fast")}
    env.pop("WB_PASSPHRASE", None)
    trials = []
    started = time.time()
    for i in range(n):
        proc = subprocess.Popen(
            [
                sys.executable,
                __file__,
                "--worker",
                str(root),
                str(journal),
                str(data),
                "--seed",
                str(seed * 7919 + i),
                "--focus",
                FOCUS_CYCLE[i % len(FOCUS_CYCLE)],
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
        )
        assert proc.stdout is not None
        line = proc.stdout.readline()
        delay = rng.uniform(0.05, max_delay)
        if line.strip() == b"ready":
            time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        _, err = proc.communicate()
        killed = proc.returncode == -signal.SIGKILL
        before = journal_read(journal)
        last_op = before[-1]["op"] if before else None
        problems = check(root, journal, data)
        if line.strip() != b"ready":
            problems.append("worker failed to start: " + err.decode(errors="replace")[-400:])
        elif not killed and proc.returncode != 0:
            problems.append("worker crashed on its own: " + err.decode(errors="replace")[-400:])
        trials.append(
            {
                "trial": i,
                "delay_s": round(delay, 3),
                "last_op": last_op,
                "killed": killed,
                "problems": problems,
            }
        )
    st = _state(journal_read(journal))
    summary = {
        "kill_points": n,
        "corrupted_workspaces": sum(
            1 for t in trials if any("cannot open" in p or "audit" in p for p in t["problems"])
        ),
        "trials_with_problems": sum(1 for t in trials if t["problems"]),
        "lost_rows_trials": sum(1 for t in trials if any("lost" in p for p in t["problems"])),
        "killed_during": _count_ops(trials),
        "completed": {
            "imports": len(st["imported"]),
            "erasures": len(st["erased"]),
            "rotations": sum(1 for r in journal_read(journal) if r["op"] == "rotate-done"),
            "memory_writes": len(st["memory"]),
        },
        "seconds": round(time.time() - started, 1),
        "trials": trials,
    }
    return summary


def _count_ops(trials: list[dict[str, Any]]) -> dict[str, int]:
    out: dict[str, int] = {}
    for t in trials:
        op = str(t["last_op"])
        key = op[: -len("-start")] + " (in flight)" if op.endswith("-start") else "between operations"
        out[key] = out.get(key, 0) + 1
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=100, help="Kill points.")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--focus", choices=sorted(WEIGHTS), default="mixed", help=argparse.SUPPRESS)
    ap.add_argument("--max-delay", type=float, default=2.5, help="Longest wait before the kill (seconds).")
    ap.add_argument("--json", type=Path, default=Path(__file__).parent / "results" / "crash.json")
    ap.add_argument(
        "--workdir", type=Path, default=None, help="Keep the workspace here (default: a temp dir)."
    )
    ap.add_argument("--worker", nargs=3, metavar=("WS", "JOURNAL", "DATA"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        worker(Path(args.worker[0]), Path(args.worker[1]), Path(args.worker[2]), args.seed, args.focus)
        return 0
    with tempfile.TemporaryDirectory(prefix="wb-crash-") as tmp:
        summary = run(args.n, workdir=args.workdir or Path(tmp), seed=args.seed, max_delay=args.max_delay)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(summary, indent=1))
    print("| metric | value |\n|---|---|")
    for key in ("kill_points", "corrupted_workspaces", "lost_rows_trials", "trials_with_problems", "seconds"):
        print(f"| {key} | {summary[key]} |")
    for op, count in sorted(summary["killed_during"].items()):
        print(f"| killed during {op} | {count} |")
    for op, count in summary["completed"].items():
        print(f"| completed {op} | {count} |")
    for t in summary["trials"]:
        if t["problems"]:
            print(f"trial {t['trial']} ({t['last_op']}): {t['problems'][:3]}")
    return 0 if summary["trials_with_problems"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
