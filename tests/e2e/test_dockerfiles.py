"""Static checks of the Dockerfiles (no Docker needed); test_compose builds and runs them."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from skiff.apiserver.schema import KUBERNETES_SCHEMA_VERSION

ROOT = Path(__file__).resolve().parents[2]
CONTROL_PLANE = ["apiserver", "scheduler", "controller-manager"]


def test_python_image_keeps_the_schemas_the_apiserver_reads() -> None:
    text = (ROOT / "docker/python/Dockerfile").read_text()
    kept = re.search(r"^ARG KUBERNETES_SCHEMA_VERSION=(\S+)$", text, re.M)
    assert kept is not None and kept.group(1) == KUBERNETES_SCHEMA_VERSION


@pytest.mark.parametrize("service", CONTROL_PLANE)
def test_control_plane_images_run_unprivileged_with_a_healthcheck(service: str) -> None:
    text = (ROOT / "services" / service / "Dockerfile").read_text()
    user = re.findall(r"^USER (\S+)$", text, re.M)
    assert user and not user[-1].startswith(("0", "root"))
    healthcheck = r"^HEALTHCHECK .*\\\n\s*CMD python3 -m skiff.healthcheck .*/healthz"
    assert re.search(healthcheck, text, re.M)
    # Dependencies come from skiff/python; only source is added here.
    assert re.search(r"^FROM \$\{PYTHON_IMAGE\}$", text, re.M)
    assert "uv sync" not in text and "pip install" not in text
