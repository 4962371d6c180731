"""Admission: an ordered chain of named plugins (kube-apiserver's names and order) behind
two interfaces, mutation and validation; switched on and off with
``--enable-admission-plugins``/``--disable-admission-plugins``.

What kube-apiserver does outside admission (decoding, defaulting, validation,
managedFields, graceful deletion) is in :mod:`skiff.apiserver.registry`.
"""

from .chain import Chain
from .interfaces import (
    Attributes,
    Handler,
    Lister,
    MutationInterface,
    Operation,
    ValidationInterface,
)
from .plugins import DEFAULT_ON_PLUGINS, ORDERED_PLUGINS, PLUGINS, enabled_plugins, new_chain

__all__ = [
    "DEFAULT_ON_PLUGINS",
    "ORDERED_PLUGINS",
    "PLUGINS",
    "Attributes",
    "Chain",
    "Handler",
    "Lister",
    "MutationInterface",
    "Operation",
    "ValidationInterface",
    "enabled_plugins",
    "new_chain",
]
