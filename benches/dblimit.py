"""The database's own limit for the same work: the rows a request writes, written straight into
ferroflow's own tables (built by applying migrations/<backend>/*.sql in version order, indexes
and foreign keys included), by one client and by eight. log-batch: its 1,000-metric batches (the
bare insert of the metric rows); runs/create: a run and its mlflow.runName tag, one transaction;
log-metric: a metric row and its latest-value upsert, one transaction. The statements are the
store's (src/store/sql.rs), so the baseline does the database work ferroflow asks for."""

from __future__ import annotations

import sqlite3
import threading
import time
import uuid
from pathlib import Path

from drivers import run_clients
from harness import BATCH_KEYS, BATCH_STEPS, MIGRATIONS, now_ms
from pgdb import PgDatabases, pg_connect
from procstat import PgBackendCpu

# ferroflow's SQLite pragmas (src/store/sqlite.rs), so the baseline writes the way the server does.
SQLITE_PRAGMAS = ("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; "
                  "PRAGMA busy_timeout = 30000; PRAGMA foreign_keys = ON;")

# Experiment 0, as the store creates it at startup (ensure_default_experiment): the runs the
# runs/create baseline writes belong to it, and runs.experiment_id is a foreign key.
DEFAULT_EXPERIMENT = (
    "INSERT INTO experiments (experiment_id, name, artifact_location, lifecycle_stage, "
    "creation_time, last_update_time, workspace) "
    "VALUES (0, 'Default', ?, 'active', ?, ?, 'default') ON CONFLICT DO NOTHING")


def migration_files(backend: str) -> list[Path]:
    """migrations/<backend>/NNNN_*.sql in version order, as sqlx's migrator applies them."""
    files = (MIGRATIONS / backend).glob("*.sql")
    return sorted(files, key=lambda f: int(f.name.split("_", 1)[0]))


class DbLimit:
    """Does a workload's database work directly: for log-batch, PostgreSQL INSERT ... SELECT FROM
    UNNEST, one statement and one commit per batch, SQLite executemany, one transaction per batch;
    for runs/create and log-metric, the rows one request writes, in one transaction. PostgreSQL:
    a connection per client; SQLite: WAL, all clients through one writer connection (SQLite has a
    single writer: clients on connections of their own only add lock waits)."""

    name = "db limit"

    def __init__(self, backend: str, workdir: Path, pg: PgDatabases | None):
        self.backend = backend
        self.key_list = [f"k{k}" for k in range(BATCH_KEYS) for _ in range(BATCH_STEPS)]
        self.value_list = [s + 0.5 for _ in range(BATCH_KEYS) for s in range(BATCH_STEPS)]
        if backend == "postgres":
            self.db = pg.create("dblimit")
            self.db_cpu = PgBackendCpu(self.db)
        else:
            self.path = workdir / "dblimit.db"
            self.db_cpu = None
        self.migrate()
        self.description = (
            "psycopg2, a connection per client; log-batch: INSERT ... SELECT FROM UNNEST, "
            "1 statement + commit per 1,000 rows" if backend == "postgres" else
            "Python sqlite3, WAL, synchronous=NORMAL, one writer connection shared by the "
            "clients; log-batch: executemany, 1 transaction per 1,000 rows"
        ) + ("; runs/create: the run and its mlflow.runName tag, log-metric: the metric and its "
             "latest-value upsert, 1 transaction each")
        self.writer_lock = threading.Lock()

    def migrate(self) -> None:
        """ferroflow's schema, from its own migration files (one transaction each, as sqlx
        applies them), and experiment 0."""
        files = migration_files(self.backend)
        assert files, f"no migrations in {MIGRATIONS / self.backend}"
        now = now_ms()
        if self.backend == "postgres":
            conn = pg_connect(self.db)
            with conn.cursor() as cur:
                for f in files:
                    cur.execute(f.read_text())  # no parameters: '%' in the text stays as is
                    conn.commit()
                cur.execute(DEFAULT_EXPERIMENT.replace("?", "%s"),
                            ("mlflow-artifacts:/0", now, now))
            conn.commit()
        else:
            conn = sqlite3.connect(self.path, isolation_level=None)
            conn.executescript(SQLITE_PRAGMAS)
            for f in files:
                conn.executescript("BEGIN;\n" + f.read_text() + "\nCOMMIT;")
            conn.execute(DEFAULT_EXPERIMENT, ("mlflow-artifacts:/0", now, now))
        conn.close()

    def connect(self):
        if self.backend == "postgres":
            return pg_connect(self.db)
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        conn.executescript(SQLITE_PRAGMAS)
        return conn

    def write(self, kind: str, conn, run: str, i: int, ts: int) -> None:
        if kind == "runs_create":
            self.transaction(conn, [
                ("INSERT INTO runs (run_uuid, name, source_type, source_name, entry_point_name, "
                 "user_id, status, start_time, end_time, source_version, lifecycle_stage, "
                 "artifact_uri, experiment_id, deleted_time) VALUES (?, ?, 'UNKNOWN', '', '', "
                 "?, 'RUNNING', ?, NULL, '', 'active', ?, 0, NULL)",
                 (f"{run[:16]}{i:016x}", "bench", "bench", ts, "mlflow-artifacts:/0/x")),
                ("INSERT INTO tags (key, value, run_uuid) VALUES (?, ?, ?)",
                 ("mlflow.runName", "bench", f"{run[:16]}{i:016x}"))])
        elif kind == "log_metric":
            self.transaction(conn, [
                ("INSERT INTO metrics (key, value, timestamp, step, is_nan, run_uuid) "
                 "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                 ("loss", i + 0.25, ts, i, False, run)),
                ("INSERT INTO latest_metrics (key, value, timestamp, step, is_nan, run_uuid) "
                 "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (key, run_uuid) DO UPDATE SET "
                 "value = excluded.value, timestamp = excluded.timestamp, step = excluded.step, "
                 "is_nan = excluded.is_nan WHERE (excluded.step, excluded.timestamp, "
                 "excluded.value) > (latest_metrics.step, latest_metrics.timestamp, "
                 "latest_metrics.value)", ("loss", i + 0.25, ts, i, False, run))])
        else:
            self.write_batch(conn, run, i, ts)

    def transaction(self, conn, statements: list[tuple[str, tuple]]) -> None:
        if self.backend == "postgres":
            with conn.cursor() as cur:
                for sql, args in statements:
                    cur.execute(sql.replace("?", "%s"), args)
            conn.commit()
        else:
            with self.writer_lock:
                conn.execute("BEGIN")
                for sql, args in statements:
                    conn.execute(sql, args)
                conn.execute("COMMIT")

    def write_batch(self, conn, run: str, i: int, ts: int) -> None:
        steps = [i * BATCH_STEPS + s for _ in range(BATCH_KEYS) for s in range(BATCH_STEPS)]
        n = len(steps)
        if self.backend == "postgres":
            # Arrays go as text literals: psycopg2's list adaptation costs the client ~10 ms a
            # batch, which would make this a measure of Python rather than of the database.
            def arr(xs):
                return "{" + ",".join(map(str, xs)) + "}"
            with conn.cursor() as cur:
                cur.execute(
                    "INSERT INTO metrics (key, value, timestamp, step, is_nan, run_uuid) "
                    "SELECT * FROM UNNEST(%s::text[], %s::float8[], %s::bigint[], %s::bigint[], "
                    "%s::bool[], %s::text[])",
                    (arr(self.key_list), arr(self.value_list), arr([ts] * n), arr(steps),
                     arr(["f"] * n), arr([run] * n)))
            conn.commit()
        else:
            with self.writer_lock:
                conn.execute("BEGIN")
                conn.executemany(
                    'INSERT INTO metrics ("key", value, timestamp, step, is_nan, run_uuid) '
                    "VALUES (?, ?, ?, ?, 0, ?)",
                    zip(self.key_list, self.value_list, [ts] * n, steps, [run] * n))
                conn.execute("COMMIT")

    def measure(self, kind: str, clients: int, seconds: float) -> dict:
        conns = ([self.connect() for _ in range(clients)] if self.backend == "postgres"
                 else [self.connect()] * clients)
        runs = [uuid.uuid4().hex for _ in range(clients)]
        cur = conns[0].cursor()
        for run in runs:
            cur.execute("INSERT INTO runs (run_uuid) VALUES (%s)" if self.backend == "postgres"
                        else "INSERT INTO runs (run_uuid) VALUES (?)", (run,))
        cur.close()
        if self.backend == "postgres":
            conns[0].commit()
        lat: list[list[float]] = [[] for _ in range(clients)]
        ts = now_ms()

        def client(c, start, stop_at):
            start.wait()
            i = 0
            while i == 0 or time.perf_counter() < stop_at[0]:
                t0 = time.perf_counter()
                self.write(kind, conns[c], runs[c], i, ts)
                lat[c].append(time.perf_counter() - t0)
                i += 1

        wall, client_cpu, cpu = run_clients(clients, client, seconds, None, self.db_cpu)
        for conn in set(conns):
            conn.close()
        ops = sum(len(x) for x in lat)
        # SQLite runs inside this process: its CPU counts as the client's.
        items = ops * BATCH_KEYS * BATCH_STEPS if kind == "log_batch" else ops
        return dict(ops=ops, items=items, errors=0, wall_s=wall,
                    latencies_ms=[x * 1000 for c in lat for x in c], **cpu,
                    client_cpu_s=client_cpu, client_cores=1.0)

    def close(self):
        if self.db_cpu:
            self.db_cpu.close()
