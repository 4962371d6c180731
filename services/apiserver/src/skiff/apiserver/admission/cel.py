"""CEL in admission: webhooks' ``matchConditions`` and ValidatingAdmissionPolicies'
expressions (kube's ``k8s.io/apiserver/pkg/admission/plugin/cel``), on the runtime the
CRD rules use (:mod:`skiff.apiserver.apiextensions.celenv`).

The variables are untyped (kube declares ``object`` and ``oldObject`` as ``dyn`` for
webhooks too): ``object``, ``oldObject``, ``request``, ``namespaceObject``, ``authorizer``
(kube's authorizer library, :mod:`..apiextensions.celauthz`, with ``requestResource``), and
``params`` where the policy has a ``paramKind``, ``variables`` where it composes.
Expressions are compiled once per text and variable set.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any

from cel_expr_python import cel

from ..apiextensions import celauthz
from ..apiextensions.celenv import checking_env, compile_error, runtime_env, runtime_error
from .interfaces import Attributes

T = cel.Type
_BASE = ("object", "oldObject", "request", "namespaceObject", "authorizer")
_ITERATIONS = "iteration budget exceeded"


def _names(params: bool, variables: bool) -> tuple[str, ...]:
    return _BASE + (("params",) if params else ()) + (("variables",) if variables else ())


@cache
def _envs(params: bool, variables: bool) -> tuple[Any, Any]:
    names = dict.fromkeys(_names(params, variables), T.DYN)
    return checking_env(names), runtime_env(names)


@dataclass(frozen=True, slots=True)
class Expression:
    """One compiled expression; ``error`` is kube's compile error detail (no program)."""

    text: str
    program: Any = None
    error: str = ""

    def evaluate(
        self, values: dict[str, Any], params: bool = False, variables: bool = False
    ) -> Any:
        """The expression's value on ``values`` (missing variables are null). Raises
        :class:`EvaluationError` with cel-go's wording when it fails."""
        _, runtime = _envs(params, variables)
        activation = runtime.Activation({n: values.get(n) for n in _names(params, variables)})
        try:
            result = self.program.eval(activation)
        except RuntimeError as e:
            if _ITERATIONS in str(e):
                raise EvaluationError("operation cancelled: actual cost limit exceeded") from None
            raise EvaluationError(runtime_error(str(e))) from None
        if result.type() == cel.Type.ERROR:
            raise EvaluationError(runtime_error(str(result.value())))
        return result.value()


class EvaluationError(Exception):
    """An expression failed at run time (no such key, no such overload...)."""


@cache
def compile_expression(
    text: str, *, want: str = "bool", params: bool = False, variables: bool = False
) -> Expression:
    """Compile ``text``; ``want`` (``bool`` or ``string``) is the type its result must have
    (a ``dyn`` result does not do: kube's compiler requires the declared type), ``dyn``
    takes any result (variables, audit annotation values)."""
    check, runtime = _envs(params, variables)
    try:
        checked = check.compile(text)
    except RuntimeError as e:
        return Expression(text, error=f"compilation failed: {compile_error(e)}")
    wanted = {"bool": T.BOOL, "string": T.STRING}.get(want)
    if wanted is not None and checked.return_type() != wanted:
        return Expression(text, error=f"must evaluate to {want}")
    return Expression(text, runtime.compile(text, disable_check=True))


def authorizer_values(attrs: Attributes) -> dict[str, Any]:
    """The ``authorizer`` variable for a request: its requester (the apiserver itself when
    none), with the request's resource as ``requestResource``."""
    user = attrs.user
    requester = (
        {"name": user.name, "uid": user.uid, "groups": list(user.groups),
         "extra": {k: list(v) for k, v in user.extra.items()}}
        if user is not None
        else {"name": "system:apiserver", "groups": ["system:masters"]}
    )  # fmt: skip
    info = attrs.request_info or attrs.info
    request = {
        "group": info.group, "resource": info.plural, "subresource": attrs.subresource,
        "namespace": attrs.namespace or "", "name": attrs.name,
    }  # fmt: skip
    return celauthz.authorizer(requester, request)
