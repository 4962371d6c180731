"""ServiceAccount (kube's ``plugin/pkg/admission/serviceaccount``): a new pod runs as a
ServiceAccount that exists (``default`` when it names none) and, unless the pod or the
account opts out (``automountServiceAccountToken: false``), gets the projected
``kube-api-access-<random>`` volume mounted at
``/var/run/secrets/kubernetes.io/serviceaccount`` in every container: a bound token the
kubelet requests and refreshes, the cluster's CA (``kube-root-ca.crt``) and the pod's
namespace. The account's image pull secrets are used when the pod has none. Mirror pods
are the kubelet's and are left alone."""

from __future__ import annotations

import secrets
from typing import Any

from skiff.api import errors
from skiff.api.resources import REGISTRY

from .interfaces import Attributes, Handler, Lister, Operation

PLUGIN_NAME = "ServiceAccount"
MOUNT_PATH = "/var/run/secrets/kubernetes.io/serviceaccount"
VOLUME_PREFIX = "kube-api-access-"
TOKEN_SECONDS = 3607
"""kube's default: an hour and a few seconds, so that it is not mistaken for a requested
duration by anything that checks."""
MIRROR = "kubernetes.io/config.mirror"
SERVICE_ACCOUNTS = REGISTRY.core("serviceaccounts")
_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"  # kube's utilrand alphabet


def api_access_volume(name: str) -> dict[str, Any]:
    """The projected volume kube-apiserver adds (token, CA, namespace)."""
    return {
        "name": name,
        "projected": {
            "defaultMode": 0o644,
            "sources": [
                {"serviceAccountToken": {"expirationSeconds": TOKEN_SECONDS, "path": "token"}},
                {
                    "configMap": {
                        "name": "kube-root-ca.crt",
                        "items": [{"key": "ca.crt", "path": "ca.crt"}],
                    }
                },
                {
                    "downwardAPI": {
                        "items": [
                            {
                                "path": "namespace",
                                "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"},
                            }
                        ]
                    }
                },
            ],
        },
    }


class ServiceAccount(Handler):
    name = PLUGIN_NAME
    operations = frozenset({Operation.CREATE})

    def __init__(self, lister: Lister) -> None:
        self.lister = lister

    async def admit(self, attrs: Attributes) -> None:
        if attrs.group_resource != ("", "pods") or attrs.subresource or attrs.obj is None:
            return
        pod = attrs.obj
        meta = pod.get("metadata") or {}
        if MIRROR in (meta.get("annotations") or {}):
            return
        spec = pod.setdefault("spec", {})
        account = spec.get("serviceAccountName") or spec.get("serviceAccount") or "default"
        spec["serviceAccountName"] = account
        sa = await self.lister.get(SERVICE_ACCOUNTS, attrs.namespace, account)
        if sa is None:
            name = meta.get("name", "")
            raise errors.ApiError(
                403,
                errors.Reason.FORBIDDEN,
                f'pods "{name}" is forbidden: error looking up service account '
                f'{attrs.namespace}/{account}: serviceaccount "{account}" not found',
                kind="pods",
                name=name,
            )
        if not spec.get("imagePullSecrets") and sa.get("imagePullSecrets"):
            spec["imagePullSecrets"] = [{"name": s.get("name")} for s in sa["imagePullSecrets"]]
        automount = spec.get("automountServiceAccountToken")
        if automount is None:
            automount = sa.get("automountServiceAccountToken", True) is not False
        if not automount:
            return
        volumes = spec.setdefault("volumes", [])
        existing = next(
            (v["name"] for v in volumes if str(v.get("name", "")).startswith(VOLUME_PREFIX)), None
        )
        volume = existing or VOLUME_PREFIX + "".join(secrets.choice(_ALPHABET) for _ in range(5))
        if existing is None:
            volumes.append(api_access_volume(volume))
        for key in ("initContainers", "containers"):
            for c in spec.get(key) or []:
                mounts = c.setdefault("volumeMounts", [])
                if any(m.get("mountPath") == MOUNT_PATH for m in mounts):
                    continue
                mounts.append({"name": volume, "readOnly": True, "mountPath": MOUNT_PATH})
