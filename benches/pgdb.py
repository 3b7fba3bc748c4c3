"""PostgreSQL for the benchmark: connections, the scratch databases it creates and drops (only
ever ff_bench_*), and the VACUUM ANALYZE that brings a seeded one to its steady state."""

from __future__ import annotations

import uuid

from harness import PG_HOST, PG_PORT, PG_USER, log


def pg_connect(dbname: str = "postgres"):
    import psycopg2
    conn = psycopg2.connect(host=PG_HOST, port=PG_PORT, user=PG_USER, dbname=dbname,
                            connect_timeout=5)
    return conn


def pg_available() -> bool:
    try:
        pg_connect().close()
        return True
    except Exception as err:  # noqa: BLE001 - any failure means "not here"
        log(f"PostgreSQL at {PG_HOST}:{PG_PORT} not reachable ({err}); skipping it")
        return False


class PgDatabases:
    """Creates ff_bench_<name>_<hex> databases and drops them again."""

    def __init__(self):
        self.created: list[str] = []

    def create(self, name: str) -> str:
        db = f"ff_bench_{name.replace('-', '_')}_{uuid.uuid4().hex[:8]}"
        conn = pg_connect()
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(f'CREATE DATABASE "{db}"')
        conn.close()
        self.created.append(db)
        return db

    def drop_all(self) -> None:
        if not self.created:
            return
        conn = pg_connect()
        conn.autocommit = True
        with conn.cursor() as cur:
            for db in self.created:
                assert db.startswith("ff_bench_")
                cur.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
        conn.close()
        self.created.clear()


def vacuum_analyze(dbname: str) -> None:
    """Brings a freshly seeded PostgreSQL database to its steady state, the one autovacuum
    reaches within a minute in production: planner statistics and the visibility map. Without
    it every server is measured on statistics of empty tables (plans then scan whole tables),
    which says more about the minute after a bulk load than about the server."""
    conn = pg_connect(dbname)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute("VACUUM ANALYZE")
    conn.close()
