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


def test_python_image_copies_every_workspace_members_pyproject() -> None:
    """``uv sync --frozen`` in the image needs every member's pyproject.toml: a member
    added to the workspace and not copied breaks the image build (on a fresh machine's
    ``make compose-up`` only; CI's warm Docker cache hides it)."""
    text = (ROOT / "docker/python/Dockerfile").read_text()
    copied = set(re.findall(r"^COPY (\S+)/pyproject.toml /src/\1/$", text, re.M))
    members = {
        str(p.parent.relative_to(ROOT))
        for pattern in ("libs/*/pyproject.toml", "services/*/pyproject.toml")
        for p in ROOT.glob(pattern)
    }
    assert members - copied == set()


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


@pytest.mark.parametrize("service", ["proxy", "netagent"])
def test_node_add_on_images_start_from_the_network_tools(service: str) -> None:
    text = (ROOT / "services" / service / "Dockerfile").read_text()
    assert re.search(r"^FROM \$\{NETTOOLS_IMAGE\}$", text, re.M)
    assert "uv sync" not in text and "pip install" not in text
    assert f"COPY services/{service}/src/ /opt/app/" in text


def test_every_add_on_image_is_built_and_exported_for_the_nodes() -> None:
    """The nodes cannot pull: each image deploy/ names must be one `make images` builds
    and exports into the archive the nodes import."""
    import yaml

    script = (ROOT / "scripts" / "compose.sh").read_text()
    exported = re.search(r"^\s*export_node_images (.+)$", script, re.M)
    assert exported is not None
    names = exported.group(1).split()
    for manifest in sorted((ROOT / "deploy").glob("*.yaml")):
        for doc in yaml.safe_load_all(manifest.read_text()):
            spec = ((doc or {}).get("spec") or {}).get("template", {}).get("spec") or {}
            for c in spec.get("containers", []) + spec.get("initContainers", []):
                assert c["image"] in names, (manifest.name, c["image"])
                assert c.get("imagePullPolicy") == "Never", (manifest.name, c["name"])
                assert re.search(rf"^\s*build {re.escape(c['image'])} ", script, re.M)
