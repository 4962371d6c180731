"""Containers in a pod spec (kube's ``validateContainers``, ``validateInitContainers`` and
``validateContainerCommon``): names, image, termination message policy, ports, env and
envFrom, volume mounts and devices, pull policy, resources, security context, probes and
lifecycle handlers, with kube's messages and field paths (including where kube reports
at a list's path rather than an item's)."""

from __future__ import annotations

import posixpath
from typing import Any

from skiff.api.errors import Cause
from skiff.api.names import (
    is_config_map_key,
    is_dns1123_label,
    is_dns1123_subdomain,
    is_qualified_name,
    is_valid_port_name,
)

from ...validation import duplicate, forbidden, invalid, not_found, not_supported, required
from . import resourcenames

Obj = dict[str, Any]

PULL_POLICIES = ["Always", "IfNotPresent", "Never"]
MESSAGE_POLICIES = ["File", "FallbackToLogsOnError"]
PROTOCOLS = ["SCTP", "TCP", "UDP"]
PROPAGATIONS = ["Bidirectional", "HostToContainer", "None"]
RECURSIVE_READ_ONLY = ["Disabled", "Enabled", "IfPossible"]
SCHEMES = ["HTTP", "HTTPS"]
ENV_FIELD_PATHS = [
    "metadata.name",
    "metadata.namespace",
    "metadata.uid",
    "spec.nodeName",
    "spec.serviceAccountName",
    "status.hostIP",
    "status.hostIPs",
    "status.podIP",
    "status.podIPs",
]
RESOURCE_FIELD_PATHS = [
    "limits.cpu",
    "limits.ephemeral-storage",
    "limits.memory",
    "requests.cpu",
    "requests.ephemeral-storage",
    "requests.memory",
]
PROFILE_TYPES = ["Localhost", "RuntimeDefault", "Unconfined"]
_NOT_FOR_INIT = "may not be set for init containers without restartPolicy=Always"
_RANGE_ID = "must be between 0 and 2147483647, inclusive"
_RELAXED_ENV = (
    "a valid environment variable name must consist only of printable ASCII characters other "
    "than '='"
)


def list_of(v: Any) -> list[Any]:
    """``v`` if it is a list, else an empty one (for fields clients may send wrong)."""
    return v if isinstance(v, list) else []


def dict_of(v: Any) -> Obj:
    """``v`` if it is an object, else an empty one."""
    return v if isinstance(v, dict) else {}


def port_number(value: Any, path: str) -> list[Cause]:
    """``IsValidPortNum``."""
    if isinstance(value, int) and not 1 <= value <= 65535:
        return [invalid(path, value, "must be between 1 and 65535, inclusive")]
    return []


def port_num_or_name(port: Any, path: str) -> list[Cause]:
    """``ValidatePortNumOrName``."""
    if isinstance(port, str):
        return [invalid(path, port, m) for m in is_valid_port_name(port)]
    return port_number(port, path)


def env_var_name(name: str, path: str) -> list[Cause]:
    """``IsRelaxedEnvVarName`` (1.32's default): printable ASCII but ``=``."""
    if any(ord(c) > 126 or ord(c) < 32 or c == "=" for c in name):
        return [invalid(path, name, _RELAXED_ENV)]
    return []


def _ports(ports: list[Any], path: str) -> list[Cause]:
    causes: list[Cause] = []
    names: set[str] = set()
    for i, raw in enumerate(ports):
        port, at = dict_of(raw), f"{path}[{i}]"
        name = port.get("name") or ""
        if name:
            errs = is_valid_port_name(name)
            causes += [invalid(f"{at}.name", name, m) for m in errs]
            if not errs and name in names:
                causes.append(duplicate(f"{at}.name", name))
            names.add(name)
        number = port.get("containerPort") or 0
        if not number:
            causes.append(required(f"{at}.containerPort"))
        else:
            causes += port_number(number, f"{at}.containerPort")
        if port.get("hostPort"):
            causes += port_number(port["hostPort"], f"{at}.hostPort")
        protocol = port.get("protocol") or ""
        if not protocol:
            causes.append(required(f"{at}.protocol"))
        elif protocol not in PROTOCOLS:
            causes.append(not_supported(f"{at}.protocol", protocol, PROTOCOLS))
    return causes


def host_port_conflicts(containers: list[Any], path: str) -> list[Cause]:
    """``AccumulateUniqueHostPorts``: one protocol, IP and host port once."""
    causes: list[Cause] = []
    seen: set[str] = set()
    for ci, c in enumerate(containers):
        for pi, port in enumerate(list_of(dict_of(c).get("ports"))):
            port = dict_of(port)
            if not port.get("hostPort"):
                continue
            key = f"{port.get('protocol') or ''}/{port.get('hostIP') or ''}/{port['hostPort']}"
            if key in seen:
                causes.append(duplicate(f"{path}[{ci}].ports[{pi}].hostPort", key))
            seen.add(key)
    return causes


def _key_selector(ref: Obj, path: str) -> list[Cause]:
    name, key = ref.get("name") or "", ref.get("key") or ""
    causes = [invalid(f"{path}.name", name, m) for m in is_dns1123_subdomain(name)]
    if not key:
        causes.append(required(f"{path}.key"))
    else:
        causes += [invalid(f"{path}.key", key, m) for m in is_config_map_key(key)]
    return causes


def field_ref(ref: Obj, allowed: list[str], path: str) -> list[Cause]:
    """``validateObjectFieldSelector`` of a downward API ``fieldRef``."""
    if not ref.get("apiVersion"):
        return [required(f"{path}.apiVersion")]
    field_path = ref.get("fieldPath") or ""
    if not field_path:
        return [required(f"{path}.fieldPath")]
    if ref["apiVersion"] != "v1":
        return [
            invalid(
                f"{path}.fieldPath",
                field_path,
                f"error converting fieldPath: unsupported pod version: {ref['apiVersion']}",
            )
        ]
    base, bracket, rest = field_path.partition("[")
    if bracket and rest.endswith("]") and len(rest) > 3 and rest[0] == rest[-2] == "'":
        subscript = rest[1:-2]
        if base == "metadata.annotations":
            return [
                invalid(path, subscript.lower(), m) for m in is_qualified_name(subscript.lower())
            ]
        if base == "metadata.labels":
            return [invalid(path, subscript, m) for m in is_qualified_name(subscript)]
        return [invalid(path, base, "does not support subscript")]
    if field_path not in allowed and field_path not in ("metadata.annotations", "metadata.labels"):
        return [
            invalid(
                f"{path}.fieldPath",
                field_path,
                f"error converting fieldPath: field label not supported: {field_path}",
            )
        ]
    if field_path not in allowed:
        return [not_supported(f"{path}.fieldPath", field_path, allowed)]
    return []


def resource_field_ref(ref: Obj, path: str, volume: bool) -> list[Cause]:
    """``validateContainerResourceFieldSelector``."""
    resource = ref.get("resource") or ""
    if volume and not ref.get("containerName"):
        return [required(f"{path}.containerName")]
    if not resource:
        return [required(f"{path}.resource")]
    hugepages = resource.startswith(("requests.hugepages-", "limits.hugepages-"))
    if resource not in RESOURCE_FIELD_PATHS and not hugepages:
        return [not_supported(f"{path}.resource", resource, RESOURCE_FIELD_PATHS)]
    return []


def validate_env(env: list[Any], path: str) -> list[Cause]:
    """``ValidateEnv``."""
    causes: list[Cause] = []
    for i, raw in enumerate(env):
        var, at = dict_of(raw), f"{path}[{i}]"
        name = var.get("name") or ""
        if not name:
            causes.append(required(f"{at}.name"))
        else:
            causes += env_var_name(name, f"{at}.name")
        source = var.get("valueFrom")
        if not isinstance(source, dict):
            continue
        where, count = f"{at}.valueFrom", 0
        if isinstance(source.get("fieldRef"), dict):
            count += 1
            causes += field_ref(source["fieldRef"], ENV_FIELD_PATHS, f"{where}.fieldRef")
        if isinstance(source.get("resourceFieldRef"), dict):
            count += 1
            causes += resource_field_ref(
                source["resourceFieldRef"], f"{where}.resourceFieldRef", False
            )
        for key in ("configMapKeyRef", "secretKeyRef"):
            if isinstance(source.get(key), dict):
                count += 1
                causes += _key_selector(source[key], f"{where}.{key}")
        if count == 0:
            causes.append(
                invalid(
                    where,
                    "",
                    "must specify one of: `fieldRef`, `resourceFieldRef`, "
                    "`configMapKeyRef` or `secretKeyRef`",
                )
            )
        elif var.get("value"):
            causes.append(invalid(where, "", "may not be specified when `value` is not empty"))
        elif count > 1:
            causes.append(
                invalid(where, "", "may not have more than one field specified at a time")
            )
    return causes


def _env_from(sources: list[Any], path: str) -> list[Cause]:
    causes: list[Cause] = []
    for i, raw in enumerate(sources):
        source, at = dict_of(raw), f"{path}[{i}]"
        if source.get("prefix"):
            causes += env_var_name(source["prefix"], f"{at}.prefix")
        count = 0
        for key in ("configMapRef", "secretRef"):
            ref = source.get(key)
            if not isinstance(ref, dict):
                continue
            count += 1
            name = ref.get("name") or ""
            if not name:
                causes.append(required(f"{at}.{key}.name"))
            else:
                causes += [invalid(f"{at}.{key}.name", name, m) for m in _subdomain_prefix(name)]
        if count == 0:
            causes.append(invalid(path, "", "must specify one of: `configMapRef` or `secretRef`"))
        elif count > 1:
            causes.append(invalid(path, "", "may not have more than one field specified at a time"))
    return causes


def _subdomain_prefix(name: str) -> list[str]:
    """A name used as a prefix: a trailing dash is allowed (kube's ``maskTrailingDash``)."""
    if len(name) > 1 and name.endswith("-"):
        name = name[:-2] + "a"
    return is_dns1123_subdomain(name)


def local_descending_path(value: str, path: str) -> list[Cause]:
    """``validateLocalDescendingPath``: relative, without ``..`` steps."""
    causes: list[Cause] = []
    if posixpath.isabs(value):
        causes.append(invalid(path, value, "must be a relative path"))
    if ".." in value.replace("\\", "/").split("/"):
        causes.append(invalid(path, value, "must not contain '..'"))
    return causes


def _privileged(container: Obj) -> bool:
    return bool(dict_of(container.get("securityContext")).get("privileged"))


def _volume_mounts(
    mounts: list[Any], devices: list[Any], volumes: dict[str, Obj], container: Obj, path: str
) -> list[Cause]:
    causes: list[Cause] = []
    paths: set[str] = set()
    device_names = {dict_of(d).get("name") for d in devices}
    device_paths = {dict_of(d).get("devicePath") for d in devices}
    for i, raw in enumerate(mounts):
        mount, at = dict_of(raw), f"{path}[{i}]"
        name, mount_path = mount.get("name") or "", mount.get("mountPath") or ""
        if not name:
            causes.append(required(f"{at}.name"))
        if name not in volumes:
            causes.append(not_found(f"{at}.name", name))
        if not mount_path:
            causes.append(required(f"{at}.mountPath"))
        if mount_path in paths:
            causes.append(invalid(f"{at}.mountPath", mount_path, "must be unique"))
        paths.add(mount_path)
        if name in device_names:
            causes.append(invalid(f"{at}.name", name, "must not already exist in volumeDevices"))
        if mount_path in device_paths:
            causes.append(
                invalid(
                    f"{at}.mountPath",
                    mount_path,
                    "must not already exist as a path in volumeDevices",
                )
            )
        sub, expr = mount.get("subPath") or "", mount.get("subPathExpr") or ""
        if sub:
            causes += local_descending_path(sub, f"{path}.subPath")
        if expr:
            if sub:
                causes.append(
                    invalid(
                        f"{at}.subPathExpr", expr, "subPathExpr and subPath are mutually exclusive"
                    )
                )
            causes += local_descending_path(expr, f"{path}.subPathExpr")
        propagation = mount.get("mountPropagation")
        if propagation is not None:
            if propagation not in PROPAGATIONS:
                causes.append(not_supported(f"{path}.mountPropagation", propagation, PROPAGATIONS))
            elif propagation == "Bidirectional" and not _privileged(container):
                causes.append(
                    forbidden(
                        f"{path}.mountPropagation",
                        "Bidirectional mount "
                        "propagation is available only to privileged containers",
                    )
                )
        rro = mount.get("recursiveReadOnly")
        if rro is not None and rro != "Disabled":
            if rro not in RECURSIVE_READ_ONLY:
                causes.append(not_supported(f"{path}.recursiveReadOnly", rro, RECURSIVE_READ_ONLY))
            elif not mount.get("readOnly"):
                causes.append(
                    forbidden(
                        f"{path}.recursiveReadOnly", "may only be specified when readOnly is true"
                    )
                )
            elif propagation not in (None, "None"):
                causes.append(
                    forbidden(
                        f"{path}.recursiveReadOnly",
                        "may only be specified when mountPropagation is None or not specified",
                    )
                )
    return causes


def _volume_devices(
    devices: list[Any], mounts: list[Any], volumes: dict[str, Obj], path: str
) -> list[Cause]:
    causes: list[Cause] = []
    names: set[str] = set()
    paths: set[str] = set()
    mount_names = {dict_of(m).get("name") for m in mounts}
    mount_paths = {dict_of(m).get("mountPath") for m in mounts}
    for i, raw in enumerate(devices):
        device, at = dict_of(raw), f"{path}[{i}]"
        name, device_path = device.get("name") or "", device.get("devicePath") or ""
        source = volumes.get(name)
        if not name:
            causes.append(required(f"{at}.name"))
        if name in names:
            causes.append(invalid(f"{at}.name", name, "must be unique"))
        names.add(name)
        if source is not None and not ({"persistentVolumeClaim", "ephemeral"} & source.keys()):
            causes.append(
                invalid(
                    f"{at}.name",
                    name,
                    "can only use volume source type of "
                    "PersistentVolumeClaim or Ephemeral for block mode",
                )
            )
        if source is None:
            causes.append(not_found(f"{at}.name", name))
        if not device_path:
            causes.append(required(f"{at}.devicePath"))
        if device_path in paths:
            causes.append(invalid(f"{at}.devicePath", device_path, "must be unique"))
        if device_path and ".." in device_path.split("/"):
            causes.append(
                invalid(f"{at}.devicePath", device_path, "can not contain backsteps ('..')")
            )
        else:
            paths.add(device_path)
        if name in mount_names:
            causes.append(invalid(f"{at}.name", name, "must not already exist in volumeMounts"))
        if device_path in mount_paths:
            causes.append(
                invalid(
                    f"{at}.devicePath",
                    device_path,
                    "must not already exist as a path in volumeMounts",
                )
            )
    return causes


_HANDLERS = ("exec", "httpGet", "tcpSocket", "grpc", "sleep")


def _handler(handler: Obj, path: str, grace: Any, kinds: tuple[str, ...]) -> list[Cause]:
    """``validateHandler``: exactly one action, each checked."""
    causes: list[Cause] = []
    count = 0
    for kind in kinds:
        action = handler.get(kind)
        if not isinstance(action, dict):
            continue
        if count:
            causes.append(forbidden(f"{path}.{kind}", "may not specify more than 1 handler type"))
            continue
        count += 1
        at = f"{path}.{kind}"
        if kind == "exec" and not list_of(action.get("command")):
            causes.append(required(f"{at}.command"))
        elif kind == "httpGet":
            if not action.get("path"):
                causes.append(required(f"{at}.path"))
            causes += port_num_or_name(action.get("port"), f"{at}.port")
            scheme = action.get("scheme") or ""
            if scheme not in SCHEMES:
                causes.append(not_supported(f"{at}.scheme", scheme, SCHEMES))
        elif kind in ("tcpSocket", "grpc"):
            causes += port_num_or_name(action.get("port"), f"{at}.port")
        elif kind == "sleep":
            seconds = action.get("seconds") or 0
            if isinstance(grace, int) and (seconds <= 0 or seconds > grace):
                causes.append(
                    invalid(
                        at,
                        seconds,
                        "must be greater than 0 and less than "
                        f"terminationGracePeriodSeconds ({grace}). Enable "
                        "AllowPodLifecycleSleepActionZeroValue feature gate for "
                        "zero sleep.",
                    )
                )
    if count == 0:
        causes.append(required(path, "must specify a handler type"))
    return causes


def _probe(probe: Any, path: str, grace: Any, kind: str) -> list[Cause]:
    if not isinstance(probe, dict):
        return []
    causes = _handler(probe, path, grace, ("exec", "httpGet", "tcpSocket", "grpc"))
    for key in (
        "initialDelaySeconds",
        "timeoutSeconds",
        "periodSeconds",
        "successThreshold",
        "failureThreshold",
    ):
        value = probe.get(key) or 0
        if value < 0:
            causes.append(invalid(f"{path}.{key}", value, "must be greater than or equal to 0"))
    tgps = probe.get("terminationGracePeriodSeconds")
    if isinstance(tgps, int) and tgps <= 0:
        causes.append(
            invalid(f"{path}.terminationGracePeriodSeconds", tgps, "must be greater than 0")
        )
    if kind in ("livenessProbe", "startupProbe") and probe.get("successThreshold", 1) != 1:
        causes.append(
            invalid(f"{path}.successThreshold", probe.get("successThreshold"), "must be 1")
        )
    if kind == "readinessProbe" and tgps is not None:
        causes.append(
            invalid(
                f"{path}.terminationGracePeriodSeconds", tgps, "must not be set for readinessProbes"
            )
        )
    return causes


def _lifecycle(lifecycle: Obj, path: str, grace: Any) -> list[Cause]:
    causes: list[Cause] = []
    for hook in ("postStart", "preStop"):
        if isinstance(lifecycle.get(hook), dict):
            causes += _handler(
                lifecycle[hook], f"{path}.{hook}", grace, ("exec", "httpGet", "tcpSocket", "sleep")
            )
    return causes


def _profile(profile: Any, path: str, what: str) -> list[Cause]:
    """A seccomp or AppArmor profile."""
    if not isinstance(profile, dict):
        return []
    kind, local = profile.get("type") or "", profile.get("localhostProfile")
    if not kind:
        return [required(f"{path}.type", f"type is required when {what}Profile is set")]
    if kind not in PROFILE_TYPES:
        return [not_supported(f"{path}.type", kind, PROFILE_TYPES)]
    label = "seccomp" if what == "seccomp" else "AppArmor"
    if kind == "Localhost":
        if not local:
            return [
                required(f"{path}.localhostProfile", f"must be set when {label} type is Localhost")
            ]
        if what == "seccomp":
            return local_descending_path(local, f"{path}.localhostProfile")
        return []
    if local is not None:
        return [
            invalid(
                f"{path}.localhostProfile", local, f"can only be set when {label} type is Localhost"
            )
        ]
    return []


def security_context(sc: Any, path: str) -> list[Cause]:
    """``ValidateSecurityContext`` of a container."""
    if not isinstance(sc, dict):
        return []
    causes: list[Cause] = []
    for key in ("runAsUser", "runAsGroup"):
        value = sc.get(key)
        if isinstance(value, int) and not 0 <= value <= 2147483647:
            causes.append(invalid(f"{path}.{key}", value, _RANGE_ID))
    proc = sc.get("procMount")
    if proc is not None and proc not in ("Default", "Unmasked"):
        causes.append(not_supported(f"{path}.procMount", proc, ["Default", "Unmasked"]))
    causes += _profile(sc.get("seccompProfile"), f"{path}.seccompProfile", "seccomp")
    if sc.get("allowPrivilegeEscalation") is False:
        if sc.get("privileged"):
            causes.append(
                invalid(
                    path,
                    sc,
                    "cannot set `allowPrivilegeEscalation` to false and `privileged` to true",
                )
            )
        for cap in list_of(dict_of(sc.get("capabilities")).get("add")):
            if cap == "CAP_SYS_ADMIN":
                causes.append(
                    invalid(
                        path,
                        sc,
                        "cannot set `allowPrivilegeEscalation` to false "
                        "and `capabilities.Add` CAP_SYS_ADMIN",
                    )
                )
    causes += _profile(sc.get("appArmorProfile"), f"{path}.appArmorProfile", "appArmor")
    return causes


def validate_container_common(c: Obj, volumes: dict[str, Obj], path: str) -> list[Cause]:
    """``validateContainerCommon``."""
    causes: list[Cause] = []
    name = c.get("name") or ""
    if not name:
        causes.append(required(f"{path}.name"))
    else:
        causes += [invalid(f"{path}.name", name, m) for m in is_dns1123_label(name)]
    if not c.get("image"):
        causes.append(required(f"{path}.image"))
    policy = c.get("terminationMessagePolicy") or ""
    if not policy:
        causes.append(required(f"{path}.terminationMessagePolicy"))
    elif policy not in MESSAGE_POLICIES:
        causes.append(not_supported(f"{path}.terminationMessagePolicy", policy, MESSAGE_POLICIES))
    causes += _ports(list_of(c.get("ports")), f"{path}.ports")
    causes += validate_env(list_of(c.get("env")), f"{path}.env")
    causes += _env_from(list_of(c.get("envFrom")), f"{path}.envFrom")
    mounts, devices = list_of(c.get("volumeMounts")), list_of(c.get("volumeDevices"))
    causes += _volume_mounts(mounts, devices, volumes, c, f"{path}.volumeMounts")
    causes += _volume_devices(devices, mounts, volumes, f"{path}.volumeDevices")
    pull = c.get("imagePullPolicy") or ""
    if not pull:
        causes.append(required(f"{path}.imagePullPolicy"))
    elif pull not in PULL_POLICIES:
        causes.append(not_supported(f"{path}.imagePullPolicy", pull, PULL_POLICIES))
    causes += resourcenames.requirements(c.get("resources"), f"{path}.resources")
    causes += security_context(c.get("securityContext"), f"{path}.securityContext")
    return causes


def image_whitespace(c: Obj, path: str) -> list[Cause]:
    image = c.get("image")
    if isinstance(image, str) and image and image != image.strip():
        return [invalid(f"{path}.image", image, "must not have leading or trailing whitespace")]
    return []


def validate_containers(
    containers: list[Any], volumes: dict[str, Obj], path: str, grace: Any, pod: bool
) -> list[Cause]:
    """``validateContainers`` (with the image whitespace check of pods)."""
    if not containers:
        return [required(path)]
    causes: list[Cause] = []
    names: set[str] = set()
    for i, raw in enumerate(containers):
        c, at = dict_of(raw), f"{path}[{i}]"
        causes += validate_container_common(c, volumes, at)
        name = c.get("name") or ""
        if name in names:
            causes.append(duplicate(f"{at}.name", name))
        names.add(name)
        if isinstance(c.get("lifecycle"), dict):
            causes += _lifecycle(c["lifecycle"], f"{at}.lifecycle", grace)
        for kind in ("livenessProbe", "readinessProbe", "startupProbe"):
            causes += _probe(c.get(kind), f"{at}.{kind}", grace, kind)
        if c.get("restartPolicy") is not None:
            causes.append(
                forbidden(f"{at}.restartPolicy", "may not be set for non-init containers")
            )
    causes += host_port_conflicts(containers, path)
    if pod:
        for i, raw in enumerate(containers):
            causes += image_whitespace(dict_of(raw), f"{path}[{i}]")
    return causes


def validate_init_containers(
    inits: list[Any],
    regular: list[Any],
    volumes: dict[str, Obj],
    path: str,
    grace: Any,
    pod: bool,
) -> list[Cause]:
    """``validateInitContainers``: sidecars (``restartPolicy: Always``) may have probes
    and lifecycle hooks, other init containers may not."""
    causes: list[Cause] = []
    names = {dict_of(c).get("name") for c in regular}
    for i, raw in enumerate(inits):
        c, at = dict_of(raw), f"{path}[{i}]"
        causes += validate_container_common(c, volumes, at)
        policy = c.get("restartPolicy")
        if policy is not None and policy != "Always":
            causes.append(not_supported(f"{at}.restartPolicy", policy, ["Always"]))
        name = c.get("name") or ""
        if name in names:
            causes.append(duplicate(f"{at}.name", name))
        elif name:
            names.add(name)
        causes += host_port_conflicts([c], path)
        if policy == "Always":
            if isinstance(c.get("lifecycle"), dict):
                causes += _lifecycle(c["lifecycle"], f"{at}.lifecycle", grace)
            for kind in ("livenessProbe", "readinessProbe", "startupProbe"):
                causes += _probe(c.get(kind), f"{at}.{kind}", grace, kind)
        else:
            for kind in ("lifecycle", "livenessProbe", "readinessProbe", "startupProbe"):
                if c.get(kind) is not None:
                    causes.append(forbidden(f"{at}.{kind}", _NOT_FOR_INIT))
        if c.get("resizePolicy"):
            causes.append(
                invalid(
                    f"{at}.resizePolicy", c["resizePolicy"], "must not be set for init containers"
                )
            )
    if pod:
        for i, raw in enumerate(inits):
            causes += image_whitespace(dict_of(raw), f"{path}[{i}]")
    return causes
