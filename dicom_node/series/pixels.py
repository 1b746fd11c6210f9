"""Pixel data: where each frame lies in its Part 10 file, and its values as float32.

Native little-endian frames (PS3.5 8.1.1) are read straight from the file at their offset into a
small buffer and converted, on threads (file reads and numpy conversions release the GIL).
Encapsulated frames (PS3.5 A.4) are located by walking the item headers once, then read and
decoded by their codec's library (openjpeg: JPEG 2000 and HTJ2K; libjpeg: JPEG baseline,
extended, lossless and JPEG-LS; pylibjpeg-rle: RLE) in a process pool, because those decoders
hold the GIL. Any other transfer syntax (deflate, big endian, ...) goes through pydicom.

Stored values are the Bits Stored low bits of each pixel, sign-extended when Pixel
Representation is 1 (PS3.5 8.1.1, PS3.3 C.7.6.3.1); the Modality LUT's rescale slope and
intercept (PS3.3 C.11.1) then turn them into the modality's units (Hounsfield units for CT).
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import struct
import sys
from collections.abc import Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass
from enum import Enum
from itertools import pairwise
from pathlib import Path
from types import ModuleType
from typing import BinaryIO

import numpy as np
import numpy.typing as npt
import pydicom
from libjpeg.utils import decode as decode_jpeg
from openjpeg.utils import decode as decode_jpeg_2000
from pydicom import uid as uids
from rle.utils import decode_pixel_data as decode_rle

__all__ = [
    "CorruptPixelDataError",
    "FrameLocation",
    "FrameSource",
    "MissingPixelDataError",
    "PixelDataError",
    "PixelLayout",
    "UnsupportedPixelDataError",
    "available_cpus",
    "decode_frame",
    "locate_frames",
    "read_frames",
]

logger = logging.getLogger(__name__)

# Below these counts the set-up of threads or worker processes costs more than it saves.
THREAD_MIN_FRAMES = 8
PROCESS_POOL_MIN_FRAMES = 16

_NATIVE = frozenset({uids.ImplicitVRLittleEndian, uids.ExplicitVRLittleEndian})
_JPEG_2000 = frozenset(
    {
        uids.JPEG2000Lossless,
        uids.JPEG2000,
        uids.HTJ2KLossless,
        uids.HTJ2KLosslessRPCL,
        uids.HTJ2K,
    }
)
_JPEG = frozenset(
    {
        uids.JPEGBaseline8Bit,
        uids.JPEGExtended12Bit,
        uids.JPEGLossless,
        uids.JPEGLosslessSV1,
        uids.JPEGLSLossless,
        uids.JPEGLSNearLossless,
    }
)
_RLE = frozenset({uids.RLELossless})
_START_MARKERS = (b"\xff\x4f", b"\xff\xd8")  # JPEG 2000 SOC, JPEG SOI: where a frame begins

_PIXEL_DATA = b"\xe0\x7f\x10\x00"  # (7FE0,0010) little endian
_FLOAT_PIXEL_DATA = (b"\xe0\x7f\x08\x00", b"\xe0\x7f\x09\x00")
_ITEM = (0xFFFE, 0xE000)
_SEQUENCE_DELIMITER = (0xFFFE, 0xE0DD)
_UNDEFINED_LENGTH = 0xFFFFFFFF


class PixelDataError(Exception):
    """A frame's pixel data cannot be turned into values; the message says which and why."""


class MissingPixelDataError(PixelDataError):
    pass


class UnsupportedPixelDataError(PixelDataError):
    pass


class CorruptPixelDataError(PixelDataError):
    pass


class FrameSource(Enum):
    NATIVE = "native"  # uncompressed little endian: read at `offset`
    ENCAPSULATED = "encapsulated"  # compressed: decode the bytes of `fragments`
    PYDICOM = "pydicom"  # anything else: pydicom decodes the whole file


@dataclass(frozen=True)
class PixelLayout:
    """The Image Pixel attributes (PS3.3 C.7.6.3) that say how to read a frame."""

    rows: int
    columns: int
    bits_allocated: int
    bits_stored: int
    signed: bool  # Pixel Representation 1
    transfer_syntax_uid: str

    @property
    def frame_bytes(self) -> int:
        return self.rows * self.columns * (self.bits_allocated // 8)

    @property
    def container(self) -> np.dtype[np.unsignedinteger]:
        return np.dtype(f"<u{self.bits_allocated // 8}")


@dataclass(frozen=True)
class FrameLocation:
    """Where one frame's pixel data lies."""

    path: Path
    label: str  # for messages: "file.dcm" or "file.dcm frame 3"
    layout: PixelLayout
    source: FrameSource
    index: int  # 0-based frame of its file
    offset: int = 0  # NATIVE: first byte of the frame in the file
    fragments: tuple[tuple[int, int], ...] = ()  # ENCAPSULATED: (first byte, length) in the file


def available_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def locate_frames(
    fp: BinaryIO,
    *,
    path: Path,
    layout: PixelLayout,
    number_of_frames: int,
    extended_offsets: bytes | None = None,
) -> list[FrameLocation]:
    """The frames of the file open as `fp`, positioned at its Pixel Data element (where
    `pydicom.dcmread(fp, stop_before_pixels=True)` leaves it). Reads element and item headers
    only, never the pixel values."""
    if layout.bits_allocated not in (8, 16, 32):
        raise UnsupportedPixelDataError(
            f"{path.name}: Bits Allocated {layout.bits_allocated} (only 8, 16 or 32 are read)"
        )
    labels = _frame_labels(path, number_of_frames)
    syntax = layout.transfer_syntax_uid
    if syntax not in _NATIVE and syntax not in _JPEG_2000 | _JPEG | _RLE:
        # Deflate, big endian, ...: offsets in the file mean nothing; pydicom reads it whole.
        return [
            FrameLocation(path, labels[i], layout, FrameSource.PYDICOM, i)
            for i in range(number_of_frames)
        ]
    start = fp.tell()
    header = fp.read(12)
    if not header:
        raise MissingPixelDataError(f"{path.name} has no Pixel Data")
    if header[:4] in _FLOAT_PIXEL_DATA:
        raise UnsupportedPixelDataError(f"{path.name}: float pixel data is not read")
    implicit = syntax == uids.ImplicitVRLittleEndian
    if len(header) < (8 if implicit else 12) or header[:4] != _PIXEL_DATA:
        raise CorruptPixelDataError(f"{path.name}: no Pixel Data element after the header")
    size = os.fstat(fp.fileno()).st_size
    if syntax in _NATIVE:
        if implicit:
            (length,), value = struct.unpack("<I", header[4:8]), start + 8
        elif header[4:6] in (b"OB", b"OW"):
            (length,), value = struct.unpack("<I", header[8:12]), start + 12
        else:
            raise CorruptPixelDataError(f"{path.name}: Pixel Data has VR {header[4:6]!r}")
        needed = layout.frame_bytes * number_of_frames
        held = min(length, size - value)
        if length == _UNDEFINED_LENGTH or held < needed:
            raise CorruptPixelDataError(
                f"{path.name}: Pixel Data holds {held} bytes; {number_of_frames} frame(s) of "
                f"{layout.rows}x{layout.columns} at {layout.bits_allocated} bits need {needed}"
            )
        return [
            FrameLocation(
                path,
                labels[i],
                layout,
                FrameSource.NATIVE,
                i,
                offset=value + i * layout.frame_bytes,
            )
            for i in range(number_of_frames)
        ]
    if struct.unpack("<I", header[8:12])[0] != _UNDEFINED_LENGTH:
        raise CorruptPixelDataError(
            f"{path.name}: Pixel Data is not encapsulated although its transfer syntax "
            f"{uids.UID(syntax).name} is"
        )
    items = _read_items(fp, path, size)
    frames = _group_fragments(fp, path, items, number_of_frames, extended_offsets)
    return [
        FrameLocation(path, labels[i], layout, FrameSource.ENCAPSULATED, i, fragments=frame)
        for i, frame in enumerate(frames)
    ]


def read_frames(
    frames: Sequence[FrameLocation],
    rescales: Sequence[tuple[float, float]],
    out: npt.NDArray[np.float32],
    *,
    workers: int,
) -> None:
    """Fill out[k] with the values of frames[k] times slope plus intercept of rescales[k]."""
    jobs = list(zip(range(len(frames)), frames, rescales, strict=True))
    native = [job for job in jobs if job[1].source is FrameSource.NATIVE]
    encapsulated = [job for job in jobs if job[1].source is FrameSource.ENCAPSULATED]
    other = [job for job in jobs if job[1].source is FrameSource.PYDICOM]
    if native:
        _read_native(native, out, workers)
    if encapsulated:
        _read_encapsulated(encapsulated, out, workers)
    if other:
        _read_with_pydicom(other, out)


def decode_frame(location: FrameLocation) -> npt.NDArray[np.integer]:
    """Stored values of one encapsulated frame (runs in a worker process: module level,
    arguments and result picklable)."""
    layout = location.layout
    with open(location.path, "rb") as fp:
        parts = []
        for offset, length in location.fragments:
            fp.seek(offset)
            parts.append(fp.read(length))
    data = parts[0] if len(parts) == 1 else b"".join(parts)
    if len(data) != sum(length for _, length in location.fragments):
        raise CorruptPixelDataError(f"{location.label}: the file ends inside the pixel data")
    syntax = layout.transfer_syntax_uid
    try:
        if syntax in _JPEG_2000:
            decoded = decode_jpeg_2000(data)
        elif syntax in _JPEG:
            decoded = decode_jpeg(data)
        else:
            raw = decode_rle(
                data,
                version=2,
                rows=layout.rows,
                columns=layout.columns,
                bits_allocated=layout.bits_allocated,
            )
            decoded = np.frombuffer(raw, dtype=layout.container)
            return _stored_values(decoded.reshape(layout.rows, layout.columns), layout)
    except (RuntimeError, ValueError) as exc:
        raise CorruptPixelDataError(f"{location.label}: cannot decode ({exc})") from exc
    if decoded.shape != (layout.rows, layout.columns):
        raise CorruptPixelDataError(
            f"{location.label}: decoded shape {decoded.shape} but the header says "
            f"{layout.rows}x{layout.columns}"
        )
    if layout.signed and decoded.dtype.kind == "u":
        # Signed data compressed as its unsigned bit pattern (what JPEG lossless always does).
        return _stored_values(decoded, layout)
    return decoded


def _frame_labels(path: Path, number_of_frames: int) -> list[str]:
    if number_of_frames == 1:
        return [path.name]
    return [f"{path.name} frame {i + 1}" for i in range(number_of_frames)]


def _read_items(fp: BinaryIO, path: Path, size: int) -> list[tuple[int, int]]:
    """(first byte, length) of each item of encapsulated pixel data: the Basic Offset Table,
    then the fragments."""
    items: list[tuple[int, int]] = []
    while True:
        header = fp.read(8)
        if len(header) < 8:
            break  # no Sequence Delimitation Item before the end of the file: nothing is lost
        group, element, length = struct.unpack("<HHI", header)
        if (group, element) == _SEQUENCE_DELIMITER:
            break
        if (group, element) != _ITEM or length == _UNDEFINED_LENGTH:
            raise CorruptPixelDataError(
                f"{path.name}: ({group:04X},{element:04X}) where a pixel data item should be"
            )
        value = fp.tell()
        if value + length > size:
            raise CorruptPixelDataError(f"{path.name}: the file ends inside the pixel data")
        items.append((value, length))
        fp.seek(length, os.SEEK_CUR)
    if len(items) < 2:
        raise CorruptPixelDataError(f"{path.name}: encapsulated Pixel Data without fragments")
    return items


def _group_fragments(
    fp: BinaryIO,
    path: Path,
    items: list[tuple[int, int]],
    number_of_frames: int,
    extended_offsets: bytes | None,
) -> list[tuple[tuple[int, int], ...]]:
    """The fragments of each frame (PS3.5 A.4): from the Extended Offset Table, the Basic
    Offset Table, one fragment per frame, or else where a codestream start marker is."""
    (table, table_length), fragments = items[0], items[1:]
    if number_of_frames == 1:
        return [tuple(fragments)]
    first_item = fragments[0][0] - 8
    if extended_offsets:
        starts = [int(x) for x in np.frombuffer(extended_offsets, dtype="<u8")]
    elif table_length:
        fp.seek(table)
        starts = [int(x) for x in np.frombuffer(fp.read(table_length), dtype="<u4")]
    elif len(fragments) == number_of_frames:
        return [(fragment,) for fragment in fragments]
    else:
        starts = []
        for value, _ in fragments:
            fp.seek(value)
            if fp.read(2) in _START_MARKERS:
                starts.append(value - 8 - first_item)
    index_of = {value - 8 - first_item: i for i, (value, _) in enumerate(fragments)}
    bounds = [index_of.get(start) for start in starts]
    if len(bounds) != number_of_frames or bounds[0] != 0 or None in bounds:
        raise CorruptPixelDataError(
            f"{path.name}: cannot tell where each of its {number_of_frames} frames begins "
            f"among {len(fragments)} fragments"
        )
    edges = [int(b) for b in bounds if b is not None] + [len(fragments)]
    if any(a >= b for a, b in pairwise(edges)):
        raise CorruptPixelDataError(f"{path.name}: the offset table is not ascending")
    return [tuple(fragments[a:b]) for a, b in pairwise(edges)]


_Job = tuple[int, FrameLocation, tuple[float, float]]


def _read_native(jobs: list[_Job], out: npt.NDArray[np.float32], workers: int) -> None:
    if workers < 2 or len(jobs) < THREAD_MIN_FRAMES:
        _read_native_run(jobs, out)
        return
    size = -(-len(jobs) // workers)
    runs = [jobs[i : i + size] for i in range(0, len(jobs), size)]
    with ThreadPoolExecutor(max_workers=len(runs), thread_name_prefix="pixels") as pool:
        for future in [pool.submit(_read_native_run, run, out) for run in runs]:
            future.result()


def _read_native_run(jobs: Sequence[_Job], out: npt.NDArray[np.float32]) -> None:
    buffer = np.empty(max(location.layout.frame_bytes for _, location, _ in jobs), np.uint8)
    for k, location, (slope, intercept) in jobs:
        layout = location.layout
        raw = buffer[: layout.frame_bytes]
        with open(location.path, "rb", buffering=0) as fp:
            fp.seek(location.offset)
            read = fp.readinto(raw.data)
        if read != layout.frame_bytes:
            raise CorruptPixelDataError(f"{location.label}: the file ends inside the pixel data")
        values = raw.view(layout.container).reshape(layout.rows, layout.columns)
        _rescale_into(out[k], _stored_values(values, layout), slope, intercept)


def _read_encapsulated(jobs: list[_Job], out: npt.NDArray[np.float32], workers: int) -> None:
    locations = [location for _, location, _ in jobs]
    if workers < 2 or len(jobs) < PROCESS_POOL_MIN_FRAMES:
        decoded: Iterable[npt.NDArray[np.integer]] = map(decode_frame, locations)
    elif multiprocessing.current_process().daemon:
        # A daemonic process (a multiprocessing or Celery prefork worker) may not have
        # children, and threads would not help: the decoders hold the GIL.
        logger.debug("decoding %d frames in this daemonic process", len(jobs))
        decoded = map(decode_frame, locations)
    else:
        pool = _process_pool(min(workers, len(jobs)))
        try:
            for (k, _, (slope, intercept)), values in zip(
                jobs, pool.map(decode_frame, locations), strict=True
            ):
                _rescale_into(out[k], values, slope, intercept)
        finally:
            # Stop at the first failure rather than decode the rest of a refused series.
            pool.shutdown(wait=True, cancel_futures=True)
        return
    for (k, _, (slope, intercept)), values in zip(jobs, decoded, strict=True):
        _rescale_into(out[k], values, slope, intercept)


def _process_pool(workers: int) -> ProcessPoolExecutor:
    """Worker processes forked from a forkserver (not from this process: the node runs
    threads, and fork would copy their locks). The forkserver starts once per process."""
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(_forkserver_preload())
    return ProcessPoolExecutor(max_workers=workers, mp_context=context)


def _forkserver_preload() -> list[str]:
    """This module and the modules that the main module imports from. Every new worker runs
    the main module again (multiprocessing's rule); with its imports already loaded in the
    forkserver that takes milliseconds instead of re-importing all of them in every worker of
    every pool (a second for `python -m dicom_node.jobs.worker`)."""
    names = {__name__}
    main = sys.modules.get("__main__")
    for value in vars(main).values() if main is not None else ():
        name = value.__name__ if isinstance(value, ModuleType) else getattr(value, "__module__", "")
        module = sys.modules.get(name) if isinstance(name, str) else None
        if module is not None and module.__spec__ is not None and not name.startswith("_"):
            names.add(module.__name__)
    return ["__main__", *sorted(names)]


def _read_with_pydicom(jobs: list[_Job], out: npt.NDArray[np.float32]) -> None:
    by_file: dict[Path, list[_Job]] = {}
    for job in jobs:
        by_file.setdefault(job[1].path, []).append(job)
    for path, file_jobs in by_file.items():
        try:
            array = pydicom.dcmread(path).pixel_array
        except NotImplementedError as exc:
            raise UnsupportedPixelDataError(f"{path.name}: {exc}") from exc
        except (RuntimeError, ValueError, AttributeError) as exc:
            raise CorruptPixelDataError(f"{path.name}: cannot decode ({exc})") from exc
        layout = file_jobs[0][1].layout
        array = array.reshape(-1, layout.rows, layout.columns)
        for k, location, (slope, intercept) in file_jobs:
            _rescale_into(out[k], array[location.index], slope, intercept)


def _stored_values(
    values: npt.NDArray[np.unsignedinteger], layout: PixelLayout
) -> npt.NDArray[np.integer]:
    """The Bits Stored low bits of each value, sign-extended if signed (in place)."""
    bits = values.dtype.itemsize * 8
    unused = bits - layout.bits_stored
    if layout.signed:
        signed = values.view(f"<i{values.dtype.itemsize}")
        if unused > 0:
            np.left_shift(signed, unused, out=signed)
            np.right_shift(signed, unused, out=signed)
        return signed
    if unused > 0:
        np.bitwise_and(values, (1 << layout.bits_stored) - 1, out=values)
    return values


def _rescale_into(
    out: npt.NDArray[np.float32], values: npt.NDArray[np.integer], slope: float, intercept: float
) -> None:
    if slope == 1 and float(intercept).is_integer():
        # Exact in float32 for any 16-bit value: one pass, no float64 temporary.
        np.add(values, np.float32(intercept), out=out, dtype=np.float32, casting="unsafe")
    else:
        out[...] = values * slope + intercept
