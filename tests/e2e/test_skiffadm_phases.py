"""skiffadm's phases that talk to a real apiserver (HTTPS, Node,RBAC), as ``kubeadm init``
runs them: ``init phase bootstrap-token`` writes the token, the joining RBAC, the
``kubeadm:cluster-admins`` binding behind ``admin.conf`` and ``cluster-info``; a joining
node can then read cluster-info anonymously and check it, and the token authenticates."""

from __future__ import annotations

import json
import ssl
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from clusterenv import started_cluster
from cryptography import x509

from cluster import Cluster
from skiff.bootstrap import DiscoveryError, validate_cluster_info
from skiff.kubeconfigs import write_kubeconfigs
from skiff.pki import spki_sha256

SKIFFADM = Path(sys.executable).parent / "skiffadm"
TOKEN = "abcdef.0123456789abcdef"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    yield from started_cluster(tmp_path_factory, "skiffadm", secure=True)


def kubectl(kubeconfig: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["kubectl", "--kubeconfig", str(kubeconfig), *args],
        capture_output=True,
        text=True,
        check=check,
    )


def test_bootstrap_token_phase(cluster: Cluster, tmp_path: Path) -> None:
    assert cluster.pki is not None
    confs = tmp_path / "kubeconfigs"
    write_kubeconfigs(confs, cluster.pki, cluster.url, "cp-1")
    # Before the phase, admin.conf's group is bound to nothing.
    admin = confs / "admin.conf"
    assert kubectl(admin, "get", "nodes", check=False).returncode != 0
    args = [
        str(SKIFFADM), "init", "phase", "bootstrap-token", "--kubeconfig",
        str(confs / "super-admin.conf"), "--cert-dir", str(cluster.pki), "--token", TOKEN,
    ]  # fmt: skip
    first = subprocess.run(args, capture_output=True, text=True, timeout=60)
    assert first.returncode == 0, first.stderr
    assert first.stdout.splitlines() == [
        f"[bootstrap-token] Using token: {TOKEN}",
        "[bootstrap-token] Configuring bootstrap tokens, cluster-info ConfigMap, RBAC Roles",
        "[bootstrap-token] Configured RBAC rules to allow Node Bootstrap tokens to get nodes",
        "[bootstrap-token] Configured RBAC rules to allow Node Bootstrap tokens to post CSRs in "
        "order for nodes to get long term certificate credentials",
        "[bootstrap-token] Configured RBAC rules to allow the csrapprover controller "
        "automatically approve CSRs from a Node Bootstrap Token",
        "[bootstrap-token] Configured RBAC rules to allow certificate rotation for all node "
        "client certificates in the cluster",
        '[bootstrap-token] Binding the "cluster-admin" ClusterRole to the '
        '"kubeadm:cluster-admins" group',
        "[bootstrap-token] Configured RBAC rules to allow anonymous users to read the "
        "cluster-info ConfigMap",
        '[bootstrap-token] Creating the "cluster-info" ConfigMap in the "kube-public" namespace',
    ]
    again = subprocess.run(args, capture_output=True, text=True, timeout=60)
    assert again.returncode == 0 and again.stdout == first.stdout
    # admin.conf now administers the cluster.
    assert kubectl(admin, "get", "nodes").returncode == 0
    # A joining node reads cluster-info without credentials and checks it by the CA pin
    # (the signature comes from the bootstrap-signer controller, not running here).
    context = ssl.create_default_context(cafile=str(cluster.pki / "ca.crt"))
    path = "/api/v1/namespaces/kube-public/configmaps/cluster-info"
    with urllib.request.urlopen(cluster.url + path, context=context) as r:
        cm = json.loads(r.read())
    ca = x509.load_pem_x509_certificate((cluster.pki / "ca.crt").read_bytes())
    with pytest.raises(DiscoveryError, match="there is no JWS signed token"):
        validate_cluster_info(cm, TOKEN, [spki_sha256(ca)])
    # The token authenticates as the bootstrapper kubeadm's joining RBAC names.
    token_kc = [
        "--kubeconfig=/dev/null", f"--server={cluster.url}",
        f"--certificate-authority={cluster.pki / 'ca.crt'}", f"--token={TOKEN}",
    ]  # fmt: skip
    who = subprocess.run(
        ["kubectl", *token_kc, "auth", "whoami", "-o", "json"], capture_output=True, text=True
    )
    assert json.loads(who.stdout)["status"]["userInfo"]["username"] == "system:bootstrap:abcdef"
    can = subprocess.run(
        [
            "kubectl",
            *token_kc,
            "auth",
            "can-i",
            "get",
            "nodes",
        ],
        capture_output=True,
        text=True,
    )
    assert can.stdout.strip() == "yes", can.stderr
    cannot = subprocess.run(
        ["kubectl", *token_kc, "auth", "can-i", "list", "secrets", "-A"],
        capture_output=True,
        text=True,
    )
    assert cannot.stdout.strip() == "no"


def test_token_create_list_delete(cluster: Cluster) -> None:
    admin = str(cluster.kubeconfig())

    def skiffadm(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(SKIFFADM), "token", *args, "--kubeconfig", admin],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip

    made = skiffadm("create", "--print-join-command", "--description", "for n7")
    assert made.returncode == 0, made.stderr
    words = made.stdout.split()
    assert words[:2] == ["skiffadm", "join"] and words[2] == cluster.url.removeprefix("https://")
    token = words[words.index("--token") + 1]
    assert cluster.pki is not None
    ca = x509.load_pem_x509_certificate((cluster.pki / "ca.crt").read_bytes())
    assert words[words.index("--discovery-token-ca-cert-hash") + 1] == spki_sha256(ca)
    forever = skiffadm("create", "zyxwvu.0123456789abcdef", "--ttl", "0")
    assert forever.stdout.strip() == "zyxwvu.0123456789abcdef"
    table = skiffadm("list").stdout.splitlines()
    assert table[0].split() == [
        "TOKEN",
        "TTL",
        "EXPIRES",
        "USAGES",
        "DESCRIPTION",
        "EXTRA",
        "GROUPS",
    ]
    rows = {line.split()[0]: line.split() for line in table[1:]}
    assert rows[token][1] == "23h" and rows[token][3] == "authentication,signing"
    assert "for" in rows[token] and "system:bootstrappers:kubeadm:default-node-token" in rows[token]
    assert rows["zyxwvu.0123456789abcdef"][1:3] == ["<forever>", "<never>"]
    gone = skiffadm("delete", token, "zyxwvu")
    assert gone.stdout.splitlines() == [
        f'bootstrap token "{token.split(".")[0]}" deleted',
        'bootstrap token "zyxwvu" deleted',
    ]
    missing = skiffadm("delete", "zyxwvu")
    assert missing.returncode == 1 and 'bootstrap token "zyxwvu" not found' in missing.stderr


def test_mark_control_plane_phase(cluster: Cluster) -> None:
    """The node's role label and NoSchedule taint, kept once there (a second run changes
    nothing); ``kubectl get nodes`` shows the role."""
    admin = cluster.kubeconfig()
    node = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "cp-1"},
            "spec": {"taints": [{"key": "other", "effect": "NoExecute"}]}}  # fmt: skip
    subprocess.run(["kubectl", "--kubeconfig", str(admin), "create", "-f", "-"],
                   input=json.dumps(node), text=True, check=True, capture_output=True)  # fmt: skip
    args = [str(SKIFFADM), "init", "phase", "mark-control-plane", "--kubeconfig", str(admin),
            "--node-name", "cp-1"]  # fmt: skip
    for _ in range(2):
        out = subprocess.run(args, capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == [
        "[mark-control-plane] Marking the node cp-1 as control-plane by adding the labels: "
        "[node-role.kubernetes.io/control-plane "
        "node.kubernetes.io/exclude-from-external-load-balancers]",
        "[mark-control-plane] Marking the node cp-1 as control-plane by adding the taints "
        "[node-role.kubernetes.io/control-plane:NoSchedule]",
    ]
    got = json.loads(kubectl(admin, "get", "node", "cp-1", "-o", "json").stdout)
    assert got["spec"]["taints"] == [
        {"key": "other", "effect": "NoExecute"},
        {"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"},
    ]
    assert got["metadata"]["labels"]["node-role.kubernetes.io/control-plane"] == ""
    table = kubectl(admin, "get", "node", "cp-1").stdout.splitlines()
    assert table[1].split()[2] == "control-plane"
    missing = subprocess.run([*args[:-1], "nowhere", "--timeout", "1"], capture_output=True,
                             text=True, timeout=60)  # fmt: skip
    assert missing.returncode == 1
    assert 'nodes "nowhere" not found' in missing.stderr


def test_upload_config_phase_and_joiners_reading_it(cluster: Cluster) -> None:
    """kubeadm's kubelet-config ConfigMap: written by ``init phase upload-config kubelet``,
    readable with the bootstrap token (what ``skiffadm join`` does), not anonymously."""
    from skiff.skiffadm.kubeletconfig import fetch

    assert cluster.pki is not None
    args = [str(SKIFFADM), "init", "phase", "upload-config", "kubelet", "--kubeconfig",
            str(cluster.kubeconfig()), "--service-cidr", "10.112.0.0/16"]  # fmt: skip
    out = subprocess.run(args, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == [
        '[kubelet] Creating a ConfigMap "kubelet-config" in namespace kube-system with the '
        "configuration for the kubelets in the cluster"
    ]
    # The token of test_bootstrap_token_phase, as a joining node holds it.
    config = fetch(cluster.url, cluster.pki / "ca.crt", TOKEN)
    assert config is not None and config["clusterDNS"] == ["10.112.0.10"]
    assert config["clusterDomain"] == "cluster.local"
    anonymous = urllib.request.Request(f"{cluster.url}/api/v1/namespaces/kube-system/configmaps/"
                                       "kubelet-config")  # fmt: skip
    context = ssl.create_default_context(cafile=str(cluster.pki / "ca.crt"))
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(anonymous, context=context, timeout=10)
    assert refused.value.code == 403
