"""Printers of the ``admissionregistration.k8s.io`` group: webhook configurations and
validating admission policies and their bindings."""

from __future__ import annotations

from skiff.apiserver.printers.common import (
    AGE_COL,
    NAME_COL,
    Cells,
    Col,
    TablePrinter,
    age,
    format_label_selector,
    name_of,
)

_V1 = "io.k8s.api.admissionregistration.v1"


def _print_webhooks(obj: dict, now: float) -> Cells:
    hooks = obj.get("webhooks")
    return [name_of(obj), len(hooks) if isinstance(hooks, list) else 0, age(obj, now)]


def _print_policy(obj: dict, now: float) -> Cells:
    spec = obj.get("spec") or {}
    validations = spec.get("validations")
    kind = spec.get("paramKind")
    param_kind = "<unset>"
    if isinstance(kind, dict):
        param_kind = f"{kind.get('apiVersion') or ''}/{kind.get('kind') or ''}"
    count = len(validations) if isinstance(validations, list) else 0
    return [name_of(obj), count, param_kind, age(obj, now)]


def _print_binding(obj: dict, now: float) -> Cells:
    spec = obj.get("spec") or {}
    ref = spec.get("paramRef")
    param_ref = "<unset>"
    if isinstance(ref, dict):
        if ref.get("name"):
            param_ref = f"{ref.get('namespace') or '*'}/{ref['name']}"
        elif ref.get("selector") is not None:
            param_ref = format_label_selector(ref["selector"])
    return [name_of(obj), spec.get("policyName") or "", param_ref, age(obj, now)]


def _webhooks_printer(kind: str) -> TablePrinter:
    return TablePrinter(
        (
            NAME_COL,
            Col("Webhooks", "integer", f"Webhooks indicates the number of webhooks in the {kind}"),
            AGE_COL,
        ),
        _print_webhooks,
    )


PRINTERS: dict[tuple[str, str], TablePrinter] = {
    ("admissionregistration.k8s.io", kind): _webhooks_printer(kind)
    for kind in ("MutatingWebhookConfiguration", "ValidatingWebhookConfiguration")
} | {
    ("admissionregistration.k8s.io", "ValidatingAdmissionPolicy"): TablePrinter(
        (
            NAME_COL,
            Col("Validations", "integer", "Validations indicates the number of validation rules"),
            Col("ParamKind", "string", (f"{_V1}.ValidatingAdmissionPolicySpec", "paramKind")),
            AGE_COL,
        ),
        _print_policy,
    ),
    ("admissionregistration.k8s.io", "ValidatingAdmissionPolicyBinding"): TablePrinter(
        (
            NAME_COL,
            Col(
                "PolicyName",
                "string",
                (f"{_V1}.ValidatingAdmissionPolicyBindingSpec", "policyName"),
            ),
            Col("ParamRef", "string", (f"{_V1}.ValidatingAdmissionPolicyBindingSpec", "paramRef")),
            AGE_COL,
        ),
        _print_binding,
    ),
}
