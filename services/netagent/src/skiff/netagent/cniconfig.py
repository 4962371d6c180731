"""The node's CNI configuration, written by the add-on for the node's own pod CIDR (what
flannel's daemon writes for its subnet): the bridge network of :mod:`skiff.cni`, without
the bridge's masquerade (the agent masquerades only what leaves the cluster).

When ``spec.podCIDR`` changes, a bridge still addressed for the old range is removed so
that the bridge plugin re-creates it for the new one, but only while no pod is attached
to it; otherwise the change is refused, loudly, and the old configuration stays.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from skiff.cni import NETWORK, bridge_conflist, configured_subnet, write_conflist
from skiff.log import get_logger
from skiff.netagent.linux import NodeNetwork

log = get_logger(__name__)


class CniConfig:
    def __init__(
        self,
        conf_dir: Path,
        *,
        network: NodeNetwork,
        ipam_dir: Path = Path("/var/lib/cni/networks"),
        bridge: str = "skiff0",
        name: str = NETWORK,
    ) -> None:
        self.conf_dir = conf_dir
        self.network = network
        self.ipam_dir = ipam_dir
        self.bridge = bridge
        self.name = name

    async def ensure(self, cidr: str) -> str:
        """Configure the network for ``cidr``; "" when done, else why not."""
        current = configured_subnet(self.conf_dir)
        if current == cidr:
            return ""
        if current is not None:
            ports = await self.network.bridge_ports(self.bridge)
            if ports:
                return (
                    f"pod CIDR changed from {current} to {cidr} but {ports} pod(s) still use "
                    f"bridge {self.bridge}; remove them to switch"
                )
            await self.network.delete_link(self.bridge)
            shutil.rmtree(self.ipam_dir / self.name, ignore_errors=True)
            log.info("bridge removed for a new pod CIDR", old=current, pod_cidr=cidr)
        conflist = bridge_conflist(
            cidr, ipam_dir=self.ipam_dir, bridge=self.bridge, name=self.name, masquerade=False
        )
        write_conflist(self.conf_dir, conflist)
        log.info("CNI configuration written", pod_cidr=cidr, folder=str(self.conf_dir))
        return ""
