"""Node labels of what the plugin found, in the names GPU feature discovery uses, so that
pods can select nodes by product, memory, driver or CUDA version
(``nodeSelector: {nvidia.com/gpu.product: NVIDIA-H100-80GB-HBM3}``)."""

from __future__ import annotations

import re
from typing import Any

from skiff.api.errors import ApiError
from skiff.client.rest import ApiClient
from skiff.log import get_logger

from .nvml import GpuInfo
from .resources import Sharing

log = get_logger(__name__)

PREFIX = "nvidia.com/"
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")


def _value(text: str) -> str:
    """A label value: spaces and other characters to ``-``, at most 63 characters."""
    return _UNSAFE.sub("-", text.strip()).strip("-_.")[:63].rstrip("-_.")


def _version(prefix: str, version: str) -> dict[str, str]:
    parts = version.split(".")
    names = ("major", "minor", "revision")
    out = {f"{prefix}-version.full": _value(version)}
    out |= {f"{prefix}-version.{n}": p for n, p in zip(names, parts, strict=False) if p.isdigit()}
    return out


def gpu_labels(
    gpus: list[GpuInfo], driver: str, cuda: str, mig_strategy: str, sharing: Sharing
) -> dict[str, str]:
    """The labels (without the prefix added twice: keys are full label names)."""
    if not gpus:
        return {}
    first = gpus[0]
    replicas = max((r.replicas for r in sharing.resources if r.applies(first)), default=1)
    product = _value(first.name)
    if replicas > 1:
        product = _value(f"{product}-SHARED")
    out = {
        "gpu.present": "true",
        "gpu.product": product,
        "gpu.memory": str(first.memory_mib),
        "gpu.count": str(len(gpus)),
        "gpu.replicas": str(replicas),
        "gpu.sharing-strategy": sharing.strategy if replicas > 1 else "none",
        "mig.strategy": mig_strategy,
        "mig.capable": "true" if any(g.mig_enabled for g in gpus) else "false",
    }
    out |= _version("cuda.driver", driver)
    out |= _version("cuda.runtime", cuda)
    return {PREFIX + k: v for k, v in out.items()}


async def apply(client: ApiClient, node: str, labels: dict[str, str]) -> None:
    """Set the labels on the Node, removing ``nvidia.com/`` GPU labels no longer found."""
    try:
        current = await client.get("nodes", node)
    except ApiError as e:
        log.warning("node labels not written", node=node, error=e.message)
        return
    held: dict[str, Any] = current["metadata"].get("labels") or {}
    ours = ("gpu.", "cuda.", "mig.")
    patch: dict[str, Any] = {
        k: None for k in held if k.startswith(PREFIX) and k[len(PREFIX) :].startswith(ours)
    }
    patch.update(labels)
    patch = {k: v for k, v in patch.items() if held.get(k) != v}
    if not patch:
        return
    try:
        await client.patch("nodes", node, {"metadata": {"labels": patch}}, type="merge")
        log.info("node labels written", node=node, labels=len(labels))
    except ApiError as e:
        log.warning("node labels not written", node=node, error=e.message)
