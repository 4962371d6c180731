"""The admission plugins Skiff has, in kube-apiserver's order (``AllOrderedPlugins`` in
``pkg/kubeapiserver/options/plugins.go``), and the enable/disable flags' resolution."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from . import (
    defaultingressclass,
    defaultstorageclass,
    limitranger,
    namespacelifecycle,
    noderestriction,
    podsecurity,
    policy,
    priority,
    resourcequota,
    runtimeclass,
    serviceaccount,
    storageobjectinuseprotection,
    webhook,
)
from .chain import Chain
from .interfaces import Lister

Factory = Callable[[Lister], object]

# Name → factory, in the order the plugins run.
PLUGINS: dict[str, Factory] = {
    namespacelifecycle.PLUGIN_NAME: namespacelifecycle.NamespaceLifecycle,
    limitranger.PLUGIN_NAME: limitranger.LimitRanger,
    serviceaccount.PLUGIN_NAME: serviceaccount.ServiceAccount,
    noderestriction.PLUGIN_NAME: noderestriction.NodeRestriction,
    podsecurity.PLUGIN_NAME: podsecurity.PodSecurity,
    priority.PLUGIN_NAME: priority.Priority,
    defaultstorageclass.PLUGIN_NAME: defaultstorageclass.DefaultStorageClass,
    storageobjectinuseprotection.PLUGIN_NAME: (
        storageobjectinuseprotection.StorageObjectInUseProtection
    ),
    runtimeclass.PLUGIN_NAME: runtimeclass.RuntimeClass,
    defaultingressclass.PLUGIN_NAME: defaultingressclass.DefaultIngressClass,
    webhook.MUTATING_PLUGIN: webhook.MutatingWebhook,
    policy.PLUGIN_NAME: policy.ValidatingAdmissionPolicy,
    webhook.VALIDATING_PLUGIN: webhook.ValidatingWebhook,
    resourcequota.PLUGIN_NAME: resourcequota.ResourceQuota,
}
ORDERED_PLUGINS: tuple[str, ...] = tuple(PLUGINS)
DEFAULT_ON_PLUGINS: frozenset[str] = frozenset(ORDERED_PLUGINS) - {
    noderestriction.PLUGIN_NAME,
    serviceaccount.PLUGIN_NAME,
}
"""Those enabled unless disabled. NodeRestriction is off, as in kube (kubeadm turns it
on). ServiceAccount is on in kube but off here unless asked for: it refuses pods until
their namespace's ``default`` account exists, which only a running controller manager
makes, and servers without one (tests, benchmarks) would refuse every pod."""


def _names(value: str | Iterable[str]) -> list[str]:
    items = value.split(",") if isinstance(value, str) else value
    return [n.strip() for n in items if n.strip()]


def _check_known(names: Iterable[str]) -> None:
    unknown = sorted({n for n in names if n not in PLUGINS})
    if unknown:
        raise ValueError(
            f"unknown admission plugins: {', '.join(unknown)}; "
            f"known plugins: {', '.join(ORDERED_PLUGINS)}"
        )


def enabled_plugins(
    enable: str | Iterable[str] = (), disable: str | Iterable[str] = ()
) -> list[str]:
    """The plugins to run, in order: the default ones plus ``enable`` less ``disable``
    (comma-separated or lists). Unknown names, or a name in both, are a ValueError."""
    on, off = _names(enable), _names(disable)
    _check_known([*on, *off])
    both = sorted(set(on) & set(off))
    if both:
        raise ValueError(f"admission plugins both enabled and disabled: {', '.join(both)}")
    wanted = (DEFAULT_ON_PLUGINS | set(on)) - set(off)
    return [n for n in ORDERED_PLUGINS if n in wanted]


def new_chain(names: Iterable[str], lister: Lister) -> Chain:
    """A chain of the plugins ``names`` (run in kube's order whatever the order given)."""
    wanted = set(names)
    _check_known(wanted)
    return Chain([PLUGINS[n](lister) for n in ORDERED_PLUGINS if n in wanted])
