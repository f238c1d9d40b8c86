"""Records database schema: tables created and changed by named migrations recorded as applied.

Each migration is a function registered under a name; :func:`ensure_schema` runs, in order,
the ones not yet listed in ``_migrations`` and records each with the time it ran. A migration
never changes once released: a new column is a new migration (``ALTER TABLE ... ADD COLUMN``).
The table contract is ``docs/records-schema.md``.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import duckdb

from workbench.cohort.specs import PROVENANCE_COLUMNS

Migration = Callable[[duckdb.DuckDBPyConnection], None]

MIGRATIONS: list[tuple[str, Migration]] = []


def migration(fn: Migration) -> Migration:
    """Register ``fn`` as the next migration, under its function name."""
    MIGRATIONS.append((fn.__name__, fn))
    return fn


_PROV = ", ".join(f"{c} VARCHAR" for c in PROVENANCE_COLUMNS)

#: Table definitions of the first migration (frozen here on purpose: specs may grow, this may not).
_M001_TABLES: dict[str, str] = {
    "patients": """family VARCHAR, given VARCHAR, prefix VARCHAR, birth_date DATE, deceased_date DATE,
        gender VARCHAR, race VARCHAR, ethnicity VARCHAR, marital_status VARCHAR, address_line VARCHAR,
        city VARCHAR, state VARCHAR, postal_code VARCHAR, country VARCHAR, lat DOUBLE, lon DOUBLE,
        phone VARCHAR, email VARCHAR, ssn VARCHAR, mrn VARCHAR, drivers_license VARCHAR, passport VARCHAR,
        language VARCHAR, deceased VARCHAR""",
    "encounters": """encounter_id VARCHAR, start TIMESTAMP, "end" TIMESTAMP, class VARCHAR, status VARCHAR,
        type_code VARCHAR, type_display VARCHAR, reason_code VARCHAR, reason_display VARCHAR,
        provider VARCHAR, organization VARCHAR""",
    "conditions": """encounter_id VARCHAR, code_system VARCHAR, code VARCHAR, display VARCHAR,
        clinical_status VARCHAR, verification_status VARCHAR, onset TIMESTAMP, abatement TIMESTAMP,
        recorded TIMESTAMP, category VARCHAR""",
    "observations": """encounter_id VARCHAR, category VARCHAR, code_system VARCHAR, code VARCHAR,
        display VARCHAR, component VARCHAR, value_num DOUBLE, value_text VARCHAR, unit VARCHAR,
        unit_code VARCHAR, effective TIMESTAMP, status VARCHAR, interpretation VARCHAR, ref_low DOUBLE,
        ref_high DOUBLE""",
    "medications": """encounter_id VARCHAR, kind VARCHAR, status VARCHAR, intent VARCHAR, code_system VARCHAR,
        code VARCHAR, display VARCHAR, medication_ref VARCHAR, authored TIMESTAMP, dosage_text VARCHAR,
        reason_code VARCHAR""",
    "immunizations": """encounter_id VARCHAR, status VARCHAR, code_system VARCHAR, code VARCHAR,
        display VARCHAR, occurrence TIMESTAMP""",
    "procedures": """encounter_id VARCHAR, status VARCHAR, code_system VARCHAR, code VARCHAR, display VARCHAR,
        performed_start TIMESTAMP, performed_end TIMESTAMP, reason_code VARCHAR""",
    "allergies": """code_system VARCHAR, code VARCHAR, display VARCHAR, clinical_status VARCHAR,
        criticality VARCHAR, category VARCHAR, recorded TIMESTAMP""",
    "diagnostic_reports": """encounter_id VARCHAR, status VARCHAR, category VARCHAR, code VARCHAR,
        display VARCHAR, effective TIMESTAMP, result_ids VARCHAR[]""",
    "documents": """encounter_id VARCHAR, status VARCHAR, type_code VARCHAR, type_display VARCHAR,
        date TIMESTAMP, content_type VARCHAR, text VARCHAR""",
    "claims": """encounter_id VARCHAR, status VARCHAR, type VARCHAR, created TIMESTAMP,
        billable_start TIMESTAMP, total DOUBLE, currency VARCHAR, items JSON""",
    "eobs": """encounter_id VARCHAR, claim_id VARCHAR, status VARCHAR, type VARCHAR, created TIMESTAMP,
        total DOUBLE, payment DOUBLE, currency VARCHAR""",
    "coverage": """status VARCHAR, type VARCHAR, payor VARCHAR, period_start TIMESTAMP,
        period_end TIMESTAMP""",
    "measurements": """measure VARCHAR, value DOUBLE, unit VARCHAR, start TIMESTAMP, "end" TIMESTAMP,
        source VARCHAR, device VARCHAR, duplicate_of VARCHAR, original_value DOUBLE,
        original_unit VARCHAR, type_identifier VARCHAR""",
    "workouts": """activity VARCHAR, start TIMESTAMP, "end" TIMESTAMP, duration_min DOUBLE,
        distance_km DOUBLE, energy_kcal DOUBLE, source VARCHAR, device VARCHAR""",
    "activity_summaries": """date DATE, active_energy_kcal DOUBLE, active_energy_goal_kcal DOUBLE,
        exercise_min DOUBLE, exercise_goal_min DOUBLE, stand_hours DOUBLE, stand_goal_hours DOUBLE,
        source VARCHAR""",
    "nutrition": """date DATE, meal VARCHAR, calories DOUBLE, fat_g DOUBLE, saturated_fat_g DOUBLE,
        polyunsaturated_fat_g DOUBLE, monounsaturated_fat_g DOUBLE, trans_fat_g DOUBLE,
        cholesterol_mg DOUBLE, sodium_mg DOUBLE, potassium_mg DOUBLE, carbohydrates_g DOUBLE,
        fiber_g DOUBLE, sugar_g DOUBLE, protein_g DOUBLE, vitamin_a_pct DOUBLE, vitamin_c_pct DOUBLE,
        calcium_pct DOUBLE, iron_pct DOUBLE, note VARCHAR, source VARCHAR""",
}

#: Every records table (the FHIR ones and the wellness ones), in creation order.
RECORD_TABLES: tuple[str, ...] = tuple(_M001_TABLES)


@migration
def m001_records_tables(con: duckdb.DuckDBPyConnection) -> None:
    for table, cols in _M001_TABLES.items():
        con.execute(f"CREATE TABLE IF NOT EXISTS {table} ({_PROV}, {cols})")
    con.execute(
        """CREATE TABLE IF NOT EXISTS import_log (
            import_id VARCHAR, source_id VARCHAR, source_file VARCHAR, sha256 VARCHAR, kind VARCHAR,
            started TIMESTAMP, finished TIMESTAMP, status VARCHAR, counts JSON, unknown_types JSON,
            errors JSON)"""
    )
    # One row per stored resource: the dedup key (re-importing adds nothing) and the map an
    # erasure walks from a source to everything derived from it.
    con.execute(
        """CREATE TABLE IF NOT EXISTS resource_keys (
            "table" VARCHAR, resource_id VARCHAR, resource_type VARCHAR, patient_id VARCHAR,
            source_id VARCHAR, import_id VARCHAR)"""
    )


def applied_migrations(con: duckdb.DuckDBPyConnection) -> list[str]:
    """Names of the migrations already applied to this database, in order."""
    con.execute("CREATE TABLE IF NOT EXISTS _migrations (name VARCHAR PRIMARY KEY, applied TIMESTAMP)")
    return [r[0] for r in con.execute("SELECT name FROM _migrations ORDER BY applied, name").fetchall()]


def ensure_schema(con: duckdb.DuckDBPyConnection) -> list[str]:
    """Apply pending migrations (each in its own transaction); return the names applied now."""
    done = set(applied_migrations(con))
    ran: list[str] = []
    for name, fn in MIGRATIONS:
        if name in done:
            continue
        con.execute("BEGIN TRANSACTION")
        try:
            fn(con)
            con.execute(
                "INSERT INTO _migrations VALUES (?, ?)", [name, datetime.now(UTC).replace(tzinfo=None)]
            )
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
        ran.append(name)
    return ran


def table_counts(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    """Row count of every records table."""
    ensure_schema(con)
    sql = " UNION ALL ".join(f"SELECT '{t}', count(*) FROM {t}" for t in RECORD_TABLES)
    return {str(name): int(n) for name, n in con.execute(sql).fetchall()}


def table_columns(con: duckdb.DuckDBPyConnection, table: str) -> list[str]:
    """Column names of ``table`` as stored."""
    return [r[0] for r in con.execute(f"DESCRIBE {table}").fetchall()]
