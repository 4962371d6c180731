"""Pod sandboxes, as kuberuntime_sandbox.go: finding the pod's ready sandbox or creating a
new one (removing stale ones), and the sandbox's config: hostname, log folder, DNS config
(as the kubelet's DNS configurer), hostPort mappings, cgroup parent by QoS class, and the
Linux namespaces the pod shares.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from skiff.api.errors import ApiError
from skiff.client.events import EventRecorder
from skiff.client.rest import ApiClient
from skiff.cri.client import CriClient, CriError, pb

from .network import PodNetwork
from .pod_context import POD_NAME, POD_NS, POD_UID, PodContext

_PROTOCOLS = {"TCP": pb.TCP, "UDP": pb.UDP, "SCTP": pb.SCTP}


class SandboxMixin:
    """The pod's sandbox (and so its network namespace and CNI attachment)."""

    # Set up by Kubelet.__init__.
    client: ApiClient
    cri: CriClient
    node_ip: str
    log_root: Path
    cluster_dns: list[str]
    cluster_domain: str
    resolv_conf: Path | None
    events: EventRecorder
    network: PodNetwork | None

    if TYPE_CHECKING:  # from the other parts of Kubelet

        async def _remove_sandboxes(
            self, pod: dict[str, Any] | None, sandboxes: list[pb.PodSandbox], grace: int = 2
        ) -> None: ...

    async def _ensure_sandbox(self, ctx: PodContext, sandboxes: list[pb.PodSandbox]) -> bool:
        pod = ctx.pod
        ready = sorted(
            (s for s in sandboxes if s.state == pb.SANDBOX_READY),
            key=lambda s: s.created_at,
            reverse=True,
        )
        attempt = max((s.metadata.attempt for s in sandboxes), default=-1) + 1
        if ready:
            sandbox = ready[0]
            ctx.sandbox_id = sandbox.id
            ctx.sandbox_config = self._sandbox_config(pod, sandbox.metadata.attempt)
            stale = [s for s in sandboxes if s.id != sandbox.id]
        else:
            stale = sandboxes
        if stale:
            await self._remove_sandboxes(pod, stale)
        if not ready:
            net = self.network
            if net is not None and not net.ready and not pod["spec"].get("hostNetwork"):
                # As the kubelet: no sandbox (and so no address) before the node's network
                # is configured for its own pod CIDR; host-network pods need none.
                self.events.emit(
                    pod,
                    "Warning",
                    "NetworkNotReady",
                    f"network is not ready: {net.status_message()}",
                )
                ctx.after(2.0)
                return False
            ctx.sandbox_config = self._sandbox_config(pod, attempt if sandboxes else 0)
            try:
                handler = await self._runtime_handler(pod)
                ctx.sandbox_id = await self.cri.run_pod_sandbox(
                    ctx.sandbox_config, runtime_handler=handler
                )
            except (CriError, ApiError) as e:
                self.events.emit(
                    pod,
                    "Warning",
                    "FailedCreatePodSandBox",
                    f"Failed to create pod sandbox: {e.message}",
                )
                ctx.after(5.0)
                return False
        if pod["spec"].get("hostNetwork"):
            ctx.pod_ip = self.node_ip
        else:
            ctx.pod_ip = (await self.cri.pod_sandbox_status(ctx.sandbox_id)).status.network.ip
        return True

    async def _runtime_handler(self, pod: dict[str, Any]) -> str:
        """The CRI runtime handler of the pod's RuntimeClass; "" (the runtime's default)
        when it names none. A missing class is the API's 404, as the kubelet's
        RuntimeClass manager reports it."""
        name = pod["spec"].get("runtimeClassName")
        if not name:
            return ""
        runtime_class = await self.client.get("runtimeclasses", name)
        return runtime_class.get("handler") or ""

    def _sandbox_config(self, pod: dict[str, Any], attempt: int = 0) -> pb.PodSandboxConfig:
        meta, spec = pod["metadata"], pod["spec"]
        host_network = bool(spec.get("hostNetwork"))
        ports = [
            pb.PortMapping(
                protocol=_PROTOCOLS.get(p.get("protocol") or "TCP", pb.TCP),
                container_port=int(p["containerPort"]),
                host_port=int(p["hostPort"]),
                host_ip=p.get("hostIP") or "",
            )
            for c in spec.get("containers") or []
            for p in c.get("ports") or []
            if p.get("hostPort")
        ]
        qos = ((pod.get("status") or {}).get("qosClass") or "BestEffort").lower()
        cgroup = (
            f"/kubepods/pod{meta['uid']}"
            if qos == "guaranteed"
            else (f"/kubepods/{qos}/pod{meta['uid']}")
        )
        return pb.PodSandboxConfig(
            metadata=pb.PodSandboxMetadata(
                name=meta["name"], namespace=meta["namespace"], uid=meta["uid"], attempt=attempt
            ),
            hostname="" if host_network else (spec.get("hostname") or meta["name"])[:63],
            log_directory=str(self.log_root / f"{meta['namespace']}_{meta['name']}_{meta['uid']}"),
            dns_config=self._dns_config(pod),
            port_mappings=ports,
            labels={POD_UID: meta["uid"], POD_NAME: meta["name"], POD_NS: meta["namespace"]},
            annotations=dict(meta.get("annotations") or {}),
            linux=pb.LinuxPodSandboxConfig(
                cgroup_parent=cgroup,
                security_context=pb.LinuxSandboxSecurityContext(
                    namespace_options=self._namespaces(pod),
                    # As the kubelet: the runtime refuses a privileged container in a
                    # sandbox that is not privileged itself.
                    privileged=_has_privileged_container(spec),
                ),
            ),
        )

    def _dns_config(self, pod: dict[str, Any]) -> pb.DNSConfig | None:
        """As the kubelet's DNS configurer; no cluster DNS → the host's resolv.conf."""
        spec = pod["spec"]
        policy = spec.get("dnsPolicy") or "ClusterFirst"
        extra = spec.get("dnsConfig") or {}
        servers: list[str] = []
        searches: list[str] = []
        options: list[str] = []
        if policy == "None":
            pass
        elif (
            policy in ("ClusterFirst", "ClusterFirstWithHostNet")
            and self.cluster_dns
            and (not spec.get("hostNetwork") or policy == "ClusterFirstWithHostNet")
        ):
            ns = pod["metadata"]["namespace"]
            d = self.cluster_domain
            servers = list(self.cluster_dns)
            searches = [f"{ns}.svc.{d}", f"svc.{d}", d]
            options = ["ndots:5"]
        elif self.resolv_conf is not None:  # Default: the node's resolvers, from --resolv-conf
            servers, searches, options = read_resolv_conf(self.resolv_conf)
        elif not extra:
            return None  # the runtime copies the host's resolv.conf
        servers += extra.get("nameservers") or []
        searches += extra.get("searches") or []
        for o in extra.get("options") or []:
            options.append(f"{o['name']}:{o['value']}" if o.get("value") else o["name"])
        return pb.DNSConfig(servers=servers, searches=searches, options=options)

    @staticmethod
    def _namespaces(pod: dict[str, Any]) -> pb.NamespaceOption:
        """As the kubelet: own PID namespace per container unless shareProcessNamespace."""
        spec = pod["spec"]
        return pb.NamespaceOption(
            network=pb.NODE if spec.get("hostNetwork") else pb.POD,
            pid=pb.NODE
            if spec.get("hostPID")
            else (pb.POD if spec.get("shareProcessNamespace") else pb.CONTAINER),
            ipc=pb.NODE if spec.get("hostIPC") else pb.POD,
        )


def _has_privileged_container(spec: dict[str, Any]) -> bool:
    containers = [*(spec.get("initContainers") or []), *(spec.get("containers") or [])]
    return any(((c.get("securityContext") or {}).get("privileged")) for c in containers)


def read_resolv_conf(path: Path) -> tuple[list[str], list[str], list[str]]:
    """Nameservers, search domains and options of a resolv.conf (missing: none)."""
    servers: list[str] = []
    searches: list[str] = []
    options: list[str] = []
    try:
        text = path.read_text()
    except OSError:
        return servers, searches, options
    for line in text.splitlines():
        fields = line.split("#", 1)[0].split()
        if len(fields) < 2:
            continue
        if fields[0] == "nameserver":
            servers.append(fields[1])
        elif fields[0] in ("search", "domain"):
            searches = fields[1:]
        elif fields[0] == "options":
            options.extend(fields[1:])
    return servers, searches, options
