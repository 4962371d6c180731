"""The controller manager: the enabled controllers over one set of shared informers.

:meth:`ControllerManager.run` is the leader's work: it builds the informers and the
controllers afresh (new caches, new expectations), waits for the caches and runs
every controller until it is cancelled, when leadership is lost or at shutdown.

Controllers are registered in :data:`CONTROLLERS`; ``--controllers`` picks them as
kube-controller-manager does (``*`` for the defaults, ``name`` to enable, ``-name`` to
disable, first match wins). Each controller is built from the shared
:class:`~.config.ControllerManagerConfig` (its :attr:`ControllerSpec.options`); one whose
configuration turns it off (``--allocate-node-cidrs=false``) is skipped.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from skiff.client.rest import ApiClient
from skiff.controller.controller import Controller, ControllerContext
from skiff.controller.informers import SharedInformers
from skiff.log import get_logger

from .bootstraptokens import BootstrapSigner, TokenCleaner
from .certificates import CSRApprovingController, CSRSigningController
from .clusterroleaggregation import ClusterRoleAggregation
from .config import ControllerManagerConfig
from .credentials import ServiceAccountCredentials
from .cronjob import CronJobController
from .daemonset import DaemonSetController
from .deployment import DeploymentController
from .disruption import DisruptionController
from .endpoints import EndpointsController
from .endpointslice import EndpointSliceController
from .endpointslicemirroring import EndpointSliceMirroringController
from .garbagecollector import GarbageCollector
from .job import JobController
from .namespace import NamespaceController
from .nodeipam import NodeIpamController
from .nodelifecycle import NodeLifecycleController, TaintEvictionController
from .podgc import PodGCController
from .replicaset import ReplicaSetController, ReplicationControllerController
from .resourcequota import ResourceQuotaController
from .rootcacertpublisher import RootCACertPublisher
from .serviceaccount import ServiceAccountsController
from .servicelb import ServiceLBController
from .statefulset import StatefulSetController
from .ttlafterfinished import TTLAfterFinishedController
from .volumebinding import PersistentVolumeBinder
from .volumeprotection import PvcProtectionController, PvProtectionController

log = get_logger(__name__)


def _no_options(_config: ControllerManagerConfig) -> dict[str, Any]:
    return {}


def _always(_config: ControllerManagerConfig) -> bool:
    return True


@dataclass(frozen=True, slots=True)
class ControllerSpec:
    """How to build one controller, and its flags."""

    name: str
    factory: Callable[..., Controller]
    """``factory(ctx, workers=n, **options(config))``."""
    workers: int = 5
    flag: str = ""
    """The ``--concurrent-*-syncs`` flag (without dashes) that sets ``workers``."""
    aliases: tuple[str, ...] = ()
    enabled_by_default: bool = True
    options: Callable[[ControllerManagerConfig], dict[str, Any]] = _no_options
    """The factory's settings from the configuration (kube's ``initFunc`` reading
    ``ComponentConfig``)."""
    runs: Callable[[ControllerManagerConfig], bool] = _always
    """False when the configuration turns the controller off even if enabled."""


CONTROLLERS: dict[str, ControllerSpec] = {
    s.name: s
    for s in (
        ControllerSpec(
            "replicaset-controller",
            ReplicaSetController,
            workers=5,
            flag="concurrent-replicaset-syncs",
            aliases=("replicaset",),
        ),
        ControllerSpec(
            "replicationcontroller-controller",
            ReplicationControllerController,
            workers=5,
            flag="concurrent-rc-syncs",
            aliases=("replicationcontroller",),
        ),
        ControllerSpec(
            "deployment-controller",
            DeploymentController,
            workers=5,
            flag="concurrent-deployment-syncs",
            aliases=("deployment",),
        ),
        ControllerSpec(
            "garbage-collector-controller",
            GarbageCollector,
            workers=20,
            flag="concurrent-gc-syncs",
            aliases=("garbagecollector",),
        ),
        ControllerSpec(
            "namespace-controller",
            NamespaceController,
            workers=10,
            flag="concurrent-namespace-syncs",
            aliases=("namespace",),
        ),
        ControllerSpec(
            "serviceaccount-controller",
            ServiceAccountsController,
            workers=1,
            aliases=("serviceaccount",),
        ),
        ControllerSpec(
            "resourcequota-controller",
            ResourceQuotaController,
            workers=5,
            flag="concurrent-resource-quota-syncs",
            aliases=("resourcequota",),
            options=lambda c: {"sync_period": c.resource_quota_sync_period},
        ),
        ControllerSpec(
            "root-ca-certificate-publisher-controller",
            RootCACertPublisher,
            workers=1,
            aliases=("root-ca-cert-publisher",),
            options=lambda c: {"root_ca": c.root_ca},
            runs=lambda c: bool(c.root_ca),
        ),
        ControllerSpec(
            "statefulset-controller",
            StatefulSetController,
            workers=5,
            flag="concurrent-statefulset-syncs",
            aliases=("statefulset",),
        ),
        ControllerSpec(
            "daemonset-controller",
            DaemonSetController,
            workers=2,
            flag="concurrent-daemonset-syncs",
            aliases=("daemonset",),
        ),
        ControllerSpec(
            "persistentvolume-binder-controller",
            PersistentVolumeBinder,
            workers=1,
            aliases=("persistentvolume-binder",),
            options=lambda c: {"base_dir": c.pv_hostpath_dir},
        ),
        ControllerSpec(
            "persistentvolumeclaim-protection-controller",
            PvcProtectionController,
            workers=1,
            aliases=("pvc-protection",),
        ),
        ControllerSpec(
            "persistentvolume-protection-controller",
            PvProtectionController,
            workers=1,
            aliases=("pv-protection",),
        ),
        ControllerSpec(
            "endpoints-controller",
            EndpointsController,
            workers=5,
            flag="concurrent-endpoint-syncs",
            aliases=("endpoint",),
        ),
        ControllerSpec(
            "endpointslice-controller",
            EndpointSliceController,
            workers=5,
            flag="concurrent-service-endpoint-syncs",
            aliases=("endpointslice",),
        ),
        ControllerSpec(
            "endpointslice-mirroring-controller",
            EndpointSliceMirroringController,
            workers=5,
            flag="mirroring-concurrent-service-endpoint-syncs",
            aliases=("endpointslicemirroring",),
        ),
        ControllerSpec(
            "certificatesigningrequest-approving-controller",
            CSRApprovingController,
            workers=1,
            aliases=("csrapproving",),
        ),
        ControllerSpec(
            "certificatesigningrequest-signing-controller",
            CSRSigningController,
            workers=1,
            aliases=("csrsigning",),
            options=lambda c: {"settings": c.signing},
            runs=lambda c: c.signing.enabled,
        ),
        ControllerSpec(
            "clusterrole-aggregation-controller",
            ClusterRoleAggregation,
            workers=1,
            aliases=("clusterrole-aggregation",),
        ),
        ControllerSpec(
            "bootstrap-signer-controller",
            BootstrapSigner,
            workers=1,
            aliases=("bootstrapsigner",),
            enabled_by_default=False,
        ),
        ControllerSpec(
            "token-cleaner-controller",
            TokenCleaner,
            workers=1,
            aliases=("tokencleaner",),
            enabled_by_default=False,
        ),
        ControllerSpec(
            "service-lb-controller",
            ServiceLBController,
            workers=2,
            aliases=("servicelb", "service-lb"),
        ),
        ControllerSpec(
            "node-lifecycle-controller",
            NodeLifecycleController,
            workers=5,
            aliases=("nodelifecycle",),
            options=lambda c: {"settings": c.node_lifecycle},
        ),
        ControllerSpec(
            "taint-eviction-controller",
            TaintEvictionController,
            workers=8,
            aliases=("tainteviction",),
            options=lambda c: {"settings": c.node_lifecycle},
        ),
        ControllerSpec(
            "node-ipam-controller",
            NodeIpamController,
            workers=5,
            aliases=("nodeipam",),
            options=lambda c: {"settings": c.node_ipam},
            runs=lambda c: c.node_ipam.allocate_node_cidrs,
        ),
        ControllerSpec(
            "job-controller",
            JobController,
            workers=5,
            flag="concurrent-job-syncs",
            aliases=("job",),
        ),
        ControllerSpec(
            "disruption-controller",
            DisruptionController,
            workers=1,
            aliases=("disruption",),
        ),
        ControllerSpec(
            "pod-garbage-collector-controller",
            PodGCController,
            workers=1,
            aliases=("podgc",),
            options=lambda c: {"terminated_pod_gc_threshold": c.terminated_pod_gc_threshold},
        ),
        ControllerSpec(
            "ttl-after-finished-controller",
            TTLAfterFinishedController,
            workers=5,
            flag="concurrent-ttl-after-finished-syncs",
            aliases=("ttl-after-finished",),
        ),
        ControllerSpec(
            "cronjob-controller",
            CronJobController,
            workers=5,
            flag="concurrent-cron-job-syncs",
            aliases=("cronjob",),
            options=lambda c: {"clock_check_interval": c.cronjob_clock_check_interval},
        ),
    )
}


SERVICE_ACCOUNTS: dict[str, str] = {
    "replicationcontroller-controller": "replication-controller",
    "garbage-collector-controller": "generic-garbage-collector",
    "serviceaccount-controller": "service-account-controller",
    "daemonset-controller": "daemon-set-controller",
    "persistentvolume-binder-controller": "persistent-volume-binder",
    "persistentvolumeclaim-protection-controller": "pvc-protection-controller",
    "persistentvolume-protection-controller": "pv-protection-controller",
    "endpoints-controller": "endpoint-controller",
    "endpointslice-mirroring-controller": "endpointslicemirroring-controller",
    "bootstrap-signer-controller": "bootstrap-signer",
    "token-cleaner-controller": "token-cleaner",
    "node-lifecycle-controller": "node-controller",
    "node-ipam-controller": "node-controller",
    "root-ca-certificate-publisher-controller": "root-ca-cert-publisher",
    "certificatesigningrequest-approving-controller": "certificate-controller",
    "certificatesigningrequest-signing-controller": "certificate-controller",
    "taint-eviction-controller": "node-controller",
    "pod-garbage-collector-controller": "pod-garbage-collector",
}
"""The ServiceAccount each controller writes as under ``--use-service-account-credentials``,
kube's names (the controller's own name where it is the same)."""


def service_account(controller: str) -> str:
    return SERVICE_ACCOUNTS.get(controller, controller)


def _canonical(name: str, registry: Mapping[str, ControllerSpec]) -> str:
    for spec in registry.values():
        if name == spec.name or name in spec.aliases:
            return spec.name
    known = ", ".join(sorted(registry))
    raise ValueError(f"{name!r} is not in the list of known controllers: {known}")


def resolve_controllers(
    patterns: Iterable[str], registry: Mapping[str, ControllerSpec] = CONTROLLERS
) -> list[str]:
    """The controllers a ``--controllers`` list enables, in registry order.

    ``*`` enables those enabled by default; ``foo`` enables foo, ``-foo`` disables it;
    the first pattern naming a controller wins. Unknown names raise ``ValueError``.
    """
    rules: list[tuple[str, bool]] = []
    star = False
    for raw in patterns:
        p = raw.strip()
        if not p:
            continue
        if p == "*":
            star = True
            rules.append(("*", True))
        elif p.startswith("-"):
            rules.append((_canonical(p[1:], registry), False))
        else:
            rules.append((_canonical(p, registry), True))
    enabled = []
    for name, spec in registry.items():
        decision: bool | None = None
        for rule, on in rules:
            if rule == name:
                decision = on
                break
        if decision is None:
            decision = star and spec.enabled_by_default
        if decision:
            enabled.append(name)
    return enabled


class ControllerManager:
    """Runs the enabled controllers; ``await run()`` while leading."""

    def __init__(
        self,
        client: ApiClient,
        *,
        controllers: Iterable[str] = ("*",),
        workers: Mapping[str, int] | None = None,
        clock: Callable[[], float] = time.time,
        config: ControllerManagerConfig | None = None,
        registry: Mapping[str, ControllerSpec] = CONTROLLERS,
        credentials: ServiceAccountCredentials | None = None,
    ) -> None:
        """``credentials``: each controller writes as its own ServiceAccount (else all
        as ``client``)."""
        self.client = client
        self.credentials = credentials
        self.registry = registry
        self.config = config or ControllerManagerConfig()
        self.enabled: list[str] = []
        for name in resolve_controllers(controllers, registry):
            if registry[name].runs(self.config):
                self.enabled.append(name)
            else:
                log.info("controller turned off by its configuration", controller=name)
        self.workers = dict(workers or {})
        self.clock = clock
        """The process's clock, every controller's ``ctx.clock``."""
        self.controllers: dict[str, Controller] = {}
        self.informers: SharedInformers | None = None
        self.synced = asyncio.Event()
        self.tasks: dict[str, asyncio.Task[None]] = {}
        """The running controllers (while leading), by name."""

    def build(self, clients: Mapping[str, ApiClient] | None = None) -> dict[str, Controller]:
        """Fresh shared informers and controllers (called by :meth:`run`); ``clients``
        gives a controller its own client (the informers always use the manager's)."""
        self.informers = SharedInformers(self.client)
        shared = ControllerContext(self.client, self.informers, clock=self.clock)
        self.controllers = {}
        for name in self.enabled:
            spec = self.registry[name]
            ctx = shared
            if clients and name in clients:
                ctx = ControllerContext(clients[name], self.informers, clock=self.clock)
            self.controllers[name] = spec.factory(
                ctx, workers=self.workers.get(name, spec.workers), **spec.options(self.config)
            )
        return self.controllers

    def health_checks(self) -> dict[str, bool]:
        """One check per started controller, named as kube-controller-manager's
        ``/healthz?verbose`` lists them: passing while it runs."""
        return {name: not task.done() for name, task in self.tasks.items()}

    async def _clients(self) -> dict[str, ApiClient]:
        if self.credentials is None:
            return {}
        return {
            name: await self.credentials.client_for(service_account(name)) for name in self.enabled
        }

    async def run(self) -> None:
        """Start the informers, wait for their caches, run every controller until cancelled."""
        self.synced.clear()
        controllers = self.build(await self._clients())
        assert self.informers is not None
        informers = self.informers
        log.info("starting controllers", controllers=list(controllers))
        informers.start()
        tasks: list[asyncio.Task[None]] = []
        try:
            await informers.wait_synced()
            self.synced.set()
            self.tasks = {
                n: asyncio.create_task(c.run(), name=f"controller:{n}")
                for n, c in controllers.items()
            }
            tasks = list(self.tasks.values())
            if not tasks:
                await asyncio.Event().wait()
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
            for t in done:
                if not t.cancelled() and (e := t.exception()) is not None:
                    raise e
        finally:
            self.synced.clear()
            self.tasks = {}
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await informers.stop()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(2):  # pending events: best effort
                    for c in controllers.values():
                        await c.stop()
            log.info("controllers stopped")
