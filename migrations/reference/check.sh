#!/usr/bin/env bash
# Checks migrations/{sqlite,postgres}/0001_mlflow_schema.sql against the saved MLflow reference
# dumps in this folder (see ../README.md). Needs sqlite3; the PostgreSQL half also needs psql,
# createdb/dropdb and pg_dump (same major version as the dump, 15) and a server reachable through
# the usual PG* variables (e.g. PGHOST=127.0.0.1 PGUSER=postgres). Skip it with NO_PG=1.
# Creates and drops scratch databases named ff_mig_check_*.
set -euo pipefail
cd "$(dirname "$0")"
V=3.17.2
HEAD=dc11669786a5
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail=0

# --- SQLite: sqlite_master text must be identical (it is MLflow's text byte for byte) ---
sq_apply() { { echo 'BEGIN;'; cat ../sqlite/0001_mlflow_schema.sql; echo 'COMMIT;'; } | sqlite3 -bail "$1"; }
sq_schema() {
    sqlite3 "$1" "SELECT type, name, tbl_name, sql FROM sqlite_master
                  WHERE name NOT LIKE '_sqlx%' ORDER BY type, name"
    sqlite3 "$1" "SELECT 'alembic', version_num FROM alembic_version"
}
sqlite3 "$tmp/ref.db" < "mlflow-$V-sqlite.sql"
sqlite3 "$tmp/ref.db" "INSERT INTO alembic_version VALUES ('$HEAD')"
sq_apply "$tmp/ours.db"
if diff <(sq_schema "$tmp/ref.db") <(sq_schema "$tmp/ours.db"); then echo "sqlite: empty db -> identical"; else fail=1; fi
sq_apply "$tmp/ours.db"
if diff <(sq_schema "$tmp/ref.db") <(sq_schema "$tmp/ours.db"); then echo "sqlite: applied twice -> identical"; else fail=1; fi
cp "$tmp/ref.db" "$tmp/onref.db"
sq_apply "$tmp/onref.db"
if diff <(sq_schema "$tmp/ref.db") <(sq_schema "$tmp/onref.db"); then echo "sqlite: over MLflow's db -> unchanged"; else fail=1; fi

# --- PostgreSQL: pg_dump -s must be identical ---
if [ -z "${NO_PG:-}" ]; then
    pg_schema() {
        pg_dump -s --no-owner --no-privileges -T _sqlx_migrations -T _sqlx_migrations_version_seq "$1" \
            | grep -v -e '^--' -e '^\\restrict' -e '^\\unrestrict'
        psql -X -Atc "SELECT 'alembic', version_num FROM alembic_version" "$1"
    }
    pg_apply() {
        psql -X -q -v ON_ERROR_STOP=1 -1 -f ../postgres/0001_mlflow_schema.sql "$1" 2>"$tmp/err" \
            || { cat "$tmp/err" >&2; echo "postgres: applying 0001 to $1 failed" >&2; exit 1; }
    }
    for db in ff_mig_check_ref ff_mig_check_ours; do dropdb --if-exists "$db"; createdb "$db"; done
    { grep -v -e '^--' -e '^\\restrict' -e '^\\unrestrict' "mlflow-$V-postgres.sql"; echo "alembic|$HEAD"; } > "$tmp/ref.pg"
    pg_apply ff_mig_check_ours
    if diff "$tmp/ref.pg" <(pg_schema ff_mig_check_ours); then echo "postgres: empty db -> identical"; else fail=1; fi
    pg_apply ff_mig_check_ours
    if diff "$tmp/ref.pg" <(pg_schema ff_mig_check_ours); then echo "postgres: applied twice -> identical"; else fail=1; fi
    # MLflow's db, restored from the dump (a restore re-renders CHECK expressions, so compare it
    # with itself before/after rather than with the dump file)
    psql -X -q -v ON_ERROR_STOP=1 -f "mlflow-$V-postgres.sql" ff_mig_check_ref >/dev/null
    psql -X -q -c "INSERT INTO alembic_version VALUES ('$HEAD')" ff_mig_check_ref
    pg_schema ff_mig_check_ref > "$tmp/restored.pg"
    pg_apply ff_mig_check_ref
    if diff "$tmp/restored.pg" <(pg_schema ff_mig_check_ref); then echo "postgres: over MLflow's db -> unchanged"; else fail=1; fi
    for db in ff_mig_check_ref ff_mig_check_ours; do dropdb "$db"; done
fi

[ "$fail" = 0 ] && echo "OK: migrations match MLflow $V" || { echo "MISMATCH"; exit 1; }
