"""Frames of a stored instance (PS3.18 10.4.1.1.4 frame pixel data), read from its file.

Only the requested frames are read: the header is parsed up to Pixel Data, then native
frames are cut at their offsets and encapsulated frames found through the Basic (or
Extended) Offset Table, or by walking the fragments (pydicom.encaps). Decoding to native
pixels (PS3.5 8.1.1: little endian, each frame in turn) uses pydicom's pixel decoders.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.encaps import get_frame
from pydicom.pixels.utils import pixel_array
from pydicom.uid import UID, DeflatedExplicitVRLittleEndian, ExplicitVRBigEndian

__all__ = [
    "FrameSource",
    "NoPixelDataError",
    "UnsupportedEncodingError",
    "decoded_frame",
    "parse_frame_list",
]

_PIXEL_DATA = 0x7FE00010
_UNDEFINED = 0xFFFFFFFF


class NoPixelDataError(LookupError):
    """The instance has no Pixel Data."""


class UnsupportedEncodingError(ValueError):
    """Frames are not served from this transfer syntax (deflated, big endian)."""


def parse_frame_list(text: str) -> list[int]:
    """`1,3,5` -> [1, 3, 5] (1-based, PS3.18 10.4.1.1.4); ValueError when malformed."""
    numbers = []
    for item in text.split(","):
        item = item.strip()
        if not item.isdigit() or int(item) < 1:
            raise ValueError("frame numbers are positive integers separated by commas")
        numbers.append(int(item))
    if not numbers or len(numbers) > 10_000:
        raise ValueError("between 1 and 10000 frame numbers")
    return numbers


@dataclass(frozen=True)
class FrameSource:
    """Where the frames of one stored file are."""

    path: Path
    header: Dataset  # everything before Pixel Data
    transfer_syntax_uid: UID
    number_of_frames: int
    value_offset: int  # file position of the Pixel Data value (after the element header)
    value_length: int  # _UNDEFINED for encapsulated

    @classmethod
    def open(cls, path: Path) -> FrameSource:
        with path.open("rb") as file:
            header = pydicom.dcmread(file, stop_before_pixels=True)
            element_start = file.tell()
            syntax = UID(header.file_meta.TransferSyntaxUID)
            if syntax in (DeflatedExplicitVRLittleEndian, ExplicitVRBigEndian):
                raise UnsupportedEncodingError("frames of deflated or big endian instances")
            raw = file.read(12)
        if len(raw) < 8 or struct.unpack_from("<I", raw)[0] != 0x00107FE0:
            raise NoPixelDataError("instance has no Pixel Data")
        if syntax.is_implicit_VR:
            (length,) = struct.unpack_from("<I", raw, 4)
            offset = element_start + 8
        else:
            (length,) = struct.unpack_from("<I", raw, 8)
            offset = element_start + 12
        frames = int(header.get("NumberOfFrames") or 1)
        return cls(path, header, syntax, max(frames, 1), offset, length)

    @property
    def encapsulated(self) -> bool:
        return self.value_length == _UNDEFINED

    def _native_frame_bits(self) -> int:
        header = self.header
        return (
            int(header.Rows)
            * int(header.Columns)
            * int(header.get("SamplesPerPixel", 1))
            * int(header.BitsAllocated)
        )

    def stored_frame(self, number: int) -> bytes:
        """Frame `number` (1-based) as stored: native bytes, or the compressed bitstream."""
        if not 1 <= number <= self.number_of_frames:
            raise IndexError(number)
        with self.path.open("rb") as file:
            if self.encapsulated:
                return self._encapsulated_frame(file, number - 1)
            return self._native_frame(file, number - 1)

    def native_value(self) -> bytes:
        """The whole native Pixel Data value."""
        if self.encapsulated:
            raise UnsupportedEncodingError("Pixel Data is encapsulated")
        with self.path.open("rb") as file:
            file.seek(self.value_offset)
            return file.read(self.value_length)

    def _encapsulated_frame(self, file: BinaryIO, index: int) -> bytes:
        offsets = None
        if "ExtendedOffsetTable" in self.header and "ExtendedOffsetTableLengths" in self.header:
            offsets = (
                bytes(self.header.ExtendedOffsetTable),
                bytes(self.header.ExtendedOffsetTableLengths),
            )
        file.seek(self.value_offset)
        return get_frame(
            file, index, number_of_frames=self.number_of_frames, extended_offsets=offsets
        )

    def _native_frame(self, file: BinaryIO, index: int) -> bytes:
        bits = self._native_frame_bits()
        if bits % 8 == 0:
            size = bits // 8
            if (index + 1) * size > self.value_length:
                raise NoPixelDataError("Pixel Data is shorter than its frames")
            file.seek(self.value_offset + index * size)
            return file.read(size)
        # BitsAllocated 1 (PS3.5 8.1.1): frames are packed back to back, not byte-aligned.
        first_bit = index * bits
        start = first_bit // 8
        length = (first_bit + bits + 7) // 8 - start
        file.seek(self.value_offset + start)
        packed = np.frombuffer(file.read(length), dtype=np.uint8)
        unpacked = np.unpackbits(packed, bitorder="little")
        shift = first_bit - start * 8
        return np.packbits(unpacked[shift : shift + bits], bitorder="little").tobytes()


def decoded_frame(source: FrameSource, number: int) -> bytes:
    """Frame `number` as native little endian pixels (compressed frames decoded; colour
    JPEG data converted to RGB as pydicom does)."""
    if not 1 <= number <= source.number_of_frames:
        raise IndexError(number)
    if not source.encapsulated:
        return source.stored_frame(number)
    array = pixel_array(str(source.path), index=number - 1)
    little = array.astype(array.dtype.newbyteorder("<"), copy=False)
    return np.ascontiguousarray(little).tobytes()
