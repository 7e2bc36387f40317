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


def _folder_frames(folder: Path) -> Iterator[Frame]:
    """One frame per image, one second apart, in name order; unreadable files are skipped."""
    index = 0
    for path in sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES):
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is not None:
            yield Frame(index, index * FOLDER_FRAME_MS, image)
            index += 1


def _capture_frames(source: str | int) -> Iterator[Frame]:
    capture = cv2.VideoCapture(source)
    if not capture.isOpened():
        raise OSError(f"cannot open video source {source!r}")
    try:
        index = 0
        while True:
            ok, image = capture.read()
            if not ok:
                return
            yield Frame(index, float(capture.get(cv2.CAP_PROP_POS_MSEC)), image)
            index += 1
    finally:
        capture.release()


def open_frames(source: str) -> Iterator[Frame]:
    """A digit string is a device number, a folder is a slideshow, anything else goes to OpenCV's capture."""
    if source.isdigit():
        return _capture_frames(int(source))
    path = Path(source)
    if path.is_dir():
        return _folder_frames(path)
    if "://" not in source and not path.exists():
        raise FileNotFoundError(f"video source {source} does not exist")
    return _capture_frames(source)
