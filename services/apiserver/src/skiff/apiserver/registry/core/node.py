"""Nodes (kube's ``pkg/registry/core/node``): a kubelet registers its node with the
status it observed, so a create keeps ``status``."""

from __future__ import annotations

from ..strategy import Strategy


class NodeStrategy(Strategy):
    keep_status_on_create = True
