"""Watchlist alert benchmark: what checking every face against the watchlists costs, how fast an alert reaches
an operator and a webhook, and how often a stranger raises one.

    .venv/bin/python benchmarks/alerts.py [--probes 2000] [--out benchmarks/alerts]
writes alerts.json and alerts.md:
1. in process, on templates drawn like real buffalo_s ones (data/template-stats): CPU per face of the search
   stage's gallery search (100k, exact: the gateway's default at that size; the baseline) and of the
   watchlist check beside it, for lists of 10k and 100k templates, one face at a time and in micro-batches of
   32; and the false-alert rate (FPIR) of each list at the default threshold among strangers drawn the same way,
   with the share of listed people's second captures that alert;
2. through a gateway in its own process over mutual TLS on 127.0.0.1: a list made of the first photo of some
   of the sample faces' people, every photo of every person identified one at a time; the false-alert rate among
   the people not on the list and the alerts for those on it; and for each alert, the time from the camera
   sending the face to the alert reaching a WatchAlerts subscriber and a webhook receiver (HTTPS), beside the
   Identify round trip itself.
"""

from __future__ import annotations

import argparse
import contextlib
import http.server
import json
import os
import platform
import queue
import shlex
import ssl
import sys
import tempfile
import threading
import time
from pathlib import Path

import grpc
import numpy as np
from workload import make_certs, people

from fr_gateway.audit.keys import issue
from fr_gateway.contract import face_pb2, recognition_pb2, recognition_pb2_grpc, watchlists_pb2, watchlists_pb2_grpc
from fr_gateway.evaluation.galleries import TemplateShape
from fr_gateway.gallery.nik import synthetic_nik
from fr_gateway.search.faiss_index import FlatIndex
from fr_gateway.security.certs import Principal
from fr_gateway.server.process import gateway_process
from fr_gateway.transport import open_channel
from fr_gateway.watchlists.index import WatchlistIndex
from fr_gateway.watchlists.store import Entry, Watchlist

GALLERY = 100_000
LIST_SIZES = (10_000, 100_000)
TEMPLATES_PER_ENTRY = 2
THRESHOLD = 0.40  # the default: a list created without a threshold takes the identify threshold
BATCH = 32
LISTED = 20  # sample-face people put on the list in part 2
INTEGRATOR, CAMERA, OPERATOR = (Principal("integrator", "BENCH"), Principal("camera", "BENCH-CAM"),
                                Principal("operator", "BENCH-OPS"))


def cpu_ms_per_face(search, queries: np.ndarray, batch: int) -> float:
    """CPU (every thread of this process) per face, searching `queries` `batch` at a time."""
    search(queries[:batch])  # warm-up
    started = time.process_time()
    for start in range(0, len(queries), batch):
        search(queries[start:start + batch])
    return round((time.process_time() - started) * 1000 / len(queries), 3)


def in_process(probes: int) -> list[dict]:
    shape, rng = TemplateShape.load(), np.random.default_rng(21)
    gallery = FlatIndex(shape.dim)
    gallery.add([synthetic_nik(n) for n in range(GALLERY)], shape.gallery(rng, GALLERY))
    strangers = shape.gallery(rng, probes)
    rows = []
    for size in LIST_SIZES:
        # each listed person enrolled from two captures; their probe is a third, around the same centre
        people_on_list = size // TEMPLATES_PER_ENTRY
        *enrolled, probe = shape.captures(rng, people_on_list, TEMPLATES_PER_ENTRY + 1)
        index = WatchlistIndex(shape.dim)
        watchlist = Watchlist("bench", "benchmark", "bench", 0.0, "bench", None, THRESHOLD, "configured", None, 2)
        index.load([watchlist], [Entry(f"W{n:015X}", "bench", "", "", None, np.stack([c[n] for c in enrolled]))
                                 for n in range(people_on_list)])
        listed_probes = probe[:probes]
        row = {"gallery": GALLERY, "list_templates": size, "threshold": THRESHOLD}
        for batch in (1, BATCH):
            row[f"gallery_cpu_ms_per_face_batch{batch}"] = cpu_ms_per_face(
                lambda q: gallery.search_many(q, 5), strangers, batch)
            row[f"watchlist_cpu_ms_per_face_batch{batch}"] = cpu_ms_per_face(index.search, strangers, batch)
            row[f"added_share_batch{batch}"] = round(row[f"watchlist_cpu_ms_per_face_batch{batch}"]
                                                     / row[f"gallery_cpu_ms_per_face_batch{batch}"], 3)
        row["false_alert_rate"] = round(float(np.mean([bool(hits) for hits in index.search(strangers)])), 5)
        row["strangers"] = len(strangers)
        row["listed_alert_rate"] = round(float(np.mean([bool(hits) for hits in index.search(listed_probes)])), 4)
        row["listed_probes"] = len(listed_probes)
        rows.append(row)
        print(json.dumps(row), flush=True)
    return rows


class Receiver:
    """An HTTPS webhook endpoint on 127.0.0.1 noting when each alert arrives."""

    def __init__(self, certs: Path) -> None:
        self.arrived: queue.Queue[tuple[str, float]] = queue.Queue()
        arrived = self.arrived

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                arrived.put((json.loads(body)["alert_id"], time.perf_counter()))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        tls.load_cert_chain(certs / "server.pem", certs / "server.key")
        self.server.socket = tls.wrap_socket(self.server.socket, server_side=True)
        self.url = f"https://127.0.0.1:{self.server.server_address[1]}/alerts"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def percentiles(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"p50_ms": None, "p99_ms": None}
    return {"p50_ms": round(float(np.percentile(values, 50)) * 1000, 1),
            "p99_ms": round(float(np.percentile(values, 99)) * 1000, 1)}


def over_grpc(folder: Path) -> dict:
    _, clients = make_certs(folder / "certs", INTEGRATOR, CAMERA, OPERATOR)
    issue(folder / "keys" / "audit-gateway", folder / "auditor")
    folks = people()
    listed, others = folks[:LISTED], folks[LISTED:]
    receiver = Receiver(folder / "certs")
    subscribed: queue.Queue[tuple[str, float]] = queue.Queue()
    with gateway_process(folder, "--certs", str(folder / "certs"), "--gallery", str(folder / "gallery"),
                         rate_limit=0, webhooks=(receiver.url,), webhook_ca=str(folder / "certs" / "ca.pem")) as gw, \
            open_channel(gw.target, clients[INTEGRATOR]) as admin, open_channel(gw.target, clients[CAMERA]) as cam, \
            open_channel(gw.target, clients[OPERATOR]) as ops:
        desk = watchlists_pb2_grpc.WatchlistsStub(admin)
        info = desk.CreateWatchlist(watchlists_pb2.CreateWatchlistRequest(
            name="bench", reason="benchmark", owner="bench"), timeout=30)
        for photos in listed:
            desk.AddEntry(watchlists_pb2.AddEntryRequest(watchlist="bench", label=photos[0].parent.name, faces=[
                face_pb2.Face(image=photos[0].read_bytes(), kind=face_pb2.LOOSE)]), timeout=60)
        stream = recognition_pb2_grpc.RecognitionStub(ops).WatchAlerts(watchlists_pb2.WatchAlertsRequest())

        def watch() -> None:
            with contextlib.suppress(grpc.RpcError):
                for alert in stream:
                    subscribed.put((alert.alert_id, time.perf_counter()))

        threading.Thread(target=watch, daemon=True).start()
        time.sleep(0.5)
        camera = recognition_pb2_grpc.RecognitionStub(cam)
        sent: dict[str, float] = {}
        round_trips, false_alerts, strangers, listed_alerts, listed_probes = [], 0, 0, 0, 0
        for on_list, group in ((True, listed), (False, others)):
            for photos in group:
                for photo in photos[1:] if on_list else photos:
                    started = time.perf_counter()
                    answer = camera.Identify(recognition_pb2.IdentifyRequest(face=face_pb2.Face(
                        image=photo.read_bytes(), kind=face_pb2.LOOSE)), timeout=30)
                    round_trips.append(time.perf_counter() - started)
                    if answer.decision in (face_pb2.NO_FACE, face_pb2.REJECTED):
                        continue
                    for hit in answer.watchlist_hits:
                        sent[hit.alert_id] = started
                    if on_list:
                        listed_probes += 1
                        listed_alerts += any(hit.label == photos[0].parent.name for hit in answer.watchlist_hits)
                    else:
                        strangers += 1
                        false_alerts += bool(answer.watchlist_hits)
        time.sleep(3)  # the last deliveries
        stream.cancel()
    to_subscriber = [at - sent[alert] for alert, at in _drain(subscribed) if alert in sent]
    to_webhook = [at - sent[alert] for alert, at in _drain(receiver.arrived) if alert in sent]
    receiver.server.shutdown()
    return {"list_entries": LISTED, "threshold": round(info.threshold, 4), "listed_probes": listed_probes,
            "listed_alert_rate": round(listed_alerts / max(1, listed_probes), 4), "strangers": strangers,
            "false_alerts": false_alerts, "false_alert_rate": round(false_alerts / max(1, strangers), 4),
            "alerts": len(sent), "identify_round_trip": percentiles(round_trips),
            "to_subscriber": {**percentiles(to_subscriber), "received": len(to_subscriber)},
            "to_webhook": {**percentiles(to_webhook), "received": len(to_webhook)}}


def _drain(arrived: queue.Queue) -> list[tuple[str, float]]:
    items = []
    while not arrived.empty():
        items.append(arrived.get())
    return items


def markdown(results: dict) -> str:
    lines = ["# Watchlist alerts", "", f"`{results['command']}` on {results['machine']}.", "",
             "## Checking every face against the watchlists (in process, realistic templates)", "",
             "| gallery | list templates | gallery search CPU ms/face (1 / batch of 32) | watchlist check CPU ms/face "
             "(1 / batch of 32) | check / gallery search (batch of 32) | false-alert rate at 0.40 (strangers) | "
             "listed people alerting |", "| ---: | ---: | --- | --- | ---: | ---: | ---: |"]
    for row in results["in_process"]:
        lines.append(
            f"| {row['gallery']:,} | {row['list_templates']:,} | {row['gallery_cpu_ms_per_face_batch1']} / "
            f"{row['gallery_cpu_ms_per_face_batch32']} | {row['watchlist_cpu_ms_per_face_batch1']} / "
            f"{row['watchlist_cpu_ms_per_face_batch32']} | {row['added_share_batch32']} | "
            f"{row['false_alert_rate']} of {row['strangers']:,} | {row['listed_alert_rate']} of "
            f"{row['listed_probes']:,} |")
    live = results["over_grpc"]
    lines += ["", "## Through a gateway (mutual TLS, 127.0.0.1, sample faces, LOOSE photos one at a time)", "",
              f"A list of the first photo of {live['list_entries']} people at threshold {live['threshold']}.", "",
              "| what | value |", "| --- | --- |",
              f"| alerts for listed people's other photos | {live['listed_alert_rate']} of {live['listed_probes']} |",
              f"| false alerts among people not on the list | {live['false_alerts']} of {live['strangers']} "
              f"({live['false_alert_rate']}) |",
              f"| Identify round trip p50 / p99 ms (the baseline) | {live['identify_round_trip']['p50_ms']} / "
              f"{live['identify_round_trip']['p99_ms']} |",
              f"| camera send to WatchAlerts subscriber p50 / p99 ms | {live['to_subscriber']['p50_ms']} / "
              f"{live['to_subscriber']['p99_ms']} ({live['to_subscriber']['received']} alerts) |",
              f"| camera send to webhook receiver p50 / p99 ms | {live['to_webhook']['p50_ms']} / "
              f"{live['to_webhook']['p99_ms']} ({live['to_webhook']['received']} alerts) |"]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--probes", type=int, default=2000, help="strangers and listed probes in part 1")
    parser.add_argument("--out", default=str(Path(__file__).with_name("alerts")), help="output prefix")
    args = parser.parse_args()
    results = {"command": shlex.join(["benchmarks/alerts.py", *sys.argv[1:]]),
               "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
               "in_process": in_process(args.probes)}
    with tempfile.TemporaryDirectory() as scratch:
        results["over_grpc"] = over_grpc(Path(scratch))
    print(json.dumps(results["over_grpc"]), flush=True)
    Path(f"{args.out}.json").write_text(json.dumps(results, indent=2) + "\n")
    Path(f"{args.out}.md").write_text(markdown(results))
    print(f"wrote {args.out}.json and {args.out}.md")


if __name__ == "__main__":
    main()
