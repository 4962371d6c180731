"""Skiff's controller manager: kube-controller-manager's controllers, each built on the
shared controller runtime (:mod:`skiff.controller`: informers, work queue workers,
owners, expectations); :mod:`skiff.controllers.manager` runs the enabled controllers
under one leader.
"""

from skiff.controllers.manager import (
    CONTROLLERS,
    ControllerManager,
    ControllerSpec,
    resolve_controllers,
)

__all__ = ["CONTROLLERS", "ControllerManager", "ControllerSpec", "resolve_controllers"]
