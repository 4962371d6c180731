"""What an authorizer decides on (kube's ``authorizer.Attributes``, from its RequestInfo):
the user, the verb, and either a resource (group, resource, subresource, namespace, name)
or a non-resource path."""

from __future__ import annotations

from dataclasses import dataclass

from ..authentication.user import UserInfo


@dataclass(frozen=True, slots=True)
class RequestAttributes:
    user: UserInfo
    verb: str
    resource_request: bool
    path: str = ""
    api_group: str = ""
    api_version: str = ""
    resource: str = ""
    subresource: str = ""
    namespace: str = ""
    name: str = ""

    @property
    def combined_resource(self) -> str:
        """``pods`` or ``pods/log``, as RBAC rules name them."""
        return f"{self.resource}/{self.subresource}" if self.subresource else self.resource

    def forbidden_message(self) -> str:
        """kube-apiserver's words for a denial (``forbiddenMessage``)."""
        who = self.user.name
        if not self.resource_request:
            return f'User "{who}" cannot {self.verb} path "{self.path}"'
        what = (
            f'User "{who}" cannot {self.verb} resource "{self.combined_resource}" in API group '
            f'"{self.api_group}"'
        )
        if self.namespace:
            return f'{what} in the namespace "{self.namespace}"'
        return f"{what} at the cluster scope"


_NAMESPACE_SUBRESOURCES = ("status", "finalize")
_METHOD_VERBS = {"POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete",
                 "GET": "get", "HEAD": "get"}  # fmt: skip


def verb_for(method: str, named: bool, watch: bool) -> str:
    """kube's RequestInfo verb: from the method, ``list``/``watch`` for a GET and
    ``deletecollection`` for a DELETE of no one object."""
    verb = _METHOD_VERBS.get(method, method.lower())
    if not named:
        if verb == "get":
            return "watch" if watch else "list"
        if verb == "delete":
            return "deletecollection"
    return verb


def single_name(field_selector: str) -> str:
    """The name a ``metadata.name=<name>`` field selector alone picks ("" otherwise): a
    list or watch of one object counts as that name for ``resourceNames`` rules."""
    terms = [x.strip() for x in field_selector.split(",") if x.strip()]
    if len(terms) == 1:
        key, sep, value = terms[0].partition("=")
        if sep and key.strip() == "metadata.name" and not value.startswith("="):
            return value.strip()
    return ""


def path_attributes(
    user: UserInfo, method: str, path: str, watch: bool, field_selector: str = ""
) -> RequestAttributes:
    """kube's ``RequestInfoFactory`` for a path whose resources this apiserver does not
    know (a remote APIService's): ``/apis/<g>/<v>/[namespaces/<ns>/]<resource>[/<name>
    [/<subresource>]]`` is a resource request, shorter paths are non-resource paths."""
    parts = [p for p in path.split("/") if p]
    if len(parts) < 3 or parts[0] not in ("api", "apis"):
        return RequestAttributes(user, method.lower(), False, path=path)
    group = ""
    rest = parts[1:]
    if parts[0] == "apis":
        if len(rest) < 3:
            return RequestAttributes(user, method.lower(), False, path=path)
        group, rest = rest[0], rest[1:]
    version, rest = rest[0], rest[1:]
    namespace = ""
    if rest and rest[0] == "namespaces" and len(rest) > 1:
        namespace = rest[1]
        if len(rest) > 2 and rest[2] not in _NAMESPACE_SUBRESOURCES:
            rest = rest[2:]
    resource = rest[0] if rest else ""
    name = rest[1] if len(rest) > 1 else ""
    sub = rest[2] if len(rest) > 2 else ""
    verb = verb_for(method, bool(name), watch)
    if verb in ("list", "watch"):
        name = single_name(field_selector)
    return RequestAttributes(
        user,
        verb,
        True,
        path=path,
        api_group=group,
        api_version=version,
        resource=resource,
        subresource=sub,
        namespace=namespace,
        name=name,
    )
