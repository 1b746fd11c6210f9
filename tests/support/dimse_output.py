"""Reading what dcmtk's findscu/movescu/getscu say at debug level (-d): the final response's
status, sub-operation counts, Error Comment, Offending Element and identifier."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_STATUS = re.compile(r"DIMSE Status\s*: 0x(?P<code>[0-9a-fA-F]{4})")
_COUNT = re.compile(r"(?P<kind>Completed|Failed|Warning) Suboperations\s*: (?P<n>\d+)")
_COMMENT = re.compile(r"\(0000,0902\) LO \[(?P<text>[^\]]*)\]")
_OFFENDING = re.compile(r"\(0000,0901\) AT (?P<tags>[^#]*)#")
_FAILED_LIST = re.compile(r"\(0008,0058\) UI \[(?P<uids>[^\]]*)\]")


@dataclass
class FinalResponse:
    status: int
    counts: dict[str, int] = field(default_factory=dict)
    error_comment: str = ""
    offending_elements: list[str] = field(default_factory=list)
    failed_sop_instance_uids: list[str] = field(default_factory=list)


def final_response(output: str) -> FinalResponse:
    """The last response a dcmtk SCU received (its -d output, stdout and stderr together)."""
    blocks = output.split("INCOMING DIMSE MESSAGE")
    assert len(blocks) > 1, output[-3000:]
    last = blocks[-1]
    status = _STATUS.search(last)
    assert status is not None, last
    response = FinalResponse(status=int(status["code"], 16))
    response.counts = {match["kind"].lower(): int(match["n"]) for match in _COUNT.finditer(last)}
    comment = _COMMENT.search(last)
    if comment:
        response.error_comment = comment["text"].strip()
    offending = _OFFENDING.search(last)
    if offending:
        response.offending_elements = offending["tags"].split()
    failed = _FAILED_LIST.search(last)
    if failed:
        response.failed_sop_instance_uids = failed["uids"].split("\\")
    return response
