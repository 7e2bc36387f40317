"""Face tracks across frames by box overlap (IoU), so a person walking past costs a few embeddings: a track sends
its first crop at once, then a clearly better one a few times at most, and one again every `refresh_ms` while
it lasts, so that a track which passed from one person to the next (a queue at a gate) is re-identified within
that time. A track ends when its face is missing for more than `max_gap_ms`: overlap means the same person only
between frames close in time, so a folder of snapshots a second apart makes a new track of every face."""

from __future__ import annotations

import dataclasses
import itertools

from fr_gateway.faces.detector import DetectedFace


def iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    width = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    height = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = width * height
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def quality(face: DetectedFace) -> float:
    """Surer and larger is better: the detector's score times the face's side in pixels."""
    return face.score * (face.area ** 0.5)


@dataclasses.dataclass
class Track:
    track_id: str
    box: tuple[float, ...]
    last_seen: float
    best_sent: float = 0.0
    sends: int = 0
    last_sent: float = 0.0


@dataclasses.dataclass(frozen=True)
class TrackedFace:
    face: DetectedFace
    track_id: str
    send: bool  # this crop goes to the gateway


class FaceTracker:
    """`update(time_ms, faces)` matches faces to live tracks greedily by IoU and says which crops to send."""

    def __init__(self, camera_id: str, min_iou: float = 0.3, max_gap_ms: float = 300.0, max_sends: int = 3,
                 improvement: float = 1.25, refresh_ms: float = 1000.0) -> None:
        self._camera_id = camera_id
        self._min_iou = min_iou
        self._max_gap_ms = max_gap_ms
        self._max_sends = max_sends
        self._improvement = improvement
        self._refresh_ms = refresh_ms
        self._tracks: list[Track] = []
        self._numbers = itertools.count(1)

    def update(self, time_ms: float, faces: list[DetectedFace]) -> list[TrackedFace]:
        self._tracks = [t for t in self._tracks if time_ms - t.last_seen <= self._max_gap_ms]
        pairs = sorted(((iou(t.box, f.box), ti, fi) for ti, t in enumerate(self._tracks)
                        for fi, f in enumerate(faces)), reverse=True)
        matched: dict[int, Track] = {}
        used: set[int] = set()
        for overlap, ti, fi in pairs:
            if overlap < self._min_iou:
                break
            if ti not in used and fi not in matched:
                matched[fi] = self._tracks[ti]
                used.add(ti)
        out = []
        for fi, face in enumerate(faces):
            track = matched.get(fi)
            if track is None:
                track = Track(f"{self._camera_id}-t{next(self._numbers)}", face.box, time_ms)
                self._tracks.append(track)
            track.box, track.last_seen = face.box, time_ms
            score = quality(face)
            better = track.sends < self._max_sends and score > track.best_sent * self._improvement
            send = track.sends == 0 or better or time_ms - track.last_sent >= self._refresh_ms
            if send:
                track.best_sent, track.sends, track.last_sent = max(score, track.best_sent), track.sends + 1, time_ms
            out.append(TrackedFace(face, track.track_id, send))
        return out
