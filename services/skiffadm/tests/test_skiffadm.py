"""skiffadm's offline commands, run as a user runs them (the installed script): the
certificates and kubeconfigs phases, check-expiration's tables, token generate."""

from __future__ import annotations

import datetime as dt
import re
import subprocess
import sys
from pathlib import Path

from skiff.bootstrap import parse_token
from skiff.skiffadm.expiration import residual

SKIFFADM = Path(sys.executable).parent / "skiffadm"


def skiffadm(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(SKIFFADM), *args], capture_output=True, text=True, timeout=120)


def test_certs_kubeconfigs_and_their_expiry(tmp_path: Path) -> None:
    pki, confs = tmp_path / "pki", tmp_path / "kubernetes"
    certs = skiffadm(
        "init", "phase", "certs", "all", "--cert-dir", str(pki), "--node-name", "cp-1",
        "--apiserver-advertise-address", "192.168.50.10",
        "--apiserver-cert-extra-sans", "api.example,10.1.2.3",
    )  # fmt: skip
    assert certs.returncode == 0, certs.stderr
    lines = certs.stdout.splitlines()
    assert lines[0] == f'[certs] Using certificateDir folder "{pki}"'
    assert '[certs] Generating "ca" certificate and key' in lines
    assert (
        "[certs] apiserver serving cert is signed for DNS names and IPs [cp-1, kubernetes, "
        "kubernetes.default, kubernetes.default.svc, kubernetes.default.svc.cluster.local, "
        "10.96.0.1, 192.168.50.10, api.example, 10.1.2.3]"
    ) in lines
    confs_run = skiffadm(
        "init", "phase", "kubeconfig", "all", "--cert-dir", str(pki),
        "--kubeconfig-dir", str(confs), "--node-name", "cp-1",
    )  # fmt: skip
    assert confs_run.returncode == 0, confs_run.stderr
    assert '[kubeconfig] Writing "admin.conf" kubeconfig file' in confs_run.stdout
    (pki / "front-proxy-client.crt").unlink()
    check = skiffadm(
        "certs", "check-expiration", "--cert-dir", str(pki), "--kubeconfig-dir", str(confs),
        "--node-name", "cp-1",
    )  # fmt: skip
    assert check.returncode == 0, check.stderr
    out = check.stdout.splitlines()
    assert re.split(r"\s{2,}", out[0]) == [
        "CERTIFICATE", "EXPIRES", "RESIDUAL TIME", "CERTIFICATE AUTHORITY", "EXTERNALLY MANAGED",
    ]  # fmt: skip
    rows = {re.split(r"\s{2,}", line)[0]: re.split(r"\s{2,}", line) for line in out[1:] if line}
    assert rows["admin.conf"][2:] == ["364d", "ca", "no"]
    assert rows["apiserver-etcd-client"][2:] == ["364d", "etcd/ca", "no"]
    assert rows["front-proxy-client"][1] == "<missing>"
    assert rows["etcd/ca"][2:] == ["9y", "no"]
    assert {"ca", "front-proxy-ca", "etcd/ca"} <= rows.keys()


def test_token_generate_and_bad_input() -> None:
    out = skiffadm("token", "generate")
    assert out.returncode == 0 and parse_token(out.stdout.strip())
    bad = skiffadm("certs", "check-expiration", "--oops")
    assert bad.returncode == 2 and "unrecognized arguments: --oops" in bad.stderr


def test_residual_time_as_kubeadm_prints_it() -> None:
    now = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    assert residual(now + dt.timedelta(days=3650), now) == "10y"
    assert residual(now + dt.timedelta(days=364, hours=23), now) == "364d"
    assert residual(now + dt.timedelta(hours=5, minutes=3), now) == "5h"
    assert residual(now + dt.timedelta(minutes=7), now) == "7m"
    assert residual(now - dt.timedelta(seconds=1), now) == "<invalid>"


def test_kubeconfig_user_prints_a_client_certificate_kubeconfig(tmp_path: Path) -> None:
    import base64

    import yaml
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    pki = tmp_path / "pki"
    assert skiffadm("init", "phase", "certs", "all", "--cert-dir", str(pki)).returncode == 0
    out = skiffadm(
        "kubeconfig", "user", "--client-name", "jane", "--org", "dev", "--org", "qa",
        "--cert-dir", str(pki), "--control-plane-endpoint", "10.0.0.1:6443",
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    doc = yaml.safe_load(out.stdout)
    assert doc["clusters"][0]["cluster"]["server"] == "https://10.0.0.1:6443"
    assert base64.b64decode(doc["clusters"][0]["cluster"]["certificate-authority-data"]) == (
        (pki / "ca.crt").read_bytes()
    )
    cert = x509.load_pem_x509_certificate(
        base64.b64decode(doc["users"][0]["user"]["client-certificate-data"])
    )
    subject = cert.subject
    assert [a.value for a in subject.get_attributes_for_oid(NameOID.COMMON_NAME)] == ["jane"]
    assert [a.value for a in subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)] == [
        "dev",
        "qa",
    ]
    missing = skiffadm("kubeconfig", "user", "--client-name", "x", "--cert-dir", str(tmp_path))
    assert missing.returncode == 1 and missing.stderr.startswith("error execution phase:")


def test_certs_renew_issues_the_same_identities_again(tmp_path: Path) -> None:
    import base64

    import yaml
    from cryptography import x509

    pki, confs = tmp_path / "pki", tmp_path / "kubernetes"
    made = skiffadm("init", "phase", "certs", "all", "--cert-dir", str(pki), "--node-name",
                    "cp-1", "--apiserver-cert-extra-sans", "api.example")  # fmt: skip
    assert made.returncode == 0
    made = skiffadm("init", "phase", "kubeconfig", "all", "--cert-dir", str(pki),
                    "--kubeconfig-dir", str(confs), "--node-name", "cp-1")  # fmt: skip
    assert made.returncode == 0

    def load(path: Path) -> x509.Certificate:
        return x509.load_pem_x509_certificate(path.read_bytes())

    def admin() -> x509.Certificate:
        user = yaml.safe_load((confs / "admin.conf").read_text())["users"][0]["user"]
        return x509.load_pem_x509_certificate(base64.b64decode(user["client-certificate-data"]))

    before, before_key = load(pki / "apiserver.crt"), (pki / "apiserver.key").read_bytes()
    before_admin = admin()
    out = skiffadm("certs", "renew", "all", "--cert-dir", str(pki),
                   "--kubeconfig-dir", str(confs))  # fmt: skip
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert "certificate for serving the Kubernetes API renewed" in lines
    assert "certificate embedded in the kubeconfig file for the admin to use and for kubeadm " \
        "itself renewed" in lines  # fmt: skip
    assert lines[-1].startswith("Done renewing certificates. You must restart")
    after = load(pki / "apiserver.crt")
    assert after.serial_number != before.serial_number
    assert (pki / "apiserver.key").read_bytes() != before_key
    assert after.subject == before.subject
    san = x509.SubjectAlternativeName
    assert after.extensions.get_extension_for_class(san).value == (
        before.extensions.get_extension_for_class(san).value
    )
    after.verify_directly_issued_by(load(pki / "ca.crt"))
    assert admin().subject == before_admin.subject
    assert admin().serial_number != before_admin.serial_number
    one = skiffadm("certs", "renew", "etcd-server", "--cert-dir", str(pki))
    assert one.stdout.strip() == "certificate for serving etcd renewed"
    (pki / "front-proxy-client.crt").unlink()
    missing = skiffadm("certs", "renew", "front-proxy-client", "--cert-dir", str(pki))
    assert missing.returncode == 1
    assert "front-proxy-client: cannot read" in missing.stderr


def test_static_pod_manifests_of_the_control_plane(tmp_path: Path) -> None:
    import yaml

    out = skiffadm("init", "phase", "etcd", "local", "--manifests-dir", str(tmp_path / "m"),
                   "--kubeconfig-dir", str(tmp_path), "--cert-dir", str(tmp_path / "pki"),
                   "--node-name", "cp-1", "--etcd-port", "12379")  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[1:] == [
        '[control-plane] Creating static Pod manifest for "etcd"',
        '[control-plane] Creating static Pod manifest for "nats"',
    ]
    assert "verify_and_map" in (tmp_path / "nats.conf").read_text()
    out = skiffadm("init", "phase", "control-plane", "all", "--manifests-dir",
                   str(tmp_path / "m"), "--kubeconfig-dir", str(tmp_path), "--cert-dir",
                   str(tmp_path / "pki"), "--node-name", "cp-1", "--etcd-port", "12379",
                   "--image-tag", "v1")  # fmt: skip
    assert out.returncode == 0, out.stderr
    pods = {p.stem: yaml.safe_load(p.read_text()) for p in (tmp_path / "m").glob("*.yaml")}
    assert sorted(pods) == [
        "etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "nats",
    ]  # fmt: skip
    for name, pod in pods.items():
        labels = {"component": name, "tier": "control-plane"}
        assert pod["metadata"] == {"name": name, "namespace": "kube-system", "labels": labels}
        spec = pod["spec"]
        assert spec["hostNetwork"] and spec["priorityClassName"] == "system-node-critical"
        (c,) = spec["containers"]
        assert c["imagePullPolicy"] == "Never"
        mounts = {m["mountPath"] for m in c["volumeMounts"]}
        assert mounts == {v["hostPath"]["path"] for v in spec["volumes"]}  # same paths inside
    api = pods["kube-apiserver"]["spec"]["containers"][0]
    assert api["image"] == "skiff/apiserver:v1"
    assert "--etcd-servers=https://127.0.0.1:12379" in api["args"]
    assert "--authorization-mode=Node,RBAC" in api["args"]
    env = {e["name"]: e["value"] for e in pods["etcd"]["spec"]["containers"][0]["env"]}
    assert env["ETCD_CLIENT_CERT_AUTH"] == "true"
    assert env["ETCD_LISTEN_CLIENT_URLS"] == "https://127.0.0.1:12379"


def test_init_refuses_unknown_phases_and_failed_preflight(tmp_path: Path) -> None:
    bad = skiffadm("init", "--skip-phases", "bogus", "--cert-dir", str(tmp_path / "pki"))
    assert bad.returncode == 1
    assert "unknown phases ['bogus']; the phases: preflight, certs" in bad.stderr
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "etcd.yaml").write_text("{}")
    where = ["--manifests-dir", str(tmp_path / "m"), "--cert-dir", str(tmp_path / "pki"),
             "--kubeconfig-dir", str(tmp_path), "--etcd-data-dir", str(tmp_path / "e")]  # fmt: skip
    failed = skiffadm("init", *where)
    assert failed.returncode == 1
    assert f"[ERROR FileAvailable-{str(tmp_path).replace('/', '-')}-m-etcd.yaml]" in failed.stdout
    assert "error execution phase: preflight checks failed" in failed.stderr
    assert not (tmp_path / "pki").exists()  # nothing written after a failed preflight


def test_init_reads_kubeadms_configuration_file(tmp_path: Path) -> None:
    import yaml
    from cryptography import x509

    config = tmp_path / "kubeadm.yaml"
    config.write_text(f"""\
apiVersion: kubeadm.k8s.io/v1beta4
kind: InitConfiguration
localAPIEndpoint: {{advertiseAddress: 127.0.0.1, bindPort: 16443}}
nodeRegistration: {{name: cfg-node, ignorePreflightErrors: [all]}}
skipPhases: [preflight, kubelet-start, wait-control-plane, upload-config, mark-control-plane,
  bootstrap-token, addon]
---
apiVersion: kubeadm.k8s.io/v1beta4
kind: ClusterConfiguration
certificatesDir: {tmp_path / "pki"}
networking: {{serviceSubnet: 10.112.0.0/12, podSubnet: 10.200.0.0/16}}
apiServer: {{certSANs: [api.example.test]}}
imageRepository: registry.local/skiff
etcd: {{local: {{dataDir: {tmp_path / "etcd"}}}}}
""")
    out = skiffadm("init", "--config", str(config), "--kubeconfig-dir", str(tmp_path),
                   "--manifests-dir", str(tmp_path / "m"))  # fmt: skip
    assert out.returncode == 0, out.stderr
    api = yaml.safe_load((tmp_path / "m" / "kube-apiserver.yaml").read_text())["spec"]
    args = api["containers"][0]["args"]
    assert "--secure-port=16443" in args and "--service-cluster-ip-range=10.112.0.0/12" in args
    assert api["containers"][0]["image"] == "registry.local/skiff/apiserver:dev"
    cm = yaml.safe_load((tmp_path / "m" / "kube-controller-manager.yaml").read_text())
    assert "--cluster-cidr=10.200.0.0/16" in cm["spec"]["containers"][0]["args"]
    cert = x509.load_pem_x509_certificate((tmp_path / "pki" / "apiserver.crt").read_bytes())
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert {"cfg-node", "api.example.test"} <= set(sans.get_values_for_type(x509.DNSName))
    assert "10.112.0.1" in {str(ip) for ip in sans.get_values_for_type(x509.IPAddress)}
    conf = yaml.safe_load((tmp_path / "admin.conf").read_text())
    assert conf["clusters"][0]["cluster"]["server"] == "https://127.0.0.1:16443"
    # A flag given on the command line wins; an unknown field is refused.
    assert skiffadm("init", "--config", str(config), "--kubeconfig-dir", str(tmp_path),
                    "--manifests-dir", str(tmp_path / "m2"),
                    "--apiserver-bind-port", "17443").returncode == 0  # fmt: skip
    api2 = (tmp_path / "m2" / "kube-apiserver.yaml").read_text()
    assert "--secure-port=17443" in api2
    config.write_text(config.read_text() + "bogus: 1\n")
    bad = skiffadm("init", "--config", str(config))
    assert bad.returncode == 1
    assert 'strict decoding error: unknown field "bogus" in ClusterConfiguration' in bad.stderr


def test_addon_manifests_fit_the_cluster() -> None:
    """kube-proxy and the DNS from deploy/, adjusted: the kube-proxy ConfigMap names the
    control plane and the pod range reaches the proxy; the kube-dns Service sits on the
    Service range's tenth address (what the kubelets get as --cluster-dns)."""
    from skiff.skiffadm.addon import (
        DEFAULT_DIR,
        dns_address,
        dns_objects,
        network_objects,
        proxy_objects,
    )
    from skiff.skiffadm.init import _addons

    assert dns_address("10.96.0.0/12") == "10.96.0.10"
    assert dns_address("10.112.0.0/16") == "10.112.0.10"
    proxy = proxy_objects(DEFAULT_DIR, "https://10.0.0.5:6443", "10.200.0.0/16")
    assert (
        proxy[0]["kind"] == "ConfigMap"
        and "https://10.0.0.5:6443" in (proxy[0]["data"]["kubeconfig.conf"])
    )
    (ds,) = [o for o in proxy if o["kind"] == "DaemonSet"]
    args = ds["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args.count("--cluster-cidr=10.200.0.0/16") == 1
    dns = dns_objects(DEFAULT_DIR, "10.112.0.10", "192.0.2.53")
    assert dns[0]["data"] == {"upstream": "192.0.2.53"}
    (svc,) = [o for o in dns if o["kind"] == "Service"]
    assert svc["spec"]["clusterIP"] == "10.112.0.10"
    assert {o["kind"] for o in dns} >= {"Deployment", "ServiceAccount", "ClusterRoleBinding"}
    # The network add-on writes the CNI configuration where the kubelets read it, keeps its
    # allocations under the CNI data folder, with this cluster's bridge and pod range.
    net = network_objects(DEFAULT_DIR, pod_subnet="10.200.0.0/16", bridge="br9",
                          cni_conf_dir=Path("/x/net.d"), cni_data_dir=Path("/x/data"))  # fmt: skip
    (ds,) = [o for o in net if o["kind"] == "DaemonSet"]
    pod = ds["spec"]["template"]["spec"]
    args = pod["containers"][0]["args"]
    for flag in ("--cni-conf-dir=/x/net.d", "--cni-ipam-dir=/x/data/networks", "--bridge=br9",
                 "--cluster-cidr=10.200.0.0/16"):  # fmt: skip
        assert args.count(flag) == 1, args
    mounts = {m["name"]: m["mountPath"] for m in pod["containers"][0]["volumeMounts"]}
    hosts = {v["name"]: v.get("hostPath", {}).get("path") for v in pod["volumes"]}
    assert mounts["cni-conf"] == hosts["cni-conf"] == "/x/net.d"
    assert mounts["cni-data"] == hosts["cni-data"] == "/x/data"
    # --skip-phases as kubeadm's: the whole phase or one add-on.
    assert _addons([]) == ["kube-proxy", "dns", "network"]
    assert _addons(["addon"]) == []
    assert _addons(["addon/kube-proxy", "addon/network"]) == ["dns"]
    assert _addons(["addon/coredns"]) == ["kube-proxy", "network"]
    missing = skiffadm("init", "phase", "addon", "all", "--addons-dir", "/nonexistent",
                       "--kubeconfig", "/nonexistent/admin.conf")  # fmt: skip
    assert missing.returncode == 1 and "error execution phase" in missing.stderr


def test_the_kubelets_configuration_for_joining_nodes() -> None:
    """kubeadm's kubelet-config ConfigMap and the RBAC that lets nodes and bootstrap-token
    holders read just that one."""
    import yaml

    from skiff.skiffadm.kubeletconfig import objects

    cm, role, binding = objects("10.112.0.10")
    config = yaml.safe_load(cm["data"]["kubelet"])
    assert (cm["metadata"]["namespace"], cm["metadata"]["name"]) == (
        "kube-system",
        "kubelet-config",
    )
    assert config["kind"] == "KubeletConfiguration" and config["clusterDNS"] == ["10.112.0.10"]
    assert role["rules"] == [{"apiGroups": [""], "resources": ["configmaps"],
                              "resourceNames": ["kubelet-config"], "verbs": ["get"]}]  # fmt: skip
    assert {s["name"] for s in binding["subjects"]} == {
        "system:nodes",
        "system:bootstrappers:kubeadm:default-node-token",
    }
