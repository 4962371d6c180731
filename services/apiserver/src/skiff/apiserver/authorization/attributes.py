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
