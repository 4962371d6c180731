"""Boolean query parameters decode as Kubernetes decodes them."""

from __future__ import annotations

import pytest

from skiff.api.queryparams import flag


@pytest.mark.parametrize(
    ("query", "want"),
    [({}, False), ({"watch": "true"}, True), ({"watch": "True"}, True), ({"watch": "1"}, True),
     ({"watch": ""}, True), ({"watch": "0"}, False), ({"watch": "False"}, False),
     ({"watch": "FALSE"}, False), ({"watch": "yes"}, True)],
)  # fmt: skip
def test_flags(query: dict[str, str], want: bool) -> None:
    assert flag(query, "watch") is want
