"""The ClusterRole aggregation controller (``pkg/controller/clusterroleaggregation``): a
ClusterRole with an ``aggregationRule`` gets, as its rules, the rules of every other
ClusterRole its selectors match (by name order, each rule once). So ``admin``, ``edit`` and
``view`` grow with the ``aggregate-to-*`` roles that CRDs and add-ons bring."""

from __future__ import annotations

from typing import Any, ClassVar

from skiff.api.errors import ApiError
from skiff.api.selectors import selector_from_dict
from skiff.client.rest import Obj
from skiff.controller.controller import Controller, ControllerContext


class ClusterRoleAggregation(Controller):
    """Keeps aggregated ClusterRoles' rules the union of the roles they select."""

    name: ClassVar[str] = "clusterrole-aggregation-controller"

    def __init__(self, ctx: ControllerContext, *, workers: int = 1) -> None:
        super().__init__(ctx, workers=workers)
        self.roles = self.watch("clusterroles.rbac.authorization.k8s.io")
        self.roles.add_handler(self._changed, lambda _o, r: self._changed(r), self._changed)

    def _changed(self, _role: Obj) -> None:
        # Any role may be selected by any aggregated one: look at them all again.
        for r in self.roles.list():
            if r.get("aggregationRule"):
                self.queue.add(r["metadata"]["name"])

    def aggregated_rules(self, role: Obj) -> list[dict[str, Any]]:
        selectors = [
            selector_from_dict(s)
            for s in (role.get("aggregationRule") or {}).get("clusterRoleSelectors") or []
        ]
        rules: list[dict[str, Any]] = []
        me = role["metadata"]["name"]
        for other in sorted(self.roles.list(), key=lambda r: r["metadata"]["name"]):
            if other["metadata"]["name"] == me:
                continue
            labels = other["metadata"].get("labels") or {}
            if not any(s.matches(labels) for s in selectors):
                continue
            for rule in other.get("rules") or []:
                if rule not in rules:
                    rules.append(rule)
        return rules

    async def reconcile(self, key: str) -> float | None:
        role = self.roles.get(key)
        if role is None or not role.get("aggregationRule"):
            return None
        rules = self.aggregated_rules(role)
        if (role.get("rules") or []) == rules:
            return None
        try:
            await self.client.update(
                "clusterroles.rbac.authorization.k8s.io", dict(role, rules=rules)
            )
        except ApiError as e:
            if e.code in (404, 409):  # gone, or the cache is behind: the watch brings it back
                return None
            raise
        self.log.info("aggregated cluster role", name=key, rules=len(rules))
        return None
