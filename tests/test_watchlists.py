"""Watchlists end to end, over mutual TLS with a gateway in its own process: an integrator creates a list and
adds a person from photos; a camera's stream raises alerts for that person only while every face still gets
its gallery decision; an operator watches the alerts live, with the crop, and adjudicates one (found in the
audit export); a webhook receiver on 127.0.0.1 gets each alert signed, and an alert is delivered after the
gateway is killed with it in the outbox."""

from __future__ import annotations

import contextlib
import datetime
import http.server
import json
import queue
import ssl
import threading
import time
from collections.abc import Iterator
from email.message import Message
from pathlib import Path

import cv2
import grpc
import numpy as np
import pytest
from conftest import (
    ENROLLED,
    NOT_ENROLLED,
    Site,
    add_entry,
    audit_records,
    create_list,
    create_site,
    fr_gateway,
    launch,
    loose,
    nik_for,
    photos,
    refused,
    stop,
)

from fr_gateway.contract import (
    face_pb2,
    gallery_pb2,
    gallery_pb2_grpc,
    recognition_pb2,
    recognition_pb2_grpc,
    watchlists_pb2,
    watchlists_pb2_grpc,
)
from fr_gateway.security.certs import Principal
from fr_gateway.security.keys import KeyRing
from fr_gateway.transport import free_port
from fr_gateway.watchlists.store import AlertRecord, WatchlistStore
from fr_gateway.watchlists.webhooks import SIGNATURE_HEADER, TIMESTAMP_HEADER, signature, verify

INTEGRATOR = Principal("integrator", "DUKCAPIL-1")
CAMERA = Principal("camera", "GATE-1")
OPERATOR = Principal("operator", "OPS-1")
WANTED = NOT_ENROLLED[0]  # on the watchlist, not in the gallery
GALLERY_PEOPLE = ENROLLED[:4]
STRANGERS = NOT_ENROLLED[1:4]  # in neither


class Receiver:
    """An HTTPS webhook endpoint on 127.0.0.1 that keeps every delivery."""

    def __init__(self, certs: Path, port: int = 0) -> None:
        self.deliveries: queue.Queue[tuple[Message, bytes]] = queue.Queue()  # headers read in any case
        deliveries = self.deliveries

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                deliveries.put((self.headers, body))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
        tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        tls.load_cert_chain(certs / "server.pem", certs / "server.key")
        self.server.socket = tls.wrap_socket(self.server.socket, server_side=True)
        self.url = f"https://127.0.0.1:{self.server.server_address[1]}/alerts"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def next(self, timeout: float = 30) -> tuple[Message, bytes]:
        return self.deliveries.get(timeout=timeout)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def collect(stream: Iterator, into: queue.Queue) -> None:
    """A server stream's messages, until the test cancels it."""
    with contextlib.suppress(grpc.RpcError):
        for message in stream:
            into.put(message)


@contextlib.contextmanager
def receiving(certs: Path, port: int = 0) -> Iterator[Receiver]:
    receiver = Receiver(certs, port)
    try:
        yield receiver
    finally:
        receiver.close()


def identify(channel: grpc.Channel, who: tuple[str, str], photo: int = 2) -> recognition_pb2.IdentifyResponse:
    return recognition_pb2_grpc.RecognitionStub(channel).Identify(
        recognition_pb2.IdentifyRequest(face=loose(photos(*who)[photo])), timeout=30)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Site, Receiver]]:
    site = create_site(tmp_path_factory.mktemp("watch"), INTEGRATOR, CAMERA, OPERATOR)
    with receiving(site.certs) as receiver:
        gateway = launch(site.folder, "--certs", str(site.certs), "--gallery", str(site.folder / "g"),
                         webhooks=(receiver.url,), webhook_ca=str(site.certs / "ca.pem"))
        try:
            site.target = gateway.target
            with site.channel(INTEGRATOR) as channel:
                summary = gallery_pb2_grpc.GalleryStub(channel).EnrollStream(iter(
                    gallery_pb2.EnrollRequest(nik=nik_for(i), face=loose(photos(*who)[0]))
                    for i, who in enumerate(GALLERY_PEOPLE)), timeout=120)
                assert summary.enrolled == len(GALLERY_PEOPLE)
            yield site, receiver
        finally:
            site.log = stop(gateway)


def test_roles_keep_lists_to_integrators_and_adjudication_to_operators(site):
    site, _ = site
    denied = grpc.StatusCode.PERMISSION_DENIED
    with site.channel(CAMERA) as channel:
        assert refused(lambda: create_list(channel, "camera-list")) == denied
    with site.channel(OPERATOR) as channel:
        enrol = gallery_pb2.EnrollRequest(nik=nik_for(90), face=loose(photos(*WANTED)[0]))
        assert refused(lambda: gallery_pb2_grpc.GalleryStub(channel).Enroll(enrol, timeout=30)) == denied
        assert refused(lambda: create_list(channel, "operator-list")) == denied
    with site.channel(INTEGRATOR) as channel:
        adjudicate = watchlists_pb2.AdjudicateRequest(alert_id="A0", adjudication=watchlists_pb2.CONFIRMED)
        assert refused(lambda: watchlists_pb2_grpc.WatchlistsStub(channel).Adjudicate(adjudicate, timeout=30)) == \
            denied


def test_a_listed_person_raises_alerts_for_that_person_only(site):
    site, receiver = site
    with site.channel(INTEGRATOR) as channel:
        info = create_list(channel, "missing", target_fpir=0.01, expected_templates=10,
                           priority=watchlists_pb2.PRIORITY_HIGH)
        assert info.threshold_origin == "chosen for FPIR 0.01 at 10 templates" and info.HasField("false_match_rate")
        assert refused(lambda: create_list(channel, "missing", threshold=0.5)) == grpc.StatusCode.ALREADY_EXISTS
        # 16,915 impostor comparisons cannot show 1e-9 a comparison
        assert refused(lambda: create_list(channel, "strict", target_fpir=0.000001, expected_templates=1000)) == \
            grpc.StatusCode.FAILED_PRECONDITION
        entry = add_entry(channel, "missing", WANTED)
        assert entry.entry_id.startswith("W") and entry.templates == 2 and not entry.rejects

    alerts: queue.Queue[watchlists_pb2.Alert] = queue.Queue()
    with site.channel(OPERATOR) as watching, site.channel(CAMERA) as camera:
        stream = recognition_pb2_grpc.RecognitionStub(watching).WatchAlerts(
            watchlists_pb2.WatchAlertsRequest(with_evidence=True))
        threading.Thread(target=collect, args=(stream, alerts), daemon=True).start()
        time.sleep(0.5)  # subscribed before the camera starts
        faces = [WANTED, *GALLERY_PEOPLE, *STRANGERS]
        answers = list(recognition_pb2_grpc.RecognitionStub(camera).IdentifyStream(iter(
            recognition_pb2.IdentifyRequest(face=loose(photos(*who)[2]), track_id=f"t{n}")
            for n, who in enumerate(faces)), timeout=120))
        alert = alerts.get(timeout=30)
        stream.cancel()

    wanted, *others = answers
    assert [hit.entry_id for hit in wanted.watchlist_hits] == [entry.entry_id]
    hit = wanted.watchlist_hits[0]
    assert hit.score >= hit.threshold == pytest.approx(info.threshold) and hit.label == "/".join(WANTED)
    assert wanted.decision == face_pb2.NO_MATCH  # the gallery's answer is its own
    assert not any(answer.watchlist_hits for answer in others)
    for number, answer in enumerate(others[:len(GALLERY_PEOPLE)]):
        assert answer.decision == face_pb2.MATCH and answer.candidates[0].nik == nik_for(number)
    assert all(answer.decision == face_pb2.NO_MATCH for answer in others[len(GALLERY_PEOPLE):])

    assert alert.alert_id == hit.alert_id and alert.camera_id == CAMERA.identity and alert.track_id == "t0"
    crop = cv2.imdecode(np.frombuffer(alert.evidence, np.uint8), cv2.IMREAD_COLOR)
    assert crop.shape == (112, 112, 3)

    headers, body = receiver.next()
    secret = (site.folder / "keys" / "webhook-secret").read_text().strip().encode()
    assert verify(secret, headers[TIMESTAMP_HEADER], body, headers[SIGNATURE_HEADER])
    delivered = json.loads(body)
    assert (delivered["alert_id"], delivered["entry_id"], delivered["priority"]) == (hit.alert_id, entry.entry_id,
                                                                                     "HIGH")
    tampered = body.replace(b'"GATE-1"', b'"GATE-2"')
    assert not verify(secret, headers[TIMESTAMP_HEADER], tampered, headers[SIGNATURE_HEADER])

    with site.channel(OPERATOR) as channel:
        desk = watchlists_pb2_grpc.WatchlistsStub(channel)
        decided = desk.Adjudicate(watchlists_pb2.AdjudicateRequest(
            alert_id=hit.alert_id, adjudication=watchlists_pb2.CONFIRMED, note="seen at gate 1, family called"),
            timeout=30)
        assert decided.adjudicated_by == "operator/OPS-1"
        again = watchlists_pb2.AdjudicateRequest(alert_id=hit.alert_id, adjudication=watchlists_pb2.DISMISSED)
        assert refused(lambda: desk.Adjudicate(again, timeout=30)) == grpc.StatusCode.FAILED_PRECONDITION
        [listed] = [w for w in desk.ListWatchlists(watchlists_pb2.ListWatchlistsRequest(), timeout=30).watchlists
                    if w.name == "missing"]
        assert (listed.entries, listed.templates, listed.alerts, listed.confirmed) == (1, 2, 1, 1)
        assert listed.expected_false_alerts_per_day > 0
    with site.channel(CAMERA) as channel:  # what every client's GetInfo, and `fr-gateway info`, tells
        info = recognition_pb2_grpc.RecognitionStub(channel).GetInfo(recognition_pb2.GetInfoRequest(), timeout=30)
    [described] = [w for w in info.watchlists if w.name == "missing"]
    assert described.threshold_origin == listed.threshold_origin and described.confirmed == 1

    [adjudicated] = site.export("--operation", "Adjudicate", "--decision", "CONFIRMED")[1:]
    assert adjudicated["caller"] == "operator/OPS-1" and hit.alert_id in adjudicated["detail"]
    [identified] = [r for r in site.export("--operation", "Identify")[1:] if r["alerts"]]
    assert identified["alerts"][0]["alert_id"] == hit.alert_id


def test_an_expired_entry_stops_alerting(site):
    site, _ = site
    who = NOT_ENROLLED[4]
    with site.channel(INTEGRATOR) as channel:
        create_list(channel, "banned", threshold=0.4)
        expires = datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=20)
        entry = add_entry(channel, "banned", who, expires=expires.isoformat())
    with site.channel(CAMERA) as camera:
        assert [hit.entry_id for hit in identify(camera, who).watchlist_hits] == [entry.entry_id]
        time.sleep(max(0.0, (expires - datetime.datetime.now(datetime.UTC)).total_seconds()) + 0.5)
        assert not identify(camera, who).watchlist_hits


def test_an_alert_in_the_outbox_survives_kill_9(tmp_path):
    site = create_site(tmp_path, INTEGRATOR, CAMERA, OPERATOR)
    port = free_port()  # nobody listens yet: the delivery fails and stays in the outbox
    settings = {"webhooks": (f"https://127.0.0.1:{port}/alerts",), "webhook_ca": str(site.certs / "ca.pem")}
    gateway = launch(site.folder, "--certs", str(site.certs), "--gallery", str(site.folder / "g"), **settings)
    try:
        site.target = gateway.target
        with site.channel(INTEGRATOR) as channel:
            create_list(channel, "wanted", threshold=0.4)
            add_entry(channel, "wanted", WANTED)
        with site.channel(CAMERA) as camera:
            [hit] = identify(camera, WANTED).watchlist_hits
    finally:
        gateway.process.kill()  # SIGKILL, with the alert acknowledged but not delivered
        gateway.process.wait()
    with receiving(site.certs, port) as receiver:
        gateway = launch(site.folder, "--certs", str(site.certs), "--gallery", str(site.folder / "g"), **settings)
        try:
            _, body = receiver.next(timeout=60)
        finally:
            stop(gateway)
    assert json.loads(body)["alert_id"] == hit.alert_id


def test_signatures_refuse_changed_bodies_and_old_deliveries():
    secret, body = b"s3cret", b'{"alert_id": "A1"}'
    now = int(time.time())
    signed = signature(secret, str(now), body)
    assert verify(secret, str(now), body, signed)
    assert not verify(secret, str(now), body + b" ", signed)
    assert not verify(secret, str(now + 1), body, signed)
    assert not verify(b"other", str(now), body, signed)
    old = str(now - 3600)
    assert not verify(secret, old, body, signature(secret, old, body))  # a replay an hour later


def test_alert_crops_are_erased_when_their_retention_ends(tmp_path):
    store = WatchlistStore(tmp_path, KeyRing.generate(tmp_path / "key.json"), "model")
    try:
        now = time.time()
        for alert_id, until in (("A-old", now - 1), ("A-new", now + 3600)):
            store.add_alert(AlertRecord(alert_id, now, "missing", "W1", "GATE-1", "", "", 0.6, 0.4, b"jpeg", None),
                            until, [])
        assert store.erase_old_evidence(now) == 1
        assert store.alert("A-old").evidence is None and store.alert("A-old").score == pytest.approx(0.6)
        assert store.alert("A-new").evidence == b"jpeg"
        kept = b"".join(path.read_bytes() for path in tmp_path.glob("watchlists.sqlite3*"))
        assert b"jpeg" not in kept and b"GATE-1" in kept  # the crop sealed at rest, the camera not
    finally:
        store.close()


def test_the_cli_changes_watchlists_offline_and_audits_each_change(tmp_path):
    gallery = str(tmp_path / "g")
    made = fr_gateway("watchlist", "create", "wanted", "--reason", "court order 12/2026", "--owner", "Polda Kaltim",
                      "--threshold", "0.45", "--priority", "high", "--gallery", gallery)
    assert made.returncode == 0, made.stderr
    added = fr_gateway("watchlist", "add", "wanted", "--label", "suspect A", "--case", "LP/7", "--photo",
                       *map(str, photos(*WANTED)[:2]), "--gallery", gallery)
    assert added.returncode == 0, added.stderr
    entry_id = added.stdout.split()[2]
    listed = fr_gateway("watchlist", "list", "--gallery", gallery)
    assert "watchlist wanted (HIGH, owner Polda Kaltim): 1 entries, 2 templates" in listed.stdout, listed.stdout
    assert "threshold 0.4500 (configured)" in listed.stdout and "false alerts a day" in listed.stdout
    # one key ring seals the gallery and its watchlists: a rotation re-seals both and retires the old key
    old_key = json.loads((tmp_path / "keys" / "g.json").read_text())["active"]
    rotated = fr_gateway("keys", "rotate", "--retire", "--gallery", gallery)
    assert rotated.returncode == 0 and "resealed 3 records" in rotated.stdout and old_key in rotated.stdout, rotated
    assert list(json.loads((tmp_path / "keys" / "g.json").read_text())["keys"]) != [old_key]
    listed = fr_gateway("watchlist", "list", "--gallery", gallery)
    assert "1 entries, 2 templates" in listed.stdout, listed.stderr
    removed = fr_gateway("watchlist", "remove", "wanted", entry_id, "--gallery", gallery)
    assert removed.returncode == 0 and f"{entry_id}: removed" in removed.stdout
    unknown = fr_gateway("watchlist", "add", "nobody", "--label", "x", "--photo", str(photos(*WANTED)[0]),
                         "--gallery", gallery)
    assert unknown.returncode != 0 and "no watchlist 'nobody'" in unknown.stderr
    changes = [(r["operation"], r["decision"]) for r in audit_records(tmp_path / "g")]
    assert changes == [("CreateWatchlist", "CREATED"), ("AddEntry", "ENROLLED"), ("RotateKeys", "ROTATED"),
                       ("RemoveEntry", "ERASED")]
