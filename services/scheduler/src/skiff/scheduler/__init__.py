"""Skiff's scheduler: kube-scheduler's framework and default plugins over plain dicts.

Typical use by the scheduler service::

    snapshot = Snapshot(nodes, bound_pods)           # kept current from informer events
    framework = Framework(default_profile(), client=api_client, snapshot=snapshot)
    state = CycleState()
    result = framework.schedule(state, pod, snapshot)  # assumes the pod on success
    if result.success:
        status = await framework.bind(state, pod, result.node_name)
        if not status.is_success():
            framework.forget(state, pod, result.node_name, snapshot)
    else:
        ...  # FailedScheduling event with result.message

Plugins get the API client, the informers' listers, the snapshot and the event recorder
through the framework's :class:`Handle` (``framework.interface``); ``plugin_args`` carry
configuration values only.
"""

from skiff.scheduler.framework import (
    DEFAULT_PLUGINS,
    DEFAULT_SCHEDULER_NAME,
    DEFAULT_SCORE_WEIGHTS,
    MAX_NODE_SCORE,
    BindPlugin,
    Code,
    CycleState,
    Diagnosis,
    ExtensionPoint,
    FilterPlugin,
    Framework,
    Handle,
    Lister,
    NodeToStatus,
    Plugin,
    PluginFactory,
    PostFilterPlugin,
    PostFilterResult,
    PreFilterExtensions,
    PreFilterPlugin,
    PreFilterResult,
    PreScorePlugin,
    Profile,
    Registry,
    ReservePlugin,
    ScheduleResult,
    ScoreExtensions,
    ScorePlugin,
    SharedListers,
    Status,
    default_normalize_score,
    default_profile,
    failure_message,
    is_success,
)
from skiff.scheduler.snapshot import Snapshot
from skiff.scheduler.types import NodeInfo, PodInfo, Resource

__all__ = [
    "DEFAULT_PLUGINS",
    "DEFAULT_SCHEDULER_NAME",
    "DEFAULT_SCORE_WEIGHTS",
    "MAX_NODE_SCORE",
    "BindPlugin",
    "Code",
    "CycleState",
    "Diagnosis",
    "ExtensionPoint",
    "FilterPlugin",
    "Framework",
    "Handle",
    "Lister",
    "NodeInfo",
    "NodeToStatus",
    "Plugin",
    "PluginFactory",
    "PodInfo",
    "PostFilterPlugin",
    "PostFilterResult",
    "PreFilterExtensions",
    "PreFilterPlugin",
    "PreFilterResult",
    "PreScorePlugin",
    "Profile",
    "Registry",
    "ReservePlugin",
    "Resource",
    "ScheduleResult",
    "ScoreExtensions",
    "ScorePlugin",
    "SharedListers",
    "Snapshot",
    "Status",
    "default_normalize_score",
    "default_profile",
    "failure_message",
    "is_success",
]
