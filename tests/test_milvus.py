"""The Milvus search backend against milvus-lite started as a server process on 127.0.0.1: the same answers
as the exact FAISS index, drift between the store and the collection found and repaired, and two gateway
processes sharing one collection, reached through one balanced channel that survives one of them stopping."""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
from collections.abc import Iterator

import grpc
import numpy as np
import pytest
from conftest import ENROLLED, NOT_ENROLLED, audit_records, fr_gateway, launch, loose, nik_for, photos, stop
from pymilvus import MilvusClient

from fr_gateway.config import environment
from fr_gateway.contract import (
    face_pb2,
    gallery_pb2,
    gallery_pb2_grpc,
    recognition_pb2,
    recognition_pb2_grpc,
    watchlists_pb2,
    watchlists_pb2_grpc,
)
from fr_gateway.gallery.store import TemplateStore
from fr_gateway.search.faiss_index import FlatIndex
from fr_gateway.search.milvus_index import Drift, MilvusIndex, MilvusSpec
from fr_gateway.search.milvus_lite import milvus_lite_server
from fr_gateway.security.keys import KeyRing
from fr_gateway.transport import open_channel

DIM = 512
FINGERPRINT = "ab" * 32


@pytest.fixture(scope="module")
def milvus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`milvus-lite server` in its own process on 127.0.0.1; yields its URI."""
    with milvus_lite_server(tmp_path_factory.mktemp("milvus")) as (uri, _):
        yield uri


def templates(count: int, seed: int = 0) -> tuple[list[str], np.ndarray]:
    rng = np.random.default_rng(seed)
    vectors = rng.standard_normal((count, DIM)).astype(np.float32)
    return [nik_for(n) for n in range(count)], vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def test_milvus_answers_as_the_exact_index_does(milvus):
    niks, vectors = templates(300)
    index = MilvusIndex.connect(MilvusSpec(milvus, "exact", "FLAT"), DIM, FINGERPRINT)
    exact = FlatIndex(DIM)
    index.add(niks, vectors)
    exact.add(niks, vectors)
    assert len(index) == 300
    probes = vectors[:8] + 0.05 * templates(8, seed=1)[1]
    for found, expected in zip(index.search_many(probes, 5), exact.search_many(probes, 5), strict=True):
        assert [c.nik for c in found] == [c.nik for c in expected]
        assert [c.score for c in found] == pytest.approx([c.score for c in expected], abs=1e-4)
    index.remove(niks[0])
    assert len(index) == 299 and index.search_many(vectors[:1], 1)[0][0].nik != niks[0]
    index.close()


def test_unknown_index_types_and_another_models_collection_are_refused(milvus):
    with pytest.raises(ValueError, match="choose one of"):
        MilvusIndex.connect(MilvusSpec(milvus, "typo", "HNSWW"), DIM, FINGERPRINT)
    MilvusIndex.connect(MilvusSpec(milvus, "mine", "HNSW"), DIM, FINGERPRINT).close()
    with pytest.raises(ValueError, match="another model"):
        MilvusIndex.connect(MilvusSpec(milvus, "mine", "HNSW"), DIM, "cd" * 32)


def test_sync_finds_and_repairs_what_the_collection_lacks_holds_stale_or_holds_extra(milvus, tmp_path):
    niks, vectors = templates(30)
    store = TemplateStore(tmp_path / "gallery", FINGERPRINT, "test", KeyRing.load(tmp_path / "keys.json"), DIM)
    index = MilvusIndex.connect(MilvusSpec(milvus, "drift", "IVF_SQ8"), DIM, FINGERPRINT)
    index.add(niks[:21], vectors[:21])  # 9 of the store's never reached it ...
    _, extra_vectors = templates(2, seed=7)
    index.add([nik_for(900), nik_for(901)], extra_vectors)  # ... 2 the store erased are still there ...
    time.sleep(0.01)
    for nik, vector in zip(niks, vectors, strict=True):
        store.upsert(nik, vector, {})
    index.add(niks[:20], vectors[:20])  # ... and one re-enrolment (niks[20]) did not reach it
    assert index.sync(store.enrolled_at(), store.get_many, repair=False) == Drift(missing=9, stale=1, extra=2)
    assert bool(index.sync(store.enrolled_at(), store.get_many))
    assert not index.sync(store.enrolled_at(), store.get_many, repair=False)
    assert len(index) == 30
    with pytest.raises(ValueError, match="not the store of record"):  # an empty store never erases a gallery
        index.sync({}, store.get_many)
    index.close()
    store.close()


def test_two_replicas_share_one_collection_and_a_balanced_client_survives_one_stopping(milvus, tmp_path):
    shared = ["--insecure", "--gallery", str(tmp_path / "index" / "gallery")]
    settings = {"search_backend": "milvus", "milvus_uri": milvus, "milvus_collection": "replicas"}
    first = launch(tmp_path / "a", *shared, **settings, audit_dir=str(tmp_path / "audit-a"))
    with contextlib.ExitStack() as running:
        running.callback(first.stop)
        second = launch(tmp_path / "b", *shared, **settings, audit_dir=str(tmp_path / "audit-b"))
        running.callback(second.stop)
        photo = photos(*ENROLLED[0])
        with grpc.insecure_channel(first.target) as channel:
            enrolled = gallery_pb2_grpc.GalleryStub(channel).Enroll(
                gallery_pb2.EnrollRequest(nik=nik_for(0), face=loose(photo[0])), timeout=60)
        assert enrolled.enrolled
        request = recognition_pb2.IdentifyRequest(camera_id="gate", face=loose(photo[1]))
        with grpc.insecure_channel(second.target) as channel:
            found = recognition_pb2_grpc.RecognitionStub(channel).Identify(request, timeout=60)
        assert found.decision == face_pb2.MATCH and found.candidates[0].nik == nik_for(0)

        with open_channel(f"{first.target},{second.target}") as channel:
            identify = recognition_pb2_grpc.RecognitionStub(channel).Identify
            assert all(identify(request, timeout=60).decision == face_pb2.MATCH for _ in range(4))
            stop(first)
            answers = [identify(request, timeout=60, wait_for_ready=True) for _ in range(4)]
        assert all(answer.candidates[0].nik == nik_for(0) for answer in answers)
    def check() -> subprocess.CompletedProcess:
        return fr_gateway("gallery", "sync", "--check", "--gallery", str(tmp_path / "index" / "gallery"),
                          env={**os.environ, **environment(settings)})

    in_step = check()
    assert in_step.returncode == 0 and "store's 1 templates: 0 missing, 0 stale, 0 not in the store: in step" \
        in in_step.stdout, in_step.stderr
    MilvusClient(uri=milvus).delete("replicas", ids=[nik_for(0)])  # a write that never reached the collection
    drifted = check()
    assert drifted.returncode == 1 and "1 missing, 0 stale, 0 not in the store: found, not repaired" \
        in drifted.stdout, drifted.stderr


def test_gallery_remove_through_a_running_gateway_erases_from_the_collection(milvus, tmp_path):
    gallery = tmp_path / "index" / "gallery"
    gateway = launch(tmp_path / "g", "--insecure", "--gallery", str(gallery), search_backend="milvus",
                     milvus_uri=milvus, milvus_collection="erasure")
    try:
        photo = photos(*ENROLLED[0])
        with grpc.insecure_channel(gateway.target) as channel:
            assert gallery_pb2_grpc.GalleryStub(channel).Enroll(
                gallery_pb2.EnrollRequest(nik=nik_for(0), face=loose(photo[0])), timeout=60).enrolled
            removed = fr_gateway("gallery", "remove", "--target", gateway.target, nik_for(0))
            assert removed.returncode == 0 and removed.stdout == f"{nik_for(0)}: erased\n", removed.stderr
            found = recognition_pb2_grpc.RecognitionStub(channel).Identify(recognition_pb2.IdentifyRequest(
                camera_id="gate", face=loose(photo[1])), timeout=60)
        assert found.decision == face_pb2.NO_MATCH and not found.candidates
        client = MilvusClient(uri=milvus)
        assert client.get("erasure", ids=[nik_for(0)]) == []
        client.close()
    finally:
        stop(gateway)
    assert [(r["nik"], r["decision"]) for r in audit_records(gallery) if r["operation"] == "Remove"] == \
        [(nik_for(0), "ERASED")]


def test_a_milvus_outage_is_a_clear_answer_and_the_gateway_stays_up(tmp_path):
    """With its Milvus gone, a gateway answers a unary Identify UNAVAILABLE with the reason, a stream's crops
    OVERLOADED with the reason (the stream goes on), and keeps serving what needs no search. Enrolments and
    erasures are committed to the store and answered INDEX_BEHIND, audited; `gallery sync` repairs the
    collection once Milvus is back."""
    with milvus_lite_server(tmp_path / "milvus") as (uri, server):
        gateway = launch(tmp_path / "g", "--insecure", "--gallery", str(tmp_path / "index" / "gallery"),
                         search_backend="milvus", milvus_uri=uri, milvus_collection="outage")
        try:
            photo = photos(*ENROLLED[0])
            with grpc.insecure_channel(gateway.target) as channel:
                assert gallery_pb2_grpc.GalleryStub(channel).Enroll(
                    gallery_pb2.EnrollRequest(nik=nik_for(0), face=loose(photo[0])), timeout=60).enrolled
                recognition = recognition_pb2_grpc.RecognitionStub(channel)
                request = recognition_pb2.IdentifyRequest(camera_id="gate", face=loose(photo[1]))
                assert recognition.Identify(request, timeout=60).decision == face_pb2.MATCH
                watchlists = watchlists_pb2_grpc.WatchlistsStub(channel)
                watchlists.CreateWatchlist(watchlists_pb2.CreateWatchlistRequest(
                    name="wanted", reason="court order", owner="Polda"), timeout=30)
                wanted = photos(*NOT_ENROLLED[0])
                watchlists.AddEntry(watchlists_pb2.AddEntryRequest(watchlist="wanted", label="suspect", faces=[
                    loose(wanted[0])]), timeout=60)
                server.kill()
                server.wait()
                logged = len(gateway.log.splitlines())
                with pytest.raises(grpc.RpcError) as refused:
                    recognition.Identify(request, timeout=60)
                assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
                assert refused.value.details().startswith("SEARCH_UNAVAILABLE: Milvus at")
                outage = gateway.log.splitlines()[logged:]
                # the failed batch's warning (and at most a failed count), not pymilvus' retries and tracebacks
                assert len(outage) <= 2 and any("search batch of 1 failed" in line for line in outage), outage
                sighted = recognition_pb2.IdentifyRequest(camera_id="gate", face=loose(wanted[1]))
                answers = list(recognition.IdentifyStream(iter([request, request, sighted]), timeout=60))
                assert [(a.decision, a.reason) for a in answers] == [(face_pb2.OVERLOADED,
                                                                      face_pb2.SEARCH_UNAVAILABLE)] * 3
                # the watchlists are in memory: a wanted person still raises an alert
                assert [len(a.watchlist_hits) for a in answers] == [0, 0, 1]
                verified = recognition.Verify(recognition_pb2.VerifyRequest(probe=loose(photo[1]), nik=nik_for(0)),
                                              timeout=60)
                assert verified.decision == face_pb2.MATCH  # 1:1 needs only the store
                assert recognition.GetInfo(recognition_pb2.GetInfoRequest(), timeout=30).gallery_size == 1
                # changes are committed to the store, told INDEX_BEHIND and audited, never UNKNOWN
                gallery = gallery_pb2_grpc.GalleryStub(channel)
                enrolled = gallery.Enroll(gallery_pb2.EnrollRequest(nik=nik_for(1), face=loose(
                    photos(*ENROLLED[1])[0])), timeout=60)
                assert (enrolled.enrolled, enrolled.reason) == (True, face_pb2.INDEX_BEHIND), enrolled
                assert "run `fr-gateway gallery sync`" in enrolled.detail
                removed = gallery.Remove(gallery_pb2.RemoveRequest(nik=nik_for(0)), timeout=60)
                assert (removed.removed, removed.reason) == (True, face_pb2.INDEX_BEHIND), removed
                summary = gallery.EnrollStream(iter([gallery_pb2.EnrollRequest(nik=nik_for(2), face=loose(
                    photos(*ENROLLED[2])[0]))]), timeout=60)
                assert (summary.enrolled, summary.index_behind, summary.rejected) == (1, 1, 0), summary
        finally:
            log = stop(gateway)
    changes = [(r["operation"], r["nik"], r["decision"], r["status"], r["reason"])
               for r in audit_records(tmp_path / "index" / "gallery") if r["operation"] in ("Enroll", "Remove")]
    assert changes == [("Enroll", nik_for(0), "ENROLLED", "OK", ""),
                       ("Enroll", nik_for(1), "ENROLLED", "OK", "INDEX_BEHIND"),
                       ("Remove", nik_for(0), "ERASED", "OK", "INDEX_BEHIND"),
                       ("Enroll", nik_for(2), "ENROLLED", "OK", "INDEX_BEHIND")]
    assert "WARNING fr_gateway.service: search batch of 1 failed: Milvus at" in log
    assert "ERROR fr_gateway" not in log, log
    assert "Traceback" not in log
    assert f"search: Milvus collection outage at {uri}, HNSW index" in log  # the start-up log names the backend
    check = fr_gateway("gallery", "sync", "--check", "--gallery", str(tmp_path / "index" / "gallery"),
                       env={**os.environ, **environment({"search_backend": "milvus", "milvus_uri": uri})})
    assert check.returncode == 5, check.stderr
    assert f"Milvus at {uri} did not answer opening collection" in check.stderr
    assert len(check.stderr.strip().splitlines()) == 1, check.stderr
    with milvus_lite_server(tmp_path / "milvus") as (uri, _):  # back: `gallery sync` repairs what it missed
        settings = {"search_backend": "milvus", "milvus_uri": uri, "milvus_collection": "outage"}
        repaired = fr_gateway("gallery", "sync", "--gallery", str(tmp_path / "index" / "gallery"),
                              env={**os.environ, **environment(settings)})
        assert repaired.returncode == 0 and "repaired" in repaired.stdout, repaired.stdout + repaired.stderr
        client = MilvusClient(uri=uri)
        held = client.query("outage", filter="", output_fields=["nik"], limit=10)
        client.close()
    assert sorted(row["nik"] for row in held) == sorted([nik_for(1), nik_for(2)])
