"""Receiving a request body within a size limit, in memory while small and on disk beyond.

The whole body is received before any of it is used, so an oversized or truncated request
changes nothing. Spooled bodies go to an anonymous temp file in the storage area's incoming
folder (the same disk the instances go to, not /tmp), gone when closed or when the process dies.
"""

from __future__ import annotations

import mmap
import os
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from types import TracebackType
from typing import IO

from starlette.concurrency import run_in_threadpool

from dicom_node.http.problems import ProblemError

__all__ = ["ReceivedBody", "receive_body"]

# Kept in memory up to this size; larger bodies are written to a temp file as they arrive.
MEMORY_LIMIT = 32 * 1024 * 1024
_WRITE_BATCH = 4 * 1024 * 1024


def too_large(limit: int) -> ProblemError:
    return ProblemError(
        413, "Request body too large", f"the limit is {limit} bytes (http.max_request_bytes)"
    )


class ReceivedBody:
    """A complete request body: `data` is a bytearray, or a read-only mmap of the spool file."""

    def __init__(self, memory: bytearray, spool: IO[bytes] | None):
        self._spool = spool
        self._map: mmap.mmap | None = None
        if spool is not None and os.fstat(spool.fileno()).st_size > 0:
            self._map = mmap.mmap(spool.fileno(), 0, access=mmap.ACCESS_READ)
        self.data: bytearray | mmap.mmap = self._map if self._map is not None else memory

    def __len__(self) -> int:
        return len(self.data)

    def close(self) -> None:
        if self._map is not None:
            self._map.close()
        if self._spool is not None:
            self._spool.close()

    def __enter__(self) -> ReceivedBody:
        return self

    def __exit__(
        self,
        _type: type[BaseException] | None,
        _value: BaseException | None,
        _traceback: TracebackType | None,
    ) -> None:
        self.close()


async def receive_body(
    chunks: AsyncIterator[bytes], *, limit: int, spool_folder: Path
) -> ReceivedBody:
    """Read `chunks` to the end; 413 problem as soon as more than `limit` bytes arrived."""
    memory = bytearray()
    spool: IO[bytes] | None = None
    received = 0
    try:
        async for chunk in chunks:
            received += len(chunk)
            if received > limit:
                raise too_large(limit)
            memory += chunk
            if spool is None and len(memory) > MEMORY_LIMIT:
                spool_folder.mkdir(parents=True, exist_ok=True)
                spool = await run_in_threadpool(tempfile.TemporaryFile, dir=spool_folder)
            if spool is not None and len(memory) >= _WRITE_BATCH:
                await run_in_threadpool(spool.write, memory)
                memory = bytearray()
        if spool is not None:
            await run_in_threadpool(spool.write, memory)
            await run_in_threadpool(spool.flush)
            memory = bytearray()
    except BaseException:
        if spool is not None:
            spool.close()
        raise
    return ReceivedBody(memory, spool)
