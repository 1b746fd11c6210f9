"""The pipeline's plain code triples as highdicom coded concepts (PS3.3 8.8 Code Sequence Macro)."""

from __future__ import annotations

import highdicom as hd

from pipelines.result import Code

__all__ = ["coded"]


def coded(code: Code) -> hd.sr.CodedConcept:
    return hd.sr.CodedConcept(code.value, code.scheme_designator, code.meaning)
