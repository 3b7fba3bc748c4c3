#!/usr/bin/env python3
"""Side-by-side benchmark: ferroflow vs `mlflow server` vs FastTrackML, on SQLite and PostgreSQL.

Run it through benches/run.sh, which prepares the venv, wrk and the release build.

For each backend the harness starts every server on a free loopback port with a fresh database,
seeds the same data through the REST API, warms up, then runs each workload against each server in
turn, round after round (A, B, C, A, B, C ...), so machine noise hits all alike. Two load drivers:

  py   the way clients call the API: a requests.Session (keep-alive) per client thread;
  wrk  for the fast paths, since one Python process tops out near 2,000 requests/s.

Per measurement it records latencies, the rate, and CPU seconds spent by the server's process tree,
by the PostgreSQL backends serving the server's database, and by the load generator, so a missed
target shows where the time went. It prints a table per backend with the ratios
ferroflow/mlflow and ferroflow/fasttrackml (throughput ratios: higher is better for ferroflow),
checks the issue's targets, and writes benches/results/<timestamp>.json.
`--markdown [FILE]` renders a results file as the README's table. `--baseline-bin` adds a second
ferroflow (another build, or the same one with other `--baseline-args`) to the rotation, and an
ff/base column.

The modules beside this file, in the order a run uses them: harness (constants, log), procstat
and pgdb (/proc accounting, scratch databases), servers (start/stop, through the launcher shared
with the e2e suite, tests/support/ferroflow_process.py), workspace (--ferroflow-workspace), auth
(--ferroflow-token), seed, workloads, drivers (py and wrk), dblimit (the database's own limit),
runner (one backend), report and targets (output).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import shlex
import shutil
import signal
import sys
import time
from pathlib import Path

from auth import auth_token_on
from harness import BACKENDS, BASELINE, FERROFLOW_BIN, RESULTS, ROOT, SCALES, SERVERS, log
from pgdb import PgDatabases, pg_available
from report import machine_description, render_markdown, render_text, versions
from runner import bench_backend
from servers import Build
from targets import (TARGET_DB_LIMIT_FACTOR, TARGET_LOG_BATCH_PG_C8, TARGET_RSS_AFTER_MB,
                     TARGET_RSS_IDLE_MB, TARGET_SEARCH_P50_MS, TARGET_VS_FASTTRACKML,
                     TARGET_VS_MLFLOW, check_targets)
from workloads import WORKLOADS, WORKLOADS_BY_KEY
from workspace import ENABLE_FLAG


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="workloads: " + ", ".join(WORKLOADS_BY_KEY))
    p.add_argument("--quick", action="store_true", help="small scale: a few minutes on 2 cores")
    p.add_argument("--servers", default=",".join(SERVERS))
    p.add_argument("--backends", default=",".join(BACKENDS))
    p.add_argument("--workloads", default="all", help="comma-separated keys, or 'all'")
    p.add_argument("--rounds", type=int, help="override the scale's number of rounds")
    p.add_argument("--wrk-seconds", type=int, metavar="S",
                   help="override the scale's seconds per wrk measurement")
    p.add_argument("--no-wrk", action="store_true", help="Python driver only")
    p.add_argument("--ferroflow-bin", type=Path, default=FERROFLOW_BIN, metavar="PATH",
                   help="the ferroflow binary under test (default target/release/ferroflow)")
    p.add_argument("--ferroflow-args", default="", metavar="ARGS",
                   help="extra `ferroflow server` flags, one shell-quoted string; spell it "
                        "--ferroflow-args='--flag' when it starts with a dash")
    p.add_argument("--ferroflow-workspace", metavar="NAME",
                   help="create workspace NAME on `ferroflow` once it starts and send "
                        "X-MLFLOW-WORKSPACE: NAME on every request to it (needs "
                        f"--ferroflow-args='{ENABLE_FLAG}'); other servers get no header")
    p.add_argument("--ferroflow-token", action="store_true",
                   help="make an admin API key for `ferroflow` once it starts (its own binary's "
                        "`key create`), exchange it for a token (scoped to "
                        "--ferroflow-workspace if given) and send Authorization: Bearer on every "
                        "request to it (needs --ferroflow-args='--auth token'); other servers "
                        "get no Authorization header")
    p.add_argument("--baseline-bin", type=Path, metavar="PATH",
                   help=f"also run this ferroflow binary as `{BASELINE}`, measured in the same "
                        "rotation; the tables get an ff/base column")
    p.add_argument("--baseline-args", default="", metavar="ARGS",
                   help=f"extra `ferroflow server` flags for `{BASELINE}` (as --ferroflow-args)")
    p.add_argument("--markdown", nargs="?", const="latest", metavar="RESULTS_JSON",
                   help="render a results file (default: the newest) as markdown and exit")
    return p.parse_args()


def main() -> int:
    args = parse_args()
    if args.markdown:
        # Timestamped names only: artifacts.py writes artifacts-<timestamp>.json beside them.
        path = (max(RESULTS.glob("[0-9]*.json"), default=None) if args.markdown == "latest"
                else Path(args.markdown))
        if not path:
            sys.exit("no results in benches/results/")
        print(render_markdown(json.loads(Path(path).read_text())))
        return 0

    scale = dict(SCALES["quick" if args.quick else "full"])
    if args.rounds:
        scale["rounds"] = args.rounds
    if args.wrk_seconds:
        scale["wrk_seconds"] = args.wrk_seconds
    server_names = [s for s in args.servers.split(",") if s]
    backends = [b for b in args.backends.split(",") if b]
    for s in server_names:
        if s not in SERVERS:
            sys.exit(f"unknown server {s}: choose from {SERVERS}")
    for b in backends:
        if b not in BACKENDS:
            sys.exit(f"unknown backend {b}: choose from {BACKENDS}")
    workloads = (list(WORKLOADS) if args.workloads == "all" else
                 [WORKLOADS_BY_KEY[k] for k in args.workloads.split(",") if k])
    use_wrk = not args.no_wrk and shutil.which("wrk") is not None
    if not use_wrk and not args.no_wrk:
        log("wrk not found: Python driver only")
    builds = {"ferroflow": Build(args.ferroflow_bin.resolve(),
                                 tuple(shlex.split(args.ferroflow_args)),
                                 args.ferroflow_workspace, args.ferroflow_token)}
    if args.ferroflow_workspace and "ferroflow" not in server_names:
        sys.exit("--ferroflow-workspace needs `ferroflow` among --servers")
    if args.ferroflow_workspace and ENABLE_FLAG not in builds["ferroflow"].args:
        sys.exit(f"--ferroflow-workspace needs workspaces on: --ferroflow-args='{ENABLE_FLAG}'")
    if args.ferroflow_token and "ferroflow" not in server_names:
        sys.exit("--ferroflow-token needs `ferroflow` among --servers")
    if args.ferroflow_token and not auth_token_on(builds["ferroflow"].args):
        sys.exit("--ferroflow-token needs tokens on: --ferroflow-args='--auth token'")
    if ("ferroflow" in server_names and auth_token_on(builds["ferroflow"].args)
            and not args.ferroflow_token):
        sys.exit("--ferroflow-args has --auth token: add --ferroflow-token, or every request "
                 "to it answers 401")
    if args.baseline_bin:
        builds[BASELINE] = Build(args.baseline_bin.resolve(),
                                 tuple(shlex.split(args.baseline_args)))
        if auth_token_on(builds[BASELINE].args):
            sys.exit(f"--baseline-args --auth token: `{BASELINE}` gets no token (only "
                     "`ferroflow` does, with --ferroflow-token)")
        # Right after ferroflow, so the two are measured back to back in every round.
        at = server_names.index("ferroflow") + 1 if "ferroflow" in server_names else 0
        server_names.insert(at, BASELINE)
    elif args.baseline_args:
        sys.exit("--baseline-args needs --baseline-bin (it may name the same binary)")
    if "ferroflow" in server_names and not builds["ferroflow"].binary.exists():
        sys.exit(f"{builds['ferroflow'].binary} missing: run `cargo build --release` "
                 "(benches/run.sh does)")
    if BASELINE in builds and not builds[BASELINE].binary.exists():
        sys.exit(f"--baseline-bin {builds[BASELINE].binary} missing")
    if "postgres" in backends and not pg_available():
        backends.remove("postgres")

    # Stop cleanly on SIGTERM too, so servers stop and scratch databases are dropped.
    def on_sigterm(*_):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_sigterm)
    started = time.time()
    result = dict(meta=dict(
        command="benches/run.sh " + " ".join(sys.argv[1:]),
        timestamp=dt.datetime.now().isoformat(timespec="seconds"),
        machine=machine_description(),
        versions=versions("postgres" in backends, {n: b.binary for n, b in builds.items()}),
        scale=scale, servers=server_names, wrk=use_wrk,
        builds={n: dict(binary=str(b.binary), args=list(b.args), workspace=b.workspace,
                        token=b.token)
                for n, b in builds.items()},
        targets=dict(vs_mlflow=TARGET_VS_MLFLOW, vs_fasttrackml=TARGET_VS_FASTTRACKML,
                     db_limit_factor=TARGET_DB_LIMIT_FACTOR,
                     log_batch_pg_c8=TARGET_LOG_BATCH_PG_C8, search_p50_ms=TARGET_SEARCH_P50_MS,
                     rss_idle_mb=TARGET_RSS_IDLE_MB, rss_after_mb=TARGET_RSS_AFTER_MB)),
        backends={})
    pg = PgDatabases() if "postgres" in backends else None
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"{time.strftime('%Y%m%d-%H%M%S')}.json"
    try:
        for backend in backends:
            data = bench_backend(backend, server_names, workloads, scale, use_wrk, pg, builds)
            data["targets"] = check_targets(backend, data)
            result["backends"][backend] = data
            result["meta"]["elapsed_s"] = round(time.time() - started, 1)
            out.write_text(json.dumps(result, indent=1))  # after each backend: keep what we have
            log(f"{backend} done; results so far in {out.relative_to(ROOT)}")
    except KeyboardInterrupt:
        log("interrupted")
        return 130
    finally:
        if pg:
            pg.drop_all()
    for backend, data in result["backends"].items():
        print("\n" + render_text(backend, data, server_names, result["meta"]["builds"]) + "\n")
    log(f"done in {result['meta']['elapsed_s']}s; results in {out.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
