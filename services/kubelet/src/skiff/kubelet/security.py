"""Pod and container ``securityContext`` → CRI Linux security settings."""

from __future__ import annotations

from typing import Any

from skiff.cri.client import pb

from .podspec import ConfigError

# What the kubelet masks and makes read-only in /proc and /sys for unprivileged containers.
MASKED_PATHS = [
    "/proc/asound",
    "/proc/acpi",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
]
READONLY_PATHS = ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]

_SECCOMP = {
    "RuntimeDefault": pb.SecurityProfile.RuntimeDefault,
    "Unconfined": pb.SecurityProfile.Unconfined,
    "Localhost": pb.SecurityProfile.Localhost,
}


def effective(pod: dict[str, Any], container: dict[str, Any], key: str) -> Any:
    """A setting from the container's securityContext, else from the pod's."""
    csc = container.get("securityContext") or {}
    if csc.get(key) is not None:
        return csc[key]
    return (pod["spec"].get("securityContext") or {}).get(key)


def _seccomp(profile: dict[str, Any] | None) -> pb.SecurityProfile | None:
    if not profile:
        return None
    kind = _SECCOMP.get(profile.get("type") or "")
    if kind is None:
        raise ConfigError(f"unknown seccompProfile type {profile.get('type')!r}")
    return pb.SecurityProfile(
        profile_type=kind, localhost_ref=profile.get("localhostProfile") or ""
    )


def container_security(
    pod: dict[str, Any],
    container: dict[str, Any],
    namespaces: pb.NamespaceOption,
    image: pb.Image | None = None,
) -> pb.LinuxContainerSecurityContext:
    """The CRI security context; ``ConfigError`` for a runAsNonRoot image that runs as root."""
    csc = container.get("securityContext") or {}
    psc = pod["spec"].get("securityContext") or {}
    privileged = bool(csc.get("privileged"))
    out = pb.LinuxContainerSecurityContext(
        namespace_options=namespaces,
        privileged=privileged,
        readonly_rootfs=bool(csc.get("readOnlyRootFilesystem")),
        no_new_privs=csc.get("allowPrivilegeEscalation") is False,
    )
    user = effective(pod, container, "runAsUser")
    group = effective(pod, container, "runAsGroup")
    if user is not None:
        out.run_as_user.value = int(user)
    if group is not None:
        out.run_as_group.value = int(group)
    groups = [int(g) for g in psc.get("supplementalGroups") or []]
    if psc.get("fsGroup") is not None:
        groups.append(int(psc["fsGroup"]))
    out.supplemental_groups.extend(groups)
    caps = csc.get("capabilities") or {}
    if caps:
        out.capabilities.add_capabilities.extend(caps.get("add") or [])
        out.capabilities.drop_capabilities.extend(caps.get("drop") or [])
    if seccomp := _seccomp(csc.get("seccompProfile") or psc.get("seccompProfile")):
        out.seccomp.CopyFrom(seccomp)
    if not privileged and csc.get("procMount") != "Unmasked":
        out.masked_paths.extend(MASKED_PATHS)
        out.readonly_paths.extend(READONLY_PATHS)
    if effective(pod, container, "runAsNonRoot"):
        if user is not None:
            if int(user) == 0:
                raise ConfigError("container's runAsUser breaks non-root policy")
        elif image is not None:
            image_uid = image.uid.value if image.HasField("uid") else None
            if image_uid == 0 or (image_uid is None and image.username in ("", "root")):
                raise ConfigError("container has runAsNonRoot and image will run as root")
    return out
