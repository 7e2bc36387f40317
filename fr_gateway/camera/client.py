"""The camera-side client: detect and align faces in each frame, track them so each person costs a few crops,
stream those as ALIGNED crops over IdentifyStream, report every decision with the frame time it belongs to,
and reconnect with backoff when the gateway goes away, carrying on from the same place in the video."""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator

import grpc

from fr_gateway.camera.sources import Frame
from fr_gateway.camera.tracking import FaceTracker, TrackedFace
from fr_gateway.contract import face_pb2, recognition_pb2, recognition_pb2_grpc
from fr_gateway.faces.detector import FaceDetector, align
from fr_gateway.faces.images import encode_jpeg
from fr_gateway.transport import RequestSource

log = logging.getLogger(__name__)
RETRYABLE = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.RESOURCE_EXHAUSTED)


@dataclasses.dataclass(frozen=True)
class DecisionRecord:
    """One face's decision as the camera shows it."""

    request_id: str
    frame: int
    time_ms: float
    face: int
    track_id: str
    box: tuple[int, int, int, int]
    decision: str
    nik: str
    score: float
    threshold: float
    detail: str
    alerts: tuple[str, ...] = ()  # the watchlist entries the face matched, as "list/label"

    def line(self) -> str:
        seconds = self.time_ms / 1000
        stamp = f"{int(seconds // 3600):02d}:{int(seconds % 3600 // 60):02d}:{seconds % 60:06.3f}"
        if self.decision == "MATCH":
            who = f"NIK {self.nik}  score {self.score:.3f}"
        elif self.decision == "NO_MATCH":
            who = f"best score {self.score:.3f} below threshold {self.threshold:.2f}"
        else:
            who = self.detail
        track = f" {self.track_id}" if self.track_id else ""
        alerts = "".join(f"  ALERT {alert}" for alert in self.alerts)
        return f"[{stamp}] frame {self.frame:5d} face {self.face}{track}  {self.decision:<10} {who}{alerts}"


@dataclasses.dataclass
class StreamStats:
    frames: int = 0
    faces: int = 0  # detected
    sent: int = 0  # crops sent to the gateway (fewer than faces when tracking)
    reconnects: int = 0
    decisions: Counter[str] = dataclasses.field(default_factory=Counter)
    seconds: float = 0.0

    @property
    def faces_per_second(self) -> float:
        return self.faces / self.seconds if self.seconds else 0.0


@dataclasses.dataclass(frozen=True)
class _Pending:
    frame: Frame
    number: int
    box: tuple[int, int, int, int]
    request: recognition_pb2.IdentifyRequest


class CameraClient:
    """`tracking=False` sends every face of every frame (for comparison); `max_backoff_s` caps the wait
    between reconnection attempts, and `give_up_after_s` ends the run when the gateway stays away that long.
    `on_frame` sees every frame with its faces (for a display)."""

    def __init__(self, detector: FaceDetector, channel: grpc.Channel, camera_id: str, top_k: int = 1,
                 tracking: bool = True, max_backoff_s: float = 10.0, give_up_after_s: float = 300.0,
                 on_frame: Callable[[Frame, list[TrackedFace]], None] | None = None) -> None:
        self._detector = detector
        self._stub = recognition_pb2_grpc.RecognitionStub(channel)
        self._camera_id = camera_id
        self._top_k = top_k
        self._tracker = FaceTracker(camera_id) if tracking else None
        self._max_backoff_s = max_backoff_s
        self._give_up_after_s = give_up_after_s
        self._on_frame = on_frame
        self._pending: dict[str, _Pending] = {}
        self._lock = threading.Lock()  # pending
        self._frame_lock = threading.Lock()  # taking a frame and registering its crops
        self._generation = 0
        self._stats = StreamStats()

    def _tracked(self, frame: Frame) -> list[TrackedFace]:
        faces = self._detector.detect(frame.image)
        if self._tracker is None:
            return [TrackedFace(face, "", True) for face in faces]
        return self._tracker.update(frame.time_ms, faces)

    def _requests(self, frames: Iterator[Frame]) -> Iterator[recognition_pb2.IdentifyRequest]:
        """First the crops a broken stream left unanswered, then the next frames' crops. Each stream gets its own
        generation: a frame is taken and its crops registered under one lock, so a new stream waits for the
        frame an old one was in the middle of, resends its crops, and the old stream's generator stops."""
        with self._frame_lock, self._lock:
            self._generation += 1
            generation = self._generation
            unanswered = [pending.request for pending in self._pending.values()]
        yield from unanswered
        while True:
            with self._frame_lock:
                frame = next(frames, None) if generation == self._generation else None
                if frame is None:
                    return
                requests = self._crops(frame)
            yield from requests

    def _crops(self, frame: Frame) -> list[recognition_pb2.IdentifyRequest]:
        """The crops of one frame that go to the gateway, registered as pending."""
        self._stats.frames += 1
        requests = []
        faces = self._tracked(frame)
        if self._on_frame is not None:
            self._on_frame(frame, faces)
        for number, tracked in enumerate(faces, start=1):
            self._stats.faces += 1
            if not tracked.send:
                continue
            request = recognition_pb2.IdentifyRequest(
                request_id=f"{self._camera_id}-{frame.index}-{number}", camera_id=self._camera_id,
                top_k=self._top_k, track_id=tracked.track_id,
                face=face_pb2.Face(image=encode_jpeg(align(frame.image, tracked.face)), kind=face_pb2.ALIGNED))
            with self._lock:
                self._pending[request.request_id] = _Pending(frame, number, tuple(int(v) for v in tracked.face.box),
                                                             request)
            self._stats.sent += 1
            requests.append(request)
        return requests

    def _report(self, response: recognition_pb2.IdentifyResponse,
                on_decision: Callable[[DecisionRecord], None]) -> None:
        with self._lock:
            pending = self._pending.pop(response.request_id)
        best = response.candidates[0] if response.candidates else None
        decision = face_pb2.Decision.Name(response.decision)
        self._stats.decisions[decision] += 1
        on_decision(DecisionRecord(
            request_id=response.request_id, frame=pending.frame.index, time_ms=pending.frame.time_ms,
            face=pending.number, track_id=response.track_id, box=pending.box, decision=decision,
            nik=best.nik if best and decision == "MATCH" else "", score=best.score if best else 0.0,
            threshold=response.threshold, detail=response.detail,
            alerts=tuple(f"{hit.watchlist}/{hit.label}" for hit in response.watchlist_hits),
        ))

    def run(self, frames: Iterable[Frame], on_decision: Callable[[DecisionRecord], None]) -> StreamStats:
        """Stream until the frames end; one callback per crop sent, in order. When the gateway is unavailable,
        wait (doubling, up to max_backoff_s), reconnect, resend what was unanswered and go on from the frame
        where the camera was."""
        started = time.monotonic()
        frames = iter(frames)
        backoff, down_since = 0.5, None
        while True:
            requests = RequestSource(self._requests(frames))
            try:
                for response in self._stub.IdentifyStream(iter(requests)):
                    backoff, down_since = 0.5, None
                    self._report(response, on_decision)
                requests.check()
                break
            except grpc.RpcError as error:
                requests.check()  # the camera's own failure (its source, its detector), not the gateway's
                if error.code() not in RETRYABLE:
                    raise
                down_since = down_since or time.monotonic()
                if time.monotonic() - down_since > self._give_up_after_s:
                    raise
                log.warning("gateway %s (%s); reconnecting in %.1f s", error.code().name, error.details(), backoff)
                time.sleep(backoff)
                backoff = min(backoff * 2, self._max_backoff_s)
                self._stats.reconnects += 1
        self._stats.seconds = time.monotonic() - started
        return self._stats
