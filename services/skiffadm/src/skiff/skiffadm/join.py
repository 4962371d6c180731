"""``skiffadm join <host>:<port> --token ... --discovery-token-ca-cert-hash sha256:...``:
kubeadm's token discovery, then the kubelet's bootstrap kubeconfig.

The control plane is not trusted yet, so ``kube-public/cluster-info`` is read over TLS
without verifying the server and without credentials (RBAC lets ``system:anonymous`` get
just that ConfigMap); it is trusted only if the token signed it (its detached JWS) and the
CA it names has one of the pinned public-key hashes. Then ``bootstrap-kubelet.conf``
(that server and CA, the token) and ``pki/ca.crt`` are written, for a kubelet started with
``--bootstrap-kubeconfig`` to get its own certificate (TLS bootstrap).
"""

from __future__ import annotations

import ssl
from pathlib import Path

import httpx
import yaml

from skiff.bootstrap import DiscoveryError, validate_cluster_info

CLUSTER_INFO = "/api/v1/namespaces/kube-public/configmaps/cluster-info"


def fetch_cluster_info(endpoint: str, timeout: float = 10.0) -> dict:  # type: ignore[type-arg]
    """The cluster-info ConfigMap, read anonymously and without trusting the server yet."""
    insecure = ssl.create_default_context()
    insecure.check_hostname = False
    insecure.verify_mode = ssl.CERT_NONE
    url = f"https://{endpoint}{CLUSTER_INFO}"
    try:
        with httpx.Client(verify=insecure, timeout=timeout) as http:
            resp = http.get(url)
    except httpx.HTTPError as e:
        raise DiscoveryError(
            f'failed to request the cluster-info ConfigMap: Get "{url}": {e}'
        ) from None
    if resp.status_code != 200:
        raise DiscoveryError(
            f"failed to request the cluster-info ConfigMap: the server answered "
            f"{resp.status_code}: {resp.text[:200]}"
        )
    return resp.json()


def bootstrap_kubeconfig(server: str, ca_path: Path, token: str) -> str:
    """kubeadm's ``bootstrap-kubelet.conf``: the cluster and the token, nothing else."""
    return yaml.safe_dump(
        {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "kubernetes",
                    "cluster": {"server": server, "certificate-authority": str(ca_path)},
                }
            ],
            "contexts": [
                {
                    "name": "tls-bootstrap-token-user@kubernetes",
                    "context": {"cluster": "kubernetes", "user": "tls-bootstrap-token-user"},
                }
            ],
            "current-context": "tls-bootstrap-token-user@kubernetes",
            "users": [{"name": "tls-bootstrap-token-user", "user": {"token": token}}],
        },
        sort_keys=False,
    )


def join(
    endpoint: str,
    token: str,
    ca_pins: list[str],
    unsafe_skip_ca_verification: bool,
    folder: Path,
) -> tuple[list[str], str]:
    """Discovery and the bootstrap kubeconfig: kubeadm's lines and the trusted server
    (DiscoveryError if the control plane cannot be trusted with this token and these
    pins)."""
    out = ["[preflight] Running pre-flight checks"]
    if not ca_pins and not unsafe_skip_ca_verification:
        raise DiscoveryError(
            'discovery.bootstrapToken: Invalid value: "": using token-based discovery '
            "without caCertHashes can be unsafe. Set unsafeSkipCAVerification as true in "
            "your kubeadm config file or pass --discovery-token-unsafe-skip-ca-verification "
            "flag to continue"
        )
    if unsafe_skip_ca_verification and not ca_pins:
        out.append(
            "[discovery] WARNING: Using token-based discovery without verification of the CA "
            "certificate's public key: a man-in-the-middle could impersonate the control plane"
        )
    cm = fetch_cluster_info(endpoint)
    server, ca_pem = validate_cluster_info(cm, token, ca_pins)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "pki").mkdir(exist_ok=True)
    ca_path = folder / "pki" / "ca.crt"
    ca_path.write_bytes(ca_pem)
    conf = folder / "bootstrap-kubelet.conf"
    conf.touch(mode=0o600)
    conf.write_text(bootstrap_kubeconfig(server, ca_path, token))
    out += [
        "[discovery] Cluster info signature and contents are valid and the CA is trusted: "
        f'"{server}"',
        f'[kubelet-start] Writing the kubelet\'s bootstrap kubeconfig to "{conf}"',
        "[kubelet-start] Start the kubelet with --bootstrap-kubeconfig "
        f"{conf} --kubeconfig {folder / 'kubelet.conf'}: it gets its client certificate "
        "through a CertificateSigningRequest that the control plane approves (TLS bootstrap)",
    ]
    return out, server
