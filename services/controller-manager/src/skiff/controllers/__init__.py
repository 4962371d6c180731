"""Skiff's controller manager: level-triggered controllers over shared informers.

The framework (:mod:`skiff.controllers.base`) gives a controller its shared informers,
a work queue with workers, owner-reference helpers and creation/deletion
expectations; :mod:`skiff.controllers.manager` runs the enabled controllers under
one leader.
"""

from skiff.controllers.base import (
    CONTROLLER_INDEX,
    NAMESPACE_INDEX,
    Controller,
    ControllerContext,
    ControllerRefManager,
    Expectations,
    SharedInformers,
    TerminalError,
    batch_sizes,
    controller_index,
    controller_ref,
    namespace_index,
    new_controller_ref,
    owned_and_orphans,
    resolve_controller_ref,
    slow_start_batch,
    writable,
)
from skiff.controllers.manager import (
    CONTROLLERS,
    ControllerManager,
    ControllerSpec,
    resolve_controllers,
)
from skiff.controllers.replicaset import ReplicaSetController, ReplicationControllerController

__all__ = [
    "CONTROLLERS",
    "CONTROLLER_INDEX",
    "NAMESPACE_INDEX",
    "Controller",
    "ControllerContext",
    "ControllerManager",
    "ControllerRefManager",
    "ControllerSpec",
    "Expectations",
    "ReplicaSetController",
    "ReplicationControllerController",
    "SharedInformers",
    "TerminalError",
    "batch_sizes",
    "controller_index",
    "controller_ref",
    "namespace_index",
    "new_controller_ref",
    "owned_and_orphans",
    "resolve_controller_ref",
    "resolve_controllers",
    "slow_start_batch",
    "writable",
]
