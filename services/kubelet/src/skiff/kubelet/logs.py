"""Container logs as the kubelet serves them, read from CRI-format log files.

containerd writes one record per line: ``<RFC3339Nano timestamp> <stdout|stderr> <F|P>
<content>``; ``P`` marks a partial line, continued by the next records of the same stream
up to an ``F``. :func:`read_log` turns such a file into what ``kubectl logs`` shows: the
joined lines, optionally prefixed with their timestamp, limited by ``tailLines``,
``sinceTime`` and ``limitBytes``, and followed as the container writes more.
"""

from __future__ import annotations

import asyncio
import calendar
import functools
import io
import os
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

POLL_INTERVAL = 0.15  # s between looks at a followed file
STATE_INTERVAL = 1.0  # s between is_running() checks while following
CHUNK = 64 * 1024
MAX_PENDING = 1 << 20  # a partial line longer than this is passed on in pieces

_TS = re.compile(rb"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?(Z|[+-]\d\d:\d\d)$")
_PARTIAL = b"P"


@functools.lru_cache(maxsize=64)
def _epoch(base: bytes, zone: bytes) -> int:
    """Seconds since the epoch of ``YYYY-MM-DDTHH:MM:SS`` in ``zone`` (``Z`` or ±HH:MM)."""
    secs = calendar.timegm(datetime.fromisoformat(base.decode()).timetuple())
    if zone != b"Z":
        offset = int(zone[1:3]) * 3600 + int(zone[4:6]) * 60
        secs -= offset if zone[:1] == b"+" else -offset
    return secs


def _parse_ts(ts: bytes) -> tuple[int, bytes] | None:
    """Nanoseconds since the epoch and the fixed-width (9 fraction digits) form."""
    m = _TS.match(ts)
    if m is None:
        return None
    base, frac, zone = m.group(1), (m.group(2) or b"").ljust(9, b"0"), m.group(3)
    return _epoch(base, zone) * 1_000_000_000 + int(frac), base + b"." + frac + zone


def _since_ns(since: datetime) -> int:
    if since.tzinfo is None:
        since = since.replace(tzinfo=UTC)
    return calendar.timegm(since.utctimetuple()) * 1_000_000_000 + since.microsecond * 1000


def _split(line: bytes) -> tuple[bytes, bytes, bytes, bytes] | None:
    """(timestamp, stream, tag, content) of one record, or None when malformed."""
    parts = line.split(b" ", 3)
    if len(parts) < 3:
        return None
    content = parts[3] if len(parts) == 4 else b""
    return parts[0], parts[1], parts[2].split(b":", 1)[0], content


class _Parser:
    """Turns raw CRI log bytes into user-visible bytes, record by record."""

    def __init__(self, timestamps: bool, since_ns: int | None) -> None:
        self.timestamps = timestamps
        self.since_ns = since_ns
        self.rest = b""  # an incomplete record (no newline yet)
        self.skip = 0  # complete lines still to drop (see _tail_start)
        # stream → [keep, pending output] for a line whose F has not been seen yet
        self.pending: dict[bytes, tuple[bool, bytearray]] = {}

    def feed(self, data: bytes) -> bytes:
        lines = (self.rest + data).split(b"\n")
        self.rest = lines.pop()
        out = bytearray()
        for line in lines:
            self._record(line, out)
        return bytes(out)

    def _record(self, line: bytes, out: bytearray) -> None:
        fields = _split(line)
        if fields is None:
            return
        ts, stream, tag, content = fields
        pending = self.pending.get(stream)
        if pending is None:
            parsed = _parse_ts(ts) if (self.timestamps or self.since_ns is not None) else None
            keep = self.since_ns is None or parsed is None or parsed[0] >= self.since_ns
            prefix = (parsed[1] if parsed else ts) + b" " if self.timestamps and keep else b""
            pending = (keep, bytearray(prefix))
        keep, buf = pending
        if tag == _PARTIAL:
            if keep:
                buf += content
                if len(buf) > MAX_PENDING:
                    out += buf
                    buf.clear()
            self.pending[stream] = pending
            return
        self.pending.pop(stream, None)
        if self.skip:
            self.skip -= 1
        elif keep:
            out += buf
            out += content
            out += b"\n"

    def drop_rest(self) -> None:
        """Forget an incomplete record (the file it came from was rotated away)."""
        self.rest = b""

    def flush(self) -> bytes:
        """Lines still waiting for their ``F`` (the container ended without a newline)."""
        out = bytearray()
        for keep, buf in self.pending.values():
            if keep:
                out += buf
        self.pending.clear()
        return bytes(out)


def _reverse_records(f: io.FileIO, end: int) -> Iterator[tuple[int, bytes]]:
    """(start offset, record) of each newline-terminated record, last first."""
    pos, buf, started = end, b"", False
    while pos > 0:
        size = min(CHUNK, pos)
        pos -= size
        f.seek(pos)
        buf = (f.read(size) or b"") + buf
        if not started:
            nl = buf.rfind(b"\n")
            if nl == -1:
                continue
            buf, started = buf[: nl + 1], True
        while (nl := buf.rfind(b"\n", 0, len(buf) - 1)) != -1:
            yield pos + nl + 1, buf[nl + 1 : -1]
            buf = buf[: nl + 1]
        if pos == 0:
            yield 0, buf[:-1]


def _tail_start(f: io.FileIO, lines: int) -> tuple[int, int]:
    """Where the last ``lines`` complete lines begin, and how many lines to drop there.

    A line is complete at its ``F`` record; a trailing run of ``P`` records with no ``F``
    yet (output without a final newline) counts as a line too, as ``kubectl logs`` shows
    it. When stdout and stderr interleave, the first piece of a wanted line can come
    before the end of an unwanted one: reading starts at that first piece and the lines
    completed first are dropped.
    """
    end = f.seek(0, os.SEEK_END)
    count = counted_full = 0
    start: int | None = None
    opened: set[bytes] = set()  # streams whose counted line has not begun yet
    seen: set[bytes] = set()
    full_starts: list[int] = []
    for pos, record in _reverse_records(f, end):
        if start is None:
            start = pos + len(record) + 1
        fields = _split(record)
        if fields is None:
            continue
        _, stream, tag, _ = fields
        full = tag != _PARTIAL
        if full:
            full_starts.append(pos)
        if stream in opened:
            if not full:
                start = pos
                continue
            opened.discard(stream)  # the end of the line before
        elif not full and stream in seen:
            continue
        seen.add(stream)
        if count < lines:
            count += 1
            counted_full += full
            opened.add(stream)
            start = pos
        elif not opened:
            break
    if start is None:
        return 0, 0
    return start, sum(1 for s in full_starts if s >= start) - counted_full


def _open(path: Path, tail_lines: int | None) -> tuple[io.FileIO, int, int] | None:
    """The open file positioned for ``tail_lines``, its inode and the lines to drop."""
    try:
        f = open(path, "rb", buffering=0)
    except FileNotFoundError:
        return None
    try:
        skip = 0
        if tail_lines is not None and tail_lines >= 0:
            offset, skip = _tail_start(f, tail_lines)
            f.seek(offset)
        return f, os.fstat(f.fileno()).st_ino, skip
    except BaseException:
        f.close()
        raise


def _read(f: io.FileIO) -> bytes:
    if os.fstat(f.fileno()).st_size < f.tell():  # truncated in place: start over
        f.seek(0)
    return f.read(CHUNK) or b""


def _replaced(path: Path, inode: int) -> bool:
    try:
        return os.stat(path).st_ino != inode
    except FileNotFoundError:
        return False  # rotated away, the new file is not there yet: keep the old one


class _State:
    """Asks ``is_running`` at most once per :data:`STATE_INTERVAL`."""

    def __init__(self, is_running: Callable[[], Awaitable[bool]] | None) -> None:
        self.is_running = is_running
        self.checked = float("-inf")

    async def ended(self) -> bool:
        if self.is_running is None or time.monotonic() - self.checked < STATE_INTERVAL:
            return False
        self.checked = time.monotonic()
        return not await self.is_running()


async def read_log(
    path: Path,
    *,
    follow: bool,
    tail_lines: int | None,
    timestamps: bool,
    since: datetime | None,
    limit_bytes: int | None,
    is_running: Callable[[], Awaitable[bool]] | None = None,
) -> AsyncIterator[bytes]:
    """Yield the user-visible log of a CRI log file in chunks.

    ``tail_lines``: only the last that many lines (None or negative: all). ``since``: only
    lines written at or after it. ``timestamps``: prefix each line with its RFC3339Nano
    timestamp. ``limit_bytes``: stop after that many bytes (None or non-positive: no limit).
    ``follow``: keep reading what is appended, across rotation, until ``is_running()``
    says the container ended and the file is read to its end (without ``is_running``,
    until the caller stops iterating). A missing file yields nothing, or is waited for
    when following.
    """
    if tail_lines is not None and tail_lines < 0:
        tail_lines = None
    if tail_lines == 0 and not follow:
        return
    remain = limit_bytes if limit_bytes is not None and limit_bytes > 0 else None
    parser = _Parser(timestamps, None if since is None else _since_ns(since))
    state = _State(is_running)

    opened = await asyncio.to_thread(_open, path, tail_lines)
    while opened is None:
        if not follow or await state.ended():
            return
        await asyncio.sleep(POLL_INTERVAL)
        opened = await asyncio.to_thread(_open, path, tail_lines)
    f, inode, parser.skip = opened
    final = rotated = False
    try:
        while True:
            data = await asyncio.to_thread(_read, f)
            if data:
                out = parser.feed(data)
            elif not follow or final:
                out = parser.flush()  # the end: lines still waiting for their F
            elif rotated:
                # The old file is read to its end once more: go on with the new one.
                rotated = False
                reopened = await asyncio.to_thread(_open, path, None)
                if reopened is not None:
                    f.close()
                    f, inode, _ = reopened
                    parser.drop_rest()
                continue
            elif await asyncio.to_thread(_replaced, path, inode):
                rotated = True  # the writer may still have added to the old file
                continue
            elif await state.ended():
                final = True  # one more pass for what was written before it ended
                continue
            else:
                await asyncio.sleep(POLL_INTERVAL)
                continue
            if out:
                if remain is not None:
                    out = out[:remain]
                    remain -= len(out)
                yield out
                if remain == 0:
                    return
            if not data:
                return
    finally:
        f.close()
