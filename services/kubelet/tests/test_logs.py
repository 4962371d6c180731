"""Container logs from CRI-format files: joining, tail, since, timestamps, limit, follow."""

from __future__ import annotations

import asyncio
import os
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from skiff.kubelet import logs
from skiff.kubelet.logs import read_log

SAMPLE = (
    b"2026-01-02T03:04:05.1Z stdout F first\n"
    b"2026-01-02T03:04:06.000000002Z stderr F oops\n"
    b"2026-01-02T03:04:07Z stdout P sec\n"
    b"2026-01-02T03:04:07.5Z stderr F interleaved\n"
    b"2026-01-02T03:04:08Z stdout P on\n"
    b"2026-01-02T03:04:09Z stdout F d\n"
    b"2026-01-02T03:04:10+01:00 stdout F \n"
    b"2026-01-02T03:04:11.123456789Z stdout F last\n"
)


async def collect(path: Path, **kw: Any) -> bytes:
    opts: dict[str, Any] = {
        "follow": False,
        "tail_lines": None,
        "timestamps": False,
        "since": None,
        "limit_bytes": None,
    }
    opts.update(kw)
    return b"".join([chunk async for chunk in read_log(path, **opts)])


@pytest.fixture
def sample(tmp_path: Path) -> Path:
    path = tmp_path / "0.log"
    path.write_bytes(SAMPLE)
    return path


async def test_joins_partial_lines_per_stream(sample: Path) -> None:
    assert await collect(sample) == b"first\noops\ninterleaved\nsecond\n\nlast\n"


async def test_timestamps_fixed_width_from_first_piece(sample: Path) -> None:
    out = (await collect(sample, timestamps=True)).splitlines()
    assert out == [
        b"2026-01-02T03:04:05.100000000Z first",
        b"2026-01-02T03:04:06.000000002Z oops",
        b"2026-01-02T03:04:07.500000000Z interleaved",
        b"2026-01-02T03:04:07.000000000Z second",
        b"2026-01-02T03:04:10.000000000+01:00 ",
        b"2026-01-02T03:04:11.123456789Z last",
    ]


async def test_tail_counts_complete_lines(sample: Path) -> None:
    assert await collect(sample, tail_lines=1) == b"last\n"
    assert await collect(sample, tail_lines=2) == b"\nlast\n"
    # The third line from the end is made of three records.
    assert await collect(sample, tail_lines=3) == b"second\n\nlast\n"
    assert await collect(sample, tail_lines=100) == await collect(sample)
    assert await collect(sample, tail_lines=-1) == await collect(sample)
    assert await collect(sample, tail_lines=0) == b""


async def test_tail_reads_backwards_through_a_big_file(tmp_path: Path) -> None:
    path = tmp_path / "big.log"
    with path.open("wb") as f:
        for i in range(50_000):
            f.write(b"2026-01-02T03:04:05.000000001Z stdout F line %d\n" % i)
        f.write(b"2026-01-02T03:04:05.000000001Z stdout F no newline ye")  # being written
    out = await collect(path, tail_lines=3)
    assert out == b"line 49997\nline 49998\nline 49999\n"


async def test_output_without_final_newline_counts_as_a_line(tmp_path: Path) -> None:
    path = tmp_path / "0.log"
    path.write_bytes(
        b"2026-01-02T03:04:05Z stdout F a\n"
        b"2026-01-02T03:04:05Z stdout F b\n"
        b"2026-01-02T03:04:06Z stdout P c\n"
    )
    assert await collect(path) == b"a\nb\nc"
    assert await collect(path, tail_lines=1) == b"c"
    assert await collect(path, tail_lines=2) == b"b\nc"


async def test_since(sample: Path) -> None:
    since = datetime(2026, 1, 2, 3, 4, 6, tzinfo=UTC)
    assert await collect(sample, since=since) == b"oops\ninterleaved\nsecond\nlast\n"
    # 03:04:10+01:00 is 02:04:10Z; an aware since in another zone compares by instant.
    east = timezone(timedelta(hours=1))
    since = datetime(2026, 1, 2, 3, 4, 9, tzinfo=east)
    assert await collect(sample, since=since) == b"first\noops\ninterleaved\nsecond\n\nlast\n"
    since = datetime(2026, 1, 2, 3, 4, 11, 123456)  # naive: UTC
    assert await collect(sample, since=since, timestamps=True) == (
        b"2026-01-02T03:04:11.123456789Z last\n"
    )


async def test_limit_bytes(sample: Path) -> None:
    assert await collect(sample, limit_bytes=8) == b"first\noo"
    assert await collect(sample, limit_bytes=0) == await collect(sample)
    assert await collect(sample, limit_bytes=6, tail_lines=1, timestamps=True) == b"2026-0"


async def test_missing_file_yields_nothing(tmp_path: Path) -> None:
    assert await collect(tmp_path / "nope.log") == b""


async def test_malformed_records_are_skipped(tmp_path: Path) -> None:
    path = tmp_path / "0.log"
    path.write_bytes(b"garbage\n\n2026-01-02T03:04:05Z stdout F ok\n")
    assert await collect(path, timestamps=True) == b"2026-01-02T03:04:05.000000000Z ok\n"


@pytest.fixture
def fast(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(logs, "POLL_INTERVAL", 0.02)
    monkeypatch.setattr(logs, "STATE_INTERVAL", 0.05)


class Container:
    def __init__(self) -> None:
        self.running = True
        self.calls = 0

    async def is_running(self) -> bool:
        self.calls += 1
        return self.running


async def until(chunks: list[bytes], want: bytes) -> None:
    for _ in range(200):
        if b"".join(chunks) == want:
            return
        await asyncio.sleep(0.01)
    assert b"".join(chunks) == want


def append(path: Path, data: bytes) -> None:
    with path.open("ab") as f:
        f.write(data)


async def test_follow_appends_and_ends_with_the_container(tmp_path: Path, fast: None) -> None:
    path = tmp_path / "0.log"
    path.write_bytes(b"2026-01-02T03:04:05Z stdout F old\n2026-01-02T03:04:05Z stdout F one\n")
    container = Container()
    chunks: list[bytes] = []

    async def reader() -> None:
        async for chunk in read_log(
            path,
            follow=True,
            tail_lines=1,
            timestamps=False,
            since=None,
            limit_bytes=None,
            is_running=container.is_running,
        ):
            chunks.append(chunk)

    task = asyncio.create_task(reader())
    await until(chunks, b"one\n")
    append(path, b"2026-01-02T03:04:06Z stdout F tw")
    await asyncio.sleep(0.1)
    assert b"".join(chunks) == b"one\n"  # an incomplete record waits
    append(path, b"o\n2026-01-02T03:04:06Z stdout P thr\n")
    await until(chunks, b"one\ntwo\n")
    await asyncio.sleep(0.1)
    assert b"".join(chunks) == b"one\ntwo\n"  # a partial line waits for its F
    append(path, b"2026-01-02T03:04:07Z stdout F ee\n")
    # Written just before the container ends: still read before stopping.
    append(path, b"2026-01-02T03:04:07Z stderr F bye\n2026-01-02T03:04:07Z stdout P tail\n")
    container.running = False
    await asyncio.wait_for(task, 2)
    assert b"".join(chunks) == b"one\ntwo\nthree\nbye\ntail"
    assert container.calls >= 1


async def test_follow_waits_for_the_file_and_survives_rotation(tmp_path: Path, fast: None) -> None:
    path = tmp_path / "0.log"
    container = Container()
    chunks: list[bytes] = []

    async def reader() -> None:
        async for chunk in read_log(
            path,
            follow=True,
            tail_lines=None,
            timestamps=False,
            since=None,
            limit_bytes=None,
            is_running=container.is_running,
        ):
            chunks.append(chunk)

    task = asyncio.create_task(reader())
    await asyncio.sleep(0.1)
    assert not task.done()
    path.write_bytes(b"2026-01-02T03:04:05Z stdout F a\n")
    await until(chunks, b"a\n")
    # Rotation: the old file is renamed (and gets a last line), a new one is created.
    os.rename(path, tmp_path / "0.log.20260102-030406")
    append(tmp_path / "0.log.20260102-030406", b"2026-01-02T03:04:06Z stdout F b\n")
    await asyncio.sleep(0.1)
    path.write_bytes(b"2026-01-02T03:04:07Z stdout F c\n")
    await asyncio.sleep(0.1)
    append(path, b"2026-01-02T03:04:08Z stdout F d\n")
    await until(chunks, b"a\nb\nc\nd\n")
    container.running = False
    await asyncio.wait_for(task, 2)


async def test_follow_missing_file_of_an_ended_container(tmp_path: Path, fast: None) -> None:
    container = Container()
    container.running = False
    out = [
        c
        async for c in read_log(
            tmp_path / "0.log",
            follow=True,
            tail_lines=None,
            timestamps=False,
            since=None,
            limit_bytes=None,
            is_running=container.is_running,
        )
    ]
    assert out == []


async def test_follow_stops_at_limit(tmp_path: Path, fast: None) -> None:
    path = tmp_path / "0.log"
    path.write_bytes(b"2026-01-02T03:04:05Z stdout F abc\n")

    async def run() -> bytes:
        out = b""
        async for chunk in read_log(
            path, follow=True, tail_lines=None, timestamps=False, since=None, limit_bytes=6
        ):
            out += chunk
        return out

    task = asyncio.create_task(run())
    await asyncio.sleep(0.1)
    append(path, b"2026-01-02T03:04:06Z stdout F defgh\n")
    assert await asyncio.wait_for(task, 2) == b"abc\nde"


async def test_follow_truncated_in_place(tmp_path: Path, fast: None) -> None:
    path = tmp_path / "0.log"
    path.write_bytes(b"2026-01-02T03:04:05Z stdout F before\n")
    container = Container()
    chunks: list[bytes] = []

    async def reader() -> None:
        async for chunk in read_log(
            path,
            follow=True,
            tail_lines=None,
            timestamps=False,
            since=None,
            limit_bytes=None,
            is_running=container.is_running,
        ):
            chunks.append(chunk)

    task = asyncio.create_task(reader())
    await asyncio.sleep(0.1)
    path.write_bytes(b"2026-01-02T03:04:06Z stdout F x\n")  # truncates, shorter than before
    await asyncio.sleep(0.1)
    container.running = False
    await asyncio.wait_for(task, 2)
    assert b"".join(chunks) == b"before\nx\n"
