"""Crash safety: real worker processes SIGKILLed at random points during import/erase/rotate/memory.

Uses ``bench/crash.py`` (the 100-kill benchmark) with 10 kill points on one workspace.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import random
from pathlib import Path
from types import ModuleType

import pytest

from workbench.errors import WrongPassphrase
from workbench.workspace import keyring, open_workspace

REPO = Path(__file__).resolve().parent.parent


def _bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("wb_bench_crash", REPO / "bench" / "crash.py")
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_random_kills_leave_workspace_consistent(tmp_path: Path) -> None:
    bench = _bench()
    summary = bench.run(10, workdir=tmp_path, seed=3, max_delay=2.0, bundles=24)
    problems = [(t["trial"], t["last_op"], t["problems"]) for t in summary["trials"] if t["problems"]]
    assert problems == []
    assert summary["corrupted_workspaces"] == 0 and summary["lost_rows_trials"] == 0
    assert all(t["killed"] for t in summary["trials"])  # each worker really died by SIGKILL
    # Not vacuous: operations completed between kills, and kills landed inside operations.
    assert summary["completed"]["imports"] >= 1 and sum(summary["completed"].values()) >= 3
    assert sum(n for op, n in summary["killed_during"].items() if "in flight" in op) >= 3


def test_checker_detects_lost_rows(tmp_path: Path) -> None:
    """The checker is not vacuous: deleting rows of a completed import is reported."""
    bench = _bench()
    data = tmp_path / "data"
    data.mkdir()
    bench.make_bundle(data / "b0.json.gz", random.Random(1))
    journal = tmp_path / "journal.jsonl"
    root = tmp_path / "ws"
    from workbench.cohort.importer import import_paths

    ws = open_workspace(root, passphrase=bench.PASSPHRASES[0])
    sid = str(import_paths(ws, [data / "b0.json.gz"]).files[0].source_id)
    rec = {
        "op": "import-done",
        "file": "b0.json.gz",
        "source_id": sid,
        "sha": hashlib.sha256((data / "b0.json.gz").read_bytes()).hexdigest(),
        "rows": bench._rows_for(ws, sid),
    }
    journal.write_text(json.dumps(rec) + "\n")
    assert bench.check(root, journal, data) == []
    ws = open_workspace(root, passphrase=bench.PASSPHRASES[0])
    ws.connect().execute("DELETE FROM observations WHERE rowid IN (SELECT rowid FROM observations LIMIT 2)")
    ws.close()
    assert any("lost rows" in p for p in bench.check(root, journal, data))


def test_interrupted_rotation_is_atomic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A rotation that dies before its single keyring write leaves the old passphrase working."""
    ws = open_workspace(tmp_path / "ws")
    ws.close()

    def boom(*a: object, **k: object) -> None:
        raise KeyboardInterrupt  # stands in for a kill between deriving keys and the rename

    with monkeypatch.context() as m:
        m.setattr(keyring, "save", boom)
        with pytest.raises(KeyboardInterrupt):
            keyring.rotate_passphrase(tmp_path / "ws", "test passphrase", "other", new_master=True)
    keyring.forget_cached_keys()
    assert open_workspace(tmp_path / "ws", passphrase="test passphrase").trail.verify().ok
    with pytest.raises(WrongPassphrase):
        open_workspace(tmp_path / "ws", passphrase="other")


def test_kill_during_atomic_write_leaves_old_file(tmp_path: Path) -> None:
    """A killed writer leaves only a stale temp file, which recovery removes."""
    ws = open_workspace(tmp_path / "ws")
    ws.close()
    stale = tmp_path / "ws" / f".keyring.json.{99999}.tmp"
    stale.write_bytes(b'{"half": ')
    ws = open_workspace(tmp_path / "ws")
    assert not stale.exists() and ws.trail.verify().ok
