"""Rendered and thumbnail resources (PS3.18 10.4.1.1.3 and 10.4.1.1.5; query parameters of
8.3.5.1): one frame as an 8-bit PNG or JPEG made with Pillow.

Grey images: Modality LUT (rescale), then a linear VOI window (PS3.3 C.11.2.1.2.1) taken from
the `window` parameter, else the first WindowCenter/WindowWidth of the instance, else the
frame's minimum and maximum; MONOCHROME1 inverted. Colour images: pydicom's RGB, scaled to
8 bits when stored with more. `viewport=w,h` fits the image inside w x h keeping its aspect.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image
from pydicom.dataset import Dataset
from pydicom.pixels.processing import apply_rescale
from pydicom.pixels.utils import pixel_array

from dicom_node.dicomweb.frames import FrameSource

__all__ = ["RenderOptions", "parse_options", "render_frame"]

THUMBNAIL_SIZE = 128
_MAX_VIEWPORT = 4096


@dataclass(frozen=True)
class RenderOptions:
    media_type: str  # image/jpeg or image/png
    window: tuple[float, float] | None = None  # center, width
    viewport: tuple[int, int] | None = None
    quality: int = 90


def parse_options(
    media_type: str, window: str | None, viewport: str | None, quality: str | None
) -> RenderOptions:
    """The query parameters; ValueError with a sendable message when one is malformed."""
    parsed_window = None
    if window:
        fields = window.split(",")
        if len(fields) not in (2, 3) or (len(fields) == 3 and fields[2].lower() != "linear"):
            raise ValueError("window is center,width[,linear]")
        center, width = float(fields[0]), float(fields[1])
        if width <= 0:
            raise ValueError("window width must be positive")
        parsed_window = (center, width)
    parsed_viewport = None
    if viewport:
        fields = viewport.split(",")
        if len(fields) != 2 or not all(f.isdigit() for f in fields):
            raise ValueError("viewport is width,height")
        parsed_viewport = (int(fields[0]), int(fields[1]))
        if not all(0 < size <= _MAX_VIEWPORT for size in parsed_viewport):
            raise ValueError(f"viewport sizes are 1 to {_MAX_VIEWPORT}")
    parsed_quality = 90
    if quality:
        if not quality.isdigit() or not 1 <= int(quality) <= 100:
            raise ValueError("quality is 1 to 100")
        parsed_quality = int(quality)
    return RenderOptions(media_type, parsed_window, parsed_viewport, parsed_quality)


def _first(value: Any) -> float | None:
    """The first value of a possibly multi-valued DS (WindowCenter may list several)."""
    if value is None or isinstance(value, str | bytes):
        return None
    if isinstance(value, Sequence):
        value = value[0] if len(value) else None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _grey_to_8bit(
    pixels: np.ndarray, header: Dataset, window: tuple[float, float] | None
) -> np.ndarray:
    values = apply_rescale(pixels, header).astype(np.float64)
    if window is None:
        center, width = _first(header.get("WindowCenter")), _first(header.get("WindowWidth"))
        if center is not None and width is not None and width > 0:
            window = (center, width)
    if window is not None:
        low = window[0] - 0.5 - (window[1] - 1) / 2
        span = max(window[1] - 1, 1e-6)
    else:
        low, high = float(values.min()), float(values.max())
        span = max(high - low, 1e-6)
    scaled = np.clip((values - low) / span, 0.0, 1.0) * 255.0
    if str(header.get("PhotometricInterpretation", "")).strip() == "MONOCHROME1":
        scaled = 255.0 - scaled
    result: np.ndarray = np.rint(scaled).astype(np.uint8)
    return result


def _to_image(
    pixels: np.ndarray, header: Dataset, window: tuple[float, float] | None
) -> Image.Image:
    if int(header.get("SamplesPerPixel", 1)) == 1:
        return Image.fromarray(_grey_to_8bit(pixels, header, window))
    if pixels.dtype != np.uint8:
        top = float(2 ** int(header.get("BitsStored", 8)) - 1)
        pixels = np.clip(pixels.astype(np.float64) / top * 255.0, 0, 255).astype(np.uint8)
    return Image.fromarray(np.ascontiguousarray(pixels[..., :3]))


def render_frame(source: FrameSource, number: int, options: RenderOptions) -> bytes:
    """Frame `number` (1-based) of `source` rendered as options.media_type."""
    if not 1 <= number <= source.number_of_frames:
        raise IndexError(number)
    pixels = pixel_array(str(source.path), index=number - 1)
    image = _to_image(pixels, source.header, options.window)
    if options.viewport is not None:
        image.thumbnail(options.viewport, Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    if options.media_type == "image/png":
        image.save(buffer, format="PNG")
    else:
        image.save(buffer, format="JPEG", quality=options.quality)
    return buffer.getvalue()
