"""The audit log on real files: round trip, every kind of tampering named by `verify`, a crash mid-append, and
the key cases (wrong, missing, rotated)."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from fr_gateway.audit import chain, witness
from fr_gateway.audit.export import Selection, export
from fr_gateway.audit.keys import AuditKeyError, AuditorKeys, WriterKeys, issue
from fr_gateway.audit.log import AuditLog, AuditUnavailable, Fsync, parse_time
from fr_gateway.audit.trail import AuditTrail, Caller, Operation
from fr_gateway.audit.verify import verify

SEGMENT = chain.segment_name


@pytest.fixture
def keys(tmp_path: Path) -> tuple[Path, Path]:
    gateway, auditor = tmp_path / "gateway-keys", tmp_path / "auditor-keys"
    issue(gateway, auditor)
    return gateway, auditor


def event(n: int, camera: str = "CAM-1") -> dict:
    return {"time": f"2026-11-22T10:{n // 60 % 60:02d}:{n % 60:02d}Z", "operation": "Identify", "camera_id": camera,
            "decision": "MATCH", "candidates": [{"nik": f"640101010190{n:04d}", "score": 0.8}]}


def write(folder: Path, gateway_keys: Path, count: int, start: int = 0, **options) -> None:
    log = AuditLog(folder, WriterKeys.load(gateway_keys), **options)
    for n in range(start, start + count):
        log.append(event(n, camera=f"CAM-{n % 3}"))
    log.close()


def check(folder: Path, auditor_keys: Path):
    return verify(folder, AuditorKeys.load(auditor_keys).signers)


def lines_of(path: Path) -> list[bytes]:
    return path.read_bytes().splitlines(keepends=True)


def record_lines(path: Path) -> list[int]:
    """0-based indexes of the record lines in a segment."""
    return [i for i, line in enumerate(lines_of(path)) if b'"type":"record"' in line]


@pytest.fixture
def log_folder(tmp_path: Path, keys) -> Path:
    """Three segments of 60 records, each closed with a checkpoint."""
    folder = tmp_path / "log"
    for part in range(3):
        write(folder, keys[0], 60, start=part * 60)
    return folder


def exported(folder: Path, auditor_keys: Path, **selection) -> tuple[list[dict], dict]:
    out = io.StringIO()
    export(folder, AuditorKeys.load(auditor_keys), out, "jsonl", Selection(**selection))
    first, *rows = [json.loads(line) for line in out.getvalue().splitlines()]
    return rows, first["verification"]


def test_round_trip_is_intact_and_readable_by_the_auditor_only(log_folder, keys):
    report = check(log_folder, keys[1])
    assert report.intact, report.text()
    assert (report.records, report.segments, report.signed_through) == (180, 3, 180)
    rows, verification = exported(log_folder, keys[1])
    assert verification["intact"] and len(rows) == 180
    assert [row["seq"] for row in rows] == list(range(1, 181))
    assert {row["integrity"] for row in rows} == {"signed"}
    # nothing in the files is readable without the key: no NIK, no camera id in clear
    raw = b"".join(path.read_bytes() for path in log_folder.glob("segment-*"))
    assert b"6401010101" not in raw and b"CAM-" not in raw


def test_export_selects_by_camera_nik_operation_and_time(log_folder, keys):
    assert len(exported(log_folder, keys[1], camera="CAM-2")[0]) == 60
    [only] = exported(log_folder, keys[1], nik="6401010101900007")[0]
    assert only["seq"] == 8
    assert exported(log_folder, keys[1], operation="verify")[0] == []
    window = exported(log_folder, keys[1], start=parse_time("2026-11-22T10:01:00"),
                      end=parse_time("2026-11-22T10:01:10"))[0]
    assert [row["seq"] for row in window] == list(range(61, 71))  # events 60-69 carry 10:01:00-10:01:09
    assert len(exported(log_folder, keys[1], decision="match")[0]) == 180
    assert exported(log_folder, keys[1], decision="ERASED")[0] == []
    with pytest.raises(ValueError, match=r"--decision 'ERASE': records hold one of MATCH, .*, ERASED, .*REFUSED"):
        Selection(decision="ERASE")


def test_csv_export_carries_integrity_on_every_row(log_folder, keys):
    out = io.StringIO()
    export(log_folder, AuditorKeys.load(keys[1]), out, "csv", Selection(camera="CAM-0"))
    header, *rows = out.getvalue().splitlines()
    assert header.startswith("seq,integrity,log_intact,time,operation")
    assert len(rows) == 60 and all(",signed,True," in row for row in rows)


def tamper(path: Path, edit) -> None:
    lines = lines_of(path)
    edit(lines)
    path.write_bytes(b"".join(lines))


def problems(report) -> str:
    assert not report.intact, "tampering was not detected"
    return "\n".join(str(p) for p in report.problems)


def test_a_flipped_byte_is_named(log_folder, keys):
    path = log_folder / SEGMENT(2)
    target = record_lines(path)[10]

    def flip(lines):
        line = bytearray(lines[target])
        position = line.index(b'"ct":"') + 20
        line[position] = ord("A") if line[position] != ord("A") else ord("B")
        lines[target] = bytes(line)

    tamper(path, flip)
    found = problems(check(log_folder, keys[1]))
    assert f"{SEGMENT(2)} line {target + 1}: this line was altered" in found


def test_a_deleted_record_is_named(log_folder, keys):
    path = log_folder / SEGMENT(1)
    target = record_lines(path)[5]
    seq = json.loads(lines_of(path)[target])["seq"]
    tamper(path, lambda lines: lines.pop(target))
    found = problems(check(log_folder, keys[1]))
    assert f"{SEGMENT(1)} line {target + 1}: record {seq + 1} follows record {seq - 1}: record(s) {seq} were " \
           "deleted" in found


def test_swapped_records_are_named(log_folder, keys):
    path = log_folder / SEGMENT(3)
    first = record_lines(path)[20]

    def swap(lines):
        lines[first], lines[first + 1] = lines[first + 1], lines[first]

    tamper(path, swap)
    found = problems(check(log_folder, keys[1]))
    assert f"{SEGMENT(3)} line {first + 1}" in found and "reordered" in found


def test_a_truncated_tail_is_detected_at_a_line_boundary_and_mid_line(log_folder, keys, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(log_folder, copy)
    last = log_folder / SEGMENT(3)
    tamper(last, lambda lines: lines.__delitem__(slice(-6, None)))  # five records and the final checkpoint
    found = problems(check(log_folder, keys[1]))
    assert "HEAD" in found and "truncated after record 175" in found

    last = copy / SEGMENT(3)
    last.write_bytes(last.read_bytes()[:-300])
    found = problems(check(copy, keys[1]))
    assert f"{SEGMENT(3)} line" in found and "incomplete last line" in found


def test_a_replaced_file_is_named(log_folder, keys, tmp_path):
    # the same gateway keys, another log: every signature is genuine, the chain is not
    other = tmp_path / "other"
    write(other, keys[0], 30)
    write(other, keys[0], 30)
    shutil.copy(other / SEGMENT(2), log_folder / SEGMENT(2))
    found = problems(check(log_folder, keys[1]))
    assert f"{SEGMENT(2)} line 1: this segment does not continue the chain" in found
    # a file written with someone else's signing key
    forger_gateway, forger_auditor = tmp_path / "forger-gw", tmp_path / "forger-aud"
    issue(forger_gateway, forger_auditor)
    forged = tmp_path / "forged"
    write(forged, forger_gateway, 60)
    shutil.copy(forged / SEGMENT(1), log_folder / SEGMENT(1))
    found = problems(check(log_folder, keys[1]))
    assert f"{SEGMENT(1)} line 1: signed by" in found and "not a trusted signer" in found


def test_a_removed_segment_is_named(log_folder, keys):
    (log_folder / SEGMENT(2)).unlink()
    found = problems(check(log_folder, keys[1]))
    assert "segments 2-2 are missing" in found


CRASHING_WRITER = textwrap.dedent("""
    import sys, time
    from fr_gateway.audit.keys import WriterKeys
    from fr_gateway.audit.log import AuditLog
    log = AuditLog(sys.argv[1], WriterKeys.load(sys.argv[2]), checkpoint_seconds=0.05)
    for n in range(100):
        log.append({"time": "2026-11-22T10:00:00Z", "operation": "Identify", "n": n})
        print(n, flush=True)  # acknowledged: append returned, so the record is on disk
    time.sleep(60)
""")


def test_a_crash_mid_append_is_pinpointed_and_the_log_goes_on(tmp_path, keys):
    folder = tmp_path / "log"
    writer = subprocess.Popen([sys.executable, "-c", CRASHING_WRITER, str(folder), str(keys[0])],
                              stdout=subprocess.PIPE, text=True)
    acknowledged = [int(writer.stdout.readline()) for _ in range(100)]
    writer.kill()  # SIGKILL: no final checkpoint
    writer.wait()
    segment = folder / SEGMENT(1)
    whole = lines_of(segment)[-1]
    with segment.open("ab") as handle:  # the torn write a crash leaves: half a record line
        handle.write(whole[: len(whole) // 2])
    torn_line = len(lines_of(segment))
    found = problems(check(folder, keys[1]))
    assert f"{SEGMENT(1)} line {torn_line}: incomplete last line" in found

    write(folder, keys[0], 10, start=100)  # the gateway restarts and appends
    report = check(folder, keys[1])
    assert report.intact, report.text()
    assert any(f"{SEGMENT(1)} line {torn_line}" in str(note) for note in report.notes)
    rows, _ = exported(folder, keys[1])
    assert [row["n"] for row in rows[:100]] == acknowledged  # nothing acknowledged was lost
    assert len(rows) == 110 and rows[-1]["seq"] == 110


def test_gateways_killed_before_their_first_record_leave_a_chain_that_goes_on(tmp_path, keys):
    """Each start writes a segment header at once; two starts killed before any record leave two header-only
    segments, and the next start must chain to the newest header, not to an older line."""
    folder = tmp_path / "log"
    write(folder, keys[0], 5)
    for _ in range(2):
        started = AuditLog(folder, WriterKeys.load(keys[0]))
        killed = tmp_path / "killed"
        shutil.copytree(folder, killed)  # the folder as a SIGKILL right after start leaves it
        started.close()
        shutil.rmtree(folder)
        killed.rename(folder)
    write(folder, keys[0], 5, start=5)
    report = check(folder, keys[1])
    assert report.intact, report.text()
    rows, _ = exported(folder, keys[1])
    assert [row["seq"] for row in rows] == list(range(1, 11))


def test_rotated_reading_key_needs_the_old_key_for_old_records(tmp_path, keys):
    folder = tmp_path / "log"
    write(folder, keys[0], 20)
    issue(keys[0], keys[1], signer=False, reader=True)  # rotation: the auditor keeps both reading keys
    write(folder, keys[0], 20, start=20)
    rows, verification = exported(folder, keys[1])
    assert len(rows) == 40 and verification["intact"]

    newest_only = tmp_path / "newest-only"
    shutil.copytree(keys[1], newest_only)
    old = min(newest_only.glob("reader-*.key"), key=lambda p: p.stat().st_mtime)
    old.unlink()
    rows, verification = exported(folder, newest_only)
    assert len(rows) == 20
    [(why, count)] = verification["unreadable"].items()
    assert count == 20 and old.stem.removeprefix("reader-") in why and "was not given" in why


def test_wrong_and_missing_keys(tmp_path, log_folder, keys):
    stranger_gateway, stranger_auditor = tmp_path / "s-gw", tmp_path / "s-aud"
    issue(stranger_gateway, stranger_auditor)
    # another auditor's keys: cannot read, and the log's signer is not one they trust
    rows, verification = exported(log_folder, stranger_auditor)
    assert rows == [] and not verification["intact"]
    assert sum(verification["unreadable"].values()) == 180
    assert "not a trusted signer" in " ".join(verification["problems"])
    with pytest.raises(AuditKeyError, match="does not exist"):
        WriterKeys.load(tmp_path / "nowhere")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(AuditKeyError, match="no signing"):
        AuditorKeys.load(empty)
    (keys[0] / "signing.key").chmod(0o644)
    with pytest.raises(AuditKeyError, match="readable by others"):
        WriterKeys.load(keys[0])


def test_rotation_by_size_and_interval_fsync(tmp_path, keys):
    folder = tmp_path / "log"
    write(folder, keys[0], 300, segment_bytes=16_000, fsync=Fsync.INTERVAL)
    report = check(folder, keys[1])
    assert report.intact and report.segments > 3 and report.records == 300


def witnessed(folder: Path, gateway_keys: Path, witness_file: Path, segments: int = 3, per_segment: int = 40) -> None:
    """`segments` runs of the gateway, each checkpointing after every record, with a witness file."""
    for part in range(segments):
        log = AuditLog(folder, WriterKeys.load(gateway_keys), checkpoint_seconds=0, witness_file=witness_file)
        for n in range(part * per_segment, (part + 1) * per_segment):
            log.append(event(n))
        log.close()


def checkpoint_lines(path: Path) -> list[int]:
    return [i for i, line in enumerate(lines_of(path)) if b'"type":"checkpoint"' in line]


def roll_back_to(folder: Path, segment: int, line_index: int) -> None:
    """What a root on the host can do without any key: cut the log after an earlier checkpoint line and point
    HEAD at it; every signature left is genuine."""
    for number, path in chain.segments(folder):
        if number > segment:
            path.unlink()
    path = folder / SEGMENT(segment)
    kept = lines_of(path)[:line_index + 1]
    path.write_bytes(b"".join(kept))
    head = {"segment": segment, "line": line_index + 1, "checkpoint": json.loads(kept[-1])}
    (folder / chain.HEAD).write_bytes(chain.encode(head))


def test_a_log_rolled_back_to_an_earlier_checkpoint_is_found_by_the_witnesses(tmp_path, keys):
    gateway_keys, auditor_keys = keys
    witness_file = auditor_keys / witness.WITNESS_FILE  # the gateway's default: beside the auditor's keys
    for attack in ("within the last segment", "the last segment deleted"):
        folder = tmp_path / attack.replace(" ", "-")
        (auditor_keys / witness.SEEN_FILE).unlink(missing_ok=True)
        witness_file.unlink(missing_ok=True)
        witnessed(folder, gateway_keys, witness_file)
        if attack == "within the last segment":
            roll_back_to(folder, 3, checkpoint_lines(folder / SEGMENT(3))[9])
            missing = "records 91-120"
        else:
            roll_back_to(folder, 2, checkpoint_lines(folder / SEGMENT(2))[-1])
            missing = "records 81-120"
        alone = verify(folder, AuditorKeys.load(auditor_keys).signers)
        assert alone.intact and "no witness checked" in alone.text()  # what the log alone cannot show

        result = subprocess.run([sys.executable, "-m", "fr_gateway.cli", "audit", "verify", "--dir", str(folder),
                                 "--keys", str(auditor_keys)], capture_output=True, text=True)
        assert result.returncode == 1, result.stdout + result.stderr
        assert result.stdout.startswith("ROLLED BACK"), result.stdout
        assert f"witness file {witness_file}" in result.stdout and f"{missing} and everything after" in result.stdout


def test_the_auditors_own_record_finds_a_roll_back_without_the_witness_file(tmp_path, keys):
    gateway_keys, auditor_keys = keys
    folder = tmp_path / "log"
    witnessed(folder, gateway_keys, tmp_path / "elsewhere" / witness.WITNESS_FILE, segments=2)
    signers = AuditorKeys.load(auditor_keys).signers
    first = verify(folder, signers, witnesses=witness.sources(auditor_keys, None, signers))
    assert first.intact and "no witness checked" in first.text()
    witness.record_seen(auditor_keys, first.last_checkpoint, first.intact, signers)
    roll_back_to(folder, 2, checkpoint_lines(folder / SEGMENT(2))[5])
    again = verify(folder, signers, witnesses=witness.sources(auditor_keys, None, signers))
    assert not again.intact and "checkpoints seen by earlier verifications" in str(again.rolled_back[0])


def test_a_record_forged_with_the_auditors_key_is_refused_by_the_gateway(tmp_path, keys):
    """The auditor can decrypt, so can seal a record under the segment's key and chain it after the last
    checkpoint; the gateway's record HMAC, which the auditor cannot make, gives it away at the next start."""
    gateway_keys, auditor_keys = keys
    folder = tmp_path / "log"
    write(folder, gateway_keys, 10)
    path = folder / SEGMENT(1)
    header = json.loads(lines_of(path)[0])
    data_key = chain.unwrap_data_key(header, next(iter(AuditorKeys.load(auditor_keys).readers.values())))
    forged_event = {**event(99), "decision": "NO_MATCH", "note": "forged"}
    forged = chain.seal_record(forged_event, data_key, 11, chain.line_hash(lines_of(path)[-1].rstrip(b"\n")),
                               header["reader"], mac_key=b"a key the auditor made up" + bytes(7))
    with path.open("ab") as handle:
        handle.write(chain.encode(forged) + b"\n")
    forged_line = len(lines_of(path))

    write(folder, gateway_keys, 5, start=10)  # the gateway restarts, appends and signs
    report = check(folder, keys[1])
    assert not report.intact
    assert f"{SEGMENT(1)} line {forged_line}: 1 lines from here on were not written by the gateway" in report.text()
    rows, _ = exported(folder, auditor_keys)
    assert [row["integrity"] for row in rows if row.get("note") == "forged"] == ["damaged"]
    assert [row["seq"] for row in rows if row.get("note") != "forged"] == list(range(1, 16))
    assert all(row["integrity"] == "signed" for row in rows if row.get("note") != "forged")


def test_a_flood_of_refusals_is_summarised_not_written_one_by_one(tmp_path, keys):
    trail = AuditTrail(AuditLog(tmp_path / "log", WriterKeys.load(keys[0])), "m" * 64, lambda: 0)
    for n in range(400):  # garbage connections from many ports
        trail.refusal(Caller("unknown", "", f"ipv4:127.0.0.1:{40000 + n}"), Operation.TLS_HANDSHAKE, "UNAUTHENTICATED",
                      "WRONG_VERSION_NUMBER")
    trail.refusal(Caller("camera/C", "camera", "ipv4:127.0.0.1:1"), "Identify", "PERMISSION_DENIED", "another kind")
    trail.close()
    rows, _ = exported(tmp_path / "log", keys[1])
    handshakes = [row for row in rows if row["operation"] == Operation.TLS_HANDSHAKE]
    assert len(handshakes) == 21 and [row["reason"] for row in handshakes].count("SUMMARY") == 1
    summary = next(row for row in handshakes if row["reason"] == "SUMMARY")
    assert summary["detail"].startswith("380 more refusals like the 20 recorded before them, within 10 s, from ")
    assert "ipv4:127.0.0.1:40020" in summary["peer"] and summary["peer"].endswith(", ...")
    assert [row["operation"] for row in rows].count("Identify") == 1


def test_records_queued_together_are_durable_together_and_a_failed_write_refuses_them_all(tmp_path, keys):
    """append_later returns at once; its records are on disk once what it returns is done. When the disk write
    fails, the records waiting and every later append learn it as AuditUnavailable: no decision goes out unaudited.
    (The writer's file is closed under it here, as a failing disk would make its write fail.)"""
    log = AuditLog(tmp_path / "log", WriterKeys.load(keys[0]))
    written = [log.append_later(event(n)) for n in range(20)]
    for durable in written:
        durable.wait()
    assert all(durable.done() for durable in written)
    log._handle.close()
    waiting = log.append_later(event(20))
    with pytest.raises(AuditUnavailable):
        waiting.wait()
    with pytest.raises(AuditUnavailable):
        log.append(event(21))
    log.close()
    report = check(tmp_path / "log", keys[1])
    assert report.records == 20, report.text()
