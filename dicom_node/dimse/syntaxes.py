"""Transfer syntaxes the SCP accepts, in order of preference.

pynetdicom picks, per presentation context, the first syntax of *our* list that the requestor
proposed, so this order decides what a sender that offers several in one context transmits:
  1. lossless compressed syntaxes: a sender proposing one usually holds its data that way;
  2. uncompressed, explicit VR little endian first, implicit VR and big endian last;
  3. lossy syntaxes last, so we never invite a sender to compress lossily on the fly;
     data that is already lossy is still accepted in its own syntax (stored as received).
"""

from __future__ import annotations

from pydicom.uid import (
    UID,
    AllTransferSyntaxes,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    HTJ2KLossless,
    HTJ2KLosslessRPCL,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEG2000MCLossless,
    JPEGLossless,
    JPEGLosslessSV1,
    JPEGLSLossless,
    RLELossless,
)

__all__ = ["ACCEPTED_TRANSFER_SYNTAXES"]

_LOSSLESS_COMPRESSED = [
    JPEG2000Lossless,
    JPEGLosslessSV1,
    JPEGLossless,
    JPEGLSLossless,
    RLELossless,
    HTJ2KLossless,
    HTJ2KLosslessRPCL,
    JPEG2000MCLossless,
]
_UNCOMPRESSED = [
    ExplicitVRLittleEndian,
    DeflatedExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    ExplicitVRBigEndian,
]


def _ordered() -> list[UID]:
    first = _LOSSLESS_COMPRESSED + _UNCOMPRESSED
    return first + [syntax for syntax in AllTransferSyntaxes if syntax not in first]


ACCEPTED_TRANSFER_SYNTAXES: list[UID] = _ordered()
