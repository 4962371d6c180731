"""The image manager, as kube's images/image_manager.go: makes sure a container's image is
on the node before it is created, per ``imagePullPolicy`` (Always, IfNotPresent, Never),
with a per-image back-off after failed pulls (``ErrImagePull`` → ``ImagePullBackOff``).
With ``Always`` and no registry reachable, the local copy is used and logged.
"""

from __future__ import annotations

import time
from typing import Any

from skiff.client.events import EventRecorder
from skiff.cri.client import CriClient, CriError, pb
from skiff.log import get_logger

from .pod_context import BACKOFF_INITIAL, BACKOFF_MAX, PodContext

log = get_logger(__name__)


class ImageManager:
    """Pulls images through the runtime, with back-off per image."""

    def __init__(self, cri: CriClient, events: EventRecorder) -> None:
        self.cri = cri
        self.events = events
        self._pull_backoff: dict[str, tuple[float, float]] = {}  # image → (retry at, delay)

    async def ensure(self, ctx: PodContext, spec: dict[str, Any]) -> pb.Image | None:
        """The container's image, pulled as imagePullPolicy says; None when it cannot be had."""
        pod, name, ref = ctx.pod, spec["name"], spec["image"]
        policy = spec.get("imagePullPolicy") or "IfNotPresent"
        present = await self.cri.image_status(ref)
        if policy == "Never":
            if present is None:
                ctx.waiting[name] = (
                    "ErrImageNeverPull",
                    f'Container image "{ref}" is not present with pull policy of Never',
                )
                ctx.after(10.0)
            return present
        if present is not None and policy == "IfNotPresent":
            self.events.emit(
                pod, "Normal", "Pulled", f'Container image "{ref}" already present on machine'
            )
            return present
        retry_at, delay = self._pull_backoff.get(ref, (0.0, 0.0))
        if present is None and time.monotonic() < retry_at:
            ctx.waiting[name] = ("ImagePullBackOff", f'Back-off pulling image "{ref}"')
            self.events.emit(pod, "Normal", "BackOff", f'Back-off pulling image "{ref}"')
            ctx.after(retry_at - time.monotonic())
            return None
        self.events.emit(pod, "Normal", "Pulling", f'Pulling image "{ref}"')
        started = time.monotonic()
        try:
            await self.cri.pull_image(ref, sandbox_config=ctx.sandbox_config)
        except CriError as e:
            if present is not None:
                # imagePullPolicy Always with no registry reachable (locally built images):
                # run what is here rather than refuse, and say so.
                log.info("pull failed; using the image present", image=ref, error=e.message)
                self.events.emit(
                    pod,
                    "Normal",
                    "Pulled",
                    f'Container image "{ref}" already present on machine (pull failed: '
                    "no registry reachable?)",
                )
                return present
            delay = min(max(delay * 2, BACKOFF_INITIAL), BACKOFF_MAX)
            self._pull_backoff[ref] = (time.monotonic() + delay, delay)
            ctx.waiting[name] = ("ErrImagePull", e.message)
            self.events.emit(pod, "Warning", "Failed", f'Failed to pull image "{ref}": {e.message}')
            ctx.after(delay)
            return None
        self._pull_backoff.pop(ref, None)
        self.events.emit(
            pod,
            "Normal",
            "Pulled",
            f'Successfully pulled image "{ref}" in {time.monotonic() - started:.3f}s',
        )
        return await self.cri.image_status(ref)
