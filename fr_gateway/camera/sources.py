"""Frame sources: a video file, a folder of images, an RTSP URL or a local device number, as timed frames."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".pgm")
FOLDER_FRAME_MS = 1000.0


@dataclasses.dataclass(frozen=True)
class Frame:
    index: int
    time_ms: float
    image: np.ndarray


class SourceError(OSError):
    """A frame source that cannot be read: the camera's own input, reported before anything is sent."""


def _folder_frames(folder: Path) -> Iterator[Frame]:
    """One frame per image, one second apart, in name order; unreadable files are skipped."""
    images = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not images:
        raise SourceError(f"video source {folder}: the folder holds no images ({', '.join(IMAGE_SUFFIXES)})")
    return _read_images(images)


def _read_images(paths: list[Path]) -> Iterator[Frame]:
    index = 0
    for path in paths:
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is not None:
            yield Frame(index, index * FOLDER_FRAME_MS, image)
            index += 1


def _capture_frames(source: str | int) -> Iterator[Frame]:
    """Opens the capture and reads its first frame now, so a source that cannot be read fails here, not while
    the stream to the gateway is open."""
    capture = cv2.VideoCapture(source)
    ok, first = capture.read() if capture.isOpened() else (False, None)
    if not ok:
        capture.release()
        if isinstance(source, int):
            raise SourceError(f"video source: camera device {source} cannot be opened (no such device, or busy)")
        why = ("the stream does not answer, or sends nothing OpenCV can decode" if "://" in source
               else "not a video OpenCV can decode (corrupt, or an unknown format)")
        raise SourceError(f"video source {source}: {why}")
    return _read_capture(capture, first)


def _read_capture(capture: cv2.VideoCapture, first: np.ndarray) -> Iterator[Frame]:
    try:
        index, image = 0, first
        while True:
            yield Frame(index, float(capture.get(cv2.CAP_PROP_POS_MSEC)), image)
            index += 1
            ok, image = capture.read()
            if not ok:
                return
    finally:
        capture.release()


def open_frames(source: str) -> Iterator[Frame]:
    """A digit string is a device number, a folder is a slideshow, anything else goes to OpenCV's capture.
    Raises SourceError at once for a source that cannot be read."""
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)  # our error says it once, without warnings
    if source.isdigit():
        return _capture_frames(int(source))
    path = Path(source)
    if path.is_dir():
        return _folder_frames(path)
    if "://" not in source and not path.exists():
        raise SourceError(f"video source {source} does not exist")
    return _capture_frames(source)
