"""Pod volumes: emptyDir, hostPath, configMap, secret, downward API, projected; mounts."""

from __future__ import annotations

import base64
import os
import socket
import stat
import subprocess
from pathlib import Path
from typing import Any

import pytest

from skiff.api.errors import ApiError, Reason, not_found
from skiff.cri.client import pb
from skiff.kubelet.tokens import TokenManager
from skiff.kubelet.volumes import (
    CONFIGMAP,
    DOWNWARD_API,
    EMPTY_DIR,
    PROJECTED,
    SECRET,
    VolumeError,
    VolumeManager,
)

UID = "uid-1"


class Objects:
    """A dict-backed lookup, counting calls."""

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str, str], dict[str, Any]] = {}
        self.calls = 0

    def put(self, kind: str, name: str, obj: dict[str, Any], ns: str = "ns") -> None:
        self.objects[(kind, ns, name)] = obj

    async def __call__(self, kind: str, ns: str, name: str) -> dict[str, Any]:
        self.calls += 1
        try:
            return self.objects[(kind, ns, name)]
        except KeyError:
            raise not_found(kind, name) from None


def b64(s: str) -> str:
    return base64.b64encode(s.encode()).decode()


def make_pod(volumes: list[dict[str, Any]], **meta: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": "p", "namespace": "ns", "uid": UID, **meta},
        "spec": {
            "containers": [
                {"name": "c", "resources": {"limits": {"memory": "64Mi", "cpu": "250m"}}}
            ],
            "volumes": volumes,
        },
    }


@pytest.fixture
def objects() -> Objects:
    return Objects()


@pytest.fixture
def vm(tmp_path: Path, objects: Objects) -> VolumeManager:
    return VolumeManager(tmp_path / "kubelet", objects)


def mode(path: Path | str) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def mount_lines(path: Path | str) -> list[str]:
    with open("/proc/self/mounts") as f:
        return [line for line in f if line.split()[1] == str(path)]


def mounted(path: Path | str) -> bool:
    return bool(mount_lines(path))


def lexists(path: Path | str) -> bool:
    return os.path.lexists(path)


def force_umount(path: Path) -> None:
    if mounted(path):
        subprocess.run(["umount", "-l", str(path)], check=False)


async def test_empty_dir_and_teardown(vm: VolumeManager) -> None:
    paths = await vm.setup(make_pod([{"name": "scratch", "emptyDir": {}}]))
    path = vm.root / "pods" / UID / "volumes" / EMPTY_DIR / "scratch"
    assert paths == {"scratch": str(path)}
    assert path.is_dir() and mode(path) == 0o777
    (path / "f").write_text("kept")
    assert await vm.setup(make_pod([{"name": "scratch", "emptyDir": {}}])) == paths
    assert (path / "f").read_text() == "kept"
    assert vm.known_pods() == {UID}
    await vm.teardown(UID)
    assert not (vm.root / "pods" / UID).exists()
    assert vm.known_pods() == set()
    await vm.teardown(UID)  # idempotent


def can_mount() -> bool:
    return os.geteuid() == 0 and os.path.exists("/proc/self/mounts")


@pytest.mark.skipif(not can_mount(), reason="mounting tmpfs needs root")
async def test_empty_dir_memory_is_a_tmpfs(vm: VolumeManager) -> None:
    pod = make_pod([{"name": "mem", "emptyDir": {"medium": "Memory", "sizeLimit": "1Mi"}}])
    path = vm.root / "pods" / UID / "volumes" / EMPTY_DIR / "mem"
    try:
        paths = await vm.setup(pod)
        assert paths["mem"] == str(path)
        assert mounted(path)
        lines = mount_lines(path)
        assert len(lines) == 1 and lines[0].split()[2] == "tmpfs" and "size=1024k" in lines[0]
        await vm.setup(pod)  # mounted only once
        assert len(mount_lines(path)) == 1
        await vm.teardown(UID)
        assert not mounted(path)
        assert not (vm.root / "pods" / UID).exists()
    finally:
        force_umount(path)


async def test_empty_dir_unsupported_medium(vm: VolumeManager) -> None:
    with pytest.raises(VolumeError, match="medium HugePages is not supported"):
        await vm.setup(make_pod([{"name": "h", "emptyDir": {"medium": "HugePages"}}]))


async def test_host_path_types(vm: VolumeManager, tmp_path: Path) -> None:
    host = tmp_path / "host"

    async def setup(path: Path | str, kind: str = "") -> dict[str, str]:
        source = {"path": str(path), **({"type": kind} if kind else {})}
        return await vm.setup(make_pod([{"name": "h", "hostPath": source}]))

    # No type: nothing is checked or created.
    assert await setup(host / "any") == {"h": str(host / "any")}
    assert not (host / "any").exists()
    # DirectoryOrCreate makes the directory (and its parents), 0755.
    d = host / "a" / "b"
    assert await setup(d, "DirectoryOrCreate") == {"h": str(d)}
    assert d.is_dir() and mode(d) == 0o755
    await setup(d, "Directory")
    # FileOrCreate makes an empty file.
    f = host / "a" / "file"
    await setup(f, "FileOrCreate")
    assert f.is_file() and f.read_bytes() == b""
    await setup(f, "File")
    msg = 'MountVolume.SetUp failed for volume "h" : hostPath type check failed: {} is not {}'
    with pytest.raises(VolumeError) as e:
        await setup(f, "Directory")
    assert str(e.value) == msg.format(f, "a directory")
    with pytest.raises(VolumeError) as e:
        await setup(d, "File")
    assert str(e.value) == msg.format(d, "a file")
    with pytest.raises(VolumeError) as e:
        await setup(f, "DirectoryOrCreate")
    assert str(e.value) == msg.format(f, "a directory")
    with pytest.raises(VolumeError) as e:
        await setup(host / "missing", "Directory")
    assert str(e.value) == msg.format(host / "missing", "a directory")
    with pytest.raises(VolumeError) as e:
        await setup(f, "Socket")
    assert str(e.value) == msg.format(f, "a socket file")
    with pytest.raises(VolumeError, match="is not a block device"):
        await setup(f, "BlockDevice")
    await setup("/dev/null", "CharDevice")
    with pytest.raises(VolumeError, match="is not a character device"):
        await setup(f, "CharDevice")
    sock_path = tmp_path / "s.sock"
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(sock_path))
        await setup(sock_path, "Socket")
    with pytest.raises(VolumeError, match="Weird is an invalid volume type"):
        await setup(d, "Weird")


def visible(path: Path) -> dict[str, bytes]:
    """The files as a container sees them (through the key links)."""
    out = {}
    for dirpath, _dirs, names in os.walk(path, followlinks=True):
        rel_dir = os.path.relpath(dirpath, path)
        if rel_dir.split(os.sep)[0].startswith(".."):
            continue
        for name in names:
            if name.startswith(".."):
                continue
            rel = os.path.normpath(os.path.join(rel_dir, name))
            out[rel] = Path(dirpath, name).read_bytes()
    return out


async def test_config_map_all_keys_atomic_layout(vm: VolumeManager, objects: Objects) -> None:
    objects.put("configmaps", "cfg", {"data": {"a.conf": "A", "b": "B"}, "binaryData": {}})
    objects.put("configmaps", "bin", {"binaryData": {"blob": base64.b64encode(b"\0\1").decode()}})
    pod = make_pod(
        [
            {"name": "cfg", "configMap": {"name": "cfg"}},
            {"name": "bin", "configMap": {"name": "bin", "defaultMode": 0o600}},
        ]
    )
    paths = await vm.setup(pod)
    path = vm.root / "pods" / UID / "volumes" / CONFIGMAP / "cfg"
    assert paths["cfg"] == str(path)
    assert visible(path) == {"a.conf": b"A", "b": b"B"}
    data = os.readlink(path / "..data")
    assert data.startswith("..20") and (path / data).is_dir()
    assert os.readlink(path / "a.conf") == "..data/a.conf"
    assert sorted(os.listdir(path)) == sorted(["..data", data, "a.conf", "b"])
    assert mode(path / "a.conf") == 0o644
    assert visible(Path(paths["bin"])) == {"blob": b"\0\1"}
    assert mode(Path(paths["bin"]) / "blob") == 0o600


async def test_config_map_items_modes_optional(vm: VolumeManager, objects: Objects) -> None:
    objects.put("configmaps", "cfg", {"data": {"a": "A", "b": "B", "c": "C"}})
    pod = make_pod(
        [
            {
                "name": "cfg",
                "configMap": {
                    "name": "cfg",
                    "defaultMode": 0o640,
                    "items": [
                        {"key": "a", "path": "dir/x.txt", "mode": 0o400},
                        {"key": "b", "path": "y"},
                    ],
                },
            },
            {"name": "opt", "configMap": {"name": "nope", "optional": True}},
            {
                "name": "optkey",
                "configMap": {
                    "name": "cfg",
                    "optional": True,
                    "items": [{"key": "z", "path": "z"}],
                },
            },
        ]
    )
    paths = await vm.setup(pod)
    path = Path(paths["cfg"])
    assert visible(path) == {"dir/x.txt": b"A", "y": b"B"}
    assert os.readlink(path / "dir") == "..data/dir"
    assert mode(path / "dir" / "x.txt") == 0o400
    assert mode(path / "y") == 0o640
    assert visible(Path(paths["opt"])) == {}
    assert lexists(Path(paths["opt"]) / "..data")
    assert visible(Path(paths["optkey"])) == {}


async def test_config_map_missing(vm: VolumeManager, objects: Objects) -> None:
    with pytest.raises(VolumeError) as e:
        await vm.setup(make_pod([{"name": "cfg", "configMap": {"name": "cfg"}}]))
    assert str(e.value) == 'MountVolume.SetUp failed for volume "cfg" : configmap "cfg" not found'
    objects.put("configmaps", "cfg", {"data": {"a": "A"}})
    pod = make_pod(
        [{"name": "cfg", "configMap": {"name": "cfg", "items": [{"key": "b", "path": "b"}]}}]
    )
    with pytest.raises(VolumeError, match="configmap references non-existent config key: b"):
        await vm.setup(pod)


async def test_other_api_errors_pass_through(vm: VolumeManager) -> None:
    async def broken(kind: str, ns: str, name: str) -> dict[str, Any]:
        raise ApiError(500, Reason.INTERNAL_ERROR, "boom")

    other = VolumeManager(vm.root, broken)
    with pytest.raises(ApiError):
        await other.setup(make_pod([{"name": "cfg", "configMap": {"name": "cfg"}}]))


async def test_invalid_paths_are_refused(vm: VolumeManager, objects: Objects) -> None:
    objects.put("configmaps", "cfg", {"data": {"a": "A"}})
    for bad in ("../x", "/abs", "..x/y", "a/../../b"):
        items = [{"key": "a", "path": bad}]
        pod = make_pod([{"name": "cfg", "configMap": {"name": "cfg", "items": items}}])
        with pytest.raises(VolumeError, match="invalid path"):
            await vm.setup(pod)


async def test_secret_base64(vm: VolumeManager, objects: Objects) -> None:
    objects.put("secrets", "sec", {"data": {"token": b64("s3cr3t"), "raw": b64("\0x")}})
    pod = make_pod([{"name": "s", "secret": {"secretName": "sec", "defaultMode": 0o400}}])
    paths = await vm.setup(pod)
    assert paths["s"] == str(vm.root / "pods" / UID / "volumes" / SECRET / "s")
    assert visible(Path(paths["s"])) == {"token": b"s3cr3t", "raw": b"\0x"}
    assert mode(Path(paths["s"]) / "token") == 0o400
    with pytest.raises(VolumeError) as e:
        await vm.setup(make_pod([{"name": "s", "secret": {"secretName": "other"}}]))
    assert str(e.value) == 'MountVolume.SetUp failed for volume "s" : secret "other" not found'


async def test_config_map_update_is_atomic(vm: VolumeManager, objects: Objects) -> None:
    objects.put("configmaps", "cfg", {"data": {"a": "one", "gone": "soon"}})
    pod = make_pod([{"name": "cfg", "configMap": {"name": "cfg"}}])
    path = Path((await vm.setup(pod))["cfg"])
    first = os.readlink(path / "..data")
    # A container that opened the old directory, and one that reads the key link.
    old_file = path / first / "a"
    fd = os.open(path / "a", os.O_RDONLY)
    try:
        # Unchanged: nothing is rewritten.
        await vm.setup(pod)
        assert os.readlink(path / "..data") == first
        objects.put("configmaps", "cfg", {"data": {"a": "two", "new": "n"}})
        await vm.setup(pod)
        second = os.readlink(path / "..data")
        assert second != first
        assert (path / "a").read_text() == "two"  # the same link path, new content
        assert visible(path) == {"a": b"two", "new": b"n"}
        assert not lexists(path / "gone")  # stale key link removed
        assert not old_file.exists()  # old directory removed
        assert os.read(fd, 10) == b"one"  # an open file keeps its old content
        assert sorted(os.listdir(path)) == sorted(["..data", second, "a", "new"])
    finally:
        os.close(fd)


async def test_downward_api(vm: VolumeManager) -> None:
    pod = make_pod(
        [
            {
                "name": "info",
                "downwardAPI": {
                    "items": [
                        {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}},
                        {"path": "annotations", "fieldRef": {"fieldPath": "metadata.annotations"}},
                        {"path": "name", "fieldRef": {"fieldPath": "metadata.name"}},
                        {"path": "ns", "fieldRef": {"fieldPath": "metadata.namespace"}},
                        {"path": "uid", "fieldRef": {"fieldPath": "metadata.uid"}, "mode": 0o400},
                        {"path": "app", "fieldRef": {"fieldPath": "metadata.labels['app']"}},
                        {
                            "path": "mem",
                            "resourceFieldRef": {
                                "containerName": "c",
                                "resource": "limits.memory",
                                "divisor": "1Mi",
                            },
                        },
                        {
                            "path": "cpu",
                            "resourceFieldRef": {
                                "containerName": "c",
                                "resource": "limits.cpu",
                                "divisor": "1m",
                            },
                        },
                    ]
                },
            }
        ],
        labels={"app": "web", "tier": "front"},
        annotations={"note": 'say "hi"\nbye', "a": "1"},
    )
    paths = await vm.setup(pod)
    path = Path(paths["info"])
    assert path == vm.root / "pods" / UID / "volumes" / DOWNWARD_API / "info"
    assert visible(path) == {
        "labels": b'app="web"\ntier="front"',
        "annotations": b'a="1"\nnote="say \\"hi\\"\\nbye"',
        "name": b"p",
        "ns": b"ns",
        "uid": UID.encode(),
        "app": b"web",
        "mem": b"64",
        "cpu": b"250",
    }
    assert mode(path / "uid") == 0o400 and mode(path / "name") == 0o644
    # Changed labels are written again.
    pod["metadata"]["labels"] = {"app": "api"}
    await vm.setup(pod)
    assert (path / "labels").read_bytes() == b'app="api"'
    assert (path / "app").read_bytes() == b"api"


async def test_projected_mix(tmp_path: Path, objects: Objects) -> None:
    requests: list[tuple[str, str, dict]] = []  # type: ignore[type-arg]

    async def request(namespace: str, account: str, body: dict) -> dict:  # type: ignore[type-arg]
        requests.append((namespace, account, body))
        return {"status": {"token": f"token-{len(requests)}", "expirationTimestamp": None}}

    vm = VolumeManager(tmp_path / "kubelet", objects, tokens=TokenManager(request))
    objects.put("configmaps", "kube-root-ca.crt", {"data": {"ca.crt": "CA"}})
    objects.put("secrets", "sec", {"data": {"k": b64("v"), "other": b64("o")}})
    pod = make_pod(
        [
            {
                "name": "kube-api-access",
                "projected": {
                    "defaultMode": 0o600,
                    "sources": [
                        {"serviceAccountToken": {"path": "token", "expirationSeconds": 3607}},
                        {"configMap": {"name": "kube-root-ca.crt"}},
                        {"secret": {"name": "sec", "items": [{"key": "k", "path": "s/k"}]}},
                        {"secret": {"name": "missing", "optional": True}},
                        {
                            "downwardAPI": {
                                "items": [
                                    {
                                        "path": "namespace",
                                        "fieldRef": {"fieldPath": "metadata.namespace"},
                                        "mode": 0o444,
                                    }
                                ]
                            }
                        },
                        {"clusterTrustBundle": {"path": "bundle", "signerName": "x"}},
                    ],
                },
            }
        ]
    )
    paths = await vm.setup(pod)
    path = Path(paths["kube-api-access"])
    assert path == vm.root / "pods" / UID / "volumes" / PROJECTED / "kube-api-access"
    assert visible(path) == {
        "token": b"token-1",
        "ca.crt": b"CA",
        "s/k": b"v",
        "namespace": b"ns",
    }
    assert mode(path / "ca.crt") == 0o600 and mode(path / "namespace") == 0o444
    # The token is the pod's account's, bound to the pod; cached until it ages.
    ((namespace, account, body),) = requests
    assert (namespace, account) == ("ns", "default")
    assert body["spec"]["expirationSeconds"] == 3607
    assert body["spec"]["boundObjectRef"] == {
        "apiVersion": "v1",
        "kind": "Pod",
        "name": pod["metadata"]["name"],
        "uid": UID,
    }
    await vm.setup(pod)
    assert len(requests) == 1
    pod["spec"]["volumes"][0]["projected"]["sources"].append({"configMap": {"name": "nope"}})
    with pytest.raises(VolumeError) as e:
        await vm.setup(pod)
    assert str(e.value) == (
        'MountVolume.SetUp failed for volume "kube-api-access" : configmap "nope" not found'
    )


async def test_persistent_volume_claims(
    vm: VolumeManager, objects: Objects, tmp_path: Path
) -> None:
    volume = {"name": "data", "persistentVolumeClaim": {"claimName": "pvc"}}
    with pytest.raises(VolumeError, match='persistentvolumeclaim "pvc" not found'):
        await vm.setup(make_pod([volume]))
    objects.put("persistentvolumeclaims", "pvc", {"spec": {}, "status": {"phase": "Pending"}})
    with pytest.raises(VolumeError, match='persistentvolumeclaim "pvc" is not bound'):
        await vm.setup(make_pod([volume]))
    claim = {"spec": {"volumeName": "pv-1"}, "status": {"phase": "Bound"}}
    objects.put("persistentvolumeclaims", "pvc", claim)
    where = tmp_path / "pv" / "pv-1"
    objects.put("persistentvolumes", "pv-1", {"spec": {"hostPath": {"path": str(where)}}}, ns="")
    paths = await vm.setup(make_pod([volume]))
    assert paths["data"] == str(where) and where.is_dir()  # DirectoryOrCreate
    pod = make_pod([{**volume, "persistentVolumeClaim": {"claimName": "pvc", "readOnly": True}}])
    container = {"name": "c", "volumeMounts": [{"name": "data", "mountPath": "/data"}]}
    (mount,) = vm.mounts(pod, container, paths)
    assert mount.host_path == str(where) and mount.readonly
    objects.put("persistentvolumes", "pv-1", {"spec": {"nfs": {"path": "/"}}}, ns="")
    with pytest.raises(VolumeError, match="is not supported yet"):
        await vm.setup(make_pod([volume]))


async def test_unsupported_volume_types(vm: VolumeManager) -> None:
    for volume in (
        {"name": "data", "csi": {"driver": "x"}},
        {"name": "data", "nfs": {"server": "s", "path": "/"}},
    ):
        kind = next(k for k in volume if k != "name")
        with pytest.raises(VolumeError) as e:
            await vm.setup(make_pod([volume]))
        assert str(e.value) == (
            f'MountVolume.SetUp failed for volume "data" : volume type {kind} is not supported yet'
        )


async def test_mounts(vm: VolumeManager, objects: Objects, tmp_path: Path) -> None:
    objects.put("configmaps", "cfg", {"data": {"app.conf": "x"}})
    host = tmp_path / "host"
    host.mkdir()
    pod = make_pod(
        [
            {"name": "scratch", "emptyDir": {}},
            {"name": "cfg", "configMap": {"name": "cfg"}},
            {"name": "h", "hostPath": {"path": str(host)}},
        ]
    )
    container = {
        "name": "c",
        "env": [
            {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            {"name": "SUB", "value": "logs"},
        ],
        "volumeMounts": [
            {"name": "scratch", "mountPath": "/scratch"},
            {"name": "scratch", "mountPath": "/cache", "subPath": "cache/inner"},
            {"name": "cfg", "mountPath": "/etc/app"},
            {"name": "cfg", "mountPath": "/etc/app.conf", "subPath": "app.conf"},
            {"name": "h", "mountPath": "/host", "readOnly": True},
            {
                "name": "h",
                "mountPath": "/per-pod",
                "subPathExpr": "$(SUB)/$(POD)",
                "mountPropagation": "HostToContainer",
            },
        ],
    }
    paths = await vm.setup(pod)
    mounts = vm.mounts(pod, container, paths)
    scratch, cfg = Path(paths["scratch"]), Path(paths["cfg"])
    assert mounts == [
        pb.Mount(container_path="/scratch", host_path=str(scratch)),
        pb.Mount(container_path="/cache", host_path=str(scratch / "cache" / "inner")),
        pb.Mount(container_path="/etc/app", host_path=str(cfg), readonly=True),
        pb.Mount(container_path="/etc/app.conf", host_path=str(cfg / "app.conf"), readonly=True),
        pb.Mount(container_path="/host", host_path=str(host), readonly=True),
        pb.Mount(
            container_path="/per-pod",
            host_path=str(host / "logs" / "p"),
            propagation=pb.PROPAGATION_HOST_TO_CONTAINER,
        ),
    ]
    assert (scratch / "cache" / "inner").is_dir() and mode(scratch / "cache" / "inner") == 0o777
    assert (host / "logs" / "p").is_dir()
    assert (cfg / "app.conf").is_symlink()  # an existing subPath is left alone

    bad = {"name": "c", "volumeMounts": [{"name": "nope", "mountPath": "/x"}]}
    with pytest.raises(VolumeError, match='cannot find volume "nope" to mount into container "c"'):
        vm.mounts(pod, bad, paths)
    escape = {"name": "c", "volumeMounts": [{"name": "h", "mountPath": "/x", "subPath": "../x"}]}
    with pytest.raises(VolumeError, match="invalid subPath"):
        vm.mounts(pod, escape, paths)
    os.symlink("/etc", host / "out")
    link = {"name": "c", "volumeMounts": [{"name": "h", "mountPath": "/x", "subPath": "out"}]}
    with pytest.raises(VolumeError, match="outside the volume"):
        vm.mounts(pod, link, paths)


async def test_known_pods_and_teardown_of_config(vm: VolumeManager, objects: Objects) -> None:
    assert vm.known_pods() == set()
    objects.put("configmaps", "cfg", {"data": {"a": "A"}})
    await vm.setup(make_pod([{"name": "cfg", "configMap": {"name": "cfg"}}]))
    other = make_pod([{"name": "e", "emptyDir": {}}])
    other["metadata"]["uid"] = "uid-2"
    await vm.setup(other)
    assert vm.known_pods() == {UID, "uid-2"}
    await vm.teardown(UID)
    assert vm.known_pods() == {"uid-2"}
