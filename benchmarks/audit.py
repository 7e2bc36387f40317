"""Audit overhead benchmark: Identify requests per second through a mutual-TLS gateway with the audit log off
and on (fsync on every group commit, and fsync per checkpoint), in one run, alternating the settings so drift
in the machine's speed falls on all of them alike.

    .venv/bin/python benchmarks/audit.py [--clients 4] [--requests 400] [--rounds 2] [--out benchmarks/audit]
writes audit.json and audit.md. Probes: pre-aligned 112x112 crops of sample-face photos (data/faces) of people
enrolled in a 43-person gallery, sent as a camera would send them (ALIGNED), from several client threads.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
from workload import aligned_crops, make_certs, people

from fr_gateway.audit.keys import issue
from fr_gateway.config import load_settings
from fr_gateway.contract import face_pb2, gallery_pb2, gallery_pb2_grpc, recognition_pb2, recognition_pb2_grpc
from fr_gateway.faces.engine import load_engine
from fr_gateway.gallery.nik import synthetic_nik
from fr_gateway.security.certs import Principal, TlsFiles
from fr_gateway.server.app import Gateway
from fr_gateway.transport import open_channel

CAMERA = Principal("camera", "BENCH-1")
ADMIN = Principal("admin", "BENCH")
MODES = {"off": {"audit": False}, "on, fsync always": {"audit_fsync": "always"},
         "on, fsync interval": {"audit_fsync": "interval"}}


def load(target: str, tls: TlsFiles, crops: list[bytes], clients: int, requests: int) -> dict:
    """`requests` Identify calls spread over `clients` threads, each on its own channel."""
    latencies: list[float] = []
    lock = threading.Lock()

    def client(offset: int) -> None:
        with open_channel(target, tls) as channel:
            stub = recognition_pb2_grpc.RecognitionStub(channel)
            mine = []
            for n in range(offset, requests, clients):
                face = face_pb2.Face(image=crops[n % len(crops)], kind=face_pb2.ALIGNED)
                started = time.perf_counter()
                stub.Identify(recognition_pb2.IdentifyRequest(camera_id=CAMERA.identity, face=face), timeout=60)
                mine.append(time.perf_counter() - started)
            with lock:
                latencies.extend(mine)

    threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    return {"requests_per_s": len(latencies) / elapsed, "p50_ms": float(np.percentile(latencies, 50)) * 1000,
            "p99_ms": float(np.percentile(latencies, 99)) * 1000}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--requests", type=int, default=400, help="per mode and round")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "audit")
    args = parser.parse_args()
    engine = load_engine(load_settings(environ={}))
    folks = people()
    probes = aligned_crops(engine, [photo for photos in folks for photo in photos[1:4]])
    runs: dict[str, list[dict]] = {mode: [] for mode in MODES}
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        server_tls, clients = make_certs(folder / "certs", CAMERA, ADMIN)
        gallery = folder / "index" / "gallery"
        issue(folder / "index" / "keys" / "audit-gateway", folder / "auditor")  # where the gateway looks
        for round_number in range(args.rounds):
            for mode, overrides in MODES.items():
                settings = load_settings(overrides={"gallery": str(gallery), "listen": "127.0.0.1:0", "rate_limit": 0,
                                                    "metrics_listen": "127.0.0.1:0", **overrides}, environ={})
                gateway = Gateway(settings, engine=engine, tls=server_tls).start()
                target = f"127.0.0.1:{gateway.port}"
                if gateway.service.gallery_size == 0:
                    with open_channel(target, clients[ADMIN]) as channel:
                        gallery_pb2_grpc.GalleryStub(channel).EnrollStream(iter(
                            gallery_pb2.EnrollRequest(nik=synthetic_nik(n), face=face_pb2.Face(
                                image=photos[0].read_bytes())) for n, photos in enumerate(folks)), timeout=300)
                load(target, clients[CAMERA], probes, args.clients, args.clients * 4)  # warm-up
                runs[mode].append(load(target, clients[CAMERA], probes, args.clients, args.requests))
                gateway.stop()
                print(round_number, mode, runs[mode][-1], flush=True)
    rows = []
    baseline = statistics.median(r["requests_per_s"] for r in runs["off"])
    for mode, measured in runs.items():
        rps = statistics.median(r["requests_per_s"] for r in measured)
        rows.append({"mode": mode, "requests_per_s": round(rps, 1), "vs_audit_off": round(rps / baseline, 3),
                     "p50_ms": round(statistics.median(r["p50_ms"] for r in measured), 1),
                     "p99_ms": round(statistics.median(r["p99_ms"] for r in measured), 1),
                     "runs_requests_per_s": [round(r["requests_per_s"], 1) for r in measured]})
    results = {"cpus": os.cpu_count(), "clients": args.clients, "requests_per_mode_and_round": args.requests,
               "rounds": args.rounds, "gallery": len(folks), "probe_crops": len(probes), "transport": "mutual TLS",
               "rows": rows}
    args.out.with_suffix(".json").write_text(json.dumps(results, indent=2) + "\n")
    lines = ["| audit | Identify requests/s | vs audit off | p50 ms | p99 ms | each round, requests/s |",
             "| --- | ---: | ---: | ---: | ---: | --- |"]
    lines += [f"| {r['mode']} | {r['requests_per_s']} | {r['vs_audit_off']}x | {r['p50_ms']} | {r['p99_ms']} | "
              f"{', '.join(map(str, r['runs_requests_per_s']))} |" for r in rows]
    lines.append(f"\n{args.clients} camera clients over mutual TLS on 127.0.0.1, ALIGNED crops, {len(folks)}-person "
                 f"gallery, {os.cpu_count()} CPUs; median of {args.rounds} rounds, modes alternating. "
                 "Reproduce: `make bench-audit`.")
    args.out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
