"""PodSecurity (kube's Pod Security admission): the namespace's
``pod-security.kubernetes.io/enforce|warn|audit`` labels name a level of the Pod Security
Standards — ``privileged``, ``baseline`` or ``restricted`` — and a new pod that breaks its
namespace's ``enforce`` level is refused (403), one that breaks its ``warn`` level is
admitted with a warning, and one that breaks its ``audit`` level is admitted with a
``pod-security.kubernetes.io/audit-violations`` annotation on its audit event. Pod
templates of workloads (Deployments, Jobs...) get the warnings too, as in
Kubernetes. The checks and their words are the standards' (v1.32)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from skiff.api.resources import REGISTRY

from .interfaces import Attributes, Handler, Lister, Operation, forbidden

PLUGIN_NAME = "PodSecurity"
PREFIX = "pod-security.kubernetes.io/"
LEVELS = ("privileged", "baseline", "restricted")
NAMESPACES = REGISTRY.core("namespaces")
MIRROR = "kubernetes.io/config.mirror"
TEMPLATED = {
    ("", "replicationcontrollers"),
    ("", "podtemplates"),
    ("apps", "deployments"),
    ("apps", "replicasets"),
    ("apps", "statefulsets"),
    ("apps", "daemonsets"),
    ("batch", "jobs"),
    ("batch", "cronjobs"),
}
BASELINE_CAPABILITIES = {
    "AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "MKNOD",
    "NET_BIND_SERVICE", "SETFCAP", "SETGID", "SETPCAP", "SETUID", "SYS_CHROOT",
}  # fmt: skip
SAFE_SYSCTLS = {
    "kernel.shm_rmid_forced", "net.ipv4.ip_local_port_range",
    "net.ipv4.ip_unprivileged_port_start", "net.ipv4.tcp_syncookies",
    "net.ipv4.ping_group_range", "net.ipv4.ip_local_reserved_ports",
    "net.ipv4.tcp_keepalive_time", "net.ipv4.tcp_fin_timeout",
    "net.ipv4.tcp_keepalive_intvl", "net.ipv4.tcp_keepalive_probes",
}  # fmt: skip
RESTRICTED_VOLUMES = {
    "configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim",
    "projected", "secret",
}  # fmt: skip
SELINUX_TYPES = {"", "container_t", "container_init_t", "container_kvm_t", "container_engine_t"}

Obj = dict[str, Any]
Check = Callable[[Obj], str]


def _containers(spec: Obj) -> list[Obj]:
    return [
        *(spec.get("initContainers") or []),
        *(spec.get("containers") or []),
        *(spec.get("ephemeralContainers") or []),
    ]


def _names(items: Iterable[str]) -> str:
    names = list(dict.fromkeys(items))
    quoted = ", ".join(f'"{n}"' for n in names)
    return f"{'containers' if len(names) > 1 else 'container'} {quoted}"


def _sc(c: Obj) -> Obj:
    return c.get("securityContext") or {}


def host_namespaces(spec: Obj) -> str:
    on = [f"{k}=true" for k in ("hostNetwork", "hostPID", "hostIPC") if spec.get(k)]
    return f"host namespaces ({', '.join(on)})" if on else ""


def privileged(spec: Obj) -> str:
    bad = [c["name"] for c in _containers(spec) if _sc(c).get("privileged")]
    return f"privileged ({_names(bad)} must not set securityContext.privileged=true)" if bad else ""


def capabilities_baseline(spec: Obj) -> str:
    parts = []
    for c in _containers(spec):
        added = [a for a in (_sc(c).get("capabilities") or {}).get("add") or []
                 if a not in BASELINE_CAPABILITIES]  # fmt: skip
        if added:
            caps = ", ".join(f'"{a}"' for a in added)
            parts.append(f'container "{c["name"]}" must not include {caps} in '
                         "securityContext.capabilities.add")  # fmt: skip
    return f"non-default capabilities ({'; '.join(parts)})" if parts else ""


def host_path(spec: Obj) -> str:
    bad = [v["name"] for v in spec.get("volumes") or [] if "hostPath" in v]
    if not bad:
        return ""
    names = ", ".join(f'"{n}"' for n in bad)
    return f"hostPath volumes ({'volumes' if len(bad) > 1 else 'volume'} {names})"


def host_ports(spec: Obj) -> str:
    parts = []
    for c in _containers(spec):
        ports = [str(p["hostPort"]) for p in c.get("ports") or [] if p.get("hostPort")]
        if ports:
            word = "hostPorts" if len(ports) > 1 else "hostPort"
            parts.append(f'container "{c["name"]}" uses {word} {", ".join(ports)}')
    return f"hostPort ({'; '.join(parts)})" if parts else ""


def proc_mount(spec: Obj) -> str:
    bad = [c["name"] for c in _containers(spec) if _sc(c).get("procMount") not in (None, "Default")]
    if not bad:
        return ""
    return f'procMount ({_names(bad)} must not set securityContext.procMount to "Unmasked")'


def seccomp_baseline(spec: Obj) -> str:
    pod = ((spec.get("securityContext") or {}).get("seccompProfile") or {}).get("type")
    bad = [c["name"] for c in _containers(spec)
           if (_sc(c).get("seccompProfile") or {}).get("type") == "Unconfined"]  # fmt: skip
    who = (["pod"] if pod == "Unconfined" else []) + ([_names(bad)] if bad else [])
    if not who:
        return ""
    return (f"seccompProfile ({' and '.join(who)} must not set securityContext.seccompProfile."
            'type to "Unconfined")')  # fmt: skip


def selinux(spec: Obj) -> str:
    def bad(opts: Obj) -> bool:
        return opts.get("type", "") not in SELINUX_TYPES or bool(
            opts.get("user") or opts.get("role")
        )

    pod = bad((spec.get("securityContext") or {}).get("seLinuxOptions") or {})
    names = [c["name"] for c in _containers(spec) if bad(_sc(c).get("seLinuxOptions") or {})]
    if not pod and not names:
        return ""
    who = " and ".join((["pod"] if pod else []) + ([_names(names)] if names else []))
    return f"seLinuxOptions ({who} set forbidden securityContext.seLinuxOptions)"


def sysctls(spec: Obj) -> str:
    bad = [s.get("name", "") for s in (spec.get("securityContext") or {}).get("sysctls") or []
           if s.get("name") not in SAFE_SYSCTLS]  # fmt: skip
    return f"forbidden sysctls ({', '.join(bad)})" if bad else ""


def volume_types(spec: Obj) -> str:
    parts = []
    for v in spec.get("volumes") or []:
        kinds = [k for k in v if k != "name" and k not in RESTRICTED_VOLUMES]
        if kinds:
            parts.append(f'volume "{v["name"]}" uses restricted volume type "{kinds[0]}"')
    return f"restricted volume types ({'; '.join(parts)})" if parts else ""


def privilege_escalation(spec: Obj) -> str:
    bad = [
        c["name"] for c in _containers(spec) if _sc(c).get("allowPrivilegeEscalation") is not False
    ]
    if not bad:
        return ""
    return (f"allowPrivilegeEscalation != false ({_names(bad)} must set "
            "securityContext.allowPrivilegeEscalation=false)")  # fmt: skip


def run_as_non_root(spec: Obj) -> str:
    pod = (spec.get("securityContext") or {}).get("runAsNonRoot")
    bad = [
        c["name"]
        for c in _containers(spec)
        if _sc(c).get("runAsNonRoot") is False
        or (not pod and _sc(c).get("runAsNonRoot") is not True)
    ]
    if not bad:
        return ""
    who = f"pod or {_names(bad)}" if not pod else _names(bad)
    return f"runAsNonRoot != true ({who} must set securityContext.runAsNonRoot=true)"


def run_as_user(spec: Obj) -> str:
    pod = (spec.get("securityContext") or {}).get("runAsUser") == 0
    bad = [c["name"] for c in _containers(spec) if _sc(c).get("runAsUser") == 0]
    if not pod and not bad:
        return ""
    who = " and ".join((["pod"] if pod else []) + ([_names(bad)] if bad else []))
    return f"runAsUser=0 ({who} must not set runAsUser=0)"


def seccomp_restricted(spec: Obj) -> str:
    ok = ("RuntimeDefault", "Localhost")
    pod = ((spec.get("securityContext") or {}).get("seccompProfile") or {}).get("type") in ok
    bad = [c["name"] for c in _containers(spec)
           if (_sc(c).get("seccompProfile") or {}).get("type") not in ok
           and not (pod and not _sc(c).get("seccompProfile"))]  # fmt: skip
    if not bad:
        return ""
    who = f"pod or {_names(bad)}" if not pod else _names(bad)
    return (f'seccompProfile ({who} must set securityContext.seccompProfile.type to '
            '"RuntimeDefault" or "Localhost")')  # fmt: skip


def capabilities_restricted(spec: Obj) -> str:
    drop_missing, adds = [], []
    for c in _containers(spec):
        caps = _sc(c).get("capabilities") or {}
        if "ALL" not in (caps.get("drop") or []):
            drop_missing.append(c["name"])
        extra = [a for a in caps.get("add") or [] if a != "NET_BIND_SERVICE"]
        if extra:
            adds.append(f'container "{c["name"]}" must not include '
                        f'{", ".join(chr(34) + a + chr(34) for a in extra)} in '
                        "securityContext.capabilities.add")  # fmt: skip
    parts = ([f'{_names(drop_missing)} must set securityContext.capabilities.drop=["ALL"]']
             if drop_missing else []) + adds  # fmt: skip
    return f"unrestricted capabilities ({'; '.join(parts)})" if parts else ""


BASELINE: list[Check] = [
    host_namespaces, privileged, capabilities_baseline, host_path, host_ports, selinux,
    proc_mount, seccomp_baseline, sysctls,
]  # fmt: skip
RESTRICTED: list[Check] = [
    *BASELINE, volume_types, privilege_escalation, run_as_non_root, run_as_user,
    seccomp_restricted, capabilities_restricted,
]  # fmt: skip


def violations(level: str, spec: Obj) -> list[str]:
    """What ``spec`` (a pod's) breaks of the ``level`` standard, in the standard's words."""
    checks = {"baseline": BASELINE, "restricted": RESTRICTED}.get(level, [])
    return [v for v in (check(spec) for check in checks) if v]


def _level(labels: dict[str, str], mode: str) -> str:
    value = labels.get(PREFIX + mode, "")
    return value if value in LEVELS else ""


class PodSecurity(Handler):
    name = PLUGIN_NAME
    operations = frozenset({Operation.CREATE, Operation.UPDATE})

    def __init__(self, lister: Lister) -> None:
        self.lister = lister

    async def validate(self, attrs: Attributes) -> None:
        group, plural = attrs.group_resource
        if attrs.subresource or attrs.obj is None or not attrs.namespace:
            return
        if (group, plural) == ("", "pods"):
            if attrs.operation != Operation.CREATE:
                return
            if MIRROR in ((attrs.obj.get("metadata") or {}).get("annotations") or {}):
                return
            spec, kind = attrs.obj.get("spec") or {}, "pod"
        elif (group, plural) in TEMPLATED:
            spec, kind = _template_spec(attrs.obj), "template"
            if spec is None:
                return
        else:
            return
        ns = await self.lister.get(NAMESPACES, None, attrs.namespace)
        labels = ((ns or {}).get("metadata") or {}).get("labels") or {}
        enforce, warn = _level(labels, "enforce"), _level(labels, "warn")
        audit = _level(labels, "audit")
        if kind == "pod" and enforce and attrs.audit_annotations is not None:
            attrs.audit_annotations[PREFIX + "enforce-policy"] = f"{enforce}:latest"
        if audit and audit != "privileged" and attrs.audit_annotations is not None:
            if found := violations(audit, spec):
                attrs.audit_annotations[PREFIX + "audit-violations"] = (
                    f'would violate PodSecurity "{audit}:latest": {", ".join(found)}'
                )
        if kind == "pod" and enforce and enforce != "privileged":
            found = violations(enforce, spec)
            if found:
                why = f'violates PodSecurity "{enforce}:latest": {", ".join(found)}'
                raise forbidden(attrs, why)
        for level in dict.fromkeys([warn, enforce] if kind == "template" else [warn]):
            if level and level != "privileged" and (found := violations(level, spec)):
                if attrs.warnings is not None:
                    attrs.warnings.append(
                        f'would violate PodSecurity "{level}:latest": {", ".join(found)}'
                    )


def _template_spec(obj: Obj) -> Obj | None:
    spec = obj.get("spec") or {}
    if "jobTemplate" in spec:
        spec = ((spec.get("jobTemplate") or {}).get("spec")) or {}
    template = spec.get("template") if "template" in spec else obj.get("template")
    return (template or {}).get("spec") if isinstance(template, dict) else None
