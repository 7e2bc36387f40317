"""Real-time benchmark: faces per second and latency through the gateway's IdentifyStream against the
recogniser's own limit and a naive one-face-at-a-time pipeline, all measured in one run on one machine.

    .venv/bin/python benchmarks/realtime.py [--gallery 100000] [--seconds 8] [--out benchmarks/realtime]
writes realtime.json and realtime.md; `--quick [--out PREFIX]` (under 3 minutes) measures only the gateway's
own CPU a face beyond the recogniser's (ALIGNED crops, 4 cameras x 8 in flight, mutual TLS, audit on; other
cameras with `--cameras N`, LOOSE photos with `--kind LOOSE`: beyond detector + recogniser), and ends its
output with that one JSON object (written to PREFIX.json when asked). The full run:
1. the limit: ONNX Runtime on the recogniser alone, batches of 1 to 64 aligned crops, no gRPC;
2. the naive peer, in process, one face at a time (as insightface's FaceAnalysis does it): aligned crops
   embedded one by one, and photos detected, aligned and embedded one by one;
   (1 is the best of three layouts: one run on all cores with ONNX Runtime's idle threads spinning or not, and
   one single-threaded run per core side by side, the gateway's; 2 is the better of the first two)
3. the gateway (`fr-gateway serve` in its own process) over mutual TLS on 127.0.0.1, against a gallery of
   --gallery identities (synthetic templates shaped like buffalo_s ones, plus the 43 real people whose photos
   are the probes): 1, 4 and 16 camera streams of ALIGNED crops sending flat out (one, or up to eight crops
   unanswered per camera), then 16 cameras offering 50%, 80% and 150% of what the gateway sustained flat out
   with 16 cameras just before (its own capacity, not the recogniser's) on a fixed schedule,
   dropping a crop when eight are unanswered, as a live camera must;
4. LOOSE photos (detection in the gateway): 1 and 4 clients one request at a time, and 16 cameras flat out;
5. the peer's own setting, beside the figures it reports: unary Identify of a 250x250 photo against 1,000
   people by 1 and 4 clients, and a 1:1 Verify of two 250x250 photos, in the default recogniser layout and
   with embed_workers = 1;
Each gateway row's ratio is to its limit (1 for ALIGNED crops, the naive LOOSE pace for photos) measured again
just before it. Also the detector alone by batch size, the camera's
tracking saving on the demo's kind of video (embeddings per person with and without it), and per gateway row
where the time goes: CPU per face of the gateway, of its models' runs (the gateway counts them itself:
frgateway_model_cpu_seconds) and so of the gateway beyond its models, and of the cameras, and each stage's share
from the gateway's own metrics; and for ALIGNED and LOOSE at 16 cameras x 8 and ALIGNED at 4 x 8, the same load
again with py-spy sampling the gateway: its CPU a face by stage and by thread (`cpu_profile.py`).
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import tempfile
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
from cpu_profile import cpu_split, sampling, thread_names, threads_cpu, threads_split
from prometheus_client.parser import text_string_to_metric_families
from search import CHUNK, Realistic, nik_of
from workload import aligned_crops, cpu_seconds, make_certs, people, rss_mib

from fr_gateway.audit.keys import issue
from fr_gateway.camera.tracking import FaceTracker
from fr_gateway.config import load_settings
from fr_gateway.contract import face_pb2, gallery_pb2, gallery_pb2_grpc, recognition_pb2, recognition_pb2_grpc
from fr_gateway.faces.detector import align
from fr_gateway.faces.engine import FaceEngine, load_engine
from fr_gateway.faces.images import decode_image
from fr_gateway.gallery.nik import synthetic_nik
from fr_gateway.gallery.store import Enrolment, TemplateStore
from fr_gateway.security.certs import Principal
from fr_gateway.security.keys import KeyRing
from fr_gateway.server.process import GatewayProcess, gateway_process
from fr_gateway.transport import open_channel

CAMERA, ADMIN = Principal("camera", "BENCH-1"), Principal("admin", "BENCH")
PEER = {"loose_p50_ms": 54, "loose_p99_ms": 122, "loose_requests_per_s_4_clients": 26,
        "verify_p50_ms": 94}  # as reported; not ours
PEER_GALLERY, PEER_SIDE = 1_000, 250
# the default layout (one single-threaded recogniser run per core, for throughput) and one run on all cores
# (embed_workers = 1, for a lone request's latency)
PEER_LAYOUTS = {"default": {}, "embed_workers = 1": {"embed_workers": 1}}
# (cameras, crops unanswered per camera, offered load) of the rows sampled again with py-spy: flat out
PROFILED = {(4, 8, 0), (16, 8, 0)}


def decoded(crops: list[bytes]) -> list[np.ndarray]:
    return [decode_image(crop, 1 << 30, 1 << 30) for crop in crops]


def raw_limit(engine: FaceEngine, crops: list[np.ndarray], seconds: float) -> dict[int, float]:
    """Faces/s of the recogniser alone per batch size."""
    out = {}
    for batch in (1, 8, 16, 32, 64):
        items = [crops[n % len(crops)] for n in range(batch)]
        engine.embedder.embed(items)  # warm-up
        out[batch] = side_by_side(engine, items, seconds)
    return out


def side_by_side(engine: FaceEngine, items: list[np.ndarray], seconds: float) -> float:
    """Faces/s embedding `items` over and over with as many runs side by side as the engine has recogniser
    workers."""
    paces = [0.0] * engine.layout.workers

    def worker(number: int) -> None:
        paces[number] = len(items) * pace(lambda _: engine.embedder.embed(items), seconds)

    in_threads(worker, engine.layout.workers)
    return sum(paces)


def in_process_engines() -> dict[str, FaceEngine]:
    """The models in this process in the layouts the limit is the best of: one run on all cores with ONNX
    Runtime's idle threads spinning (its default, as the naive peer runs them) and not, and one single-threaded
    run per core (the gateway's default)."""
    layouts = {"all cores, spinning on": {"ort_spinning": True, "embed_workers": 1},
               "all cores, spinning off": {"ort_spinning": False, "embed_workers": 1},
               "one run per core": {}}
    return {name: load_engine(load_settings(environ={}, overrides=overrides)) for name, overrides in layouts.items()}


def best_of(engines: dict[str, FaceEngine], measure) -> tuple[dict, dict]:
    """measure(engine) for each engine, and per key the best of them (measure returns {key: faces/s})."""
    each = {name: measure(engine) for name, engine in engines.items()}
    return each, {key: max(found[key] for found in each.values()) for key in next(iter(each.values()))}


def pace(step: Callable[[int], object], seconds: float) -> float:
    """Calls per second of step(0), step(1), ... on this thread for `seconds`."""
    done, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        step(done)
        done += 1
    return done / (time.perf_counter() - started)


def naive_aligned(engine: FaceEngine, crops: list[np.ndarray], seconds: float) -> float:
    """Embed one aligned crop at a time."""
    return pace(lambda n: engine.embedder.embed([crops[n % len(crops)]]), seconds)


def naive_loose(engine: FaceEngine, photos: list[Path], seconds: float) -> float:
    """Decode, detect, align and embed one photo at a time."""

    def step(n: int) -> None:
        image = decode_image(photos[n % len(photos)].read_bytes(), 1 << 30, 1 << 30)
        faces = engine.detector.detect(image)
        if faces:
            engine.embedder.embed([align(image, faces[0])])

    return pace(step, seconds)


def cameras(target: str, tls, faces: list[face_pb2.Face], streams: int, seconds: float, window: int = 1,
            rate: float = 0.0) -> dict:
    """`streams` cameras for `seconds`, each with up to `window` crops unanswered. With `rate` (crops/s, all
    cameras together) a camera sends on a fixed schedule and, as a live camera must, drops a crop whose turn
    comes while its window is full; without it, it sends whenever the window has room."""
    latencies: list[list[float]] = [[] for _ in range(streams)]
    decisions: list[Counter[str]] = [Counter() for _ in range(streams)]
    dropped = [0] * streams
    started = time.perf_counter()
    stop = started + seconds

    def camera(number: int) -> None:
        room = threading.BoundedSemaphore(window)
        sent_at: dict[str, float] = {}

        def requests():
            n, due = number, started + (number / rate if rate else 0.0)
            while time.perf_counter() < stop:
                if rate:
                    time.sleep(max(0.0, due - time.perf_counter()))
                    due += streams / rate
                    if not room.acquire(blocking=False):
                        dropped[number] += 1
                        continue
                elif not room.acquire(timeout=30):
                    return
                request_id = f"{number}-{n}"
                sent_at[request_id] = time.perf_counter()
                yield recognition_pb2.IdentifyRequest(camera_id=CAMERA.identity, request_id=request_id,
                                                      face=faces[n % len(faces)])
                n += streams

        with open_channel(target, tls) as channel:
            for answer in recognition_pb2_grpc.RecognitionStub(channel).IdentifyStream(requests(), timeout=300):
                arrived = time.perf_counter()
                room.release()
                if arrived < stop:  # the answers that drain after the end are not counted
                    latencies[number].append(arrived - sent_at.pop(answer.request_id))
                    decisions[number][face_pb2.Decision.Name(answer.decision)] += 1

    in_threads(camera, streams)
    answered = summary(latencies, decisions)
    return {"streams": streams, "window": window, "offered_per_s": rate or None, "faces": answered["answered"],
            "faces_per_s": round(answered["answered"] / seconds, 1), "dropped_by_cameras": sum(dropped), **answered}


def in_threads(work, count: int) -> None:
    """work(0) ... work(count - 1), each on a thread of its own, until all have returned."""
    threads = [threading.Thread(target=work, args=(n,)) for n in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def summary(latencies: list[list[float]], decisions: list[Counter[str]]) -> dict:
    every = [x for per in latencies for x in per]
    return {"answered": len(every), "p50_ms": round(float(np.percentile(every, 50)) * 1000, 1),
            "p99_ms": round(float(np.percentile(every, 99)) * 1000, 1), "decisions": dict(sum(decisions, Counter()))}


def unary(target: str, tls, call, clients: int, seconds: float) -> dict:
    """`clients` callers for `seconds`, each sending its next request when the last is answered:
    `call(stub, n)` makes request n and returns its decision."""
    latencies: list[list[float]] = [[] for _ in range(clients)]
    decisions: list[Counter[str]] = [Counter() for _ in range(clients)]
    stop = time.perf_counter() + seconds

    def client(number: int) -> None:
        with open_channel(target, tls) as channel:
            stub, n = recognition_pb2_grpc.RecognitionStub(channel), number
            while time.perf_counter() < stop:
                started = time.perf_counter()
                decisions[number][face_pb2.Decision.Name(call(stub, n))] += 1
                latencies[number].append(time.perf_counter() - started)
                n += clients

    in_threads(client, clients)
    answered = summary(latencies, decisions)
    return {"clients": clients, "requests_per_s": round(answered["answered"] / seconds, 1), **answered}


def as_peer_photo(path: Path) -> bytes:
    """The photo as the peer's probes are: the largest centred square, 250x250, JPEG."""
    image = decode_image(path.read_bytes(), 1 << 30, 1 << 30)
    height, width = image.shape[:2]
    side = min(height, width)
    top, left = (height - side) // 2, (width - side) // 2
    square = cv2.resize(image[top:top + side, left:left + side], (PEER_SIDE, PEER_SIDE))
    return cv2.imencode(".jpg", square, [cv2.IMWRITE_JPEG_QUALITY, 95])[1].tobytes()


def peer_setting(folder: Path, engine: FaceEngine, folks: list[list[Path]], clients_tls: dict,
                 seconds: float) -> dict:
    """The peer's measurements repeated here: 1:N of a 250x250 photo against 1,000 people (one client, then
    four), and 1:1 of two 250x250 photos, unary over mutual TLS. Every probe is of an enrolled person. Measured
    with each recogniser layout of PEER_LAYOUTS."""
    fill_gallery(folder / "peer", engine, PEER_GALLERY - len(folks))
    probes = [as_peer_photo(photos[1]) for photos in folks]
    references = [as_peer_photo(photos[0]) for photos in folks]
    loose = [face_pb2.Face(image=photo, kind=face_pb2.LOOSE) for photo in probes]

    def identify(stub, n: int) -> int:
        return stub.Identify(recognition_pb2.IdentifyRequest(camera_id=ADMIN.identity,
                                                             face=loose[n % len(loose)]), timeout=30).decision

    def verify(stub, n: int) -> int:
        return stub.Verify(recognition_pb2.VerifyRequest(
            probe=loose[n % len(loose)],
            reference_face=face_pb2.Face(image=references[n % len(loose)], kind=face_pb2.LOOSE)),
            timeout=30).decision

    found: dict[str, dict] = {}
    for layout, overrides in PEER_LAYOUTS.items():
        with gateway_process(folder, "--certs", str(folder / "certs"), "--gallery", str(folder / "peer" / "gallery"),
                             rate_limit=0, streams_per_client=0, **overrides) as gateway:
            if not found:
                enrol_people(gateway.target, clients_tls[ADMIN], folks)
            unary(gateway.target, clients_tls[ADMIN], identify, 1, 2)  # warm-up
            found[layout] = {"identify_1_client": unary(gateway.target, clients_tls[ADMIN], identify, 1, seconds),
                             "identify_4_clients": unary(gateway.target, clients_tls[ADMIN], identify, 4, seconds),
                             "verify_1_client": unary(gateway.target, clients_tls[ADMIN], verify, 1, seconds)}
    return found


def tracking_saving(engine: FaceEngine, folks: list[list[Path]], frames_per_walk: int = 25) -> dict:
    """Each person walks past a 640x480 camera for one second at 25 frames/s, approaching; how many crops the
    camera sends with tracking, against one per detected face without it."""
    tracker = FaceTracker("BENCH")
    detected = sent = frame_number = 0
    for person, photos in enumerate(folks):
        image = decode_image(photos[1].read_bytes(), 1 << 30, 1 << 30)
        for step in range(frames_per_walk):
            side = int(150 + 100 * step / frames_per_walk)
            face = cv2.resize(image, (side * image.shape[1] // image.shape[0], side))[:, :300]
            canvas = np.full((480, 640, 3), 40, dtype=np.uint8)
            left = 20 + 10 * step if person % 2 == 0 else 600 - face.shape[1] - 10 * step
            canvas[100:100 + face.shape[0], left:left + face.shape[1]] = face
            faces = engine.detector.detect(canvas)
            detected += len(faces)
            sent += sum(tracked.send for tracked in tracker.update(frame_number * 40.0, faces))
            frame_number += 1
        frame_number += 5  # a gap between people
    return {"people": len(folks), "frames_per_person": frames_per_walk, "crops_without_tracking": detected,
            "crops_with_tracking": sent, "per_person_without": round(detected / len(folks), 1),
            "per_person_with": round(sent / len(folks), 1)}


def fill_gallery(folder: Path, engine: FaceEngine, size: int) -> None:
    """`size` synthetic templates written straight into a sealed store, as a big enrolment would leave it, with
    the gateway's audit keys beside it."""
    issue(folder / "keys" / "audit-gateway", folder / "auditor")
    keys = KeyRing.load(folder / "keys" / "gallery.json")
    store = TemplateStore(folder / "gallery", engine.pack.fingerprint, engine.pack.name, keys, engine.embedder.dim)
    shape = Realistic.load()
    for start in range(0, size, CHUNK):
        templates = shape.gallery(np.random.default_rng([2, start]), min(CHUNK, size - start))
        store.upsert_many(Enrolment(nik_of(start + n), template, {}) for n, template in enumerate(templates))
    store.close()


def enrol_people(target: str, tls, folks: list[list[Path]]) -> None:
    """The real people, by their first photo, through the gateway: every probe then has its mate."""
    with open_channel(target, tls) as channel:
        gallery_pb2_grpc.GalleryStub(channel).EnrollStream(iter(
            gallery_pb2.EnrollRequest(nik=synthetic_nik(n), face=face_pb2.Face(image=photos[0].read_bytes()))
            for n, photos in enumerate(folks)), timeout=300)


def gateway_providers(target: str, tls) -> list[str]:
    """The ONNX Runtime providers the gateway reports it runs on, for the table's footnote."""
    with open_channel(target, tls) as channel:
        return list(recognition_pb2_grpc.RecognitionStub(channel).GetInfo(recognition_pb2.GetInfoRequest(),
                                                                            timeout=30).providers)


def gateway_counters(gateway: GatewayProcess) -> dict[str, float]:
    """Running totals: the gateway's seconds per stage, batches and items per micro-batching stage and faces
    embedded (from its metrics), and the CPU seconds of the gateway and of this process (the cameras)."""
    text = urllib.request.urlopen(f"http://127.0.0.1:{gateway.metrics_port}/metrics", timeout=10).read().decode()
    totals = {"cpu:gateway": cpu_seconds(gateway.process.pid), "cpu:cameras": cpu_seconds(os.getpid()),
              "wall": time.perf_counter()}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            stage = sample.labels.get("stage", "")
            if sample.name in ("frgateway_stage_seconds_sum", "frgateway_batch_size_sum",
                               "frgateway_batch_size_count"):
                totals[f"{sample.name.removeprefix('frgateway_')}:{stage}"] = sample.value
            elif sample.name == "frgateway_faces_embedded_total":
                totals["faces"] = sample.value
            elif sample.name == "frgateway_model_cpu_seconds_total":
                totals[f"cpu:{sample.labels['model']}"] = sample.value
    return totals


def where_time_goes(before: dict[str, float], after: dict[str, float], workers: int) -> dict:
    """Per face the gateway embedded in a row: CPU milliseconds of the gateway and of the cameras, each stage's
    milliseconds, the recogniser's mean batch, and the share of the row's wall time its `workers` ran."""
    change = {name: after.get(name, 0.0) - before.get(name, 0.0) for name in after}
    faces = change.get("faces", 0.0) or 1.0
    batches = change.get("batch_size_count:embed", 0.0) or 1.0
    cpu_ms = {side: 1000 * change.get(f"cpu:{side}", 0.0) / faces
              for side in ("gateway", "cameras", "detector", "recognizer")}
    models = cpu_ms["detector"] + cpu_ms["recognizer"]
    return {"recogniser_busy": round(change.get("stage_seconds_sum:embed", 0.0) / change["wall"] / workers, 3),
            "mean_embed_batch": round(change.get("batch_size_sum:embed", 0.0) / batches, 1),
            "cpu_ms_per_face": {side: round(ms, 2) for side, ms in cpu_ms.items()},
            "beyond_models_ms": round(cpu_ms["gateway"] - models, 2),
            "beyond_models_share": round((cpu_ms["gateway"] - models) / (models or 1.0), 3),
            "ms_per_face": {stage: round(1000 * change.get(f"stage_seconds_sum:{stage}", 0.0) / faces, 2)
                            for stage in ("decode", "detect", "embed", "search", "audit")}}


def detector_by_batch(engine: FaceEngine, seconds: float) -> dict[str, float]:
    """Images/s of the detector alone by batch, at the input sides LOOSE photos get: whether batching it pays."""
    session = engine.detector.session
    name = session.get_inputs()[0].name
    out = {}
    for side in (256, 640):
        for batch in (1, 8):
            blob = np.random.default_rng(0).random((batch, 3, side, side), dtype=np.float32)
            session.run(None, {name: blob})
            done, started = 0, time.perf_counter()
            while time.perf_counter() - started < seconds:
                session.run(None, {name: blob})
                done += batch
            out[f"{side}px batch {batch}"] = round(done / (time.perf_counter() - started), 1)
    return out


def model_alone(engine: FaceEngine, items: list[np.ndarray], seconds: float) -> tuple[float, float]:
    """The recogniser alone in this process, in the gateway's layout: faces/s and CPU milliseconds a face."""
    cpu, started = time.process_time(), time.perf_counter()
    faces_per_s = side_by_side(engine, items, seconds)
    faces = faces_per_s * (time.perf_counter() - started)
    return faces_per_s, 1000 * (time.process_time() - cpu) / faces


def quick(gallery: int, seconds: float, index_kind: str, streams: int, kind: str) -> dict:
    """The gateway's own CPU a face beyond the models': `streams` cameras x 8 in flight of ALIGNED crops (or
    LOOSE photos) through a gateway over mutual TLS with its audit log, against a gallery of `gallery`; the limit
    (the recogniser side by side, or detect + embed one photo at a time) measured again just before the cameras,
    for the ratio; for ALIGNED, the recogniser alone in the gateway's layout beside it."""
    engine = load_engine(load_settings(environ={}))
    folks = people()
    photos = [photo for photos in folks for photo in photos[1:3]]
    crop_bytes = aligned_crops(engine, photos)
    crops = decoded(crop_bytes)
    items = [crops[n % len(crops)] for n in range(engine.layout.batch)]
    if kind == "ALIGNED":
        model_alone_cpu: float | None = model_alone(engine, items, seconds / 2)[1]
        faces = [face_pb2.Face(image=crop, kind=face_pb2.ALIGNED) for crop in crop_bytes]
        limit_of = functools.partial(side_by_side, engine, items, seconds / 2)
    else:
        model_alone_cpu = None
        faces = [face_pb2.Face(image=photo.read_bytes(), kind=face_pb2.LOOSE) for photo in photos]
        limit_of = functools.partial(naive_loose, engine, photos, seconds / 2)
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        _, clients = make_certs(folder / "certs", CAMERA, ADMIN)
        fill_gallery(folder / "index", engine, gallery)
        with gateway_process(folder, "--certs", str(folder / "certs"), "--gallery", str(folder / "index" / "gallery"),
                             rate_limit=0, streams_per_client=0, index_kind=index_kind) as gateway:
            enrol_people(gateway.target, clients[ADMIN], folks)
            cameras(gateway.target, clients[CAMERA], faces, streams, 2, window=8)  # warm-up
            limit = limit_of()
            before = gateway_counters(gateway)
            row = cameras(gateway.target, clients[CAMERA], faces, streams, seconds, window=8)
            spent = where_time_goes(before, gateway_counters(gateway), engine.layout.workers)
            profile = profiled(gateway, clients[CAMERA], faces, streams, seconds / 2)
    cpu_ms = spent["cpu_ms_per_face"]
    return {"kind": kind, "cameras": streams, "window": 8, "gallery": gallery, "index_kind": index_kind,
            "seconds": seconds,
            "faces_per_s": row["faces_per_s"], "limit_faces_per_s": round(limit, 1),
            "ratio_to_limit": round(row["faces_per_s"] / limit, 3), "p50_ms": row["p50_ms"], "p99_ms": row["p99_ms"],
            "gateway_cpu_ms_per_face": cpu_ms["gateway"],
            "model_cpu_ms_per_face": round(cpu_ms["detector"] + cpu_ms["recognizer"], 2),
            "gateway_cpu_ms_per_face_beyond_model": spent["beyond_models_ms"],
            "beyond_model_share": spent["beyond_models_share"],
            "model_alone_cpu_ms_per_face": model_alone_cpu and round(model_alone_cpu, 2),
            "ms_per_face_by_stage": spent["ms_per_face"], "mean_embed_batch": spent["mean_embed_batch"],
            "profile_cpu_ms_per_face": profile}


def profiled(gateway: GatewayProcess, tls, faces: list[face_pb2.Face], streams: int, seconds: float) -> dict:
    """The same load again with py-spy sampling the gateway (apart from the measured row, which the sampler's own
    CPU would slow): its CPU milliseconds a face by stage, and by thread, read a second before the load ends
    (while every stream is still open), beside the models' own."""
    pid = gateway.process.pid
    load = threading.Thread(target=cameras, args=(gateway.target, tls, faces, streams, seconds), kwargs={"window": 8})
    with sampling(pid, seconds) as samples:
        before, threads_before = gateway_counters(gateway), threads_cpu(pid)
        load.start()
        time.sleep(max(1.0, seconds - 1.0))
        after, threads_after, names = gateway_counters(gateway), threads_cpu(pid), thread_names(pid)
        load.join()
    faces_done = after.get("faces", 0.0) - before.get("faces", 0.0) or 1.0
    cpu_ms = where_time_goes(before, after, workers=1)["cpu_ms_per_face"]
    return {"by_stage": cpu_split(samples, after["wall"] - before["wall"], cpu_ms["gateway"], faces_done),
            "by_thread": threads_split(threads_before, threads_after, faces_done, names),
            "models": {model: cpu_ms[model] for model in ("detector", "recognizer")}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gallery", type=int, default=100_000)
    parser.add_argument("--seconds", type=float, help="per measurement (default 8; 20 with --quick)")
    parser.add_argument("--out", type=Path, help="output prefix (default benchmarks/realtime; with --quick, none)")
    parser.add_argument("--quick", action="store_true",
                        help="only the gateway's own CPU a face beyond the model's, in under 3 minutes")
    parser.add_argument("--index-kind", default="auto", help="the gallery's index (default auto: pqfs at 100k)")
    parser.add_argument("--cameras", type=int, default=4, help="with --quick: cameras, 8 crops in flight each "
                                                               "(default 4)")
    parser.add_argument("--kind", choices=("ALIGNED", "LOOSE"), default="ALIGNED",
                        help="with --quick: what the cameras send (default ALIGNED crops)")
    args = parser.parse_args()
    if args.quick:
        found = quick(args.gallery, args.seconds or 20.0, args.index_kind, args.cameras, args.kind)
        if args.out:
            args.out.with_suffix(".json").write_text(json.dumps(found, indent=2) + "\n")
        print(json.dumps(found), flush=True)
        return
    args.seconds = args.seconds or 8.0
    args.out = args.out or Path(__file__).resolve().parent / "realtime"
    engines = in_process_engines()
    engine, one_at_a_time = engines["one run per core"], {name: engines[name] for name in list(engines)[:2]}
    folks = people()
    probe_photos = [photo for photos in folks for photo in photos[1:3]]
    crop_bytes = aligned_crops(engine, probe_photos)
    crops = decoded(crop_bytes)
    limit_each, limit = best_of(engines, lambda each: raw_limit(each, crops, args.seconds / 2))
    best_batch = max(limit, key=limit.get)
    loose_each, loose_pace = best_of(one_at_a_time,
                                     lambda each: {"pace": naive_loose(each, probe_photos, args.seconds)})
    _, naive = best_of(one_at_a_time, lambda each: {"pace": naive_aligned(each, crops, args.seconds / 2)})
    model_alone_cpu = model_alone(engine, [crops[n % len(crops)] for n in range(engine.layout.batch)],
                            args.seconds / 2)[1]
    results = {"cpus": os.cpu_count(), "providers": engine.providers, "gallery": args.gallery,
               "index_kind": args.index_kind,
               "seconds_per_measurement": args.seconds,
               "raw_faces_per_s_by_batch": {str(k): round(v, 1) for k, v in limit.items()},
               "raw_by_layout": {name: {str(k): round(v, 1) for k, v in found.items()}
                                 for name, found in limit_each.items()},
               "raw_limit_faces_per_s": round(limit[best_batch], 1), "raw_best_batch": best_batch,
               "recogniser_workers": engine.layout.workers,
               "naive_aligned_faces_per_s": round(naive["pace"], 1),
               "naive_loose_faces_per_s": round(loose_pace["pace"], 1),
               "naive_loose_by_layout": {name: round(found["pace"], 1) for name, found in loose_each.items()},
               "detector_images_per_s": detector_by_batch(engine, args.seconds / 4),
               "model_alone_cpu_ms_per_face": round(model_alone_cpu, 2),
               "peer_reported": PEER, "tracking": tracking_saving(engine, folks), "gateway": []}
    print(json.dumps(results), flush=True)
    aligned = [face_pb2.Face(image=crop, kind=face_pb2.ALIGNED) for crop in crop_bytes]
    loose = [face_pb2.Face(image=photo.read_bytes(), kind=face_pb2.LOOSE) for photo in probe_photos]
    # each row's ratio is to its reference measured again just before it, in the best layout found above: this
    # machine's speed drifts by a fifth over minutes, and a ratio to a figure from minutes earlier drifts with it
    best_layout = max(limit_each, key=lambda name: limit_each[name][best_batch])
    loose_layout = max(loose_each, key=lambda name: loose_each[name]["pace"])
    batch_items = [crops[n % len(crops)] for n in range(best_batch)]
    reference = {"ALIGNED": lambda: side_by_side(engines[best_layout], batch_items, args.seconds / 4),
                 "LOOSE": lambda: naive_loose(engines[loose_layout], probe_photos, args.seconds / 4)}
    # (crops, cameras, crops each may have unanswered, offered crops/s as a share of what the gateway sustained flat
    # out in the row of the same crops, cameras and window before it; 0: flat out)
    plan = [("ALIGNED", 1, 1, 0), ("ALIGNED", 1, 8, 0), ("ALIGNED", 4, 8, 0), ("ALIGNED", 16, 8, 0),
            ("ALIGNED", 16, 8, 0.5), ("ALIGNED", 16, 8, 0.8), ("ALIGNED", 16, 8, 1.5),
            ("LOOSE", 1, 1, 0), ("LOOSE", 4, 1, 0), ("LOOSE", 16, 8, 0)]
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        _, clients = make_certs(folder / "certs", CAMERA, ADMIN)
        started = time.perf_counter()
        fill_gallery(folder / "index", engine, args.gallery)
        with gateway_process(folder, "--certs", str(folder / "certs"), "--gallery", str(folder / "index" / "gallery"),
                             rate_limit=0, streams_per_client=0, index_kind=args.index_kind) as gateway:
            results["gallery_build_s"] = round(time.perf_counter() - started, 1)
            enrol_people(gateway.target, clients[ADMIN], folks)
            results["gateway_providers"] = gateway_providers(gateway.target, clients[CAMERA])
            # every probe belongs to an enrolled person: the decisions column shows how many were MATCH
            cameras(gateway.target, clients[CAMERA], aligned, 4, 2, window=8)  # warm-up
            sustained = {}  # faces/s the gateway kept up flat out, by (kind, cameras, window)
            for kind, streams, window, load in plan:
                faces = aligned if kind == "ALIGNED" else loose
                beside = reference[kind]()
                before = gateway_counters(gateway)
                offered = load * sustained.get((kind, streams, window), 0.0)
                row = {"kind": kind, "limit_beside": round(beside, 1),
                       **cameras(gateway.target, clients[CAMERA], faces, streams, args.seconds, window, offered)}
                if not load:
                    sustained[(kind, streams, window)] = row["faces_per_s"]
                row["time"] = where_time_goes(before, gateway_counters(gateway), engine.layout.workers)
                row["vs_limit"] = round(row["faces_per_s"] / beside, 3)
                if (streams, window, load) in PROFILED:
                    row["profile"] = profiled(gateway, clients[CAMERA], faces, streams, args.seconds)
                row["gateway_rss_mib"] = rss_mib(gateway.process.pid)
                results["gateway"].append(row)
                print(json.dumps(row), flush=True)
        results["peer_setting"] = peer_setting(folder, engine, folks, clients, args.seconds)
        print(json.dumps(results["peer_setting"]), flush=True)
    _, after = best_of(engines, lambda each: raw_limit(each, crops, args.seconds / 2))
    results["raw_limit_after_faces_per_s"] = round(after[best_batch], 1)
    args.out.with_suffix(".json").write_text(json.dumps(results, indent=2) + "\n")
    args.out.with_suffix(".md").write_text(markdown(results))
    print(markdown(results))


def markdown(results: dict) -> str:
    limit, naive, loose = (results["raw_limit_faces_per_s"], results["naive_aligned_faces_per_s"],
                           results["naive_loose_faces_per_s"])
    lines = ["| path | crops | cameras | unanswered per camera | offered faces/s | faces/s | its limit just before | "
             "vs that limit | p50 ms | p99 ms | dropped by cameras | gateway RSS MiB | decisions |",
             "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
             f"| limit: recogniser alone, batch {results['raw_best_batch']} | aligned | | | | {limit} | | 1.0 "
             "| | | | | |",
             f"| naive, one face at a time in process | aligned | 1 | 1 | | {naive} | | {naive / limit:.2f} "
             "| | | | | |",
             f"| naive, one photo at a time in process (detect + embed) | loose | 1 | 1 | | {loose} | | 1.0 | | | | | "
             "|"]
    for row in results["gateway"]:
        counts = ", ".join(f"{name} {n}" for name, n in sorted(row["decisions"].items()))
        offered = "flat out" if row["offered_per_s"] is None else round(row["offered_per_s"], 1)
        lines.append(f"| gateway, IdentifyStream over mutual TLS | {row['kind'].lower()} | {row['streams']} | "
                     f"{row['window']} | {offered} | {row['faces_per_s']} | {row['limit_beside']} | "
                     f"{row['vs_limit']} | {row['p50_ms']} | {row['p99_ms']} | {row['dropped_by_cameras']} | "
                     f"{row['gateway_rss_mib']} | {counts} |")
    lines += time_table(results)
    tracking = results["tracking"]
    lines.append(f"\nCamera-side tracking ({tracking['people']} people each walking past for "
                 f"{tracking['frames_per_person']} frames): {tracking['per_person_with']} crops per person sent "
                 f"with tracking, {tracking['per_person_without']} without.")
    lines.append(f"\nDetector alone, images/s: {results['detector_images_per_s']}.")
    lines += peer_table(results["peer_setting"])
    lines.append(f"\nGallery: {results['gallery']:,} identities ({results.get('index_kind', 'ivfpq')}), built and "
                 f"loaded in {results['gallery_build_s']} s. The gateway runs in its own process; the cameras are "
                 "threads of the benchmark's, on the same CPUs. The limit for LOOSE photos is the naive in-process "
                 "detect + embed pace. The limit is the best of three layouts: one run on all cores with ONNX "
                 "Runtime's idle threads spinning (its default) and not, and one single-threaded run per core side by "
                 "side (the gateway's default, with as many recogniser workers); the naive paces are the better of "
                 "the first "
                 f"two. Recogniser faces/s by batch {results['raw_by_layout']}, naive LOOSE pace "
                 f"{results['naive_loose_by_layout']}; the "
                 f"limit measured again after the gateway rows: {results['raw_limit_after_faces_per_s']}. "
                 f"{results['cpus']} CPUs; ONNX Runtime providers {', '.join(results['providers'])} (in the "
                 f"gateway: {', '.join(results['gateway_providers'])}). Reproduce: `make bench-realtime`.")
    return "\n".join(lines) + "\n"


def time_table(results: dict) -> list[str]:
    """Where the gateway's time went in each row, from its own stage metrics and the CPU time of both
    processes, beside the recogniser alone."""
    alone = results["raw_faces_per_s_by_batch"]
    workers = results["recogniser_workers"]
    lines = ["\nWhere the time goes, per face embedded: the CPU milliseconds of the gateway, of its models' runs "
             "(ONNX Runtime, counted by the gateway itself around each run: the calling thread's CPU and that of "
             "the threads the session started), of the gateway beyond its models (its own work: on a GPU the "
             "models leave the CPU and this is what is left) and of the cameras (on the same CPUs); the share of "
             f"the row's wall time the recogniser's {workers} workers were running, its mean batch, and each "
             "stage's wall milliseconds from the gateway's metrics (a batch stage's time shared among its faces, so "
             f"with {workers} recogniser runs side by side its pace is {workers} times the embed column; decode is "
             "per request and includes waiting for the GIL; audit runs from the record's queueing to its being on "
             "disk, shared with the records written with it). At its best, the recogniser alone takes "
             + ", ".join(f"{1000 / rate:.1f} ms a face at batch {batch}" for batch, rate in alone.items())
             + f" of wall time, on all {results['cpus']} CPUs; its CPU a face, measured in this process in the "
             f"gateway's layout, is {results['model_alone_cpu_ms_per_face']} ms (in the gateway it is the models' "
             "column: the other threads there cost it some cache).\n",
             "| crops | cameras | unanswered per camera | offered faces/s | gateway CPU ms | models' | beyond the "
             "models' | / the models' | cameras CPU ms | recogniser busy | mean batch | decode | detect | embed | "
             "search | audit |",
             "| --- |" + " ---: |" * 15]
    for row in results["gateway"]:
        spent, offered = row["time"], "flat out" if row["offered_per_s"] is None else round(row["offered_per_s"], 1)
        cpu = spent["cpu_ms_per_face"]
        lines.append(f"| {row['kind'].lower()} | {row['streams']} | {row['window']} | {offered} | "
                     f"{cpu['gateway']:.2f} | {cpu['detector'] + cpu['recognizer']:.2f} | "
                     f"{spent['beyond_models_ms']} | {spent['beyond_models_share']} | {cpu['cameras']} | "
                     f"{spent['recogniser_busy']:.0%} | {spent['mean_embed_batch']} | "
                     + " | ".join(str(ms) for ms in spent["ms_per_face"].values()) + " |")
    return lines + profile_table(results)


def profile_table(results: dict) -> list[str]:
    """The sampled rows' CPU a face by stage (py-spy) and by thread (the kernel's count, Python's names)."""
    rows = [row for row in results["gateway"] if row.get("profile", {}).get("by_stage")]
    if not rows:
        return []
    heads = "| " + " | ".join(f"{row['kind'].lower()} {row['streams']} x {row['window']}" for row in rows) + " |"
    stages = list(dict.fromkeys(stage for row in rows for stage in row["profile"]["by_stage"]["ms_per_face"]))
    lines = ["\nWhere the gateway's CPU goes, by stage: the rows above run again for as long with py-spy sampling "
             "the gateway's Python threads (`benchmarks/cpu_profile.py`); each stage is the innermost frame of a "
             "sample that names one, given its share of the gateway's CPU a face. Sampled: the share of that CPU "
             "the samples account for.\n", "| stage " + heads, "| --- |" + " ---: |" * len(rows)]
    for stage in stages:
        lines.append(f"| {stage} | " + " | ".join(str(row["profile"]["by_stage"]["ms_per_face"].get(stage, 0.0))
                                                  for row in rows) + " |")
    lines.append("| sampled | " + " | ".join(f"{row['profile']['by_stage']['sampled']:.0%}" for row in rows) + " |")
    threads = list(dict.fromkeys(name for row in rows for name in row["profile"]["by_thread"]))
    lines += ["\nAnd by thread, to the nanosecond (the kernel's count of each thread's CPU in the same runs, read a "
              "second before their end, with Python's names for its threads; a pool's threads together): "
              "`grpc-loop` reads every camera's crops, decodes the aligned ones and sends the answers, `asyncio` "
              "(its helper threads) decodes LOOSE photos, `embed` runs the "
              "recogniser (the models' row is its share of them), `search` searches, decides and queues the audit "
              "record, `audit-writer` seals and writes the records, `event_engine` and `_poll_wrapper` are "
              "gRPC's core.\n",
              "| thread " + heads, "| --- |" + " ---: |" * len(rows)]
    lines.append("| models' runs | " + " | ".join(str(round(sum(row["profile"]["models"].values()), 3))
                                                 for row in rows) + " |")
    for name in threads:
        lines.append(f"| {name} | " + " | ".join(str(row["profile"]["by_thread"].get(name, 0.0)) for row in rows)
                     + " |")
    return lines


def peer_table(peer: dict) -> list[str]:
    """The peer's setting: the gateway's figures in each layout beside the ones the peer reports, and their
    ratio."""
    measures = [("1:N, one client, p50 ms", "identify_1_client", "p50_ms", "loose_p50_ms"),
                ("1:N, one client, p99 ms", "identify_1_client", "p99_ms", "loose_p99_ms"),
                ("1:N, four clients, requests/s", "identify_4_clients", "requests_per_s",
                 "loose_requests_per_s_4_clients"),
                ("1:1 of two photos, one client, p50 ms", "verify_1_client", "p50_ms", "verify_p50_ms")]
    lines = [f"\nThe peer's setting: a {PEER_SIDE}x{PEER_SIDE} photo (LOOSE) against {PEER_GALLERY:,} people, unary "
             "calls over mutual TLS, measured here in the gateway's default recogniser layout and with "
             "`embed_workers = 1` (one run on all cores: a lone request's latency before throughput); the peer's "
             "figures are as it reports them for a machine like this one, not measured here.\n",
             "| measure | " + " | ".join(f"gateway, {layout} | / peer" for layout in peer) + " | peer (reported) | "
             "decisions |",
             "| --- |" + " ---: | ---: |" * len(peer) + " ---: | --- |"]
    for name, run, figure, reported in measures:
        theirs = PEER[reported]
        ours = [found[run][figure] for found in peer.values()]
        counts = "; ".join(", ".join(f"{decision} {n}" for decision, n in sorted(found[run]["decisions"].items()))
                           for found in peer.values())
        lines.append(f"| {name} | " + " | ".join(f"{value} | {value / theirs:.2f}" for value in ours)
                     + f" | {theirs} | {counts} |")
    return lines


if __name__ == "__main__":
    main()
