"""Decode untrusted image bytes into BGR pixels, refusing oversized or malformed input before it costs memory."""

from __future__ import annotations

import contextlib
import io
import threading
import time
import warnings
from collections.abc import Callable, Iterator

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

from fr_gateway.reasons import Problem, Reason

ACCEPTED_FORMATS = ("JPEG", "PNG")


class PixelBudget:
    """Pixels being decoded at once, across all requests. A small file can hold many pixels (a 115 KB PNG of
    6000x6600), and decoding costs about 15 bytes a pixel while it runs (0.6 GB for that one): the per-image
    limit cannot bound the gateway's memory, the total can. A decode waits for its share, up to `wait_s`."""

    def __init__(self, pixels: int, wait_s: float = 5.0) -> None:
        self.pixels = pixels
        self._wait_s = wait_s
        self._used = 0
        self._condition = threading.Condition()

    @contextlib.contextmanager
    def reserved(self, pixels: int) -> Iterator[None]:
        give_up = time.monotonic() + self._wait_s
        with self._condition:
            while self._used and self._used + pixels > self.pixels:
                if not self._condition.wait(give_up - time.monotonic()) and time.monotonic() >= give_up:
                    raise Problem(Reason.GATEWAY_OVERLOADED, f"the decode budget of {self.pixels / 1e6:.0f} Mpx is "
                                                             "taken by images being decoded: send it again later")
            self._used += pixels
        try:
            yield
        finally:
            with self._condition:
                self._used -= pixels
                self._condition.notify_all()


def decode_image(data: bytes, max_bytes: int, max_pixels: int, budget: PixelBudget | None = None,
                 held: contextlib.ExitStack | None = None,
                 check_size: Callable[[int, int], None] | None = None) -> np.ndarray:
    """Return an HxWx3 uint8 BGR image. The size is read from the header first (Pillow, lazily), so a
    20000x20000 image is refused without allocating its pixels (as is one that `check_size(width, height)`
    refuses), and a large one waits for its share of the `budget`, kept until `held` closes (while the pixels
    are in use) or else while it decodes."""
    if not data:
        raise Problem(Reason.IMAGE_EMPTY, "no image bytes")
    if len(data) > max_bytes:
        raise Problem(Reason.IMAGE_TOO_LARGE, f"{len(data)} bytes, the limit is {max_bytes}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as header:
                fmt, (width, height) = header.format, header.size
    except Image.DecompressionBombError as exc:
        raise Problem(Reason.IMAGE_TOO_LARGE, str(exc)) from exc
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise Problem(Reason.IMAGE_UNDECODABLE, "not a JPEG or PNG image") from exc
    if fmt not in ACCEPTED_FORMATS:
        raise Problem(Reason.IMAGE_UNDECODABLE, f"{fmt} images are not accepted, send JPEG or PNG")
    if width == 0 or height == 0:
        raise Problem(Reason.IMAGE_EMPTY, f"image is {width}x{height}")
    if width * height > max_pixels:
        raise Problem(Reason.IMAGE_TOO_LARGE, f"image is {width}x{height}, the limit is {max_pixels} pixels")
    if check_size is not None:
        check_size(width, height)
    reservation = budget.reserved(width * height) if budget else contextlib.nullcontext()
    with contextlib.ExitStack() as decoding:
        (held or decoding).enter_context(reservation)
        pixels = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_COLOR)
    if pixels is None or pixels.size == 0:
        raise Problem(Reason.IMAGE_UNDECODABLE, f"{fmt} header is readable but the pixels are not")
    return pixels


def encode_jpeg(image: np.ndarray, quality: int = 95) -> bytes:
    ok, buffer = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError("JPEG encoding failed")
    return buffer.tobytes()
