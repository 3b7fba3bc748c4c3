#!/usr/bin/env python3
"""Artifact proxy benchmark: ferroflow vs `mlflow server`, same machine, same local destination.

Run it through benches/artifacts.sh (release build, the pinned mlflow). Per server, in turn:

  upload_1gb      one PUT of a 1 GiB file through /api/2.0/mlflow-artifacts/artifacts
  download_1gb    one GET of it back (size checked; sha256 compared after the timing)
  upload_small    1,000 files of 4 KiB, one PUT each on a keep-alive session (what
                  `mlflow.log_artifacts` does)
  download_small  the same 1,000 files back

The client is http.client with 1 MiB blocks, so it is not what limits the rate. A thread samples
the RSS of the server's whole process tree every 20 ms; the table shows its peak per phase, and the
ratios ferroflow/mlflow of throughput (higher is better) and peak RSS.
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import json
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import VENV_BIN, log  # noqa: E402  (the tracking benchmark's modules)
from procstat import memory_kb  # noqa: E402
from report import save_results  # noqa: E402
from servers import Server  # noqa: E402

PROXY = "/api/2.0/mlflow-artifacts/artifacts"
BLOCK = 1 << 20
TARGET_RATIO_1GB = 5.0
TARGET_FERROFLOW_RSS_MB = 100


class ArtifactServer(Server):
    """servers.Server on SQLite with a local --artifacts-destination; mlflow from `--mlflow`."""

    mlflow_bin = "mlflow"

    def command(self) -> list[str]:
        cmd = super().command()
        if self.name == "mlflow":
            cmd[0] = self.mlflow_bin
        return cmd


class PeakRss:
    """Samples the RSS summed over a process tree until stopped; keeps the peak."""

    def __init__(self, server: Server):
        self.server, self.peak_kb, self._stop = server, 0, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            kb = memory_kb(self.server.pids(), "status", "VmRSS")
            self.peak_kb = max(self.peak_kb, kb)
            time.sleep(0.02)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def connection(server: Server) -> http.client.HTTPConnection:
    return http.client.HTTPConnection("127.0.0.1", server.port, timeout=600, blocksize=BLOCK)


def put_file(conn, path: str, src: Path) -> None:
    with open(src, "rb") as f:
        conn.request("PUT", f"{PROXY}/{path}", body=f, headers={
            "Content-Length": str(src.stat().st_size), "Content-Type": "application/octet-stream"})
        resp = conn.getresponse()
        resp.read()
    if resp.status != 200:
        raise RuntimeError(f"PUT {path}: {resp.status}")


def put_bytes(conn, path: str, data: bytes) -> None:
    conn.request("PUT", f"{PROXY}/{path}", body=data,
                 headers={"Content-Type": "application/octet-stream"})
    resp = conn.getresponse()
    resp.read()
    if resp.status != 200:
        raise RuntimeError(f"PUT {path}: {resp.status}")


def get(conn, path: str, sink=None) -> int:
    conn.request("GET", f"{PROXY}/{path}")
    resp = conn.getresponse()
    if resp.status != 200:
        raise RuntimeError(f"GET {path}: {resp.status}")
    n = 0
    while chunk := resp.read(BLOCK):
        n += len(chunk)
        if sink:
            sink.update(chunk)
    return n


def measure(server: Server, big: Path, small: list[bytes]) -> dict:
    results = {}
    conn = connection(server)

    def phase(name: str, nbytes: int, items: int, fn):
        with PeakRss(server) as rss:
            t0 = time.perf_counter()
            fn()
            secs = time.perf_counter() - t0
        results[name] = dict(seconds=round(secs, 2), mb_s=round(nbytes / secs / 1e6, 1),
                             items_s=round(items / secs, 1), peak_rss_mb=round(rss.peak_kb / 1024, 1))
        log(f"  {server.name} {name}: {secs:.2f} s, {nbytes / secs / 1e6:.1f} MB/s, "
            f"peak RSS {rss.peak_kb / 1024:.0f} MB")

    size = big.stat().st_size
    phase("upload_1gb", size, 1, lambda: put_file(conn, "bench/big.bin", big))
    phase("download_1gb", size, 1,
          lambda: (n := get(conn, "bench/big.bin")) == size or (_ for _ in ()).throw(
              RuntimeError(f"downloaded {n} of {size} bytes")))
    total_small = sum(map(len, small))
    phase("upload_small", total_small, len(small),
          lambda: [put_bytes(conn, f"bench/small/{i // 100}/f{i}.bin", d) for i, d in enumerate(small)])
    phase("download_small", total_small, len(small),
          lambda: [get(conn, f"bench/small/{i // 100}/f{i}.bin") for i in range(len(small))])
    # Correctness, outside the timing.
    digest = hashlib.sha256()
    get(conn, "bench/big.bin", digest)
    results["big_sha256_ok"] = digest.hexdigest() == sha256(big)
    conn.close()
    results["idle_rss_mb"] = round(memory_kb(server.pids(), "status", "VmRSS") / 1024, 1)
    return results


def sha256(path: Path) -> str:
    d = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(BLOCK):
            d.update(block)
    return d.hexdigest()


def render(results: dict, size_mb: int, files: int) -> str:
    ff, ml = results["ferroflow"], results["mlflow"]
    lines = [f"| phase | ferroflow | mlflow server | throughput ratio | ferroflow peak RSS | mlflow peak RSS |",
             "|---|---:|---:|---:|---:|---:|"]
    for name, label, unit in [("upload_1gb", f"upload {size_mb} MiB file", "mb_s"),
                              ("download_1gb", f"download {size_mb} MiB file", "mb_s"),
                              ("upload_small", f"upload {files} × 4 KiB", "items_s"),
                              ("download_small", f"download {files} × 4 KiB", "items_s")]:
        u = "MB/s" if unit == "mb_s" else "files/s"
        a, b = ff[name], ml[name]
        lines.append(f"| {label} | {a[unit]:,} {u} | {b[unit]:,} {u} | {a[unit] / b[unit]:.1f}× "
                     f"| {a['peak_rss_mb']:.0f} MB | {b['peak_rss_mb']:.0f} MB |")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size-mb", type=int, default=1024, help="big file size in MiB (default 1024)")
    ap.add_argument("--files", type=int, default=1000, help="small files (default 1000)")
    ap.add_argument("--servers", default="ferroflow,mlflow")
    ap.add_argument("--mlflow", default=str(VENV_BIN / "mlflow"), help="mlflow CLI")
    args = ap.parse_args()
    ArtifactServer.mlflow_bin = os.path.abspath(args.mlflow)  # servers run in their own dir

    with tempfile.TemporaryDirectory(prefix="ff-artifacts-bench-") as tmp:
        work = Path(tmp)
        big = work / "big.bin"
        block = os.urandom(BLOCK)
        with open(big, "wb") as f:
            for i in range(args.size_mb):
                f.write(block[i % BLOCK:] + block[: i % BLOCK])
        small = [os.urandom(4096) for _ in range(args.files)]
        results = {}
        for name in args.servers.split(","):
            server = ArtifactServer(name, "sqlite", work, None)
            server.launch()
            deadline = time.monotonic() + 180
            while not server.ready():
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{name} did not start")
                time.sleep(0.2)
            log(f"{name} ready in {server.info['startup_s']} s")
            try:
                results[name] = measure(server, big, small)
            finally:
                server.stop()
        path = save_results("artifacts", results, size_mb=args.size_mb, files=args.files)
        print(json.dumps(results, indent=2))
        if {"ferroflow", "mlflow"} <= results.keys():
            print()
            print(render(results, args.size_mb, args.files))
            ff, ml = results["ferroflow"], results["mlflow"]
            ratio = ff["upload_1gb"]["mb_s"] / ml["upload_1gb"]["mb_s"]
            peak = max(ff[p]["peak_rss_mb"] for p in ("upload_1gb", "download_1gb", "upload_small", "download_small"))
            print(f"\nupload ratio {ratio:.1f}× (target ≥{TARGET_RATIO_1GB}×), download ratio "
                  f"{ff['download_1gb']['mb_s'] / ml['download_1gb']['mb_s']:.1f}×; "
                  f"ferroflow peak RSS {peak:.0f} MB (target <{TARGET_FERROFLOW_RSS_MB} MB)")
        print(f"results: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
