"""ServiceAccounts' ``token`` subresource (TokenRequest): a bound token, signed by the
apiserver, for the account and optionally a Pod, Secret or Node (kube's
``pkg/registry/core/serviceaccount/storage/token.go``)."""

from __future__ import annotations

from collections.abc import Iterable

from skiff.api import errors
from skiff.api.errors import Cause
from skiff.api.resources import REGISTRY, ResourceInfo
from skiff.api.timestamps import rfc3339

from ..options import WriteOptions
from ..strategy import GenericStore, Obj, Strategy, Subresource

DEFAULT_EXPIRATION = 3600
MIN_EXPIRATION = 600
MAX_EXPIRATION = 1 << 32
_BINDABLE = {"Pod": "pods", "Secret": "secrets", "Node": "nodes"}


class TokenREST(Subresource):
    """``serviceaccounts/<name>/token``: POST a TokenRequest, get it back with a token."""

    name = "token"
    verbs = frozenset({"create"})
    returns_parent = False

    async def create(
        self,
        store: GenericStore,
        info: ResourceInfo,
        namespace: str | None,
        name: str,
        body: Obj,
        opts: WriteOptions,
    ) -> Obj:
        if store.tokens is None or not store.tokens.can_issue:
            raise errors.not_found("serviceaccounts/token", name)
        assert namespace is not None
        meta = body.get("metadata") or {}
        spec = dict(body.get("spec") or {})
        _check_request(name, namespace, meta, spec)
        sa = await store.get(info, namespace, name)
        audiences = spec.get("audiences") or list(store.tokens.settings.audiences)
        spec["audiences"] = audiences
        spec.setdefault("expirationSeconds", DEFAULT_EXPIRATION)
        bound = node = None
        ref = spec.get("boundObjectRef")
        if ref:
            bound = await _bound_object(store, namespace, name, ref)
            if bound["kind"] == "Pod":
                if (bound.get("spec") or {}).get("serviceAccountName", "default") != name:
                    raise errors.bad_request(
                        f'cannot bind token for serviceaccount "{name}" to pod running with '
                        "different serviceaccount name."
                    )
                node_name = (bound.get("spec") or {}).get("nodeName")
                if node_name:
                    nodes = REGISTRY.core("nodes")
                    node = await store.tokens.lister.get(nodes, None, node_name)
        created = rfc3339()
        token, exp = store.tokens.issue(
            sa,
            audiences=audiences,
            expiration_seconds=int(spec["expirationSeconds"]),
            bound=bound,
            node=node,
        )
        return {
            "kind": "TokenRequest",
            "apiVersion": "authentication.k8s.io/v1",
            "metadata": {"name": name, "namespace": namespace, "creationTimestamp": created},
            "spec": spec,
            "status": {"token": token, "expirationTimestamp": rfc3339(exp)},
        }


def _check_request(name: str, namespace: str, meta: Obj, spec: Obj) -> None:
    causes = []
    if meta.get("name") and meta["name"] != name:
        causes.append(
            Cause(
                "metadata.name",
                f'Invalid value: "{meta["name"]}": must match the service '
                "account name if specified",
                "FieldValueInvalid",
            )
        )
    if meta.get("namespace") and meta["namespace"] != namespace:
        causes.append(
            Cause(
                "metadata.namespace",
                f'Invalid value: "{meta["namespace"]}": must match the '
                "service account namespace if specified",
                "FieldValueInvalid",
            )
        )
    seconds = spec.get("expirationSeconds")
    if seconds is not None:
        if not isinstance(seconds, int) or isinstance(seconds, bool):
            causes.append(
                Cause(
                    "spec.expirationSeconds",
                    "Invalid value: must be an integer",
                    "FieldValueInvalid",
                )
            )
        elif seconds < MIN_EXPIRATION:
            causes.append(
                Cause(
                    "spec.expirationSeconds",
                    f"Invalid value: {seconds}: may not specify a duration less than 10 minutes",
                    "FieldValueInvalid",
                )
            )
        elif seconds > MAX_EXPIRATION:
            causes.append(
                Cause(
                    "spec.expirationSeconds",
                    f"Invalid value: {seconds}: may not "
                    "specify a duration larger than 2^32 seconds",
                    "FieldValueInvalid",
                )
            )
    if causes:
        raise errors.invalid("TokenRequest", name, "authentication.k8s.io", causes)


async def _bound_object(store: GenericStore, namespace: str, name: str, ref: Obj) -> Obj:
    kind = str(ref.get("kind") or "")
    api_version = str(ref.get("apiVersion") or "v1")
    if api_version != "v1" or kind not in _BINDABLE:
        raise errors.bad_request(
            f'cannot bind token for serviceaccount "{name}" to object of type '
            f"{api_version}, Kind={kind}"
        )
    plural = _BINDABLE[kind]
    obj = await store.get(
        REGISTRY.core(plural), None if kind == "Node" else namespace, str(ref.get("name") or "")
    )
    uid = obj["metadata"].get("uid")
    if ref.get("uid") and ref["uid"] != uid:
        raise errors.conflict(
            kind,
            str(ref.get("name")),
            "",
            f"the UID in the bound object reference ({ref['uid']}) does not match the UID in "
            "record. The object might have been deleted and then recreated",
        )
    return dict(obj, kind=kind)


class ServiceAccountStrategy(Strategy):
    def make_subresources(self) -> Iterable[Subresource]:
        return (TokenREST(),)
