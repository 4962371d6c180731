"""The pod sandbox's CRI configuration: a sandbox is privileged when one of its
containers is (the runtime refuses a privileged container in any other), and host
networking and DNS as the kubelet sets them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from skiff.cri.client import pb
from skiff.kubelet.sandbox import SandboxMixin


class Sandboxes(SandboxMixin):
    def __init__(self) -> None:
        self.log_root = Path("/tmp/logs")
        self.cluster_dns = ["10.96.0.10"]
        self.cluster_domain = "cluster.local"
        self.node_ip = "192.168.1.1"


def pod(**spec: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": "p", "namespace": "kube-system", "uid": "u1"},
        "spec": {"containers": [{"name": "c"}], **spec},
    }


def test_a_privileged_container_makes_a_privileged_sandbox() -> None:
    s = Sandboxes()
    plain = s._sandbox_config(pod())
    assert not plain.linux.security_context.privileged
    privileged = pod(
        initContainers=[{"name": "init", "securityContext": {"privileged": True}}],
        hostNetwork=True,
    )
    cfg = s._sandbox_config(privileged)
    assert cfg.linux.security_context.privileged
    assert cfg.linux.security_context.namespace_options.network == pb.NODE
    assert cfg.hostname == ""  # host network: the node's own name
    assert not cfg.HasField("dns_config")  # host network, ClusterFirst: the host's resolv.conf
