"""Printers of the ``rbac.authorization.k8s.io`` group.

RoleBindings and ClusterRoleBindings show their role and (wide) subjects; Roles and
ClusterRoles have no printer in kube-apiserver and get the default columns.
"""

from __future__ import annotations

from skiff.apiserver.printers.common import (
    AGE_COL,
    DEFAULT_PRINTER,
    NAME_COL,
    Cells,
    Col,
    TablePrinter,
    age,
    name_of,
)

_RBAC = "rbac.authorization.k8s.io"


def _subjects(subjects: list[dict]) -> tuple[str, str, str]:
    users, groups, sas = [], [], []
    for s in subjects:
        kind = s.get("kind")
        if kind == "ServiceAccount":
            sas.append(f"{s.get('namespace', '')}/{s.get('name', '')}")
        elif kind == "User":
            users.append(s.get("name", ""))
        elif kind == "Group":
            groups.append(s.get("name", ""))
    return ", ".join(users), ", ".join(groups), ", ".join(sas)


def _print_role_binding(obj: dict, now: float) -> Cells:
    ref = obj.get("roleRef") or {}
    users, groups, sas = _subjects(obj.get("subjects") or [])
    role = f"{ref.get('kind', '')}/{ref.get('name', '')}"
    return [name_of(obj), role, age(obj, now), users, groups, sas]


def _binding_printer(kind: str, label: str) -> TablePrinter:
    return TablePrinter(
        (
            NAME_COL,
            Col("Role", "string", (f"io.k8s.api.rbac.v1.{kind}", "roleRef")),
            AGE_COL,
            Col("Users", "string", f"Users in the {label}", 1),
            Col("Groups", "string", f"Groups in the {label}", 1),
            Col("ServiceAccounts", "string", f"ServiceAccounts in the {label}", 1),
        ),
        _print_role_binding,
    )


PRINTERS: dict[tuple[str, str], TablePrinter] = {
    (_RBAC, "RoleBinding"): _binding_printer("RoleBinding", "roleBinding"),
    (_RBAC, "ClusterRoleBinding"): _binding_printer("ClusterRoleBinding", "clusterRoleBinding"),
    (_RBAC, "Role"): DEFAULT_PRINTER,
    (_RBAC, "ClusterRole"): DEFAULT_PRINTER,
}
