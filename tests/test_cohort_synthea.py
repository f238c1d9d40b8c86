"""Labs, patterns and cohorts on Synthea bundles imported by the real importer (integration)."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from workbench.cohort.cohort_builder import run_cohort
from workbench.cohort.importer import import_paths
from workbench.cohort.labs import lab_results, trends
from workbench.cohort.patterns import review_cohort
from workbench.workspace import open_workspace

BUNDLES = Path(__file__).parent / "fixtures" / "fhir" / "bundles"


@pytest.fixture(scope="module")
def con(tmp_path_factory: pytest.TempPathFactory) -> duckdb.DuckDBPyConnection:
    mp = pytest.MonkeyPatch()
    mp.setenv("WB_PASSPHRASE", "synthea-integration-passphrase")
    root = tmp_path_factory.mktemp("ws")
    mp.setenv("WB_HOME", str(root / "home"))
    ws = open_workspace(root / "ws")
    import_paths(ws, [BUNDLES])
    yield ws.connect(read_only=True)
    ws.close()
    mp.undo()


def test_every_numeric_observation_is_listed_and_normalised(con: duckdb.DuckDBPyConnection) -> None:
    df = lab_results(con)
    n_numeric = con.execute("SELECT count(*) FROM observations WHERE value_num IS NOT NULL").fetchone()
    assert n_numeric is not None and len(df) == n_numeric[0] > 100
    assert df["unit_error"].isna().all()
    bp = df[df["code"].isin(["8480-6", "8462-4"])]
    assert len(bp) > 0 and (bp["panel_code"] == "55284-4").all() and (bp["unit_norm"] == "mm[Hg]").all()
    assert df["flag"].notna().mean() > 0.5
    # Flags agree with the stored value and range.
    ranged = df[df["flag"].isin(["low", "normal", "high"])]
    assert ((ranged["flag"] != "low") | (ranged["value_norm"] < ranged["ref_low"])).all()


def _bp_dates(con: duckdb.DuckDBPyConnection, pid: str, sys_t: float, dia_t: float) -> int:
    row = con.execute(
        "SELECT count(DISTINCT CAST(effective AS DATE)) FROM observations WHERE patient_id = ? AND "
        "((component = '8480-6' AND value_num >= ?) OR (component = '8462-4' AND value_num >= ?))",
        [pid, sys_t, dia_t],
    ).fetchone()
    return int(row[0]) if row else 0


def test_hypertension_and_obesity_agree_with_direct_sql(con: duckdb.DuckDBPyConnection) -> None:
    findings = review_cohort(con)
    ids = [r[0] for r in con.execute("SELECT patient_id FROM patients ORDER BY 1").fetchall()]
    assert len(ids) == 4
    for pid in ids:
        mine = findings[findings["patient_id"] == pid].set_index("pattern_id")
        stage2 = _bp_dates(con, pid, 140, 90) >= 2
        stage1 = _bp_dates(con, pid, 130, 80) >= 2
        if stage2:
            assert mine.loc["hypertension", "stage"] == "stage 2 range"
        elif stage1:
            assert mine.loc["hypertension", "stage"] == "stage 1 range"
        else:
            assert "hypertension" not in mine.index
        latest = con.execute(
            "SELECT value_num FROM observations WHERE patient_id = ? AND code = '39156-5' "
            "ORDER BY effective DESC LIMIT 1",
            [pid],
        ).fetchone()
        if latest is None or latest[0] < 25:
            assert "obesity" not in mine.index
        else:
            assert ("overweight" in mine.loc["obesity", "stage"]) == (latest[0] < 30)
    # every supporting record id is a stored observation of that patient
    for f in findings.itertuples():
        for rid in f.record_ids:
            hit = con.execute(
                "SELECT count(*) FROM observations WHERE resource_id = ? AND patient_id = ?",
                [rid, f.patient_id],
            ).fetchone()
            assert hit is not None and hit[0] >= 1


def test_cohort_lab_criterion_matches_direct_sql(con: duckdb.DuckDBPyConnection) -> None:
    d = {
        "schema_version": 1,
        "name": "systolic 130+",
        "index_date": "2021-01-01",
        "criteria": [
            {"type": "lab", "codes": ["8480-6"], "op": ">=", "value": 130, "unit": "mm[Hg]"},
            {"type": "sex", "values": ["male"]},
        ],
    }
    r = run_cohort(con, d)
    direct = con.execute(
        "SELECT DISTINCT o.patient_id FROM observations o JOIN patients p USING (patient_id) "
        "WHERE o.component = '8480-6' AND o.value_num >= 130 AND p.gender = 'male' ORDER BY 1"
    ).fetchall()
    assert list(r.patients["patient_id"]) == [x[0] for x in direct]
    assert r.attrition["n"].iloc[0] == 4


def test_trends_on_imported_patient(con: duckdb.DuckDBPyConnection) -> None:
    pid = con.execute(
        "SELECT patient_id FROM observations WHERE code = '29463-7' GROUP BY 1 HAVING count(*) >= 2 LIMIT 1"
    ).fetchone()
    assert pid is not None
    t = trends(con, pid[0], ["29463-7"]).iloc[0]
    values = [
        r[0]
        for r in con.execute(
            "SELECT value_num FROM observations WHERE patient_id = ? AND code = '29463-7' ORDER BY effective",
            [pid[0]],
        ).fetchall()
    ]
    assert t.n == len(values) and t.last_value == pytest.approx(values[-1])
    assert t.last_change == pytest.approx(values[-1] - values[-2])
