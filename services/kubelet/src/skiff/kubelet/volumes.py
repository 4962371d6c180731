"""Pod volumes as the kubelet prepares them, and the CRI mounts that use them.

Each volume lives under ``<root>/pods/<uid>/volumes/<plugin>/<name>`` with the kubelet's
plugin names (``kubernetes.io~empty-dir``, ``kubernetes.io~configmap``, ...); hostPath
volumes are the host path itself. ConfigMap, Secret, downward API and projected volumes
are written with the kubelet's atomic writer scheme: the files live in a timestamped
directory (``..2026_11_26_10_00_00.123456``), ``..data`` links to it and every visible
entry ``k`` is a link ``k -> ..data/k``. An update writes a new directory and swaps
``..data`` with one rename, so running containers see either the old or the new content.
"""

from __future__ import annotations

import asyncio
import base64
import os
import re
import shutil
import stat
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from skiff.api.defaults import parse_quantity
from skiff.api.errors import ApiError
from skiff.cri.client import pb

from .podspec import ConfigError, Lookup, _field, _resource_field
from .tokens import TokenManager

EMPTY_DIR = "kubernetes.io~empty-dir"
CONFIGMAP = "kubernetes.io~configmap"
SECRET = "kubernetes.io~secret"
DOWNWARD_API = "kubernetes.io~downward-api"
PROJECTED = "kubernetes.io~projected"

DEFAULT_MODE = 0o644
DATA = "..data"
_DATA_TMP = "..data_tmp"
_TS_DIR = re.compile(r"^\.\.\d{4}_\d\d_\d\d_\d\d_\d\d_\d\d\.")
_REF = re.compile(r"\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)|\$\$")
_READ_ONLY = ("configMap", "secret", "downwardAPI", "projected")
_PROPAGATION = {
    None: pb.PROPAGATION_PRIVATE,
    "None": pb.PROPAGATION_PRIVATE,
    "HostToContainer": pb.PROPAGATION_HOST_TO_CONTAINER,
    "Bidirectional": pb.PROPAGATION_BIDIRECTIONAL,
}

Payload = dict[str, tuple[bytes, int]]  # relative path → (content, mode)


class VolumeError(Exception):
    """A volume cannot be set up or mounted; the message is shown to users."""


class _SetupError(Exception):
    """A failure of one volume, before it is named in a :class:`VolumeError`."""


# -- atomic writer ---------------------------------------------------------------------


def _check_path(path: str) -> None:
    """The path checks of the kubelet's atomic writer."""
    if not path:
        raise _SetupError(f"invalid path: must not be empty: {path!r}")
    if path.startswith("/"):
        raise _SetupError(f"invalid path: must be relative path: {path}")
    items = path.split("/")
    if ".." in items:
        raise _SetupError(f"invalid path: must not contain '..': {path}")
    if items[0].startswith("..") and len(items[0]) > 2:
        raise _SetupError(f"invalid path: must not start with '..': {path}")


def _same(current: Path, payload: Payload) -> bool:
    """Whether the directory ``current`` holds exactly ``payload``."""
    if not current.is_dir() or current.is_symlink():
        return False
    files: set[str] = set()
    for dirpath, _dirs, names in os.walk(current):
        for name in names:
            files.add(os.path.relpath(os.path.join(dirpath, name), current))
    if files != set(payload):
        return False
    for rel, (content, mode) in payload.items():
        p = current / rel
        st = os.lstat(p)
        if not stat.S_ISREG(st.st_mode) or stat.S_IMODE(st.st_mode) != mode:
            return False
        if st.st_size != len(content) or p.read_bytes() != content:
            return False
    return True


def _unlink(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


def write_atomic(target: Path, payload: Payload) -> bool:
    """Make ``target`` show ``payload``, as the kubelet's atomic writer; True if changed."""
    for rel in payload:
        _check_path(rel)
    target.mkdir(parents=True, exist_ok=True)
    data = target / DATA
    old = os.readlink(data) if data.is_symlink() else None
    top = {rel.split("/", 1)[0] for rel in payload}
    changed = old is None or not _same(target / old, payload)
    current = old
    if changed:
        stamp = datetime.now(UTC).strftime("..%Y_%m_%d_%H_%M_%S.")
        new = Path(tempfile.mkdtemp(prefix=stamp, dir=target))
        try:
            new.chmod(0o755)
            for rel, (content, mode) in payload.items():
                p = new / rel
                p.parent.mkdir(parents=True, exist_ok=True)
                p.write_bytes(content)
                p.chmod(mode)
            tmp = target / _DATA_TMP
            tmp.unlink(missing_ok=True)
            tmp.symlink_to(new.name)
            tmp.rename(data)
        except BaseException:
            shutil.rmtree(new, ignore_errors=True)
            raise
        current = new.name
    for name in top:
        link = target / name
        want = f"{DATA}/{name}"
        if link.is_symlink() and os.readlink(link) == want:
            continue
        if link.exists() or link.is_symlink():
            _unlink(link)
        link.symlink_to(want)
    for entry in os.listdir(target):
        if entry in top or entry in (DATA, current):
            continue
        if not entry.startswith("..") or _TS_DIR.match(entry) or entry == _DATA_TMP:
            _unlink(target / entry)  # stale key links, the old (or abandoned) data
    return changed


# -- sources -------------------------------------------------------------------------------


def _mode(value: Any, what: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= 0o777:
        raise _SetupError(f"invalid {what} {value!r}: must be between 0 and 0777 (octal)")
    return value


def _keys(
    values: dict[str, bytes] | None,
    items: list[dict[str, Any]] | None,
    default_mode: int,
    optional: bool,
    what: str,
) -> Payload:
    """The files of a configMap or secret source: every key, or the listed items."""
    if values is None:
        return {}
    if not items:
        return {k: (v, default_mode) for k, v in values.items()}
    out: Payload = {}
    for item in items:
        key = item["key"]
        if key not in values:
            if optional:
                continue
            if what == "configmap":
                raise _SetupError(f"configmap references non-existent config key: {key}")
            raise _SetupError(f"references non-existent secret key: {key}")
        mode = default_mode if item.get("mode") is None else _mode(item["mode"], "mode")
        out[item.get("path") or key] = (values[key], mode)
    return out


def _format_map(values: dict[str, Any]) -> str:
    """Labels or annotations as the downward API renders them: ``key="value"`` lines."""
    return "\n".join(f"{k}={_go_quote(str(values[k]))}" for k in sorted(values))


def _go_quote(s: str) -> str:
    """A string quoted as Go's ``%q`` does."""
    escapes = {'"': '\\"', "\\": "\\\\", "\a": "\\a", "\b": "\\b", "\f": "\\f"}
    escapes.update({"\n": "\\n", "\r": "\\r", "\t": "\\t", "\v": "\\v"})
    out = []
    for ch in s:
        if ch in escapes:
            out.append(escapes[ch])
        elif ch.isprintable():
            out.append(ch)
        elif ord(ch) < 0x80:
            out.append(f"\\x{ord(ch):02x}")
        elif ord(ch) <= 0xFFFF:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(f"\\U{ord(ch):08x}")
    return '"' + "".join(out) + '"'


def _downward(
    pod: dict[str, Any],
    items: list[dict[str, Any]] | None,
    default_mode: int,
    pod_ip: str,
    host_ip: str,
) -> Payload:
    out: Payload = {}
    meta = pod["metadata"]
    for item in items or []:
        mode = default_mode if item.get("mode") is None else _mode(item["mode"], "mode")
        if ref := item.get("fieldRef"):
            path = ref.get("fieldPath") or ""
            if path in ("metadata.labels", "metadata.annotations"):
                value = _format_map(meta.get(path.split(".")[1]) or {})
            else:
                try:
                    value = _field(pod, path, pod_ip, host_ip)
                except ConfigError as e:
                    raise _SetupError(str(e)) from None
        elif ref := item.get("resourceFieldRef"):
            value = _resource_field(pod, ref, ref.get("containerName") or "")
        else:
            raise _SetupError(f"downwardAPI item {item.get('path')!r} has no fieldRef")
        out[item["path"]] = (value.encode(), mode)
    return out


def _decoded(obj: dict[str, Any], secret: bool) -> dict[str, bytes]:
    values: dict[str, bytes] = {}
    if secret:
        for k, v in (obj.get("data") or {}).items():
            values[k] = base64.b64decode(v)
        for k, v in (obj.get("stringData") or {}).items():
            values[k] = str(v).encode()
    else:
        for k, v in (obj.get("data") or {}).items():
            values[k] = str(v).encode()
        for k, v in (obj.get("binaryData") or {}).items():
            values[k] = base64.b64decode(v)
    return values


# -- the manager ---------------------------------------------------------------------------


class VolumeManager:
    """Prepares, mounts and removes the volumes of the pods of one node."""

    def __init__(
        self,
        root: Path,
        lookup: Lookup,
        *,
        secrets_in_memory: bool = False,
        tokens: TokenManager | None = None,
    ) -> None:
        """``secrets_in_memory``: secret and projected volumes on a tmpfs, as the kubelet
        keeps them (needs root; the unit tests leave it off). ``tokens``: where projected
        service-account tokens come from (None: such a source is an error)."""
        self.root = root
        self.lookup = lookup
        self.secrets_in_memory = secrets_in_memory
        self.tokens = tokens

    def pod_dir(self, uid: str) -> Path:
        """``<root>/pods/<uid>``: everything the kubelet keeps for one pod."""
        return self.root / "pods" / uid

    def volume_dir(self, uid: str, plugin: str, name: str) -> Path:
        """Where the volume ``name`` of plugin ``plugin`` lives."""
        return self.pod_dir(uid) / "volumes" / plugin / name

    async def setup(
        self, pod: dict[str, Any], *, pod_ip: str = "", host_ip: str = ""
    ) -> dict[str, str]:
        """Prepare (or refresh) every volume of ``pod``; volume name → host path.

        Cheap when nothing changed; raises :class:`VolumeError` when a volume cannot be
        set up, and lets :class:`ApiError` other than 404 through (retry later).
        """
        uid = pod["metadata"]["uid"]
        paths: dict[str, str] = {}
        for volume in pod.get("spec", {}).get("volumes") or []:
            name = volume["name"]
            try:
                paths[name] = await self._setup_one(pod, uid, volume, pod_ip, host_ip)
            except (_SetupError, VolumeError) as e:
                raise VolumeError(f'MountVolume.SetUp failed for volume "{name}" : {e}') from None
            except OSError as e:
                raise VolumeError(f'MountVolume.SetUp failed for volume "{name}" : {e}') from e
        return paths

    async def _setup_one(
        self, pod: dict[str, Any], uid: str, volume: dict[str, Any], pod_ip: str, host_ip: str
    ) -> str:
        name = volume["name"]
        if "emptyDir" in volume:
            return await self._empty_dir(self.volume_dir(uid, EMPTY_DIR, name), volume)
        if "hostPath" in volume:
            source = volume["hostPath"]
            await asyncio.to_thread(_host_path, source.get("path") or "", source.get("type") or "")
            return str(source.get("path"))
        ns = pod["metadata"].get("namespace") or "default"
        if (claim := volume.get("persistentVolumeClaim")) is not None:
            return await self._claim(ns, claim)
        if (source := volume.get("configMap")) is not None:
            plugin, payload = CONFIGMAP, await self._object(ns, "configmaps", source, DEFAULT_MODE)
        elif (source := volume.get("secret")) is not None:
            plugin, payload = SECRET, await self._object(ns, "secrets", source, DEFAULT_MODE)
        elif (source := volume.get("downwardAPI")) is not None:
            mode = _mode(source.get("defaultMode", DEFAULT_MODE), "defaultMode")
            plugin = DOWNWARD_API
            payload = _downward(pod, source.get("items"), mode, pod_ip, host_ip)
        elif (source := volume.get("projected")) is not None:
            plugin, payload = PROJECTED, await self._projected(pod, source, pod_ip, host_ip)
        else:
            kinds = [k for k in volume if k != "name"]
            kind = kinds[0] if kinds else "unknown"
            raise _SetupError(f"volume type {kind} is not supported yet")
        target = self.volume_dir(uid, plugin, name)
        if self.secrets_in_memory and plugin in (SECRET, PROJECTED):
            if not await asyncio.to_thread(_make_dir, target, 0o755):
                await _run("mount", "-t", "tmpfs", "-o", "mode=0755", "tmpfs", str(target))
        await asyncio.to_thread(write_atomic, target, payload)
        return str(target)

    async def _claim(self, ns: str, claim: dict[str, Any]) -> str:
        """The host folder of the PersistentVolume a bound claim points at (hostPath and
        local volumes; other volume sources need a CSI driver, which is not here yet)."""
        name = claim.get("claimName") or ""
        try:
            pvc = await self.lookup("persistentvolumeclaims", ns, name)
        except ApiError as e:
            if e.code != 404:
                raise
            raise _SetupError(f'persistentvolumeclaim "{name}" not found') from None
        pv_name = (pvc.get("spec") or {}).get("volumeName")
        if (pvc.get("status") or {}).get("phase") != "Bound" or not pv_name:
            raise _SetupError(f'persistentvolumeclaim "{name}" is not bound')
        try:
            pv = await self.lookup("persistentvolumes", "", pv_name)
        except ApiError as e:
            if e.code != 404:
                raise
            raise _SetupError(f'persistentvolume "{pv_name}" not found') from None
        spec = pv.get("spec") or {}
        source = spec.get("hostPath") or spec.get("local")
        if not source or not source.get("path"):
            kinds = [k for k in spec if k.endswith(("Path", "csi", "nfs", "iscsi", "rbd"))]
            raise _SetupError(
                f"persistentvolume {pv_name}: volume source {kinds or 'unknown'} is not "
                "supported yet (hostPath and local are)"
            )
        path_type = source.get("type") or ("DirectoryOrCreate" if "hostPath" in spec else "")
        await asyncio.to_thread(_host_path, source["path"], path_type)
        return str(source["path"])

    async def _object(
        self,
        ns: str,
        kind: str,
        source: dict[str, Any],
        default_mode: int,
        projected: bool = False,
    ) -> Payload:
        """The files of a configMap or secret (volume or projection) source."""
        name = source.get("secretName" if kind == "secrets" and not projected else "name") or ""
        optional = bool(source.get("optional"))
        if not projected:
            default_mode = _mode(source.get("defaultMode", default_mode), "defaultMode")
        try:
            obj: dict[str, Any] | None = await self.lookup(kind, ns, name)
        except ApiError as e:
            if e.code != 404:
                raise
            if not optional:
                raise _SetupError(f'{kind[:-1]} "{name}" not found') from None
            obj = None
        values = None if obj is None else _decoded(obj, kind == "secrets")
        return _keys(values, source.get("items"), default_mode, optional, kind[:-1])

    async def _projected(
        self, pod: dict[str, Any], source: dict[str, Any], pod_ip: str, host_ip: str
    ) -> Payload:
        mode = _mode(source.get("defaultMode", DEFAULT_MODE), "defaultMode")
        ns = pod["metadata"].get("namespace") or "default"
        payload: Payload = {}
        for s in source.get("sources") or []:
            if (cm := s.get("configMap")) is not None:
                payload.update(await self._object(ns, "configmaps", cm, mode, projected=True))
            elif (sec := s.get("secret")) is not None:
                payload.update(await self._object(ns, "secrets", sec, mode, projected=True))
            elif (dw := s.get("downwardAPI")) is not None:
                payload.update(_downward(pod, dw.get("items"), mode, pod_ip, host_ip))
            elif (sat := s.get("serviceAccountToken")) is not None:
                payload.update(await self._token(pod, sat, mode))
            # clusterTrustBundle: not yet, no file
        return payload

    async def _token(self, pod: dict[str, Any], source: dict[str, Any], mode: int) -> Payload:
        path = source.get("path") or ""
        if not path:
            raise _SetupError("serviceAccountToken source has no path")
        if self.tokens is None:
            raise _SetupError("service account tokens are not available on this node")
        seconds = int(source.get("expirationSeconds") or 3600)
        try:
            token = await self.tokens.token(pod, source.get("audience") or "", seconds)
        except ApiError as e:
            if e.code in (400, 403, 404, 422):
                raise _SetupError(f"failed to fetch token: {e.message}") from None
            raise
        return {path: (token.encode(), mode)}

    async def _empty_dir(self, path: Path, volume: dict[str, Any]) -> str:
        source = volume.get("emptyDir") or {}
        medium = source.get("medium") or ""
        if medium not in ("", "Memory"):
            raise _SetupError(f"emptyDir medium {medium} is not supported yet")
        mounted = await asyncio.to_thread(_make_dir, path, 0o777)
        if medium == "Memory" and not mounted:
            args = ["mount", "-t", "tmpfs"]
            size = parse_quantity(source["sizeLimit"]) if source.get("sizeLimit") else None
            if size:
                args += ["-o", f"size={int(size)}"]
            await _run(*args, "tmpfs", str(path))
        return str(path)

    def mounts(
        self, pod: dict[str, Any], container: dict[str, Any], paths: dict[str, str]
    ) -> list[pb.Mount]:
        """The CRI mounts for ``container``'s ``volumeMounts``, given :meth:`setup`'s paths.

        ConfigMap, Secret, downward API and projected volumes are read-only; a ``subPath``
        (or ``subPathExpr`` with ``$(VAR)`` from the container's plain and ``fieldRef``
        environment) is created as a directory when missing, and must stay in the volume.
        """
        volumes = {v["name"]: v for v in pod.get("spec", {}).get("volumes") or []}
        env: dict[str, str] | None = None
        out: list[pb.Mount] = []
        for vm in container.get("volumeMounts") or []:
            name = vm["name"]
            if name not in paths or name not in volumes:
                raise VolumeError(
                    f'cannot find volume "{name}" to mount into container "{container["name"]}"'
                )
            host = paths[name]
            sub = vm.get("subPath") or ""
            if not sub and vm.get("subPathExpr"):
                if env is None:
                    env = _plain_env(pod, container)
                sub = _expand(vm["subPathExpr"], env)
            if sub:
                host = _sub_path(Path(host), sub, name)
            read_only = (
                bool(vm.get("readOnly"))
                or any(k in volumes[name] for k in _READ_ONLY)
                # A claim mounted read-only in the pod's volume list is read-only everywhere.
                or bool((volumes[name].get("persistentVolumeClaim") or {}).get("readOnly"))
            )
            propagation = vm.get("mountPropagation")
            if propagation not in _PROPAGATION:
                raise VolumeError(f"invalid mountPropagation {propagation!r}")
            out.append(
                pb.Mount(
                    container_path=vm["mountPath"],
                    host_path=host,
                    readonly=read_only,
                    propagation=_PROPAGATION[propagation],
                )
            )
        return out

    async def teardown(self, uid: str) -> None:
        """Unmount what is mounted under the pod's directory and remove it (idempotent)."""
        if self.tokens is not None:
            self.tokens.forget(uid)
        pod_dir = self.pod_dir(uid)
        if not pod_dir.exists():
            return
        for point in sorted(_mounts_under(pod_dir), key=len, reverse=True):
            try:
                await _run("umount", point)
            except VolumeError:
                await _run("umount", "-l", point)
        if left := _mounts_under(pod_dir):
            raise VolumeError(f"cannot remove {pod_dir}: still mounted: {', '.join(left)}")
        await asyncio.to_thread(shutil.rmtree, pod_dir, ignore_errors=True)

    def known_pods(self) -> set[str]:
        """The uids of the pods that have a directory here (to find orphans)."""
        try:
            return {e.name for e in os.scandir(self.root / "pods") if e.is_dir()}
        except FileNotFoundError:
            return set()


# -- host helpers --------------------------------------------------------------------------


def _make_dir(path: Path, mode: int) -> bool:
    """Create ``path`` with ``mode`` unless present; whether something is mounted there."""
    path.mkdir(parents=True, exist_ok=True)
    if os.path.ismount(path):
        return True
    if stat.S_IMODE(path.stat().st_mode) != mode:
        path.chmod(mode)
    return False


_HOST_PATH_CHECKS = {
    "Directory": (stat.S_ISDIR, "a directory"),
    "DirectoryOrCreate": (stat.S_ISDIR, "a directory"),
    "File": (stat.S_ISREG, "a file"),
    "FileOrCreate": (stat.S_ISREG, "a file"),
    "Socket": (stat.S_ISSOCK, "a socket file"),
    "CharDevice": (stat.S_ISCHR, "a character device"),
    "BlockDevice": (stat.S_ISBLK, "a block device"),
}


def _host_path(path: str, kind: str) -> None:
    """The kubelet's hostPath type check, creating what ``*OrCreate`` asks for."""
    if not path.startswith("/"):
        raise _SetupError(f"hostPath {path!r} must be an absolute path")
    if not kind:
        return
    if kind not in _HOST_PATH_CHECKS:
        raise _SetupError(f"{kind} is an invalid volume type")
    if not os.path.lexists(path):
        if kind == "DirectoryOrCreate":
            os.makedirs(path, mode=0o755, exist_ok=True)
            os.chmod(path, 0o755)
        elif kind == "FileOrCreate":
            fd = os.open(path, os.O_CREAT | os.O_WRONLY, 0o644)
            os.close(fd)
    check, what = _HOST_PATH_CHECKS[kind]
    try:
        ok = check(os.stat(path).st_mode)
    except FileNotFoundError:
        ok = False
    if not ok:
        raise _SetupError(f"hostPath type check failed: {path} is not {what}")


def _sub_path(volume: Path, sub: str, name: str) -> str:
    """The host path of ``subPath`` ``sub`` of a volume, created as a directory if missing."""
    if sub.startswith("/") or ".." in sub.split("/"):
        raise VolumeError(f'invalid subPath "{sub}" for volume "{name}": must be relative, no ".."')
    host = volume / sub
    if not os.path.lexists(host):
        mode = stat.S_IMODE(volume.stat().st_mode) if volume.is_dir() else 0o755
        host.mkdir(parents=True, exist_ok=True)
        host.chmod(mode)
    real, base = os.path.realpath(host), os.path.realpath(volume)
    if real != base and not real.startswith(base.rstrip("/") + "/"):
        raise VolumeError(f'subPath "{sub}" of volume "{name}" is outside the volume')
    return str(host)


def _plain_env(pod: dict[str, Any], container: dict[str, Any]) -> dict[str, str]:
    """The container's ``value`` and ``fieldRef`` variables, for ``subPathExpr``."""
    env: dict[str, str] = {}
    for e in container.get("env") or []:
        if "valueFrom" not in e:
            env[e["name"]] = str(e.get("value", ""))
        elif ref := e["valueFrom"].get("fieldRef"):
            try:
                env[e["name"]] = _field(pod, ref["fieldPath"], "", "")
            except ConfigError:
                pass
    return env


def _expand(expr: str, env: dict[str, str]) -> str:
    """``$(VAR)`` references expanded (unknown ones kept), ``$$`` as ``$``."""
    return _REF.sub(lambda m: "$" if m.group(0) == "$$" else env.get(m.group(1), m.group(0)), expr)


def _mounts_under(path: Path) -> list[str]:
    """Mount points at or below ``path``, from ``/proc/self/mounts``."""
    base = os.path.realpath(path)
    out = []
    try:
        text = Path("/proc/self/mounts").read_text()
    except OSError:
        return []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 2:
            continue
        point = re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), fields[1])
        if point == base or point.startswith(base.rstrip("/") + "/"):
            out.append(point)
    return out


async def _run(*args: str) -> None:
    proc = await asyncio.create_subprocess_exec(
        *args, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE
    )
    _, err = await proc.communicate()
    if proc.returncode != 0:
        raise VolumeError(f"{' '.join(args)} failed: {err.decode(errors='replace').strip()}")
