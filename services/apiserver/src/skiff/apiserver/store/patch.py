"""Patches of the generic store (kube's ``endpoints/handlers/patch.go``): JSON patch,
merge patch and strategic merge patch applied in a read-modify-write, and server-side
apply, which tracks field owners in managedFields and creates what does not exist yet.
"""

from __future__ import annotations

from typing import Any

from skiff.api import errors
from skiff.api import patch as patching
from skiff.api.resources import ResourceInfo
from skiff.api.timestamps import rfc3339
from skiff.apiserver import apply as ssa
from skiff.apiserver.strategicpatch import strategic_merge_patch

from ..registry import generic
from ..registry.options import (
    PATCH_APPLY,
    PATCH_JSON,
    PATCH_MERGE,
    PATCH_STRATEGIC,
    WriteOptions,
)
from .writes import WriteMixin


class PatchMixin(WriteMixin):
    """``patch`` (an object or a subresource), by patch type, and server-side apply."""

    async def patch(
        self,
        info: ResourceInfo,
        namespace: str | None,
        name: str,
        patch_type: str,
        body: Any,
        opts: WriteOptions,
        *,
        subresource: str = "",
    ) -> dict[str, Any]:
        """Patch an object, or one of its subresources."""
        if subresource:
            handler = self._handler(info, subresource, "patch")
            return await handler.patch(self, info, namespace, name, patch_type, body, opts)
        return await self.patch_object(info, namespace, name, patch_type, body, opts)

    async def patch_object(
        self,
        info: ResourceInfo,
        namespace: str | None,
        name: str,
        patch_type: str,
        body: Any,
        opts: WriteOptions,
        *,
        subresource: str = "",
    ) -> dict[str, Any]:
        """Apply a patch given by its media type (json, merge, strategic-merge, apply);
        ``subresource`` selects the update rules (``status`` writes only status)."""
        if patch_type == PATCH_APPLY:
            return await self._apply(info, namespace, name, body, opts, subresource)
        if info.custom and patch_type == PATCH_STRATEGIC:
            # Custom resources have no patch strategies (kube's CR handler).
            raise errors.ApiError(
                415,
                errors.Reason.UNSUPPORTED_MEDIA_TYPE,
                "the body of the request was in an unknown format - accepted media types "
                "include: application/json-patch+json, application/merge-patch+json, "
                "application/apply-patch+yaml",
            )
        precondition = None
        if isinstance(body, dict):
            precondition = (body.get("metadata") or {}).get("resourceVersion")
        elif patch_type != PATCH_JSON:
            raise errors.bad_request("the patch must be a JSON object")
        if patch_type == PATCH_JSON and not isinstance(body, list):
            raise errors.bad_request("a json patch must be a list of operations")

        def mutate(cur: dict[str, Any]) -> dict[str, Any]:
            if precondition and precondition != cur["metadata"]["resourceVersion"]:
                raise errors.modified(info.plural, name, info.group)
            if patch_type == PATCH_JSON:
                out = patching.json_patch(cur, body)
            elif patch_type == PATCH_MERGE:
                out = patching.merge_patch(cur, body)
            elif patch_type == PATCH_STRATEGIC:
                out = strategic_merge_patch(cur, body, info.definition)
            else:
                raise errors.unsupported_media_type(patch_type)
            if not isinstance(out, dict):
                raise errors.bad_request("the patch did not produce an object")
            generic.decode(info, out, opts)
            return out

        return await self.update_with(info, namespace, name, mutate, opts, subresource=subresource)

    async def _apply(
        self,
        info: ResourceInfo,
        namespace: str | None,
        name: str,
        applied: Any,
        opts: WriteOptions,
        subresource: str,
    ) -> dict[str, Any]:
        """Server-side apply: merge the applied configuration, tracking field owners."""
        if not isinstance(applied, dict):
            raise errors.bad_request("the applied configuration must be an object")
        if not opts.field_manager:
            raise errors.bad_request(
                'PatchOptions.meta.k8s.io "" is invalid: fieldManager: Required value: is '
                "required for apply patch"
            )
        applied_name = (applied.get("metadata") or {}).get("name")
        if applied_name and applied_name != name:
            raise errors.bad_request(
                f"the name of the object ({applied_name}) does not match the name on the URL "
                f"({name})"
            )
        generic.decode(info, applied, opts)

        def mutate(cur: dict[str, Any]) -> dict[str, Any]:
            return ssa.server_side_apply(
                cur,
                applied,
                manager=opts.field_manager,
                force=opts.force,
                definition=info.definition,
                now=rfc3339(),
                subresource=subresource,
            )

        async def create() -> dict[str, Any]:
            obj = ssa.server_side_apply(
                None,
                applied,
                manager=opts.field_manager,
                force=opts.force,
                definition=info.definition,
                now=rfc3339(),
            )
            obj.setdefault("metadata", {})["name"] = name
            return await self.create(info, namespace, obj, opts, managed=True)

        return await self.update_with(
            info,
            namespace,
            name,
            mutate,
            opts,
            subresource=subresource,
            create_if_missing=create,
            managed=True,
        )
