"""kill -9 at random points loses no acknowledged enrolment, and the next start serves a consistent gallery.

The seed of the random kill points is printed; FRG_CRASH_SEED=<seed> replays a run."""

from __future__ import annotations

import csv
import functools
import io
import json
import os
import random
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import grpc
from conftest import launch, loose, nik_for, photos, serving, stop

from fr_gateway.audit.export import Selection, export
from fr_gateway.audit.keys import AuditorKeys
from fr_gateway.contract import face_pb2, gallery_pb2, gallery_pb2_grpc, recognition_pb2, recognition_pb2_grpc
from fr_gateway.faces.models import locate_pack
from fr_gateway.gallery.store import TemplateStore
from fr_gateway.security.keys import KeyRing

SEED = int(os.environ.get("FRG_CRASH_SEED", time.time_ns() % 1_000_000))
ACK = re.compile(r"acknowledged through manifest line (\d+)")


@functools.cache
def rows() -> list[tuple[str, Path]]:
    """120 records: three photos of each ORL person, each photo under its own NIK."""
    return [(nik_for(n), photos("orl", f"s{1 + n % 40}")[n // 40]) for n in range(120)]


def cli(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "fr_gateway.cli", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def open_store(gallery: Path) -> TemplateStore:
    pack = locate_pack()
    return TemplateStore(gallery, pack.fingerprint, pack.name,
                         KeyRing.load(gallery.parent / "keys" / f"{gallery.name}.json", create=False))


def enrol_until_killed(manifest: Path, gallery: Path, rng: random.Random) -> int:
    """Run `fr-gateway enroll`, SIGKILL it at a random moment after its first acknowledgement; return the
    last manifest line it acknowledged (0 if none)."""
    process = cli("-v", "enroll", "--manifest", str(manifest), "--gallery", str(gallery), "--no-progress")
    acknowledged = [0]
    first = threading.Event()

    def read_log() -> None:
        for line in process.stderr:
            if match := ACK.search(line):
                acknowledged.append(int(match.group(1)))
                first.set()
        first.set()

    reader = threading.Thread(target=read_log, daemon=True)
    reader.start()
    assert first.wait(120), "the enrolment never acknowledged anything"
    time.sleep(rng.uniform(0.0, 1.5))
    process.send_signal(signal.SIGKILL)
    process.wait(30)
    reader.join(10)
    return max(acknowledged)


def test_killing_an_enrolment_run_loses_nothing_acknowledged(engine, tmp_path):
    rng = random.Random(SEED)
    manifest = tmp_path / "people.csv"
    with manifest.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["nik", "photo"])
        writer.writerows(rows())
    gallery = tmp_path / "gallery"
    for attempt in range(4):
        last_line = enrol_until_killed(manifest, gallery, rng)
        store = open_store(gallery)
        try:
            present = {nik for niks, _ in store.iter_templates() for nik in niks}  # every record opens
        finally:
            store.close()
        acknowledged = {nik for nik, _ in rows()[: last_line - 1]}  # manifest line 2 is rows()[0]
        assert acknowledged <= present, f"seed {SEED}, kill {attempt}: lost {sorted(acknowledged - present)}"

    finish = cli("enroll", "--manifest", str(manifest), "--gallery", str(gallery), "--no-progress")
    out, err = finish.communicate(timeout=300)
    assert finish.returncode == 0, err
    assert re.search(r"rejected 0 of 120 records", out), out
    with serving(engine, gallery) as client:
        answer = client.recognition.Identify(recognition_pb2.IdentifyRequest(face=loose(photos("orl", "s7")[5])))
        assert answer.gallery_size == 120
        assert answer.decision == face_pb2.MATCH and answer.candidates[0].nik in {nik_for(6), nik_for(46), nik_for(86)}


def test_killing_a_serving_gateway_loses_no_acknowledged_enroll(tmp_path, rounds=3):
    """Neither the enrolment nor its audit record: after the kills the audit log verifies, with each torn
    tail noted, and holds an Enroll record for every acknowledged NIK."""
    rng = random.Random(SEED + 1)
    gallery = tmp_path / "gallery"
    acknowledged: list[str] = []
    records = iter(rows())
    for _ in range(rounds):
        gateway = launch(tmp_path, "--insecure", "--gallery", str(gallery))
        threading.Timer(rng.uniform(0.3, 1.5), gateway.process.send_signal, (signal.SIGKILL,)).start()
        with grpc.insecure_channel(gateway.target) as channel:
            stub = gallery_pb2_grpc.GalleryStub(channel)
            for nik, photo in records:
                try:
                    answer = stub.Enroll(gallery_pb2.EnrollRequest(nik=nik, face=loose(photo)), timeout=10)
                except grpc.RpcError:
                    break
                assert answer.enrolled
                acknowledged.append(nik)
        gateway.process.wait(30)
    assert acknowledged, f"seed {SEED}: nothing was enrolled before the kills"

    gateway = launch(tmp_path, "--insecure", "--gallery", str(gallery))
    try:
        with grpc.insecure_channel(gateway.target) as channel:
            stub = recognition_pb2_grpc.RecognitionStub(channel)
            for nik in acknowledged:
                photo = dict(rows())[nik]
                answer = stub.Verify(recognition_pb2.VerifyRequest(probe=loose(photo), nik=nik), timeout=30)
                assert answer.match, f"seed {SEED}: acknowledged {nik} does not verify"
    finally:
        stop(gateway)
    auditor = AuditorKeys.load(tmp_path / "keys" / "audit-auditor")
    out = io.StringIO()
    report = export(tmp_path / "audit", auditor, out, "jsonl", Selection(operation="Enroll")).report
    assert report.intact, report.text()
    audited = {json.loads(line).get("nik") for line in out.getvalue().splitlines()[1:]}
    assert set(acknowledged) <= audited, f"seed {SEED}: enrolments without an audit record"
