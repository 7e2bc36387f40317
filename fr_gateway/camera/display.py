"""What the operator sees: each frame with its faces boxed and labelled by the latest decision for them, shown
in a window where this machine has a display, or written to a video file (a headless checkpoint box)."""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

from fr_gateway.camera.client import DecisionRecord
from fr_gateway.camera.sources import Frame
from fr_gateway.camera.tracking import TrackedFace, iou

COLOURS = {"MATCH": (0, 200, 0), "NO_MATCH": (0, 0, 230)}  # BGR; anything else (pending, refused) is grey
OTHER = (170, 170, 170)
UNTRACKED_MS = 1000.0  # an untracked face takes the label of an overlapping box decided this recently
UNTRACKED_IOU = 0.3  # how much the boxes must overlap (as the tracker's own matching)
WINDOW = "fr-gateway camera"
DEFAULT_FPS = 25.0


class Screen(Protocol):
    def show(self, image: np.ndarray, time_ms: float) -> None: ...

    def close(self) -> None: ...


class Overlay:
    """Remembers the latest decision per track (and, for untracked faces, per box), draws it on every frame and
    hands the picture to the screens. Decisions arrive on the stream's thread, frames on the camera's: one lock
    between them."""

    def __init__(self, screens: list[Screen]) -> None:
        self._screens = screens
        self._by_track: dict[str, DecisionRecord] = {}
        self._untracked: list[DecisionRecord] = []
        self._lock = threading.Lock()

    def decided(self, record: DecisionRecord) -> None:
        with self._lock:
            if record.track_id:
                self._by_track[record.track_id] = record
            else:
                self._untracked = [r for r in self._untracked if record.time_ms - r.time_ms <= UNTRACKED_MS]
                self._untracked.append(record)

    def _decision_for(self, frame: Frame, tracked: TrackedFace) -> DecisionRecord | None:
        with self._lock:
            if tracked.track_id:
                return self._by_track.get(tracked.track_id)
            recent = [r for r in self._untracked if abs(frame.time_ms - r.time_ms) <= UNTRACKED_MS]
        best = max(recent, key=lambda r: iou(r.box, tracked.face.box), default=None)
        return best if best is not None and iou(best.box, tracked.face.box) > UNTRACKED_IOU else None

    def draw(self, frame: Frame, faces: list[TrackedFace]) -> np.ndarray:
        """A copy of the frame with a box per face: green MATCH with the NIK, red NO_MATCH, grey otherwise."""
        canvas = frame.image.copy()
        for tracked in faces:
            record = self._decision_for(frame, tracked)
            colour = COLOURS.get(record.decision, OTHER) if record else OTHER
            if record is None:
                label = "..."
            elif record.decision == "MATCH":
                label = f"{record.nik} {record.score:.2f}"
            else:
                label = record.decision
            x1, y1, x2, y2 = (round(v) for v in tracked.face.box)
            cv2.rectangle(canvas, (x1, y1), (x2, y2), colour, 2)
            cv2.putText(canvas, label, (x1, max(12, y1 - 6)), cv2.FONT_HERSHEY_SIMPLEX, 0.5, colour, 1, cv2.LINE_AA)
        return canvas

    def frame(self, frame: Frame, faces: list[TrackedFace]) -> None:
        """The camera client's per-frame hook."""
        image = self.draw(frame, faces)
        for screen in self._screens:
            screen.show(image, frame.time_ms)

    def close(self) -> None:
        for screen in self._screens:
            screen.close()


def window_unavailable() -> str | None:
    """Why a window cannot be shown here, or None when it can: OpenCV needs a GUI backend and a display."""
    if not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        return "no display (DISPLAY is not set)"
    build = cv2.getBuildInformation()
    gui = build[build.index("GUI:"):].splitlines()[0] if "GUI:" in build else "GUI: NONE"
    if gui.split(":", 1)[1].strip() == "NONE":
        return "this OpenCV has no GUI (opencv-python-headless); install opencv-python for a window"
    return None


class Window:
    """A window on the local display; closing it (or pressing q) stops showing, not the camera."""

    def __init__(self) -> None:
        self._open = True

    def show(self, image: np.ndarray, time_ms: float) -> None:
        if not self._open:
            return
        cv2.imshow(WINDOW, image)
        if cv2.waitKey(1) & 0xFF == ord("q") or cv2.getWindowProperty(WINDOW, cv2.WND_PROP_VISIBLE) < 1:
            self.close()

    def close(self) -> None:
        if self._open:
            self._open = False
            cv2.destroyWindow(WINDOW)


class VideoFile:
    """Annotated frames as a Motion-JPEG AVI, at the size of the first frame and the pace of the first two."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._first: tuple[float, np.ndarray] | None = None
        self._writer: cv2.VideoWriter | None = None

    def _start(self, fps: float) -> None:
        _, first = self._first
        self._writer = cv2.VideoWriter(str(self._path), cv2.VideoWriter_fourcc(*"MJPG"), fps, first.shape[1::-1])
        if not self._writer.isOpened():
            raise OSError(f"cannot write a video to {self._path}")
        self._writer.write(first)

    def show(self, image: np.ndarray, time_ms: float) -> None:
        if self._writer is None:
            if self._first is None:
                self._first = (time_ms, image)
                return
            gap_ms = time_ms - self._first[0]
            self._start(1000.0 / gap_ms if gap_ms > 0 else DEFAULT_FPS)
        width, height = self._first[1].shape[1::-1]
        if image.shape[:2] != (height, width):  # a folder of photos of several sizes: one video size
            image = cv2.resize(image, (width, height))
        self._writer.write(image)

    def close(self) -> None:
        if self._writer is None and self._first is not None:  # a one-frame source
            self._start(DEFAULT_FPS)
        if self._writer is not None:
            self._writer.release()
