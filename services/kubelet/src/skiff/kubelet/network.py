"""The node's pod network as the kubelet configures it (the role of kubenet): a bridge
network for the node's pod CIDR. Or, with ``--network-plugin cni``, as a network add-on
configures it: the kubelet writes nothing and the network is ready once a CNI
configuration appears in the runtime's folder (the add-on, skiff-netagent, writes it for
the node's pod CIDR), as kubelets with a CNI add-on wait for one.

The network is *ready* only once a pod CIDR is known and the CNI configuration is written
for it. Until then the node is not Ready (``NetworkReady=false``, as the kubelet reports a
runtime whose network plugin is not initialised) and no pod sandbox is created, so a new
node never hands out addresses from a range that is not its own.

The CIDR comes from ``--pod-cidr`` (standalone) or, once the node IPAM controller assigns
it, from ``spec.podCIDR``, which wins. When it changes and the bridge still carries the
old gateway address, the bridge is re-addressed if no pod sandbox is left on it; if pods
still use the old range the change is refused (logged, and the network stays not ready)
rather than half-applied: the bridge plugin would otherwise fail every later sandbox with
"already has an IP address different from ...".
"""

from __future__ import annotations

import ipaddress
import shutil
import subprocess
from dataclasses import dataclass, field

from skiff.cni import has_config
from skiff.log import get_logger

from .containerd_setup import RuntimePaths, bridge_addresses, write_cni_config

log = get_logger(__name__)

NOT_INITIALIZED = "cni config uninitialized"


def gateway(cidr: str) -> str:
    """The bridge's address for a pod CIDR (host-local's default gateway: the first host)."""
    net = ipaddress.ip_network(cidr, strict=False)
    return f"{next(net.hosts())}/{net.prefixlen}"


@dataclass
class PodNetwork:
    """The bridge network of one node; :meth:`configure` with its pod CIDR."""

    paths: RuntimePaths
    bridge: str = "skiff0"
    name: str = "skiff"
    cidr: str = ""
    """The pod CIDR the CNI configuration is written for ("" until there is one)."""
    problem: str = NOT_INITIALIZED
    """Why the network is not ready ("" when it is)."""
    refused: set[str] = field(default_factory=set)
    masquerade: bool = True
    """The bridge plugin's ``ipMasq`` (off under the pod network agent)."""
    plugin: str = "kubenet"
    """``kubenet``: the kubelet writes the configuration; ``cni``: an add-on does."""

    @property
    def ready(self) -> bool:
        return not self.problem

    def status_message(self) -> str:
        """The runtime-network part of the Ready condition, in the kubelet's words."""
        return (
            "container runtime network not ready: NetworkReady=false "
            f"reason:NetworkPluginNotReady message:Network plugin returns error: {self.problem}"
        )

    def configure(self, cidr: str, sandboxes_in_use: int) -> bool:
        """Use ``cidr`` for new pods; True when the network is ready for it.

        ``sandboxes_in_use``: pod sandboxes still on the bridge (their addresses are from
        the old range, so the bridge cannot be re-addressed under them).
        """
        try:
            ipaddress.ip_network(cidr, strict=False)
        except ValueError:
            self.problem = f"invalid pod CIDR {cidr!r}"
            return False
        if cidr == self.cidr and self.ready:
            return True
        if self.plugin == "cni":
            if not has_config(self.paths.cni_conf_dir):
                self.problem = NOT_INITIALIZED
                return False
            self.cidr, self.problem = cidr, ""
            log.info("pod network configured by the add-on", pod_cidr=cidr)
            return True
        want = gateway(cidr)
        current = bridge_addresses(self.bridge)
        if current and want not in current:
            if sandboxes_in_use:
                self.problem = (
                    f"pod CIDR changed to {cidr} but {sandboxes_in_use} pod sandbox(es) still "
                    f"use bridge {self.bridge} at {', '.join(current)}; remove them to switch"
                )
                if cidr not in self.refused:
                    self.refused.add(cidr)
                    log.error("pod CIDR change refused", pod_cidr=cidr, reason=self.problem)
                return False
            # No pod is left on the old range: the bridge plugin re-creates it, addressed
            # for the new one, and the old range's leases go with it.
            subprocess.run(["ip", "link", "del", self.bridge], capture_output=True)
            shutil.rmtree(self.paths.base / "cni" / "ipam", ignore_errors=True)
            log.info("bridge re-addressed", bridge=self.bridge, old=current, pod_cidr=cidr)
        write_cni_config(
            self.paths, cidr, bridge=self.bridge, name=self.name, masquerade=self.masquerade
        )
        previous, self.cidr, self.problem = self.cidr, cidr, ""
        log.info("pod network configured", pod_cidr=cidr, previous=previous or None)
        return True
