"""Under make test a missing real part fails the tests that need it; elsewhere it skips."""

from __future__ import annotations

from pathlib import Path

import pytest
from runtime import REQUIRE_ENV, needs


def test_missing_part_skips_outside_make_test() -> None:
    mark = needs("no-such-tool-skiff", env={})
    assert mark.args == (True,) and "no-such-tool-skiff" in mark.kwargs["reason"]


def test_missing_part_fails_under_make_test() -> None:
    with pytest.raises(RuntimeError, match="no-such-tool-skiff"):
        needs("no-such-tool-skiff", env={REQUIRE_ENV: "1"})
    with pytest.raises(RuntimeError, match="/nonexistent/cni/bridge"):
        needs(paths=(Path("/nonexistent/cni/bridge"),), env={REQUIRE_ENV: "1"})


def test_present_parts_run() -> None:
    assert needs("sh", env={REQUIRE_ENV: "1"}).args == (False,)
