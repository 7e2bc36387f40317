"""Shared fixtures: the real model pack loaded once, and gateways on real gRPC over 127.0.0.1 (ephemeral ports)."""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import cv2
import grpc
import numpy as np
import pytest

from fr_gateway.audit.export import Selection, export
from fr_gateway.audit.keys import AuditorKeys
from fr_gateway.config import Settings, audit_dir_for, environment, load_settings, local_auditor_keys_for
from fr_gateway.contract import (
    face_pb2,
    gallery_pb2,
    gallery_pb2_grpc,
    recognition_pb2_grpc,
    watchlists_pb2,
    watchlists_pb2_grpc,
)
from fr_gateway.evaluation.dataset import sample_faces
from fr_gateway.faces.engine import FaceEngine, load_engine
from fr_gateway.gallery.nik import synthetic_nik
from fr_gateway.security.certs import Principal, TlsFiles
from fr_gateway.server.app import Gateway
from fr_gateway.server.process import GatewayProcess
from fr_gateway.transport import open_channel

DATA = sample_faces()

# The gallery used by the recognition tests: these people are enrolled with their first photo ...
ENROLLED = (
    [("celebrities", f"id{i:02d}") for i in range(10)]
    + [("orl", f"s{i}") for i in range(1, 31)]
    + [("fr-examples", name) for name in ("biden", "obama", "kit_harington")]
)
# ... and these are never enrolled: every photo of them is a non-mated search.
NOT_ENROLLED = (
    [("celebrities", f"id{i:02d}") for i in range(10, 13)]
    + [("orl", f"s{i}") for i in range(31, 41)]
    + [("fr-examples", name) for name in ("alex_lacamoire", "rose_leslie")]
)


def photos(set_name: str, person: str) -> list[Path]:
    """A person's photos in a stable order (first one is the enrolment photo)."""
    found = sorted((DATA / set_name / person).iterdir(), key=lambda p: (len(p.name), p.name))
    assert found, f"no photos for {set_name}/{person} under {DATA}"
    return found


def nik_for(number: int) -> str:
    """A distinct, well-formed NIK per test identity (East Kalimantan, the IKN province)."""
    return synthetic_nik(number)


def loose(path: Path) -> face_pb2.Face:
    return face_pb2.Face(image=path.read_bytes(), kind=face_pb2.LOOSE)


def png(image: np.ndarray) -> bytes:
    return cv2.imencode(".png", image)[1].tobytes()


def _processes() -> dict[int, tuple[int, str, str]]:
    """Every process of the machine: pid -> (parent pid, state, command line)."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:  # it ended while we looked
            continue
        state, parent = stat.rsplit(")", 1)[1].split()[:2]
        found[int(entry.name)] = (int(parent), state, command)
    return found


def leftover_processes(scratch: Path) -> dict[int, str]:
    """Live processes the test run started and did not stop: descendants of this one, and orphans whose command
    line names the run's scratch folder (a milvus-lite or gateway whose parent has gone)."""
    processes = _processes()
    children: dict[int, list[int]] = {}
    for pid, (parent, _, _) in processes.items():
        children.setdefault(parent, []).append(pid)
    descendants, waiting = set(), [os.getpid()]
    while waiting:
        for child in children.get(waiting.pop(), []):
            descendants.add(child)
            waiting.append(child)
    return {pid: command for pid, (_, state, command) in processes.items()
            if state != "Z" and (pid in descendants or str(scratch) in command)}


@pytest.fixture(scope="session", autouse=True)
def no_process_left_behind(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Fails the run when a gateway, milvus-lite or any other process a test started outlives the tests, and
    stops it, so a failing test never leaves a server holding memory and ports."""
    yield
    left = leftover_processes(tmp_path_factory.getbasetemp())
    for pid in left:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    assert not left, "processes left running by the tests (now killed):\n" + "\n".join(
        f"  {pid}: {command[:200]}" for pid, command in left.items())


@pytest.fixture(scope="session")
def engine() -> FaceEngine:
    assert DATA.is_dir(), f"test faces not found at {DATA} (set FRG_TEST_DATA)"
    return load_engine(load_settings(environ={}))


def engine_settings(gallery: Path, **overrides: object) -> Settings:
    """Settings for a gateway in the test process: ephemeral ports, the given gallery, the environment ignored."""
    return load_settings(overrides={"listen": "127.0.0.1:0", "metrics_listen": "127.0.0.1:0",
                                    "gallery": str(gallery), **overrides}, environ={})


def start_gateway(engine: FaceEngine, gallery: Path, **overrides: object) -> Gateway:
    return Gateway(engine_settings(gallery, **overrides), engine=engine).start()


class Client:
    """Stubs for one gateway, over a real loopback channel."""

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        self.channel = grpc.insecure_channel(f"127.0.0.1:{gateway.port}")
        self.recognition = recognition_pb2_grpc.RecognitionStub(self.channel)
        self.gallery = gallery_pb2_grpc.GalleryStub(self.channel)

    @property
    def settings(self) -> Settings:
        return self.gateway.settings


def refused(call) -> grpc.StatusCode:
    """The status a call that must fail fails with."""
    with pytest.raises(grpc.RpcError) as raised:
        call()
    return raised.value.code()


def fr_gateway(*args: str, timeout: float = 120, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """The `fr-gateway` command as an operator runs it, in its own process; its output captured."""
    return subprocess.run([sys.executable, "-m", "fr_gateway.cli", *args], capture_output=True, text=True,
                          timeout=timeout, env=env)


def audit_records(gallery: Path) -> list[dict]:
    """The records of a local gateway's audit log (kept beside its gallery), read with the auditor's keys."""
    settings = load_settings(environ=environment({"gallery": str(gallery)}))
    out = io.StringIO()
    export(audit_dir_for(settings), AuditorKeys.load(local_auditor_keys_for(settings)), out, "jsonl", Selection())
    return [json.loads(line) for line in out.getvalue().splitlines()][1:]


def launch(folder: Path, *args: str, **settings: object) -> GatewayProcess:
    """`fr-gateway serve ARGS` in its own process on an ephemeral port, with settings as FRG_* variables."""
    return GatewayProcess.start(folder, *args, settings=settings, timeout=120)


def stop(gateway: GatewayProcess) -> str:
    """SIGTERM, as an operator stops it; the gateway must exit cleanly. Returns its log."""
    assert gateway.stop(timeout=30) == 0, gateway.log
    return gateway.log


@contextlib.contextmanager
def serving(engine: FaceEngine, gallery: Path, **overrides: object) -> Iterator[Client]:
    """A gateway with its client for the length of a with-block."""
    gateway = start_gateway(engine, gallery, **overrides)
    client = Client(gateway)
    try:
        yield client
    finally:
        client.channel.close()
        gateway.stop(grace=1)


@pytest.fixture
def fresh(engine: FaceEngine, tmp_path: Path) -> Iterator[Client]:
    """A gateway on an empty gallery, for tests that change the gallery."""
    with serving(engine, tmp_path / "gallery") as client:
        yield client


@pytest.fixture(scope="module")
def enrolled(engine: FaceEngine, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Client]:
    """A gateway whose gallery holds ENROLLED, enrolled through the EnrollStream RPC."""
    with serving(engine, tmp_path_factory.mktemp("gallery")) as client:
        requests = [
            gallery_pb2.EnrollRequest(nik=nik_for(i), face=loose(photos(*who)[0]), attributes={"name": "/".join(who)})
            for i, who in enumerate(ENROLLED)
        ]
        summary = client.gallery.EnrollStream(iter(requests))
        assert (summary.enrolled, summary.rejected) == (len(ENROLLED), 0), summary
        yield client


class Site:
    """A TLS gateway and everything its clients and its auditor hold."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.certs = folder / "certs"
        self.auditor_keys = folder / "auditor-keys"
        self.audit_dir = folder / "audit"
        self.target = ""
        self.log = ""

    def tls(self, principal: Principal, certs: Path | None = None) -> TlsFiles:
        stem = (certs or self.certs) / f"{principal.role}-{principal.identity}"
        return TlsFiles.load(stem.with_suffix(".pem"), stem.with_suffix(".key"), self.certs / "ca.pem")

    def channel(self, principal: Principal | None, certs: Path | None = None) -> grpc.Channel:
        if principal is None:  # TLS with no client certificate
            credentials = grpc.ssl_channel_credentials(root_certificates=(self.certs / "ca.pem").read_bytes())
            return grpc.secure_channel(self.target, credentials)
        return open_channel(self.target, self.tls(principal, certs))

    def export(self, *args: str) -> list[dict]:
        result = fr_gateway("audit", "export", "--dir", str(self.audit_dir), "--keys", str(self.auditor_keys),
                            *args)
        assert result.returncode == 0, result.stderr
        return [json.loads(line) for line in result.stdout.splitlines()]


def create_site(folder: Path, *clients: Principal) -> Site:
    """A CA with the gateway's certificate and the clients', and the audit keys: what a site sets up first."""
    site = Site(folder)
    flags = [arg for who in clients for arg in ("--client", f"{who.role}:{who.identity}")]
    assert fr_gateway("certs", "init", "--dir", str(site.certs), *flags).returncode == 0
    keys = fr_gateway("audit", "keys", "init", "--gateway", str(folder / "keys" / "audit-gateway"),
                      "--auditor", str(site.auditor_keys))
    assert keys.returncode == 0, keys.stderr
    return site


def create_list(channel: grpc.Channel, name: str, **choice: object) -> watchlists_pb2.WatchlistInfo:
    return watchlists_pb2_grpc.WatchlistsStub(channel).CreateWatchlist(watchlists_pb2.CreateWatchlistRequest(
        name=name, reason="missing person report", owner="Polres Balikpapan", **choice), timeout=30)


def add_entry(channel: grpc.Channel, watchlist: str, who: tuple[str, str], expires: str = "",
              photo_numbers: tuple[int, ...] = (0, 1)) -> watchlists_pb2.AddEntryResponse:
    return watchlists_pb2_grpc.WatchlistsStub(channel).AddEntry(watchlists_pb2.AddEntryRequest(
        watchlist=watchlist, label="/".join(who), case_reference="LP/B/123/XI/2026", expires=expires,
        faces=[loose(photos(*who)[n]) for n in photo_numbers]), timeout=60)
