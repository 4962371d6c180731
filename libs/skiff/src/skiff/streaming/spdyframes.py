"""SPDY/3.1 wire format: frame types, flags and status codes, frame encoding and
decoding, and header blocks with their zlib compression (drafts 3 and 3.1). The session
that uses them is :mod:`skiff.streaming.spdy`.

Wire format (all integers big-endian)::

    control frame: |1|version:15|type:16|  |flags:8|length:24|  payload
    data frame:    |0|stream-id:31|         |flags:8|length:24|  data

Header blocks (SYN_STREAM, SYN_REPLY, HEADERS) are ``count:32`` then ``count`` pairs
of ``len:32 name len:32 value`` (several values of one name are NUL-separated),
deflated by one zlib stream per direction for the whole session, primed with
:data:`SPDY3_DICTIONARY` and flushed with ``Z_SYNC_FLUSH`` after every block.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

HeaderValues = str | Sequence[str]

VERSION = 3

# Control frame types.
SYN_STREAM = 1
SYN_REPLY = 2
RST_STREAM = 3
SETTINGS = 4
PING = 6
GOAWAY = 7
HEADERS = 8
WINDOW_UPDATE = 9

# Flags: FIN on DATA, SYN_STREAM, SYN_REPLY and HEADERS; UNIDIRECTIONAL on SYN_STREAM.
FLAG_FIN = 0x01
FLAG_UNIDIRECTIONAL = 0x02
FLAG_SETTINGS_CLEAR_SETTINGS = 0x01

# RST_STREAM status codes.
PROTOCOL_ERROR = 1
INVALID_STREAM = 2
REFUSED_STREAM = 3
UNSUPPORTED_VERSION = 4
CANCEL = 5
INTERNAL_ERROR = 6
FLOW_CONTROL_ERROR = 7
STREAM_IN_USE = 8
STREAM_ALREADY_CLOSED = 9
FRAME_TOO_LARGE = 11

# GOAWAY status codes.
GOAWAY_OK = 0
GOAWAY_PROTOCOL_ERROR = 1
GOAWAY_INTERNAL_ERROR = 2

SETTINGS_INITIAL_WINDOW_SIZE = 7

DEFAULT_WINDOW = 64 * 1024
MAX_WINDOW = 0x7FFFFFFF
MAX_FRAME_PAYLOAD = 0xFFFFFF
MAX_DATA_CHUNK = 32 * 1024
MAX_HEADER_BLOCK = 1 << 20


def _build_dictionary() -> bytes:
    """The SPDY/3 header-compression dictionary (draft 3, section 2.6.10.1).

    A run of 32-bit-length-prefixed header names and values, then a run of
    unprefixed text (status codes, reason phrases, dates, media types).
    """
    prefixed = [
        *"options head post put delete trace accept accept-charset accept-encoding".split(),
        *"accept-language accept-ranges age allow authorization cache-control".split(),
        *"connection content-base content-encoding content-language content-length".split(),
        *"content-location content-md5 content-range content-type date etag expect".split(),
        *"expires from host if-match if-modified-since if-none-match if-range".split(),
        *"if-unmodified-since last-modified location max-forwards pragma".split(),
        *"proxy-authenticate proxy-authorization range referer retry-after server te".split(),
        *"trailer transfer-encoding upgrade user-agent vary via warning".split(),
        *"www-authenticate method get status".split(),
        "200 OK",
        *"version HTTP/1.1 url public set-cookie keep-alive origin".split(),
    ]
    codes = "100 101 201 202 205 206 300 302 303 304 305 306 307 402 405 406 407 408 409 410"
    codes += " 411 412 413 414 415 416 417 502 504 505"
    text = "".join(codes.split()) + "".join(
        [
            "203 Non-Authoritative Information204 No Content301 Moved Permanently",
            "400 Bad Request401 Unauthorized403 Forbidden404 Not Found",
            "500 Internal Server Error501 Not Implemented503 Service Unavailable",
            "Jan Feb Mar Apr May Jun Jul Aug Sept Oct Nov Dec 00:00:00 ",
            "Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMT",
            "chunked,text/html,image/png,image/jpg,image/gif,application/xml,",
            "application/xhtml+xml,text/plain,text/javascript,public",
            "privatemax-age=gzip,deflate,sdchcharset=utf-8charset=iso-8859-1,utf-,*,enq=0.",
        ]
    )
    out = bytearray()
    for word in prefixed:
        out += struct.pack(">I", len(word)) + word.encode()
    return bytes(out + text.encode())


SPDY3_DICTIONARY = _build_dictionary()


class SpdyError(Exception):
    """A SPDY protocol violation."""


class StreamClosedError(SpdyError):
    """Write on a stream that was closed, reset, or whose session has ended."""


# --------------------------------------------------------------------------- frames


@dataclass(slots=True)
class ControlFrame:
    """A parsed control frame; ``payload`` is everything after the 8-byte header."""

    type: int
    flags: int
    payload: bytes
    version: int = VERSION


@dataclass(slots=True)
class DataFrame:
    """A parsed data frame."""

    stream_id: int
    flags: int
    data: bytes

    @property
    def fin(self) -> bool:
        return bool(self.flags & FLAG_FIN)


Frame = ControlFrame | DataFrame


class FrameReader:
    """Incremental frame parser: ``feed`` bytes as they come, then drain ``next_frame``."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self._pos = 0

    def feed(self, data: bytes) -> None:
        if self._pos:
            del self._buf[: self._pos]
            self._pos = 0
        self._buf += data

    def next_frame(self) -> Frame | None:
        """The next complete frame, or None until more bytes are fed."""
        buf, pos = self._buf, self._pos
        if len(buf) - pos < 8:
            return None
        word, flags_len = struct.unpack_from(">II", buf, pos)
        length = flags_len & 0xFFFFFF
        end = pos + 8 + length
        if len(buf) < end:
            return None
        payload = bytes(buf[pos + 8 : end])
        self._pos = end
        flags = flags_len >> 24
        if word & 0x80000000:
            return ControlFrame((word & 0xFFFF), flags, payload, (word >> 16) & 0x7FFF)
        return DataFrame(word & 0x7FFFFFFF, flags, payload)

    def __iter__(self) -> Iterator[Frame]:
        while (frame := self.next_frame()) is not None:
            yield frame


def encode_control(ftype: int, flags: int, payload: bytes, version: int = VERSION) -> bytes:
    """A control frame: header plus payload."""
    if len(payload) > MAX_FRAME_PAYLOAD:
        raise SpdyError(f"control frame payload too large: {len(payload)}")
    return struct.pack(">HHI", 0x8000 | version, ftype, (flags << 24) | len(payload)) + payload


def encode_data(stream_id: int, data: bytes | memoryview, *, fin: bool = False) -> bytes:
    """A DATA frame for ``stream_id``."""
    if len(data) > MAX_FRAME_PAYLOAD:
        raise SpdyError(f"data frame too large: {len(data)}")
    flags = FLAG_FIN if fin else 0
    return struct.pack(">II", stream_id & 0x7FFFFFFF, (flags << 24) | len(data)) + bytes(data)


def encode_syn_stream(
    block: bytes, stream_id: int, *, flags: int = 0, priority: int = 0, associated: int = 0
) -> bytes:
    """SYN_STREAM with an already-compressed header ``block``."""
    head = struct.pack(">IIBB", stream_id, associated, (priority & 7) << 5, 0)
    return encode_control(SYN_STREAM, flags, head + block)


def encode_syn_reply(block: bytes, stream_id: int, *, flags: int = 0) -> bytes:
    """SYN_REPLY with an already-compressed header ``block``."""
    return encode_control(SYN_REPLY, flags, struct.pack(">I", stream_id) + block)


def encode_rst_stream(stream_id: int, status: int) -> bytes:
    return encode_control(RST_STREAM, 0, struct.pack(">II", stream_id, status))


def encode_settings(settings: Mapping[int, int], *, flags: int = 0) -> bytes:
    """SETTINGS with ``{id: value}`` entries (per-entry flags 0)."""
    body = struct.pack(">I", len(settings))
    for sid, value in settings.items():
        body += struct.pack(">II", sid & 0xFFFFFF, value)
    return encode_control(SETTINGS, flags, body)


def encode_ping(ping_id: int) -> bytes:
    return encode_control(PING, 0, struct.pack(">I", ping_id))


def encode_goaway(last_good_stream_id: int, status: int = GOAWAY_OK) -> bytes:
    return encode_control(GOAWAY, 0, struct.pack(">II", last_good_stream_id, status))


def encode_window_update(stream_id: int, delta: int) -> bytes:
    return encode_control(WINDOW_UPDATE, 0, struct.pack(">II", stream_id, delta & 0x7FFFFFFF))


def parse_u32s(payload: bytes, count: int) -> tuple[int, ...]:
    """The first ``count`` 32-bit words of a control payload (stream ids lose bit 31)."""
    if len(payload) < 4 * count:
        raise SpdyError("control frame too short")
    return struct.unpack_from(f">{count}I", payload)


# --------------------------------------------------------------------------- headers


def encode_header_block(headers: Mapping[str, HeaderValues]) -> bytes:
    """Serialise (uncompressed) a header block; names are lowercased."""
    out = bytearray(struct.pack(">I", len(headers)))
    for name, values in headers.items():
        raw_name = name.lower().encode()
        value = values if isinstance(values, str) else "\x00".join(values)
        raw_value = value.encode()
        out += struct.pack(">I", len(raw_name)) + raw_name
        out += struct.pack(">I", len(raw_value)) + raw_value
    return bytes(out)


def _values(value: HeaderValues) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


def decode_header_block(raw: bytes) -> dict[str, list[str]]:
    """Parse an uncompressed header block into ``{name: [values]}``."""
    try:
        (count,) = struct.unpack_from(">I", raw, 0)
        pos = 4
        headers: dict[str, list[str]] = {}
        for _ in range(count):
            (n,) = struct.unpack_from(">I", raw, pos)
            name = raw[pos + 4 : pos + 4 + n].decode("latin-1")
            pos += 4 + n
            (n,) = struct.unpack_from(">I", raw, pos)
            value = raw[pos + 4 : pos + 4 + n].decode("latin-1")
            pos += 4 + n
            if pos > len(raw):
                raise SpdyError("truncated header block")
            headers.setdefault(name.lower(), []).extend(value.split("\x00"))
    except struct.error as e:
        raise SpdyError(f"malformed header block: {e}") from e
    return headers


class HeaderCompressor:
    """The sending half of a session's header compression (one zlib stream)."""

    def __init__(self) -> None:
        self._z = zlib.compressobj(wbits=15, zdict=SPDY3_DICTIONARY)

    def compress(self, headers: Mapping[str, HeaderValues]) -> bytes:
        raw = encode_header_block(headers)
        return self._z.compress(raw) + self._z.flush(zlib.Z_SYNC_FLUSH)


class HeaderDecompressor:
    """The receiving half of a session's header compression (one zlib stream)."""

    def __init__(self) -> None:
        self._z = zlib.decompressobj(wbits=15, zdict=SPDY3_DICTIONARY)

    def decompress(self, block: bytes) -> dict[str, list[str]]:
        """Inflate one header block; a failure here desynchronises the session."""
        try:
            raw = self._z.decompress(block, MAX_HEADER_BLOCK)
        except zlib.error as e:
            raise SpdyError(f"header block decompression failed: {e}") from e
        if self._z.unconsumed_tail:
            raise SpdyError("header block too large")
        return decode_header_block(raw)
