"""What an operator meets first: start-up failures that say what and where, a CLI that takes no abbreviation
and explains every flag, and the client's own mistakes reported by the client, before anything is sent."""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from conftest import ENROLLED, fr_gateway, launch, leftover_processes, nik_for, photos, stop

from fr_gateway import __version__
from fr_gateway.cli import build_parser
from fr_gateway.faces.models import locate_pack
from fr_gateway.gallery.store import STORE_FILE, TemplateStore
from fr_gateway.search.snapshot import SNAPSHOT_FILE


@pytest.fixture
def taken_port() -> Iterator[str]:
    """HOST:PORT of 127.0.0.1 that a plain socket listens on for the length of the test."""
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        yield f"127.0.0.1:{held.getsockname()[1]}"


def serve(folder: Path, *args: str) -> subprocess.CompletedProcess:
    return fr_gateway("serve", "--insecure", "--gallery", str(folder / "gallery"), *args)


def test_a_taken_grpc_port_is_named_with_the_flag_that_moves_it(tmp_path, taken_port):
    result = serve(tmp_path, "--listen", taken_port, "--metrics-listen", "")
    assert result.returncode == 4, result.stderr
    assert f"cannot serve gRPC on {taken_port}: Address already in use; choose another address with --listen" \
        in result.stderr
    assert "Traceback" not in result.stderr
    assert "faiss.loader" not in result.stderr  # no library chatter on start


def test_a_taken_metrics_port_is_named_and_an_empty_address_switches_metrics_off(tmp_path, taken_port):
    result = serve(tmp_path, "--listen", "127.0.0.1:0", "--metrics-listen", taken_port)
    assert result.returncode == 4, result.stderr
    assert f"cannot serve Prometheus metrics on {taken_port}: Address already in use; choose another address " \
           "with --metrics-listen" in result.stderr
    gateway = launch(tmp_path / "off", "--insecure", "--gallery", str(tmp_path / "off" / "gallery"),
                     metrics_listen="")
    log = stop(gateway)
    assert "Prometheus metrics on" not in log
    assert "search: FAISS flat index in process, exact" in log  # the start-up log names the search backend


def test_a_start_up_failure_reaches_stderr_with_mutual_tls_too(tmp_path, taken_port):
    """With TLS the gateway routes its stderr through the handshake tap: an error that stops the start must
    still reach the operator, and so must a warning that GRPC_VERBOSITY keeps refused handshakes unaudited."""
    assert fr_gateway("certs", "init", "--dir", str(tmp_path / "certs")).returncode == 0
    assert fr_gateway("audit", "keys", "init", "--gateway", str(tmp_path / "keys" / "audit-gateway"),
                      "--auditor", str(tmp_path / "auditor-keys")).returncode == 0
    result = fr_gateway("serve", "--certs", str(tmp_path / "certs"), "--gallery", str(tmp_path / "gallery"),
                        "--listen", "127.0.0.1:0", "--metrics-listen", taken_port,
                        env={**os.environ, "GRPC_VERBOSITY": "error"})
    assert result.returncode == 4, result.stderr
    assert f"cannot serve Prometheus metrics on {taken_port}" in result.stderr
    assert "GRPC_VERBOSITY=ERROR hides gRPC's handshake lines: refused TLS handshakes" in result.stderr


def test_a_second_gateway_is_refused_a_port_another_gateway_serves(tmp_path):
    first = launch(tmp_path / "first", "--insecure", "--gallery", str(tmp_path / "first" / "gallery"))
    try:
        second = fr_gateway("serve", "--insecure", "--listen", first.target, "--metrics-listen", "",
                            "--gallery", str(tmp_path / "second" / "gallery"))
    finally:
        stop(first)
    assert second.returncode == 4 and f"cannot serve gRPC on {first.target}: Address already in use" \
        in second.stderr


def test_flags_are_never_abbreviated_and_each_one_is_explained():
    result = fr_gateway("serve", "--port", "50060")
    assert result.returncode == 2 and "unrecognized arguments: --port 50060" in result.stderr
    version = fr_gateway("--version")
    assert version.returncode == 0 and version.stdout.strip() == f"fr-gateway {__version__}"

    unexplained = []

    def walk(parser: argparse.ArgumentParser, path: str) -> None:
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, child in action.choices.items():
                    walk(child, f"{path} {name}")
            elif not action.help:
                unexplained.append(f"{path} {'/'.join(action.option_strings) or action.dest}")

    walk(build_parser(), "fr-gateway")
    assert not unexplained, unexplained


@pytest.mark.parametrize("source, said", [
    ("corrupt.mp4", "not a video OpenCV can decode"),
    ("rtsp://127.0.0.1:9/stream", "the stream does not answer"),
    ("7", "camera device 7 cannot be opened"),
    ("missing.mp4", "does not exist"),
])
def test_the_camera_reports_a_source_it_cannot_read_as_its_own_mistake(tmp_path, source, said):
    (tmp_path / "corrupt.mp4").write_bytes(bytes(range(256)) * 400)
    path = str(tmp_path / source) if source.endswith(".mp4") else source
    # nothing listens at the target: the source is refused before any connection is tried
    result = fr_gateway("camera", "--source", path, "--camera-id", "GATE-1", "--target", "127.0.0.1:9")
    assert result.returncode == 2, result.stderr
    assert "video source" in result.stderr and said in result.stderr
    assert "Traceback" not in result.stderr and "UNKNOWN" not in result.stderr


def test_a_manifest_without_its_header_is_refused_before_anything_is_sent(tmp_path):
    headerless = tmp_path / "people.csv"
    headerless.write_text(f"{nik_for(0)},{photos(*ENROLLED[0])[0]}\n")
    result = fr_gateway("enroll", "--manifest", str(headerless), "--target", "127.0.0.1:9")
    assert result.returncode == 2, result.stderr
    assert "the first line must be a header naming the columns nik and photo" in result.stderr
    assert "Traceback" not in result.stderr and "UNKNOWN" not in result.stderr
    broken = tmp_path / "people.jsonl"
    broken.write_text("nik,photo\n")
    result = fr_gateway("enroll", "--manifest", str(broken), "--target", "127.0.0.1:9")
    assert result.returncode == 2 and "not JSON Lines" in result.stderr


def test_a_malformed_row_is_rejected_on_its_own_and_the_rest_enrolled(tmp_path):
    manifest = tmp_path / "people.csv"
    manifest.write_text(f"nik,photo\n{nik_for(0)},{photos(*ENROLLED[0])[0]}\n,{photos(*ENROLLED[1])[0]}\n")
    result = fr_gateway("enroll", "--manifest", str(manifest), "--gallery", str(tmp_path / "gallery"),
                        "--no-progress")
    assert result.returncode == 0, result.stderr
    assert "enrolled 1, replaced 0, unchanged 0, rejected 1 of 2 records (MANIFEST_ROW_INVALID 1)" in result.stdout
    assert "line 3: no nik" in (tmp_path / "people.rejects.csv").read_text()


def test_certs_issue_keeps_an_existing_key_unless_forced(tmp_path):
    folder = str(tmp_path / "certs")
    assert fr_gateway("certs", "init", "--dir", folder, "--client", "camera:GATE-1").returncode == 0
    key = tmp_path / "certs" / "camera-GATE-1.key"
    before = key.read_bytes()
    again = fr_gateway("certs", "issue", "--dir", folder, "--client", "camera:GATE-1")
    assert again.returncode == 2 and "already exists: --force replaces it" in again.stderr
    assert key.read_bytes() == before
    forced = fr_gateway("certs", "issue", "--dir", folder, "--client", "camera:GATE-1", "--force")
    assert forced.returncode == 0 and key.read_bytes() != before


def test_the_folders_of_secrets_are_ignored_by_git():
    root = Path(__file__).resolve().parents[1]
    for folder in ("certs/ca.key", "auditor-keys/reader-x.key", "index/keys/default.json"):
        ignored = subprocess.run(["git", "check-ignore", "-q", folder], cwd=root)
        assert ignored.returncode == 0, f"{folder} is not ignored by git"


def test_the_leftover_check_finds_a_process_a_test_forgot(tmp_path):
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", str(tmp_path)])
    try:
        assert sleeper.pid in leftover_processes(tmp_path)
    finally:
        sleeper.kill()
        sleeper.wait()
    assert sleeper.pid not in leftover_processes(tmp_path)


def test_a_gallery_that_lost_its_key_or_its_store_is_refused_in_every_mode(tmp_path):
    """Never a new key over an existing gallery, never an empty gallery in place of a lost store, and the
    reason printed with mutual TLS as without."""
    pack = locate_pack()
    gallery, key_file = tmp_path / "gallery", tmp_path / "keys" / "gallery.json"
    store = TemplateStore.open(gallery, key_file, pack.fingerprint, pack.name)
    store.upsert(nik_for(1), np.full(512, 512 ** -0.5, dtype=np.float32), {})
    store.close()
    key_file.rename(tmp_path / "key-backup.json")
    assert fr_gateway("certs", "init", "--dir", str(tmp_path / "certs")).returncode == 0
    assert fr_gateway("audit", "keys", "init", "--gateway", str(tmp_path / "keys" / "audit-gateway"),
                      "--auditor", str(tmp_path / "auditor-keys")).returncode == 0
    for mode in (["--insecure"], ["--certs", str(tmp_path / "certs")]):
        result = fr_gateway("serve", *mode, "--gallery", str(gallery), "--listen", "127.0.0.1:0",
                            "--metrics-listen", "")
        assert result.returncode == 6, result.stderr
        assert f"key file {key_file} does not exist" in result.stderr and "restore the key file" in result.stderr
        assert not key_file.exists()

    (tmp_path / "key-backup.json").rename(key_file)
    (gallery / STORE_FILE).rename(tmp_path / "store-backup.sqlite3")
    (gallery / SNAPSHOT_FILE).write_bytes(b"a saved index")
    result = serve(tmp_path, "--listen", "127.0.0.1:0", "--metrics-listen", "")
    assert result.returncode == 6, result.stderr
    assert f"holds {SNAPSHOT_FILE} but no {STORE_FILE}: its template store is missing" in result.stderr
    assert (gallery / SNAPSHOT_FILE).read_bytes() == b"a saved index"
