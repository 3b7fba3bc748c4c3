"""What a run reports: per-row summaries over rounds, the text tables printed at the end, the
markdown tables for the README (`--markdown`, which must keep rendering older results files),
and the machine and versions a run records. Reads results dicts only; measures nothing."""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import platform
import re
import shutil
import statistics
import subprocess
import time
from pathlib import Path

from harness import BASELINE, RESULTS, ROOT
from pgdb import pg_connect


def percentile(xs: list[float], p: float) -> float:
    if not xs:
        return float("nan")
    xs = sorted(xs)
    k = (len(xs) - 1) * p / 100
    lo, hi = math.floor(k), math.ceil(k)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


def summarize(rounds: list[dict]) -> dict:
    """Median rate over rounds; latency percentiles over all samples (py) or the median of the
    per-round percentiles (wrk); CPU per op and utilisation over the whole."""
    rates = [r["items"] / r["wall_s"] for r in rounds if r["wall_s"] > 0]
    ops = sum(r["ops"] for r in rounds)
    wall = sum(r["wall_s"] for r in rounds)
    if all("latencies_ms" in r for r in rounds):
        lat = [x for r in rounds for x in r["latencies_ms"]]
        p50, p95 = percentile(lat, 50), percentile(lat, 95)
    else:
        p50 = statistics.median(r["p50_ms"] for r in rounds)
        p95 = statistics.median(r["p95_ms"] for r in rounds)
    srv = sum(r["srv_cpu_s"] for r in rounds)
    db = sum(r["db_cpu_s"] for r in rounds)
    cli = sum(r["client_cpu_s"] for r in rounds)
    machine = sum(r["machine_cpu_s"] for r in rounds)
    return dict(
        rate=statistics.median(rates) if rates else 0.0, p50_ms=p50, p95_ms=p95, ops=ops,
        errors=sum(r["errors"] for r in rounds), rounds=len(rounds),
        srv_cpu_us_per_op=srv / ops * 1e6 if ops else None,
        db_cpu_us_per_op=db / ops * 1e6 if ops else None,
        util=dict(server=srv / wall if wall else 0, db=db / wall if wall else 0,
                  client=cli / wall if wall else 0,
                  other=max(0.0, machine - srv - db - cli) / wall if wall else 0,
                  client_cores=rounds[0].get("client_cores", 1.0)),
        round_rates=[round(x, 2) for x in rates],
        first_error=next((r.get("first_error") for r in rounds if r.get("first_error")), None),
    )


def fmt_rate(x: float | None) -> str:
    if x is None or x != x:
        return "-"
    if x >= 1e6:
        return f"{x / 1e6:.2f}M"
    if x >= 1e4:
        return f"{x / 1e3:.0f}k"
    if x >= 1e3:
        return f"{x / 1e3:.1f}k"
    if x >= 10:
        return f"{x:.0f}"
    return f"{x:.2g}"


def fmt_ms(x: float | None) -> str:
    if x is None or x != x:
        return "-"
    if x >= 100:
        return f"{x:.0f}"
    if x >= 10:
        return f"{x:.1f}"
    return f"{x:.2f}"


def fmt_ratio(a: dict | None, b: dict | None) -> str:
    if not a or not b or not a["rate"] or not b["rate"]:
        return "n/a"
    return f"{a['rate'] / b['rate']:.1f}x"


def table_cells(data: dict, names: list[str]) -> tuple[list[str], list[list[str]]]:
    head = ["workload", "drv", "c", "unit"]
    for n in names:
        head += [f"{n} rate", "p50/p95 ms"]
    head += ["db limit", "ff/mlflow", "ff/fml"]
    # The A/B column only when the run had a baseline ferroflow: older results render as before.
    ab = BASELINE in names
    if ab:
        head.append("ff/base")
    out = []
    for row in data["rows"]:
        res = row["results"]
        cells = [row["title"], row["driver"], str(row["clients"]), row["unit"]]
        for n in names:
            r = res.get(n)
            if r:
                cells += [fmt_rate(r["rate"]) + (f" ({r['errors']} err)" if r["errors"] else ""),
                          f"{fmt_ms(r['p50_ms'])}/{fmt_ms(r['p95_ms'])}"]
            else:
                cells += ["n/a", ""]
        db = res.get("db limit")
        ff = res.get("ferroflow")
        cells += [fmt_rate(db["rate"]) if db else "",
                  fmt_ratio(ff, res.get("mlflow")), fmt_ratio(ff, res.get("fasttrackml"))]
        if ab:
            cells.append(fmt_ratio(ff, res.get(BASELINE)))
        out.append(cells)
    return head, out


def cpu_cells(data: dict, names: list[str]) -> tuple[list[str], list[list[str]]]:
    """CPU time per operation: the server's process tree, plus (PostgreSQL) the backends
    serving its database."""
    head = ["workload", "drv", "c"] + [f"{n} µs/op" for n in names]
    out = []
    for row in data["rows"]:
        cells = [row["title"], row["driver"], str(row["clients"])]
        for n in names:
            r = row["results"].get(n)
            if not r or r["srv_cpu_us_per_op"] is None:
                cells.append("n/a")
            elif r["db_cpu_us_per_op"]:
                cells.append(f"{r['srv_cpu_us_per_op']:.0f} + db {r['db_cpu_us_per_op']:.0f}")
            else:
                cells.append(f"{r['srv_cpu_us_per_op']:.0f}")
        out.append(cells)
    return head, out


def memory_cells(data: dict) -> tuple[list[str], list[list[str]]]:
    head = ["server", "startup s", "idle RSS MB", "idle PSS MB", "after RSS MB", "after PSS MB",
            "processes", "idle CPU after", "seed s"]
    out = []
    for n, s in data["servers"].items():
        idle, after = s.get("idle", {}), s.get("after", {})
        out.append([n, str(s.get("startup_s", "")), str(idle.get("rss_mb", "")),
                    str(idle.get("pss_mb", "")), str(after.get("rss_mb", "")),
                    str(after.get("pss_mb", "")), str(after.get("processes", "")),
                    f"{after['idle_cpu_cores']:.3f} cores" if "idle_cpu_cores" in after else "",
                    str(s.get("seed_s", ""))])
    return head, out


def unsupported_lines(data: dict) -> list[str]:
    return [f"n/a on {n}: " + "; ".join(f"{k} ({v})" for k, v in sorted(s["unsupported"].items()))
            for n, s in data["servers"].items() if s.get("unsupported")]


def text_table(head: list[str], rows: list[list[str]], left: int) -> list[str]:
    widths = [max(len(r[i]) for r in [head] + rows) for i in range(len(head))]
    return ["  ".join(c.ljust(w) if i < left else c.rjust(w)
                      for i, (c, w) in enumerate(zip(r, widths))).rstrip() for r in [head] + rows]


def markdown_table(head: list[str], rows: list[list[str]], left: int) -> list[str]:
    return (["| " + " | ".join(head) + " |",
             "|" + "|".join("---" if i < left else "---:" for i in range(len(head))) + "|"]
            + ["| " + " | ".join(c.replace("|", "/") for c in r) + " |" for r in rows])


def workspace_line(builds: dict) -> str | None:
    """--ferroflow-workspace: which server's requests all went to a workspace (meta.builds)."""
    named = [f"{n} in `{b['workspace']}`" for n, b in builds.items() if b.get("workspace")]
    return ("Workspace: " + ", ".join(named) + " (X-MLFLOW-WORKSPACE on every request); "
            "the other servers without the header") if named else None


def token_line(builds: dict) -> str | None:
    """--ferroflow-token: which server's requests all carried a bearer token (meta.builds)."""
    named = [n + (f" (scoped to `{b['workspace']}`)" if b.get("workspace") else "")
             for n, b in builds.items() if b.get("token")]
    return ("Token: " + ", ".join(named) + " with `--auth token` (Authorization: Bearer, an "
            "admin key's token, on every request); the other servers without it"
            ) if named else None


def header_lines(builds: dict) -> list[str]:
    """The report header's notes on what every request to a server carried."""
    return [line for line in (workspace_line(builds), token_line(builds)) if line]


def render_text(backend: str, data: dict, names: list[str], builds: dict | None = None) -> str:
    lines = [f"== {backend} ==  rate: median over rounds; p50/p95 latency per request; "
             f"ratios: ferroflow's rate / the other's (higher is better for ferroflow)"]
    lines += header_lines(builds or {})
    lines += text_table(*table_cells(data, names), left=4)
    if data.get("db_limit"):
        lines.append(f"db limit: {data['db_limit']}")
    lines.append("")
    lines.append("CPU per operation (server process tree + the PostgreSQL backends of its "
                 "database)")
    lines += text_table(*cpu_cells(data, names), left=3)
    lines.append("")
    lines += text_table(*memory_cells(data), left=1)
    lines += unsupported_lines(data)
    lines.append("")
    lines.append("targets:")
    for c in data.get("targets", []):
        lines.append(f"  [{'ok' if c['ok'] else 'MISS'}] {c['target']}: {c['measured']}")
        if c.get("bottleneck"):
            lines.append(f"         bottleneck: {c['bottleneck']}")
    return "\n".join(lines)


def render_markdown(result: dict) -> str:
    meta = result["meta"]
    lines = [f"Command: `{meta['command']}` ({meta.get('elapsed_s', '?')} s)  ",
             f"Machine: {meta['machine']}  ",
             f"Versions: {meta['versions']}"]
    for line in header_lines(meta.get("builds", {})):
        lines[-1] += "  "
        lines.append(line)
    lines.append("")
    for backend, data in result["backends"].items():
        names = list(data["servers"])
        lines.append(f"**{backend}** — rate: median over {meta['scale']['rounds']} round(s); "
                     f"p50/p95 latency per request; ratios: ferroflow's rate over the other's")
        lines.append("")
        lines += markdown_table(*table_cells(data, names), left=4)
        lines.append("")
        if data.get("db_limit"):
            lines += [f"db limit: {data['db_limit']}.", ""]
        lines += markdown_table(*memory_cells(data), left=1)
        lines.append("")
        lines += [x + "  " for x in unsupported_lines(data)]
        lines.append("")
        lines.append("Targets:")
        lines.append("")
        for c in data.get("targets", []):
            lines.append(f"- {'ok' if c['ok'] else '**miss**'}: {c['target']}: {c['measured']}"
                         + (f" — bottleneck: {c['bottleneck']}" if c.get("bottleneck") else ""))
        lines.append("")
    return "\n".join(lines)


def machine_description() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{cpu}, {os.cpu_count()} cores, {mem_gb:.0f} GB RAM, Linux {platform.release()}"


def built(binary: Path) -> str:
    return dt.datetime.fromtimestamp(binary.stat().st_mtime).isoformat(
        timespec="seconds") if binary.exists() else "not built"


def versions(use_pg: bool, binaries: dict[str, Path]) -> str:
    """`binaries`: server name -> the ferroflow binary it runs (the baseline's too, if any)."""
    parts = []
    try:
        rev = subprocess.run(["git", "describe", "--always", "--dirty"], cwd=ROOT,
                             capture_output=True, text=True).stdout.strip()
        parts.append(f"ferroflow {rev} (binary built {built(binaries['ferroflow'])})")
        for name, binary in binaries.items():
            if name != "ferroflow":
                parts.append(f"{name} {binary} (built {built(binary)})")
    except OSError:
        pass
    try:
        import importlib.metadata as md
        parts.append(f"mlflow {md.version('mlflow')}")
        parts.append(f"fasttrackml {md.version('fasttrackml')}")
    except Exception:  # noqa: BLE001
        pass
    if use_pg:
        try:
            conn = pg_connect()
            with conn.cursor() as cur:
                cur.execute("SHOW server_version")
                parts.append(f"PostgreSQL {cur.fetchone()[0].split()[0]}")
            conn.close()
        except Exception:  # noqa: BLE001
            pass
    wrk = shutil.which("wrk")
    if wrk:
        out = subprocess.run([wrk, "-v"], capture_output=True, text=True)
        m = re.search(r"wrk (\S+)", out.stdout + out.stderr)
        parts.append(f"wrk {m.group(1) if m else '?'}")
    parts.append(f"Python {platform.python_version()}")
    return ", ".join(parts)


def save_results(kind: str, results: dict, **meta) -> Path:
    """Writes a side benchmark's results (with the machine and the time) to
    benches/results/<kind>-<timestamp>.json and returns the path."""
    out = dict(machine=machine_description(), **meta, results=results,
               at=time.strftime("%Y-%m-%dT%H:%M:%S"))
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{kind}-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps(out, indent=2))
    return path
