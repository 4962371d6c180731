"""The clocks a controller-manager process can run on.

Controllers read the time only through ``ControllerContext.clock``; ``__main__`` builds
that clock: the wall clock, or, for tests (the hidden ``--clock-offset-file`` flag,
``SKIFF_CLOCK_OFFSET_FILE``), an :class:`OffsetClock` a test moves by writing a file.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from pathlib import Path


class OffsetClock:
    """``base()`` plus a number of seconds read from a file (a test hook).

    Every reading stats the file and re-reads it when it changed, so a test that
    has rewritten the file (atomically, by rename) is sure the next reading sees it.
    A missing file is no offset.
    """

    def __init__(self, base: Callable[[], float], path: str | Path) -> None:
        self.base = base
        self.path = Path(path)
        self.offset = 0.0
        self._version: tuple[int, int, int] | None = None

    def __call__(self) -> float:
        try:
            st = self.path.stat()
        except OSError:
            self._version, self.offset = None, 0.0
        else:
            version = (st.st_ino, st.st_mtime_ns, st.st_size)
            if version != self._version:
                with contextlib.suppress(OSError, ValueError):
                    text = self.path.read_text().strip()
                    self.offset = float(text) if text else 0.0
                    self._version = version
        return self.base() + self.offset
