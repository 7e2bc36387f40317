"""The camera-side client: detect and align faces in each frame, stream them as ALIGNED crops over
IdentifyStream, and report every decision with the frame time it belongs to."""

from __future__ import annotations

import dataclasses
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator

import grpc

from fr_gateway.camera.sources import Frame
from fr_gateway.contract import face_pb2, recognition_pb2, recognition_pb2_grpc
from fr_gateway.faces.detector import FaceDetector, align
from fr_gateway.faces.images import encode_jpeg


@dataclasses.dataclass(frozen=True)
class DecisionRecord:
    """One face's decision as the camera shows it."""

    request_id: str
    frame: int
    time_ms: float
    face: int
    box: tuple[int, int, int, int]
    decision: str
    nik: str
    score: float
    threshold: float
    detail: str

    def line(self) -> str:
        seconds = self.time_ms / 1000
        stamp = f"{int(seconds // 3600):02d}:{int(seconds % 3600 // 60):02d}:{seconds % 60:06.3f}"
        if self.decision == "MATCH":
            who = f"NIK {self.nik}  score {self.score:.3f}"
        elif self.decision == "NO_MATCH":
            who = f"best score {self.score:.3f} below threshold {self.threshold:.2f}"
        else:
            who = self.detail
        return f"[{stamp}] frame {self.frame:5d} face {self.face}  {self.decision:<10} {who}"


@dataclasses.dataclass
class StreamStats:
    frames: int = 0
    faces: int = 0
    decisions: Counter[str] = dataclasses.field(default_factory=Counter)
    seconds: float = 0.0

    @property
    def faces_per_second(self) -> float:
        return self.faces / self.seconds if self.seconds else 0.0


class CameraClient:
    def __init__(self, detector: FaceDetector, channel: grpc.Channel, camera_id: str, top_k: int = 1) -> None:
        self._detector = detector
        self._stub = recognition_pb2_grpc.RecognitionStub(channel)
        self._camera_id = camera_id
        self._top_k = top_k
        self._pending: dict[str, tuple[Frame, int, tuple[int, int, int, int]]] = {}
        self._lock = threading.Lock()
        self._stats = StreamStats()

    def _requests(self, frames: Iterable[Frame]) -> Iterator[recognition_pb2.IdentifyRequest]:
        for frame in frames:
            self._stats.frames += 1
            for number, face in enumerate(self._detector.detect(frame.image), start=1):
                request_id = f"{self._camera_id}-{frame.index}-{number}"
                with self._lock:
                    self._pending[request_id] = (frame, number, tuple(int(v) for v in face.box))
                self._stats.faces += 1
                yield recognition_pb2.IdentifyRequest(
                    request_id=request_id, camera_id=self._camera_id, top_k=self._top_k,
                    face=face_pb2.Face(image=encode_jpeg(align(frame.image, face)), kind=face_pb2.ALIGNED),
                )

    def run(self, frames: Iterable[Frame], on_decision: Callable[[DecisionRecord], None]) -> StreamStats:
        """Stream until the frames end; one callback per face, in order."""
        started = time.monotonic()
        for response in self._stub.IdentifyStream(self._requests(frames)):
            with self._lock:
                frame, number, box = self._pending.pop(response.request_id)
            best = response.candidates[0] if response.candidates else None
            decision = face_pb2.Decision.Name(response.decision)
            self._stats.decisions[decision] += 1
            on_decision(DecisionRecord(
                request_id=response.request_id, frame=frame.index, time_ms=frame.time_ms, face=number, box=box,
                decision=decision, nik=best.nik if best and decision == "MATCH" else "",
                score=best.score if best else 0.0, threshold=response.threshold, detail=response.detail,
            ))
        self._stats.seconds = time.monotonic() - started
        return self._stats
