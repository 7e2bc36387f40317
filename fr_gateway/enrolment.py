"""Bulk enrolment runs: a manifest through the enrolment pipeline, in process or through a gateway's
EnrollStream, with a progress bar, resumption (unchanged records are skipped) and a rejects file that is itself
a manifest the operator can fix and run again."""

from __future__ import annotations

import collections
import csv
import dataclasses
import logging
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import grpc
from tqdm import tqdm

from fr_gateway.audit.trail import Caller
from fr_gateway.changes import EnrollResult
from fr_gateway.contract import face_pb2, gallery_pb2, gallery_pb2_grpc
from fr_gateway.faces.crops import CropKind
from fr_gateway.gallery.manifest import REJECT_PREFIX, ManifestRow, count_rows, read_manifest
from fr_gateway.service import EnrollRecord, FaceInput, GatewayService
from fr_gateway.transport import RequestSource

log = logging.getLogger(__name__)

PHOTO_NOT_FOUND = "PHOTO_NOT_FOUND"
MANIFEST_ROW_INVALID = "MANIFEST_ROW_INVALID"
BUSY_RETRIES = 5  # a run through a gateway that answers RESOURCE_EXHAUSTED is sent again after 2, 4, ... 32 s


@dataclasses.dataclass
class RunSummary:
    counts: Counter[str] = dataclasses.field(default_factory=Counter)
    rejected_by_reason: Counter[str] = dataclasses.field(default_factory=Counter)

    def line(self) -> str:
        c = self.counts
        text = (f"enrolled {c['enrolled']}, replaced {c['replaced']}, unchanged {c['unchanged']}, "
                f"rejected {c['rejected']} of {c.total()} records")
        if self.rejected_by_reason:
            text += " (" + ", ".join(f"{k} {v}" for k, v in sorted(self.rejected_by_reason.items())) + ")"
        return text


class RejectsWriter:
    """Rejected rows with their reason, in manifest form: fix the photos or NIKs and run the file again."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._handle = None
        self._writer: csv.DictWriter | None = None

    def write(self, row: ManifestRow, reason: str, detail: str) -> None:
        record = {"nik": row.nik, "photo": str(row.photo.resolve()), **row.attributes,
                  f"{REJECT_PREFIX}line": row.line, f"{REJECT_PREFIX}reason": reason, f"{REJECT_PREFIX}detail": detail}
        if self._writer is None:
            self._handle = self.path.open("w", newline="", encoding="utf-8")
            self._writer = csv.DictWriter(self._handle, list(record), extrasaction="ignore", restval="")
            self._writer.writeheader()
        self._writer.writerow(record)
        self._handle.flush()

    def close(self) -> None:
        if self._handle:
            self._handle.close()
        elif self.path.exists():
            self.path.unlink()  # a clean run leaves no stale rejects behind


class EnrolmentRun:
    """Counts, rejects and progress of one run; `local` and `remote` feed it results."""

    def __init__(self, manifest: Path, rejects_path: Path, progress: bool) -> None:
        self.manifest = manifest
        self._rows = read_manifest(manifest)  # a file that is no manifest fails here, before anything is sent
        self.summary = RunSummary()
        self._rejects = RejectsWriter(rejects_path)
        self._bar = tqdm(total=count_rows(manifest), unit="photo", desc="enrolling", disable=not progress,
                         smoothing=0.05)

    def _reject(self, row: ManifestRow, reason: str, detail: str, *, counted: bool = False) -> None:
        """`counted`: the row already advanced the progress bar (sent to a gateway)."""
        self.summary.counts["rejected"] += 1
        self.summary.rejected_by_reason[reason] += 1
        self._rejects.write(row, reason, detail)
        if not counted:
            self._bar.update(1)

    def _readable(self) -> Iterator[ManifestRow]:
        for row in self._rows:
            if row.problem:
                self._reject(row, MANIFEST_ROW_INVALID, row.problem)
            elif row.photo.is_file():
                yield row
            else:
                self._reject(row, PHOTO_NOT_FOUND, f"photo {row.photo} not found")

    def _record(self, row: ManifestRow, result: EnrollResult) -> None:
        if not result.enrolled:
            self._reject(row, result.reason.name, result.detail)
            return
        self.summary.counts["unchanged" if result.unchanged else "replaced" if result.replaced else "enrolled"] += 1
        self._bar.update(1)

    def local(self, service: GatewayService) -> RunSummary:
        """In process: each chunk the pipeline yields is already committed to the store and audited."""
        in_flight: collections.deque[ManifestRow] = collections.deque()

        def records() -> Iterator[EnrollRecord]:
            for row in self._readable():
                in_flight.append(row)
                yield EnrollRecord(row.nik, FaceInput(row.photo.read_bytes(), CropKind.LOOSE), row.attributes)

        for result in service.enroll_many(records(), Caller.local(), skip_unchanged=True):
            row = in_flight.popleft()
            self._record(row, result)
            if not in_flight:
                log.debug("acknowledged through manifest line %d", row.line)
        return self.summary

    def remote(self, channel: grpc.Channel) -> RunSummary:
        """Through a gateway's EnrollStream: progress counts photos sent, the summary comes at the end."""
        sent: list[ManifestRow] = []

        def requests() -> Iterator[gallery_pb2.EnrollRequest]:
            for row in self._readable():
                sent.append(row)
                self._bar.update(1)
                yield gallery_pb2.EnrollRequest(nik=row.nik, face=face_pb2.Face(image=row.photo.read_bytes()),
                                                attributes=row.attributes)

        source = RequestSource(requests())
        try:
            answer = gallery_pb2_grpc.GalleryStub(channel).EnrollStream(iter(source))
        except grpc.RpcError:
            source.check()  # a manifest or photo the client could not read, not the gateway's failure
            raise
        source.check()
        counts = self.summary.counts
        counts.update(enrolled=answer.enrolled - answer.replaced, replaced=answer.replaced, unchanged=answer.unchanged)
        for reject in answer.rejects:
            self._reject(sent[reject.index], face_pb2.Reason.Name(reject.reason), reject.detail, counted=True)
        return self.summary

    def close(self) -> None:
        self._bar.close()
        self._rejects.close()


def run_enrolment(manifest: Path, rejects_path: Path, *, service: GatewayService | None = None,
                  channel: grpc.Channel | None = None, progress: bool = True) -> RunSummary:
    """In process with `service` (which audits each enrolment where its gallery has a trail; tests and benchmarks
    may give it none), or through a gateway over `channel`, which audits."""
    if service is not None:
        run = EnrolmentRun(manifest, rejects_path, progress)
        try:
            return run.local(service)
        finally:
            run.close()
    attempt = 0
    while True:
        attempt += 1
        run = EnrolmentRun(manifest, rejects_path, progress)
        try:
            return run.remote(channel)
        except grpc.RpcError as exc:
            if exc.code() != grpc.StatusCode.RESOURCE_EXHAUSTED or attempt > BUSY_RETRIES:
                raise
            wait = 2 ** attempt
            log.warning("the gateway is busy (%s): sending the manifest again in %d s; what it already enrolled is "
                        "skipped as unchanged", exc.details(), wait)
            time.sleep(wait)
        finally:
            run.close()

