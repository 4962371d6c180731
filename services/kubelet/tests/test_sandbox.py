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
        self.resolv_conf: Path | None = None


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


def test_default_dns_policy_reads_the_resolv_conf_it_is_given(tmp_path: Path) -> None:
    """``--resolv-conf``: pods with dnsPolicy Default (and host-network ones) get the
    node's resolvers from that file, not the runtime's copy of the host's."""
    conf = tmp_path / "resolv.conf"
    conf.write_text("# node\nnameserver 172.18.0.5\nsearch example.test\noptions ndots:1 edns0\n")
    s = Sandboxes()
    s.resolv_conf = conf
    for p in (pod(dnsPolicy="Default"), pod(hostNetwork=True)):
        dns = s._sandbox_config(p).dns_config
        assert (list(dns.servers), list(dns.searches), list(dns.options)) == (
            ["172.18.0.5"],
            ["example.test"],
            ["ndots:1", "edns0"],
        )
    cluster = s._sandbox_config(pod()).dns_config  # ClusterFirst: the cluster DNS
    assert list(cluster.servers) == ["10.96.0.10"]
