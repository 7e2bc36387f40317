"""`make demo`: the main job end to end on the embedded default (FAISS, SQLite, offline buffalo_s pack).

1. creates a private CA with the server's and the camera's certificates (`fr-gateway certs init`) and the
   audit keys, the gateway's half and the auditor's (`fr-gateway audit keys init`);
2. enrols one photo per person from the sample faces (data/faces) under generated valid NIKs (`fr-gateway enroll`);
3. writes a camera video of people walking past: other photos of enrolled people and of people who are not
   enrolled, each over several frames, which the camera tracks so each person costs a few crops;
4. starts the gateway (`fr-gateway serve`, mutual TLS) on a free loopback port, streams the video through it
   (`fr-gateway camera` with its certificate), prints each decision, then stops the gateway;
   with a watchlist beside the gallery (`fr-gateway watchlist`): one person who is not enrolled is on it, from
   photos the camera never shows;
5. scores the decisions against the known truth: correct MATCHes and correct NO_MATCHes, and alerts for the
   listed person only;
6. as the auditor: verifies the audit log and exports the camera's records (`fr-gateway audit`).

With --console (`make console-demo`) the Command Center console (`fr-gateway console`) follows the gateway from
the start, with a demo account; after the scoring the camera replays its video every REPLAY_PAUSE_S seconds so
the camera wall stays live, until Ctrl-C, then the auditor's step runs.
"""

from __future__ import annotations

import argparse
import csv
import json
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import cv2
import numpy as np
from grpc_health.v1 import health_pb2, health_pb2_grpc

from fr_gateway.evaluation.dataset import sample_faces
from fr_gateway.gallery.nik import synthetic_nik
from fr_gateway.security.certs import Principal, TlsFiles
from fr_gateway.transport import open_channel

ROOT = Path(__file__).resolve().parent.parent
DATA = sample_faces()
OUT = ROOT / "demo-out"
FRAME_SIZE = (640, 480)
FPS = 8.0
WALK_FRAMES = 8  # frames a person takes to walk past
PROBES_PER_PERSON = 2
# (set, identities enrolled, identities left out of the gallery)
PEOPLE = (
    ("celebrities", [f"id{i:02d}" for i in range(10)], ["id10", "id11", "id12"]),
    ("orl", [f"s{i}" for i in range(1, 21)], [f"s{i}" for i in range(31, 37)]),
    ("fr-examples", ["biden", "obama", "kit_harington"], ["alex_lacamoire", "rose_leslie"]),
)
CAMERA_ID = "IKN-GATE-01"
WANTED = ("orl", "s31")  # not enrolled; on the demo's watchlist from photos the video does not show
WANTED_PHOTOS = slice(5, 8)
CERTS, AUDITOR_KEYS, AUDIT_LOG = OUT / "certs", OUT / "auditor-keys", OUT / "audit"
CONSOLE_CLIENT = "console-1"
CONSOLE_PORT = 8443
DEMO_USERS = (("supervisor", "supervisor"), ("operator", "operator"))  # (name, role)
REPLAY_PAUSE_S = 20


def photos(set_name: str, person: str) -> list[Path]:
    return sorted((DATA / set_name / person).iterdir(), key=lambda p: (len(p.name), p.name))


def walk_frames(image: np.ndarray, lane: int) -> list[np.ndarray]:
    """One person walking past the camera: WALK_FRAMES frames in which the face drifts across its lane and
    grows as the person comes closer. Three lanes apart, so people one after another do not overlap."""
    width, height = FRAME_SIZE
    frames = []
    for step in range(WALK_FRAMES):
        scale = (0.30 + 0.12 * step / WALK_FRAMES) * height / image.shape[0]
        scale = min(scale, 0.3 * width / image.shape[1])
        resized = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC)
        centre_x = int(width * (lane + 0.5) / 3) + int(20 * (step / WALK_FRAMES - 0.5))
        top = (height - resized.shape[0]) // 2
        left = min(max(0, centre_x - resized.shape[1] // 2), width - resized.shape[1])
        canvas = np.full((height, width, 3), 40, dtype=np.uint8)
        canvas[top:top + resized.shape[0], left:left + resized.shape[1]] = resized
        frames.append(canvas)
    return frames


def build_inputs() -> tuple[Path, Path, list[dict]]:
    """Write the enrolment manifest and the camera video; return them with the truth of every walk past
    (its first and last frame, and the NIK, empty for people who are not enrolled)."""
    manifest, video = OUT / "manifest.csv", OUT / "checkpoint.avi"
    nik_of: dict[str, str] = {}
    truth: list[dict] = []
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), FPS, FRAME_SIZE)
    with manifest.open("w", newline="") as handle:
        rows = csv.writer(handle)
        rows.writerow(["nik", "photo", "name"])
        for set_name, enrolled, left_out in PEOPLE:
            for person in enrolled + left_out:
                label = f"{set_name}/{person}"
                pictures = photos(set_name, person)
                if person in enrolled:
                    nik_of[label] = synthetic_nik(len(nik_of))
                    rows.writerow([nik_of[label], pictures[0], label])
                    pictures = pictures[1:]
                for picture in pictures[:PROBES_PER_PERSON]:
                    first = len(truth) * WALK_FRAMES
                    for frame in walk_frames(cv2.imread(str(picture), cv2.IMREAD_COLOR), len(truth) % 3):
                        writer.write(frame)
                    truth.append({"first": first, "last": first + WALK_FRAMES - 1, "person": label,
                                  "nik": nik_of.get(label, "")})
    writer.release()
    return manifest, video, truth


def fr_gateway(*args: str, **kwargs) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "fr_gateway.cli", *args], **kwargs)


def camera_tls_flags() -> list[str]:
    stem = CERTS / f"camera-{CAMERA_ID}"
    return ["--cert", f"{stem}.pem", "--key", f"{stem}.key", "--ca", str(CERTS / "ca.pem")]


def wait_port_file(port_file: Path, process: subprocess.Popen, what: str, timeout: float = 120.0) -> int:
    deadline = time.monotonic() + timeout
    while not (port_file.exists() and port_file.read_text().strip()):
        if process.poll() is not None:
            raise SystemExit(f"the {what} exited with status {process.returncode} (its log above says why)")
        if time.monotonic() > deadline:
            raise SystemExit(f"the {what} did not start in time")
        time.sleep(0.2)
    return int(port_file.read_text())


def start_console(gateway_port: int) -> tuple[subprocess.Popen, str, str]:
    """The console following the gateway, on port 8443 when free; returns it, its address and the password of
    the demo accounts."""
    password = secrets.token_urlsafe(12)
    users = OUT / "console-users.sqlite3"
    for name, role in DEMO_USERS:
        added = subprocess.run([sys.executable, "-m", "fr_gateway.cli", "console", "users", "add", name, "--role",
                                role, "--password-stdin", "--users", str(users)], input=password + "\n", text=True)
        if added.returncode != 0:
            raise SystemExit("could not create the demo's console accounts")
    with socket.socket() as probe:
        listen = f"127.0.0.1:{CONSOLE_PORT if probe.connect_ex(('127.0.0.1', CONSOLE_PORT)) else 0}"
    port_file = OUT / "console-port"
    console = fr_gateway("console", "--gateway", f"127.0.0.1:{gateway_port}", "--listen", listen, "--port-file",
                         str(port_file), "--users", str(users), "--https-cert", str(CERTS / "console.pem"),
                         "--https-key", str(CERTS / "console.key"), "--cert",
                         str(CERTS / f"operator-{CONSOLE_CLIENT}.pem"), "--key",
                         str(CERTS / f"operator-{CONSOLE_CLIENT}.key"), "--ca", str(CERTS / "ca.pem"))
    return console, f"https://127.0.0.1:{wait_port_file(port_file, console, 'console')}/", password


def show_console(url: str, password: str) -> None:
    print(f"\n== the Command Center console: {url}\n   sign in as 'supervisor' (live view and analytics) or "
          f"'operator' (live view), password {password}\n   the browser warns about the certificate: it comes "
          f"from the demo's private CA ({(CERTS / 'ca.pem').relative_to(ROOT)}); accept it, or import that CA",
          flush=True)


def replay(port: int, video: Path) -> None:
    """Stream the video again and again, so the console's camera wall stays live, until Ctrl-C."""
    print(f"== replaying the camera video every {REPLAY_PAUSE_S} s; Ctrl-C stops the demo", flush=True)
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # a service manager's stop ends it as Ctrl-C does
    camera = None
    try:
        while True:
            camera = fr_gateway("camera", "--source", str(video), "--camera-id", CAMERA_ID, *camera_tls_flags(),
                                "--target", f"127.0.0.1:{port}", stdout=subprocess.DEVNULL)
            camera.wait()
            time.sleep(REPLAY_PAUSE_S)
    except KeyboardInterrupt:
        print("\n== stopping", flush=True)
    finally:
        if camera and camera.poll() is None:
            camera.send_signal(signal.SIGINT)
            camera.wait(timeout=30)


def wait_serving(port_file: Path, server: subprocess.Popen, timeout: float = 120.0) -> int:
    port = wait_port_file(port_file, server, "gateway", timeout)
    deadline = time.monotonic() + timeout
    tls = TlsFiles.for_client(CERTS, Principal("camera", CAMERA_ID))
    while time.monotonic() < deadline:
        with open_channel(f"127.0.0.1:{port}", tls) as channel:
            status = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
        if status.status == health_pb2.HealthCheckResponse.SERVING:
            return port
        time.sleep(0.2)
    raise SystemExit("the gateway did not start in time")


def score(truth: list[dict], decisions_file: Path) -> int:
    """Compare the first decision of each walk past with the truth, and each walk's alerts with who is on the
    watchlist; return non-zero if the demo shows no success or a wrong alert."""
    first_decision, alerted = {}, set()
    for line in decisions_file.read_text().splitlines():
        record = json.loads(line)
        first_decision.setdefault(record["frame"] // WALK_FRAMES, record)
        if record["alerts"]:
            alerted.add(record["frame"] // WALK_FRAMES)
    tally = {"correct MATCH": 0, "wrong NIK": 0, "missed (NO_MATCH)": 0, "correct NO_MATCH": 0,
             "false MATCH": 0, "no decision (no face, rejected)": 0}
    for number, walk in enumerate(truth):
        got = first_decision.get(number)
        if got is None or got["decision"] not in ("MATCH", "NO_MATCH"):
            tally["no decision (no face, rejected)"] += 1
        elif walk["nik"]:
            key = "missed (NO_MATCH)" if got["decision"] == "NO_MATCH" else (
                "correct MATCH" if got["nik"] == walk["nik"] else "wrong NIK")
            tally[key] += 1
        else:
            tally["correct NO_MATCH" if got["decision"] == "NO_MATCH" else "false MATCH"] += 1
    enrolled = sum(1 for walk in truth if walk["nik"])
    print(f"\nscored {len(truth)} people walking past: {enrolled} enrolled, {len(truth) - enrolled} "
          "not enrolled")
    for key, count in tally.items():
        print(f"  {key:<34} {count}")
    wanted = {number for number, walk in enumerate(truth) if walk["person"] == "/".join(WANTED)}
    print(f"watchlist alerts: {len(alerted & wanted)} of {len(wanted)} walks of the listed person, "
          f"{len(alerted - wanted)} of {len(truth) - len(wanted)} walks of everyone else")
    return 0 if tally["correct MATCH"] and tally["correct NO_MATCH"] and alerted == wanted else 1


def audit_report() -> int:
    """What an auditor does afterwards, with the auditor's keys only."""
    print("\n== the auditor verifies the audit log and exports this camera's records", flush=True)
    if fr_gateway("audit", "verify", "--dir", str(AUDIT_LOG), "--keys", str(AUDITOR_KEYS)).wait() != 0:
        return 1
    exported = OUT / f"audit-{CAMERA_ID}.csv"
    if fr_gateway("audit", "export", "--dir", str(AUDIT_LOG), "--keys", str(AUDITOR_KEYS), "--camera", CAMERA_ID,
                  "--format", "csv", "--out", str(exported)).wait() != 0:
        return 1
    with exported.open() as handle:
        decisions = Counter(row["decision"] for row in csv.DictReader(handle))
    print(f"{exported.relative_to(ROOT)}: " + ", ".join(f"{d} {n}" for d, n in sorted(decisions.items())))
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description="the main job end to end (make demo)")
    parser.add_argument("--console", action="store_true", help="with the Command Center console, until Ctrl-C")
    args = parser.parse_args()
    if not DATA.is_dir():
        print(f"labelled faces not found at {DATA}: they ship in the checkout (data/faces); FRG_TEST_DATA, "
              "when set, must name a folder laid out the same way", file=sys.stderr)
        return 2
    shutil.rmtree(OUT, ignore_errors=True)
    OUT.mkdir()
    gallery, port_file, decisions = OUT / "gallery", OUT / "port", OUT / "decisions.jsonl"
    print("== a private CA, the server's and the camera's certificates, and the audit keys", flush=True)
    if fr_gateway("certs", "init", "--dir", str(CERTS), "--client", f"camera:{CAMERA_ID}", "--client",
                  f"operator:{CONSOLE_CLIENT}").wait() != 0 or \
            fr_gateway("certs", "server", "console", "--dir", str(CERTS)).wait() != 0 or \
            fr_gateway("audit", "keys", "init", "--gateway", str(OUT / "keys" / "audit-gateway"),
                       "--auditor", str(AUDITOR_KEYS)).wait() != 0:
        return 1
    manifest, video, truth = build_inputs()
    print(f"== enrolling {manifest.relative_to(ROOT)} into {gallery.relative_to(ROOT)}", flush=True)
    if fr_gateway("enroll", "--manifest", str(manifest), "--gallery", str(gallery)).wait() != 0:
        return 1
    print(f"== a watchlist beside the gallery, with {'/'.join(WANTED)} on it", flush=True)
    if fr_gateway("watchlist", "create", "missing-persons", "--reason", "demo: missing person report",
                  "--owner", "Polda Kaltim", "--priority", "high", "--gallery", str(gallery)).wait() != 0 or \
            fr_gateway("watchlist", "add", "missing-persons", "--label", "/".join(WANTED), "--case", "LP/DEMO/1",
                       "--photo", *map(str, photos(*WANTED)[WANTED_PHOTOS]), "--gallery", str(gallery)).wait() != 0:
        return 1
    print(f"== starting the gateway; camera video {video.relative_to(ROOT)} ({len(truth)} people walking past, "
          f"{len(truth) * WALK_FRAMES} frames)", flush=True)
    server = fr_gateway("serve", "--certs", str(CERTS), "--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0",
                        "--gallery", str(gallery), "--port-file", str(port_file))
    console = None
    try:
        port = wait_serving(port_file, server)
        if args.console:
            console, url, password = start_console(port)
            show_console(url, password)
        camera = fr_gateway("camera", "--source", str(video), "--camera-id", CAMERA_ID, *camera_tls_flags(),
                            "--target", f"127.0.0.1:{port}", "--jsonl", str(decisions))
        if camera.wait() != 0:
            return 1
        scored = score(truth, decisions)
        if console:
            show_console(url, password)
            replay(port, video)
    finally:
        for process in (console, server):
            if process and process.poll() is None:
                process.send_signal(signal.SIGTERM)
                process.wait(timeout=30)
    return scored or audit_report()


if __name__ == "__main__":
    sys.exit(main())
