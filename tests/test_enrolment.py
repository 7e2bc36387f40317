"""Bulk enrolment: resumable runs, a rejects file that runs again, repeated NIKs, the saved index, and the
gallery maintenance commands."""

from __future__ import annotations

import csv
import struct

import pytest
from conftest import audit_records, fr_gateway, launch, nik_for, photos, stop

from fr_gateway.audit.trail import Caller
from fr_gateway.config import load_settings
from fr_gateway.enrolment import run_enrolment
from fr_gateway.faces.crops import CropKind
from fr_gateway.gallery.store import TemplateStore
from fr_gateway.search.snapshot import SNAPSHOT_FILE
from fr_gateway.security.keys import KeyRing
from fr_gateway.service import EnrollRecord, FaceInput, GatewayService

PEOPLE = [f"s{n}" for n in range(1, 13)]


def write_manifest(path, rows):
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["nik", "photo", "province"])
        writer.writerows(rows)
    return path


@pytest.fixture
def open_service(engine, tmp_path):
    opened = []

    def open_() -> GatewayService:
        service = GatewayService.open(load_settings(overrides={"gallery": str(tmp_path / "gallery")}, environ={}),
                                      engine)
        opened.append(service)
        return service

    yield open_
    for service in opened:
        service.close()


def test_a_rerun_enrols_only_what_is_missing_or_changed(open_service, tmp_path):
    rows = [(nik_for(n), photos("orl", person)[0], "64") for n, person in enumerate(PEOPLE)]
    manifest = write_manifest(tmp_path / "m.csv", rows[:8])
    service = open_service()
    first = run_enrolment(manifest, tmp_path / "r.csv", service=service, progress=False)
    assert first.counts == {"enrolled": 8}
    write_manifest(manifest, [*rows[:6], (nik_for(6), photos("orl", PEOPLE[6])[1], "64"), *rows[7:]])
    again = run_enrolment(manifest, tmp_path / "r.csv", service=service, progress=False)
    assert again.counts == {"unchanged": 7, "replaced": 1, "enrolled": 4}
    assert service.gallery_size == 12
    assert not (tmp_path / "r.csv").exists()


def test_rejects_file_names_reasons_and_runs_again_once_fixed(open_service, tmp_path):
    rows = [(nik_for(0), photos("orl", "s1")[0], "64"), ("3171", photos("orl", "s2")[0], "31"),
            (nik_for(2), tmp_path / "gone.png", "64"), (nik_for(3), photos("orl", "s4")[0], "64")]
    manifest = write_manifest(tmp_path / "m.csv", rows)
    service = open_service()
    summary = run_enrolment(manifest, tmp_path / "rejects.csv", service=service, progress=False)
    assert summary.counts == {"enrolled": 2, "rejected": 2}
    assert summary.rejected_by_reason == {"NIK_INVALID": 1, "PHOTO_NOT_FOUND": 1}
    rejected = sorted(csv.DictReader((tmp_path / "rejects.csv").open()), key=lambda r: int(r["reject_line"]))
    assert [(r["nik"], r["reject_reason"], r["reject_line"], r["province"]) for r in rejected] == [
        ("3171", "NIK_INVALID", "3", "31"), (nik_for(2), "PHOTO_NOT_FOUND", "4", "64")]
    fixed = (tmp_path / "rejects.csv").read_text().replace("3171,", f"{nik_for(1)},").replace(
        str(tmp_path / "gone.png"), str(photos("orl", "s3")[0]))
    (tmp_path / "fixed.csv").write_text(fixed)
    rerun = run_enrolment(tmp_path / "fixed.csv", tmp_path / "rejects2.csv", service=service, progress=False)
    assert rerun.counts == {"enrolled": 2}
    assert service.gallery.store.attributes(nik_for(1)) == {"province": "31"}


def test_a_nik_repeated_in_one_chunk_is_indexed_once(open_service):
    service = open_service()
    face = lambda person: FaceInput(photos("orl", person)[0].read_bytes(), CropKind.LOOSE)  # noqa: E731
    results = list(service.enroll_many([EnrollRecord(nik_for(1), face("s1")), EnrollRecord(nik_for(1), face("s2")),
                                        EnrollRecord(nik_for(2), face("s3"))], Caller.local()))
    assert [(r.enrolled, r.replaced) for r in results] == [(True, False), (True, True), (True, False)]
    assert service.gallery_size == 2
    assert service.identify(FaceInput(photos("orl", "s2")[1].read_bytes(), CropKind.LOOSE)).candidates[0].nik == \
        nik_for(1)


def test_saved_index_is_used_when_current_and_rebuilt_otherwise(engine, open_service, tmp_path, caplog):
    service = open_service()
    for n, person in enumerate(PEOPLE[:5]):
        service.enroll(nik_for(n), FaceInput(photos("orl", person)[0].read_bytes(), CropKind.LOOSE), {}, Caller.local())
    template = service.gallery.store.get(nik_for(1)).tobytes()
    service.close()
    snapshot = tmp_path / "gallery" / SNAPSHOT_FILE
    sealed = snapshot.read_bytes()
    assert struct.pack("<q", int(nik_for(1))) not in sealed and template[:32] not in sealed  # ids, vectors sealed

    with caplog.at_level("INFO"):
        reopened = open_service()
    assert "rebuilding" not in caplog.text and reopened.gallery_size == 5
    reopened.close()
    store = TemplateStore(tmp_path / "gallery", engine.pack.fingerprint, engine.pack.name,
                          KeyRing.load(tmp_path / "keys" / "gallery.json", create=False))
    store.delete(nik_for(0))  # a change the saved index does not know, as `gallery remove` makes
    store.close()

    caplog.clear()
    with caplog.at_level("INFO"):
        stale = open_service()
    assert "is not current" in caplog.text and stale.gallery_size == 4
    stale.close()

    data = bytearray(snapshot.read_bytes())
    data[-20] ^= 0xFF
    snapshot.write_bytes(bytes(data))
    caplog.clear()
    with caplog.at_level("INFO"):
        tampered = open_service()
    assert "does not open" in caplog.text and tampered.gallery_size == 4


def test_gallery_duplicates_and_remove_commands(tmp_path):
    gallery = tmp_path / "gallery"
    rows = [(nik_for(n), photos("orl", person)[0], "64") for n, person in enumerate(PEOPLE[:4])]
    rows.append((nik_for(9), photos("orl", "s2")[3], "64"))  # the person of nik_for(1) again, under another NIK
    manifest = write_manifest(tmp_path / "m.csv", rows)
    assert fr_gateway("enroll", "--manifest", str(manifest), "--gallery", str(gallery), "--no-progress").returncode == 0

    duplicates = fr_gateway("gallery", "duplicates", "--gallery", str(gallery))
    assert duplicates.returncode == 0, duplicates.stderr
    pairs = [line.split() for line in duplicates.stdout.splitlines()]
    assert [(a, b) for a, b, _ in pairs] == [tuple(sorted((nik_for(1), nik_for(9))))]

    removed = fr_gateway("gallery", "remove", "--gallery", str(gallery), nik_for(9), nik_for(8))
    assert removed.returncode == 0, removed.stderr
    assert f"{nik_for(9)}: erased" in removed.stdout and f"{nik_for(8)}: not enrolled" in removed.stdout
    # one malformed NIK among good ones: each is handled and reported on its own
    mixed = fr_gateway("gallery", "remove", "--gallery", str(gallery), nik_for(3), "12345", nik_for(2))
    assert mixed.returncode == 2, mixed.stderr
    assert mixed.stdout.splitlines() == [f"{nik_for(3)}: erased",
                                         "12345: not erased: NIK must be 16 digits, got 5 characters",
                                         f"{nik_for(2)}: erased"]
    assert "Traceback" not in mixed.stderr
    assert "0 pairs" in fr_gateway("gallery", "duplicates", "--gallery", str(gallery)).stderr


def test_gallery_remove_and_keys_rotate_go_through_the_running_gateway(tmp_path):
    """While a gateway serves the gallery, `gallery remove --target` erases through it (store, index, one audit
    record) and `keys rotate --target` re-seals every template while calls keep working; the offline forms are
    refused with a pointer to --target rather than writing around the gateway."""
    gallery = tmp_path / "index" / "gallery"
    manifest = write_manifest(tmp_path / "m.csv", [(nik_for(n), photos("orl", person)[0], "64")
                                                   for n, person in enumerate(PEOPLE[:3])])
    gateway = launch(tmp_path / "g", "--insecure", "--gallery", str(gallery))
    try:
        enrolled = fr_gateway("enroll", "--manifest", str(manifest), "--target", gateway.target, "--no-progress")
        assert enrolled.returncode == 0, enrolled.stderr
        offline = fr_gateway("gallery", "remove", "--gallery", str(gallery), nik_for(1))
        assert offline.returncode == 2 and "a gateway serves this gallery; make the change through it with " \
            "--target" in offline.stderr, offline.stderr
        removed = fr_gateway("gallery", "remove", "--target", gateway.target, nik_for(1), "12345", nik_for(7))
        assert removed.returncode == 2, removed.stderr
        assert removed.stdout.splitlines() == [f"{nik_for(1)}: erased", "12345: not erased: NIK_INVALID: NIK must "
                                               "be 16 digits, got 5 characters", f"{nik_for(7)}: not enrolled"]
        found = fr_gateway("identify", "--target", gateway.target, "--image", str(photos("orl", PEOPLE[1])[1]))
        assert found.returncode == 0 and found.stdout.startswith("NO_MATCH"), found.stdout
        assert fr_gateway("identify", "--target", gateway.target, "--image", str(
            photos("orl", PEOPLE[2])[1])).stdout.startswith("MATCH")

        old = KeyRing.load(tmp_path / "index" / "keys" / "gallery.json").active
        assert "a gateway serves this gallery" in fr_gateway("keys", "rotate", "--gallery", str(gallery)).stderr
        rotated = fr_gateway("keys", "rotate", "--target", gateway.target, "--retire")
        assert rotated.returncode == 0, rotated.stderr
        active = KeyRing.load(tmp_path / "index" / "keys" / "gallery.json").active
        assert rotated.stdout == f"new active key {active}; resealed 2 records; retired {old}\n"
        verified = fr_gateway("verify", "--target", gateway.target, "--probe", str(photos("orl", PEOPLE[2])[1]),
                              "--nik", nik_for(2))
        assert verified.returncode == 0 and verified.stdout.startswith("MATCH"), verified.stdout + verified.stderr
    finally:
        stop(gateway)
    records = audit_records(gallery)
    removals = [(r["nik"], r["decision"]) for r in records if r["operation"] == "Remove"]
    assert removals == [(nik_for(1), "ERASED"), ("12345", "REJECTED"), (nik_for(7), "NOT_ENROLLED")]
    assert [r["detail"] for r in records if r["operation"] == "RotateKeys"] == [rotated.stdout.strip()]
    restarted = launch(tmp_path / "g2", "--insecure", "--gallery", str(gallery))  # the saved index opens too
    log = stop(restarted)
    assert "serving 2 templates" in log and "does not open" not in log and "building" not in log, log
