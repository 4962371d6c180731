"""Wiring of one apiserver process: etcd, NATS, pump, watch cache, REST, compaction."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import ssl
from dataclasses import dataclass, field
from typing import Any

import uvicorn

from skiff.api.errors import ApiError
from skiff.api.resources import REGISTRY
from skiff.apiserver.storage import StorageError, encryption
from skiff.apiserver.storage.etcd import EtcdBackend, EtcdTLS
from skiff.jose import load_public_keys, load_signing_key
from skiff.log import get_logger
from skiff.tlsserving import ServingCertificates

from . import eventstream as ev
from .admission import enabled_plugins
from .aggregator import Aggregator
from .allocators import (
    DEFAULT_CLUSTER_IP_RANGE,
    DEFAULT_NODE_PORT_RANGE,
    ServiceAllocator,
    ServiceRanges,
)
from .apiextensions import celauthz
from .apiextensions.controllers import CRDControllers, serve_custom_resources
from .audit import AuditLog, load_policy
from .authentication import trust
from .authentication.authenticator import Authenticator
from .authentication.bootstraptoken import BootstrapTokenAuthenticator
from .authentication.requestheader import RequestHeaderConfig
from .authentication.serviceaccount import DEFAULT_ISSUER, ServiceAccountTokens, TokenSettings
from .authentication.user import UserInfo
from .authorization import Authorizer
from .authorization.attributes import RequestAttributes
from .authorization.defaults import ensure_default_policy
from .authorization.node import NodeAuthorizer
from .authorization.rbac import Lister as RbacLister
from .authorization.rbac import RBACAuthorizer
from .flowcontrol.config import FlowControlConfig
from .grpc_api import GrpcSecurity, set_serving, start_grpc
from .masterleases import MasterLeases, advertise_address
from .podproxy import KubeletClientConfig
from .pump import EventPump
from .registry.scheduling.priorityclass import SYSTEM_PRIORITY_CLASSES
from .rest import RestApi
from .store import Store, WriteOptions
from .watchcache import WatchCache

log = get_logger(__name__)

IDLE_TIMEOUT = 90
"""Seconds an idle client connection stays open (kube-apiserver's ``IdleTimeout``)."""
SYSTEM_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")
SYSTEM_PRIORITY_DESCRIPTIONS = {
    "system-node-critical": "Used for system critical pods that must not be moved from their "
    "current node.",
    "system-cluster-critical": "Used for system critical pods that must run in the cluster, "
    "but can be moved to another node if necessary.",
}


@dataclass(frozen=True, slots=True)
class NatsTLS:
    """``--nats-ca-file``; ``--nats-cert-file``/``--nats-key-file`` (the watch cache's
    identity, which may only read the stream); ``--nats-pump-cert-file``/
    ``--nats-pump-key-file`` (the event pump's, which may publish to it)."""

    ca_file: str
    cert_file: str
    key_file: str
    pump_cert_file: str = ""
    pump_key_file: str = ""

    def _context(self, cert: str, key: str) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=self.ca_file)
        ctx.load_cert_chain(cert, key)
        return ctx

    def cache_context(self) -> ssl.SSLContext:
        return self._context(self.cert_file, self.key_file)

    def pump_context(self) -> ssl.SSLContext:
        return self._context(
            self.pump_cert_file or self.cert_file, self.pump_key_file or self.key_file
        )


@dataclass(slots=True)
class Settings:
    """Flags and their environment-variable fallbacks (see ``__main__``)."""

    etcd: str = "127.0.0.1:2379"
    etcd_tls: EtcdTLS | None = None
    audit_policy_file: str = ""
    audit_log_path: str = ""
    """Where audit events go as JSON lines (with ``audit_policy_file``)."""
    encryption_provider_config: str = ""
    """An EncryptionConfiguration: which resources are encrypted at rest, and how."""
    """Client TLS toward etcd (``--etcd-cafile``, ``--etcd-certfile``, ``--etcd-keyfile``)."""
    nats: str = "nats://127.0.0.1:4222"
    nats_tls: NatsTLS | None = None
    """TLS toward NATS: its CA, the watch cache's client certificate and, when this
    apiserver may run the event pump, the pump's (``--nats-*-file``)."""
    bind_address: str = "127.0.0.1"
    port: int = 6443
    grpc_port: int = 6444
    compaction_interval: float = 300.0
    compaction_keep: int = 10_000
    max_requests_inflight: int = 400
    max_mutating_requests_inflight: int = 200
    """What API Priority and Fairness shares among its priority levels (their sum)."""
    watch_window: int = 10_000
    run_pump: bool = True
    service_cluster_ip_range: str = DEFAULT_CLUSTER_IP_RANGE
    service_node_port_range: str = DEFAULT_NODE_PORT_RANGE
    advertise_address: str = ""
    """Where other members reach this apiserver; "" picks one (``advertise_address``)."""
    enable_admission_plugins: tuple[str, ...] = ()
    """Admission plugins to run besides the default ones (:mod:`.admission`)."""
    disable_admission_plugins: tuple[str, ...] = ()
    """Default admission plugins not to run."""
    tls_cert_file: str = ""
    """Serve HTTPS with this certificate (and ``tls_private_key_file``); "" serves plain
    HTTP without authentication, every request as ``system:unsecured``."""
    tls_private_key_file: str = ""
    client_ca_file: str = ""
    """Authenticate client certificates signed by this CA."""
    anonymous_auth: bool = True
    """Requests without credentials are ``system:anonymous`` (else 401)."""
    enable_bootstrap_token_auth: bool = False
    service_account_key_files: tuple[str, ...] = ()
    """PEM files with the public keys service-account tokens are verified with."""
    service_account_signing_key_file: str = ""
    """The private key TokenRequest signs tokens with."""
    service_account_issuer: str = DEFAULT_ISSUER
    api_audiences: tuple[str, ...] = ()
    service_account_max_token_expiration: int = 0
    kubelet: KubeletClientConfig = field(default_factory=KubeletClientConfig)
    """How to reach kubelets: the client certificate to present, the CA to verify."""
    proxy_client_cert_file: str = ""
    proxy_client_key_file: str = ""
    """The aggregation layer's client certificate toward aggregated API servers."""
    request_header: RequestHeaderConfig | None = None
    """Front proxies (``--requestheader-*``): who may name users in headers."""
    authorization_modes: tuple[str, ...] = ("AlwaysAllow",)
    """``--authorization-mode`` (kube-apiserver's default; kubeadm sets Node,RBAC). Only
    used with TLS: a plain-HTTP apiserver allows everything."""

    def serving(self) -> ServingCertificates | None:
        if not self.tls_cert_file:
            return None
        extra = (self.request_header.client_ca_file,) if self.request_header else ()
        return ServingCertificates(
            self.tls_cert_file, self.tls_private_key_file, self.client_ca_file, extra
        )

    def token_settings(self) -> TokenSettings:
        """The service-account token settings, keys loaded (ValueError for a bad file)."""
        signing = (
            load_signing_key(self.service_account_signing_key_file)
            if self.service_account_signing_key_file
            else None
        )
        keys = [k for f in self.service_account_key_files for k in load_public_keys(f)]
        if signing is not None and not keys:
            keys = [signing.public_key()]
        return TokenSettings(
            issuer=self.service_account_issuer,
            api_audiences=self.api_audiences,
            signing_key=signing,
            public_keys=keys,
            max_expiration=self.service_account_max_token_expiration,
        )

    def admission_plugins(self) -> list[str]:
        """The enabled admission plugins, in order (ValueError for unknown names)."""
        return enabled_plugins(self.enable_admission_plugins, self.disable_admission_plugins)


class ApiServer:
    """One apiserver: every long-lived task is named, supervised and cancelled on stop."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        transformer = (
            encryption.load(settings.encryption_provider_config)
            if settings.encryption_provider_config
            else None
        )
        self.etcd = EtcdBackend(settings.etcd, tls=settings.etcd_tls, transformer=transformer)
        self.nc = None
        self.pump_nc = None
        self.cache: WatchCache | None = None
        self.store: Store | None = None
        self.pump: EventPump | None = None
        self.aggregator: Aggregator | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self.failed: asyncio.Future[BaseException] | None = None
        """Set when a long-lived task dies or ends: the apiserver stops (fail fast)."""
        self._stopping = False
        self._uvicorn: uvicorn.Server | None = None
        self._grpc = None
        self.bootstrapped = False

    def ready(self) -> bool:
        return self.bootstrapped and self.cache is not None and self.cache.ready.is_set()

    async def _bootstrap(self) -> None:
        """Create the namespaces every Kubernetes cluster has, as kube-apiserver does."""
        assert self.store is not None and self.cache is not None
        await self.cache.ready.wait()
        info = REGISTRY.by_path("", "v1", "namespaces")
        assert info is not None
        for name in SYSTEM_NAMESPACES:
            while True:
                try:
                    await self.store.create(
                        info,
                        None,
                        {"metadata": {"name": name}},
                        WriteOptions(field_manager="skiff-apiserver"),
                    )
                    log.info("created system namespace", namespace=name)
                    break
                except ApiError as e:
                    if e.code == 409:
                        break
                    log.warning(
                        "cannot create system namespace yet", namespace=name, error=e.message
                    )
                    await asyncio.sleep(1)
        pcs = REGISTRY.by_path("scheduling.k8s.io", "v1", "priorityclasses")
        assert pcs is not None
        for name, value in SYSTEM_PRIORITY_CLASSES.items():
            try:
                await self.store.create(
                    pcs,
                    None,
                    {
                        "metadata": {"name": name},
                        "value": value,
                        "description": SYSTEM_PRIORITY_DESCRIPTIONS[name],
                    },
                    WriteOptions(field_manager="skiff-apiserver"),
                )
            except ApiError as e:
                if e.code != 409:
                    log.warning("cannot create system PriorityClass", name=name, error=e.message)
        await self._kubernetes_service()
        await ensure_default_policy(self.store)
        await trust.publish(
            self.store, trust.trust_data(self.settings.client_ca_file, self.settings.request_header)
        )
        self.bootstrapped = True

    async def _kubernetes_service(self) -> None:
        """``default/kubernetes`` on the service range's first address, as every cluster has.

        Its endpoints are the live apiservers (:mod:`.masterleases`).
        """
        assert self.store is not None
        info = REGISTRY.by_path("", "v1", "services")
        assert info is not None
        first = str(self.store.services.ranges.cluster_ip.network_address + 1)
        port = {"name": "https", "port": 443, "protocol": "TCP", "targetPort": self.settings.port}
        try:
            await self.store.create(
                info,
                "default",
                {
                    "metadata": {
                        "name": "kubernetes",
                        "labels": {"component": "apiserver", "provider": "kubernetes"},
                    },
                    "spec": {"type": "ClusterIP", "clusterIP": first, "ports": [port]},
                },
                WriteOptions(field_manager="skiff-apiserver"),
            )
            log.info("created the kubernetes Service", cluster_ip=first)
        except ApiError as e:
            if e.code != 409:
                log.warning("cannot create the kubernetes Service", error=e.message)

    async def start(self) -> None:
        self.failed = asyncio.get_running_loop().create_future()
        await self.etcd.connect()
        tls = self.settings.nats_tls
        self.nc = await ev.connect(
            self.settings.nats, "skiff-apiserver", tls.cache_context() if tls else None
        )
        self.cache = WatchCache(
            self.etcd, self.nc, window=self.settings.watch_window, creates_stream=tls is None
        )
        custom_resources = serve_custom_resources(self.cache)
        ranges = ServiceRanges.parse(
            self.settings.service_cluster_ip_range, self.settings.service_node_port_range
        )
        self.store = Store(
            self.etcd,
            self.cache,
            ServiceAllocator(self.etcd, ranges),
            admission_plugins=self.settings.admission_plugins(),
        )
        self._spawn(self.cache.run(), "watch-cache")
        crd_controllers = CRDControllers(custom_resources, self.store, self.cache)
        self._spawn(crd_controllers.run(), "crd-controllers")
        cert = (self.settings.proxy_client_cert_file, self.settings.proxy_client_key_file)
        self.aggregator = Aggregator(self.store, self.cache, cert if cert[0] else None)
        self._spawn(self.aggregator.autoregister.run(), "apiservice-autoregister")
        self._spawn(self.aggregator.available.run(), "apiservice-availability")
        self._spawn(FlowControlConfig(self.store, self.cache).run(), "apf-config")
        if self.settings.run_pump:
            pump_nc = self.nc
            if tls is not None:
                # Its own identity: only the pump may publish to the event subjects.
                pump_nc = self.pump_nc = await ev.connect(
                    self.settings.nats, "skiff-event-pump", tls.pump_context()
                )
            self.pump = EventPump(self.etcd, pump_nc)
            self._spawn(self.pump.run(), "event-pump")
        self._spawn(self._compactor(), "compactor")
        self._spawn(self._bootstrap(), "bootstrap", forever=False)
        address = self.settings.advertise_address or advertise_address(self.settings.bind_address)
        leases = MasterLeases(self.etcd, self.store, address, self.settings.port)
        self._spawn(leases.run(), "master-leases")
        tokens = ServiceAccountTokens(self.settings.token_settings(), self.store.lister)
        self.store.tokens = tokens
        serving = self.settings.serving()
        authenticator = None
        if serving is not None:
            bootstrap = (
                BootstrapTokenAuthenticator(self.store.lister)
                if self.settings.enable_bootstrap_token_auth
                else None
            )
            authenticator = Authenticator(
                service_accounts=tokens if tokens.settings.public_keys else None,
                bootstrap_tokens=bootstrap,
                anonymous=self.settings.anonymous_auth,
                request_header=self.settings.request_header,
                client_ca_file=self.settings.client_ca_file,
            )
        audit = None
        if self.settings.audit_policy_file and self.settings.audit_log_path:
            audit = AuditLog(
                load_policy(self.settings.audit_policy_file), self.settings.audit_log_path
            )
        authorizer = None
        if serving is not None:
            lister = RbacLister(self.cache)
            authorizer = Authorizer(
                self.settings.authorization_modes, RBACAuthorizer(lister), NodeAuthorizer(lister)
            )
            self.store.authorizer = authorizer
            celauthz.set_authorizer(_cel_check(authorizer))
        else:  # without TLS every request is system:masters'
            celauthz.set_authorizer(lambda user, attrs: (True, ""))
        app = RestApi(
            self.store,
            is_ready=self.ready,
            authenticator=authenticator,
            authorizer=authorizer,
            kubelet=self.settings.kubelet,
            audit=audit,
            aggregator=self.aggregator,
            max_inflight=(
                self.settings.max_requests_inflight + self.settings.max_mutating_requests_inflight
            ),
        )
        options: dict[str, Any] = {"http": "httptools"}
        options.update(serving.uvicorn_options() if serving else {})
        config = uvicorn.Config(
            app,
            host=self.settings.bind_address,
            port=self.settings.port,
            log_config=None,
            access_log=False,
            lifespan="off",
            loop="none",
            timeout_graceful_shutdown=2,
            # kube-apiserver's IdleTimeout: clients (Go's transport keeps idle connections
            # 90 s) reuse a connection the server would otherwise have closed after
            # uvicorn's 5 s, and a POST on it is reset (kubectl drain retries every 5 s).
            timeout_keep_alive=IDLE_TIMEOUT,
            **options,
        )
        self._uvicorn = uvicorn.Server(config)
        self._uvicorn.install_signal_handlers = lambda: None  # type: ignore[method-assign]
        self._spawn(self._uvicorn.serve(), "http")
        if self.settings.grpc_port:
            security = None
            if authenticator is not None:
                security = GrpcSecurity(authenticator, authorizer)
            self._grpc, health = await start_grpc(
                self.store,
                f"{self.settings.bind_address}:{self.settings.grpc_port}",
                serving=serving,
                security=security,
            )
            self._spawn(self._grpc_health(health), "grpc-health")

    async def _grpc_health(self, health) -> None:  # type: ignore[no-untyped-def]
        set_serving(health, False)
        assert self.cache is not None
        while True:
            await self.cache.ready.wait()
            set_serving(health, True)
            # Readiness has no "lost" event; checking once a second is enough for health.
            while self.cache.ready.is_set():
                await asyncio.sleep(1)
            set_serving(health, False)

    def _spawn(self, coro, name: str, *, forever: bool = True) -> None:  # type: ignore[no-untyped-def]
        """Run a named task; if it fails (or, when ``forever``, ends) the apiserver stops."""
        task = asyncio.create_task(coro, name=name)
        task.add_done_callback(lambda t: self._task_done(t, forever))
        self._tasks.append(task)

    def _task_done(self, task: asyncio.Task[None], forever: bool) -> None:
        if task.cancelled() or self._stopping:
            return
        exc = task.exception()
        if exc is None and not forever:
            return
        if exc is None:
            exc = RuntimeError(f"task {task.get_name()} ended")
        log.error("task failed; stopping", task=task.get_name(), error=repr(exc))
        if self.failed is not None and not self.failed.done():
            self.failed.set_result(exc)

    async def _compactor(self) -> None:
        """Compact etcd history older than ``compaction_keep`` revisions, periodically."""
        while True:
            await asyncio.sleep(self.settings.compaction_interval)
            if self.pump is None or not self.pump.is_leader:
                continue
            try:
                rev = await self.etcd.current_revision()
                target = rev - self.settings.compaction_keep
                if target > 0:
                    await self.etcd.compact(target)
                    log.info("compacted etcd", revision=target)
            except StorageError as e:
                log.warning("compaction failed", error=str(e))

    async def stop(self) -> None:
        self._stopping = True
        if self._uvicorn is not None:
            self._uvicorn.should_exit = True
        if self._grpc is not None:
            await self._grpc.stop(1)
        for t in reversed(self._tasks):
            if t.get_name() != "http":
                t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.aggregator is not None:
            await self.aggregator.aclose()
        for nc in (self.nc, self.pump_nc):
            if nc is not None:
                with contextlib.suppress(Exception):
                    await nc.close()
        await self.etcd.close()

    async def run_until_signalled(self) -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await self.start()
        log.info("apiserver serving", address=self.settings.bind_address, port=self.settings.port)
        assert self.failed is not None
        stopping = asyncio.ensure_future(stop.wait())
        await asyncio.wait([stopping, self.failed], return_when=asyncio.FIRST_COMPLETED)
        stopping.cancel()
        log.info("apiserver stopping")
        await self.stop()
        if self.failed.done():
            # A supervisor (compose's restart policy, systemd) starts a fresh one.
            raise SystemExit(f"apiserver stopped: {self.failed.result()!r}")


def _cel_check(authorizer: Authorizer) -> celauthz.Check:
    """Admission expressions' ``authorizer`` checks, asked of the apiserver's authorizer."""

    def check(user: dict[str, Any], a: dict[str, Any]) -> tuple[bool, str]:
        requester = UserInfo(
            user.get("name") or "",
            uid=user.get("uid") or "",
            groups=tuple(user.get("groups") or ()),
            extra={k: tuple(v) for k, v in (user.get("extra") or {}).items()},
        )
        path = a.get("path")
        attrs = RequestAttributes(
            requester,
            a.get("verb") or "",
            resource_request=path is None,
            path=path or "",
            api_group=a.get("group") or "",
            resource=a.get("resource") or "",
            subresource=a.get("subresource") or "",
            namespace=a.get("namespace") or "",
            name=a.get("name") or "",
        )
        return authorizer.authorize(attrs)

    return check
