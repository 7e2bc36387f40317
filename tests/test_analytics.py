"""The Command Center's counts: exact whether or not they have reached the file, a track is one person however
many faces it sends, and nothing but counts is kept."""

from __future__ import annotations

import sqlite3

from fr_gateway.analytics import STORE_FILE, Aggregates

HOUR = 1_800_000_000.0 // 3600 * 3600


def test_counts_are_exact_before_and_after_a_flush_and_a_track_is_one_person(tmp_path):
    aggregates = Aggregates(tmp_path)
    try:
        for decision, reason, track in (("MATCH", "", "t1"), ("MATCH", "", "t1"), ("REJECTED", "FACE_BLURRY", "t2"),
                                        ("NO_MATCH", "", ""), ("NO_MATCH", "", "")):
            aggregates.face("CAM-1", track, decision, reason, HOUR + 10)
        aggregates.face("CAM-1", "t1", "MATCH", "", HOUR + 3600)  # the same person, the next hour
        aggregates.record("Identify", "MATCH", HOUR)
        first, second = aggregates.camera_hours(HOUR, HOUR + 7200)  # read before any flush
        assert (first.hour, first.counts["faces"], first.counts["tracks"]) == (HOUR, 5, 4)
        assert (first.counts["matched"], first.counts["not_matched"], first.counts["rejected"]) == (2, 2, 1)
        assert first.reasons == {"FACE_BLURRY": 1}
        assert (second.counts["faces"], second.counts["tracks"]) == (1, 0)
        aggregates.face("CAM-1", "t3", "NO_FACE", "NO_FACE_FOUND", HOUR + 20)  # added to what is stored
        [first] = aggregates.camera_hours(HOUR, HOUR + 3600)
        assert (first.counts["faces"], first.counts["no_face"], first.reasons) == (
            6, 1, {"FACE_BLURRY": 1, "NO_FACE_FOUND": 1})
        [day] = aggregates.audit_days(HOUR - 86400, HOUR + 86400)
        assert (day.operation, day.decision, day.records) == ("Identify", "MATCH", 1)
    finally:
        aggregates.close()
    reopened = Aggregates(tmp_path)
    try:
        assert reopened.camera_hours(HOUR, HOUR + 7200)[0].counts["faces"] == 6
    finally:
        reopened.close()
    with sqlite3.connect(tmp_path / STORE_FILE) as db:  # counts only: no track id is stored
        stored = [row for table in ("camera_hours", "camera_hour_reasons", "audit_days")
                  for row in db.execute(f"SELECT * FROM {table}")]
    assert not any("t1" in map(str, row) for row in stored)
    assert (tmp_path / STORE_FILE).stat().st_mode & 0o077 == 0
