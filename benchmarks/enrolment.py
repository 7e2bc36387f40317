"""Enrolment benchmark: photos per second through the whole enrolment pipeline (NIK check, decode, detection,
quality gate, alignment, batched embedding, sealed store, index), in process as `fr-gateway enroll` runs it and
through a gateway's EnrollStream over loopback gRPC, against the raw detector + embedder speed on the same photos
in the same run.

    .venv/bin/python benchmarks/enrolment.py [--passes 2] [--out benchmarks/enrolment]
writes enrolment.json and enrolment.md. Photos: every photo in the sample faces (data/faces), each pass under new NIKs.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import tempfile
import time
from pathlib import Path

from fr_gateway.config import load_settings
from fr_gateway.enrolment import run_enrolment
from fr_gateway.evaluation.dataset import sample_faces
from fr_gateway.faces.detector import align
from fr_gateway.faces.engine import load_engine
from fr_gateway.faces.images import decode_image
from fr_gateway.gallery.nik import synthetic_nik
from fr_gateway.server.app import Gateway
from fr_gateway.service import GatewayService
from fr_gateway.transport import open_channel

DATA = sample_faces()
PEER_PHOTOS_PER_SECOND = 22.6  # the closest open-source peer with four clients, as reported; not measured here


def photo_paths() -> list[Path]:
    return sorted(p for p in DATA.glob("*/*/*") if p.suffix.lower() in (".jpg", ".jpeg", ".png"))


def manifest(folder: Path, photos: list[Path], passes: int, offset: int) -> Path:
    path = folder / f"manifest-{offset}.csv"
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["nik", "photo"])
        for n in range(passes * len(photos)):
            writer.writerow([synthetic_nik(offset + n), photos[n % len(photos)]])
    return path


def raw_speed(engine, photos: list[Path], passes: int) -> float:
    """Decode, detect, align each photo, embed in batches of 32: the models' own pace, nothing else."""
    started = time.perf_counter()
    crops = []
    for _ in range(passes):
        for path in photos:
            image = decode_image(path.read_bytes(), 1 << 30, 1 << 30)
            faces = engine.detector.detect(image)
            if faces:
                crops.append(align(image, faces[0]))
            if len(crops) == 32:
                engine.embedder.embed(crops)
                crops = []
    engine.embedder.embed(crops)
    return passes * len(photos) / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--passes", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "enrolment")
    args = parser.parse_args()
    photos = photo_paths()
    engine = load_engine(load_settings(environ={}))
    raw_speed(engine, photos[:20], 1)  # warm-up
    raw = raw_speed(engine, photos, args.passes)
    results = {"photos": args.passes * len(photos), "cpus": os.cpu_count(), "raw_photos_per_s": round(raw, 1)}
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        settings = load_settings(overrides={"gallery": str(folder / "local")}, environ={})
        service = GatewayService.open(settings, engine)
        started = time.perf_counter()
        summary = run_enrolment(manifest(folder, photos, args.passes, 0), folder / "r1.csv", service=service,
                                progress=False)
        local = results["photos"] / (time.perf_counter() - started)
        service.close()
        gateway = Gateway(load_settings(overrides={"gallery": str(folder / "remote"), "listen": "127.0.0.1:0",
                                                   "metrics_listen": "127.0.0.1:0"},
                                        environ={}), engine=engine).start()
        started = time.perf_counter()
        remote_summary = run_enrolment(manifest(folder, photos, args.passes, 50_000), folder / "r2.csv",
                                       channel=open_channel(f"127.0.0.1:{gateway.port}"), progress=False)
        remote = results["photos"] / (time.perf_counter() - started)
        gateway.stop()
    results.update({
        "in_process_photos_per_s": round(local, 1), "in_process_vs_raw": round(local / raw, 3),
        "in_process_summary": summary.line(),
        "grpc_enroll_stream_photos_per_s": round(remote, 1), "grpc_vs_raw": round(remote / raw, 3),
        "grpc_summary": remote_summary.line(),
        "peer_reference_photos_per_s": PEER_PHOTOS_PER_SECOND,
    })
    args.out.with_suffix(".json").write_text(json.dumps(results, indent=2) + "\n")
    table = (
        "| path | photos/s | vs raw models | vs peer's 22.6 photos/s |\n| --- | ---: | ---: | ---: |\n"
        f"| raw: decode + SCRFD + align + ArcFace (batches of 32) | {raw:.1f} | 1.00 | {raw / 22.6:.1f}x |\n"
        f"| `fr-gateway enroll` in process | {local:.1f} | {local / raw:.2f} | {local / 22.6:.1f}x |\n"
        f"| `Gallery.EnrollStream` over loopback gRPC | {remote:.1f} | {remote / raw:.2f} | {remote / 22.6:.1f}x |\n"
    )
    args.out.with_suffix(".md").write_text(table)
    print(json.dumps(results, indent=2))
    print(table)


if __name__ == "__main__":
    main()
