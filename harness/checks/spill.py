"""Shards on disk for the checks of a long history: what they hold per message goes to a file, not to memory.

A check that must see every record of a saga instance (or of a stored message) together, but not the whole
history at once, splits the records by that key into shards, writes them to one scratch file and then reads
each shard back on its own. :class:`Spill` is that file: :meth:`Spill.add` puts a small record (anything
:mod:`marshal` writes: dicts, tuples, lists, strings, numbers) into a shard; records are buffered (at most
:data:`BUFFERED` at once, whatever the shard count) and written as length-prefixed marshal blobs, each shard's
blobs remembered by their offsets; :meth:`Spill.shard` yields one shard's records in the order they were added.
A hot loop may append to ``buffers[shard]`` itself and call :meth:`Spill.flush` every :data:`BUFFERED` records
(the saga checks' pass does: :func:`harness.checks.checker.check_stream`).

marshal, not JSON: a record is read back in about half the time orjson parses the line it came from, and
nothing is parsed twice (the history's line is parsed once, by :func:`harness.history.read_records`). The
file lives in the run's scratch directory (the report directory), is private to the process that writes it and
is removed by :meth:`Spill.close` (a context manager).
"""

from __future__ import annotations

import marshal
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

__all__ = ["BUFFERED", "Spill"]

BUFFERED = 4_096  # records held in memory before they are written, over all shards


class Spill:
    """`shards` shards of records in one scratch file under `scratch`; use as a context manager."""

    def __init__(self, shards: int, scratch: str | Path) -> None:
        self.shards = shards
        fd, name = tempfile.mkstemp(prefix="sagaproof-shards-", suffix=".bin", dir=scratch)
        self.path = Path(name)
        self._file = os.fdopen(fd, "w+b", buffering=1 << 20)
        self.buffers: list[list[Any]] = [[] for _ in range(shards)]  # records not yet written, per shard
        self._blobs: list[list[tuple[int, int]]] = [[] for _ in range(shards)]  # (offset, length) per shard
        self._buffered = [0]  # records in the buffers (a list: the closure of adder() counts in it too)
        self._offset = 0
        self.add = self.adder()

    def adder(self) -> Callable[[int, Any], None]:
        """``add(shard, record)``: put `record` into `shard` (0 <= shard < shards). A closure over the
        buffers, for the hot loop of a pass over a history (``spill.add`` is one)."""
        buffers = self.buffers
        buffered = self._buffered
        write = self.flush

        def add(shard: int, record: Any) -> None:
            buffers[shard].append(record)
            buffered[0] += 1
            if buffered[0] >= BUFFERED:
                write()

        return add

    def flush(self) -> None:
        """Write the buffered records. A hot loop may append to ``buffers[shard]`` itself instead of calling
        :meth:`add`, and then calls this at least every :data:`BUFFERED` records."""
        for i, buf in enumerate(self.buffers):
            if buf:
                blob = marshal.dumps(buf)
                self._file.write(blob)
                self._blobs[i].append((self._offset, len(blob)))
                self._offset += len(blob)
                buf.clear()
        self._buffered[0] = 0

    def shard(self, i: int) -> Iterator[Any]:
        """The records of shard `i`, in the order added (call after the last add)."""
        self.flush()
        self._file.flush()
        f = self._file
        for offset, length in self._blobs[i]:
            f.seek(offset)
            yield from marshal.loads(f.read(length))

    def close(self) -> None:
        """Close and remove the file; idempotent."""
        if not self._file.closed:
            self._file.close()
        self.path.unlink(missing_ok=True)

    def __enter__(self) -> Spill:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
