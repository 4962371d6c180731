"""Running a host tool (ip, iptables, conntrack...) from asyncio."""

from __future__ import annotations

import asyncio


async def run(*args: str, stdin: bytes | None = None) -> tuple[int, bytes, bytes]:
    """Run ``args``; its exit status, stdout and stderr (127 when it is not installed)."""
    try:
        proc = await asyncio.create_subprocess_exec(
            *args,
            stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
    except FileNotFoundError:
        return 127, b"", f"{args[0]}: command not found".encode()
    out, err = await proc.communicate(stdin)
    return proc.returncode or 0, out, err
