"""Decode untrusted image bytes into BGR pixels, refusing oversized or malformed input before it costs memory."""

from __future__ import annotations

import io
import warnings

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

from fr_gateway.reasons import Problem, Reason

ACCEPTED_FORMATS = ("JPEG", "PNG")


def decode_image(data: bytes, max_bytes: int, max_pixels: int) -> np.ndarray:
    """Return an HxWx3 uint8 BGR image. The size is read from the header first (Pillow, lazily), so a
    20000x20000 image is refused without allocating its pixels."""
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
    pixels = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_COLOR)
    if pixels is None or pixels.size == 0:
        raise Problem(Reason.IMAGE_UNDECODABLE, f"{fmt} header is readable but the pixels are not")
    return pixels


def encode_jpeg(image: np.ndarray, quality: int = 95) -> bytes:
    ok, buffer = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError("JPEG encoding failed")
    return buffer.tobytes()
