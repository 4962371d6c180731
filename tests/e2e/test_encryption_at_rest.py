"""Secrets encrypted at rest in a real etcd (``--encryption-provider-config``), read back
through the real kubectl, and a key rotation as Kubernetes documents it: a new key added,
moved first, the Secrets rewritten, the old key dropped."""

from __future__ import annotations

import base64
import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from cluster import Cluster, start_cluster

HEADER = "apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\n"


def _config(path: Path, *providers: tuple[str, str, str]) -> None:
    """Providers in order, each ``(kind, key name, secret)``, then identity."""
    entries = "".join(
        f"  - {kind}:\n      keys:\n      - {{name: {n}, secret: '{s}'}}\n"
        for kind, n, s in providers
    )
    path.write_text(
        HEADER
        + "resources:\n- resources: [secrets]\n  providers:\n"
        + entries
        + "  - identity: {}\n"
    )


@pytest.fixture(scope="module")
def keys() -> dict[str, str]:
    return {n: base64.b64encode(os.urandom(32)).decode() for n in ("key1", "key2")}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, keys: dict[str, str]) -> Iterator[Cluster]:
    base = tmp_path_factory.mktemp("encryption")
    _config(base / "encryption.yaml", ("aesgcm", "key1", keys["key1"]))
    c = start_cluster(base, apiservers=0, secure=True)
    c.apiserver_args = [f"--encryption-provider-config={base / 'encryption.yaml'}"]
    try:
        c.start_apiserver()
        yield c
    finally:
        c.stop()


def kubectl(c: Cluster, *args: str, input: str | None = None) -> str:
    out = subprocess.run(
        ["kubectl", "--kubeconfig", str(c.kubeconfig()), *args],
        input=input,
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr
    return out.stdout


def raw(c: Cluster, key: str) -> bytes:
    """The value etcd holds for ``key``, read with the apiserver's etcd certificate."""
    assert c.pki is not None
    out = subprocess.run(
        [
            "etcdctl",
            f"--endpoints=https://127.0.0.1:{c.etcd_port}",
            f"--cacert={c.pki / 'etcd' / 'ca.crt'}",
            f"--cert={c.pki / 'apiserver-etcd-client.crt'}",
            f"--key={c.pki / 'apiserver-etcd-client.key'}",
            "get",
            key,
            "--print-value-only",
        ],
        capture_output=True,
        check=True,
    )
    return out.stdout


def test_secrets_are_encrypted_and_keys_rotate(cluster: Cluster, keys: dict[str, str]) -> None:
    kubectl(cluster, "create", "secret", "generic", "s1", "--from-literal=password=hunter2")
    kubectl(cluster, "create", "configmap", "c1", "--from-literal=password=visible")
    stored = raw(cluster, "/registry/core/secrets/default/s1")
    assert stored.startswith(b"k8s:enc:aesgcm:v1:key1:") and b"hunter2" not in stored
    assert b"aHVudGVyMg" not in stored  # nor its base64
    assert b"visible" in raw(cluster, "/registry/core/configmaps/default/c1")
    got = json.loads(kubectl(cluster, "get", "secret", "s1", "-o", "json"))
    assert base64.b64decode(got["data"]["password"]) == b"hunter2"

    # Rotation to another provider: key2 (secretbox) added first, key1 (aesgcm) still
    # reads, the Secrets rewritten, key1 dropped.
    config = cluster.dir / "encryption.yaml"
    _config(config, ("secretbox", "key2", keys["key2"]), ("aesgcm", "key1", keys["key1"]))
    cluster.apiservers[0].stop()
    cluster.start_apiserver(0)
    assert json.loads(kubectl(cluster, "get", "secret", "s1", "-o", "json"))["data"]
    everything = kubectl(cluster, "get", "secrets", "-A", "-o", "json")
    # (--validate=false: kubectl validates a List against /openapi/v2, not served yet.)
    kubectl(cluster, "replace", "--validate=false", "-f", "-", input=everything)
    assert raw(cluster, "/registry/core/secrets/default/s1").startswith(
        b"k8s:enc:secretbox:v1:key2:"
    )
    _config(config, ("secretbox", "key2", keys["key2"]))
    cluster.apiservers[0].stop()
    cluster.start_apiserver(0)
    got = json.loads(kubectl(cluster, "get", "secret", "s1", "-o", "json"))
    assert base64.b64decode(got["data"]["password"]) == b"hunter2"
