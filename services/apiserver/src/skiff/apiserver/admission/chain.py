"""The admission chain: the enabled plugins in kube-apiserver's order; every mutating
plugin runs (:meth:`Chain.admit`), then every validating one (:meth:`Chain.validate`)."""

from __future__ import annotations

from collections.abc import Sequence

from .interfaces import Attributes, MutationInterface, ValidationInterface


class Chain:
    def __init__(self, plugins: Sequence[object]) -> None:
        self.plugins = list(plugins)
        self.mutators = [p for p in self.plugins if isinstance(p, MutationInterface)]
        self.validators = [p for p in self.plugins if isinstance(p, ValidationInterface)]

    @property
    def names(self) -> list[str]:
        return [p.name for p in self.plugins]  # type: ignore[attr-defined]

    async def admit(self, attrs: Attributes) -> None:
        for p in self.mutators:
            if p.handles(attrs.operation):
                await p.admit(attrs)

    async def validate(self, attrs: Attributes) -> None:
        for p in self.validators:
            if p.handles(attrs.operation):
                await p.validate(attrs)
