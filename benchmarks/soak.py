"""Memory and threads under hostile load: one gateway process on 127.0.0.1 takes bursts of bomb images (small
PNG files of 6000x6600 pixels, under the 40 Mpx limit) from 8 callers at once, then 300 camera streams at once;
its resident memory and threads are read before, at the peak (sampled every 20 ms) and after. The baseline, in
the same run, is the same gateway with the decode budget off (a budget larger than any burst).

    .venv/bin/python benchmarks/soak.py
writes soak.json and soak.md. About 3 minutes; every burst is bounded in count and time.
"""

from __future__ import annotations

import json
import os
import platform
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent import futures
from pathlib import Path

import cv2
import grpc
import numpy as np
from workload import aligned_crops, people, rss_mib

from fr_gateway.config import load_settings
from fr_gateway.contract import face_pb2, recognition_pb2, recognition_pb2_grpc
from fr_gateway.faces.engine import load_engine
from fr_gateway.server.process import gateway_process
from fr_gateway.server.threads import IDLE_S

BOMB_SIDE = (6600, 6000)  # height, width: 39.6 Mpx
CALLERS, ROUNDS = 8, 3
STREAMS = 300
OFF = 10**12  # a decode budget no burst reaches
OUT = Path(__file__).resolve().parent / "soak"


def bomb() -> bytes:
    """A PNG that is small on the wire and large in memory: a flat grey field with a few lines."""
    image = np.full((*BOMB_SIDE, 3), 128, dtype=np.uint8)
    image[::500] = 30
    return cv2.imencode(".png", image, [cv2.IMWRITE_PNG_COMPRESSION, 9])[1].tobytes()


def threads_of(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Threads:"):
            return int(line.split()[1])
    return 0


class Peak:
    """The most resident memory and threads a process reaches while a burst runs."""

    def __init__(self, pid: int) -> None:
        self.pid, self.rss, self.threads = pid, 0.0, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.wait(0.02):
            self.rss = max(self.rss, rss_mib(self.pid))
            self.threads = max(self.threads, threads_of(self.pid))

    def __enter__(self) -> Peak:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()


def burst(calls: list[Callable[[], object]], width: int) -> Counter[str]:
    """Run the calls `width` at a time; count the answers by status."""
    def one(call: Callable[[], object]) -> str:
        try:
            call()
            return "OK"
        except grpc.RpcError as exc:
            return exc.code().name

    with futures.ThreadPoolExecutor(width) as pool:
        return Counter(pool.map(one, calls))


def phase(name: str, pid: int, run: Callable[[], Counter[str]], settle_s: float) -> dict:
    before_rss, before_threads = rss_mib(pid), threads_of(pid)
    started = time.monotonic()
    with Peak(pid) as peak:
        answers = run()
    seconds = time.monotonic() - started
    time.sleep(settle_s)
    print(f"{name}: {dict(answers)} in {seconds:.1f} s", flush=True)
    return {"phase": name, "rss_before_mib": before_rss, "rss_peak_mib": peak.rss, "rss_after_mib": rss_mib(pid),
            "threads_before": before_threads, "threads_peak": peak.threads, "threads_after": threads_of(pid),
            "answers": dict(answers), "seconds": round(seconds, 1), "settled_s": settle_s}


def soak(folder: Path, budget: int, crop: bytes, image: bytes) -> list[dict]:
    with gateway_process(folder, "--insecure", "--gallery", str(folder / "gallery"), metrics_listen="",
                         rate_limit=0, streams_per_client=0, decode_budget_pixels=budget) as gateway:
        pid = gateway.process.pid
        with grpc.insecure_channel(gateway.target) as channel:
            stub = recognition_pb2_grpc.RecognitionStub(channel)
            loose = recognition_pb2.IdentifyRequest(face=face_pb2.Face(image=image, kind=face_pb2.LOOSE))
            aligned = recognition_pb2.IdentifyRequest(camera_id="SOAK", face=face_pb2.Face(image=crop,
                                                                                           kind=face_pb2.ALIGNED))
            stub.Identify(aligned, timeout=60)  # warm: models loaded and run once
            rows = [phase("bomb images", pid, lambda: burst(
                [lambda: stub.Identify(loose, timeout=60)] * (CALLERS * ROUNDS), CALLERS), settle_s=2)]
            rows.append(phase("camera streams", pid, lambda: burst(
                [lambda: list(stub.IdentifyStream(iter([aligned]), timeout=120))] * STREAMS, STREAMS),
                settle_s=IDLE_S + 10))
    return [{**row, "decode_budget_mpx": round(budget / 1e6) if budget < OFF else "off"} for row in rows]


def markdown(results: dict) -> str:
    lines = ["| phase | decode budget | answers | RSS MiB before / peak / after | threads before / peak / after |",
             "| --- | --- | --- | ---: | ---: |"]
    for row in results["rows"]:
        answers = ", ".join(f"{code} {n}" for code, n in sorted(row["answers"].items()))
        budget = row["decode_budget_mpx"]
        lines.append(f"| {row['phase']} | {budget if budget == 'off' else f'{budget} Mpx'} | {answers} | "
                     f"{row['rss_before_mib']} / {row['rss_peak_mib']} / {row['rss_after_mib']} | "
                     f"{row['threads_before']} / {row['threads_peak']} / {row['threads_after']} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    settings = load_settings(environ={})
    engine = load_engine(settings)
    crop = aligned_crops(engine, people(1)[0][:1])[0]
    image = bomb()
    print(f"bomb: {len(image)} bytes, {BOMB_SIDE[1]}x{BOMB_SIDE[0]}", flush=True)
    results = {"machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
               "bomb_bytes": len(image), "bomb_pixels": BOMB_SIDE[0] * BOMB_SIDE[1], "callers": CALLERS,
               "rounds": ROUNDS, "streams": STREAMS, "rows": []}
    with tempfile.TemporaryDirectory(prefix="soak-") as scratch:
        for name, budget in (("default", settings.decode_budget_pixels), ("off", OFF)):
            results["rows"] += soak(Path(scratch) / name, budget, crop, image)
    OUT.with_suffix(".json").write_text(json.dumps(results, indent=2) + "\n")
    OUT.with_suffix(".md").write_text(markdown(results))
    print(markdown(results))


if __name__ == "__main__":
    main()
