"""The registry: one strategy per resource, by API group (kube's ``pkg/registry``).

:func:`strategy_for` gives a resource's :class:`~.strategy.Strategy`; resources with
nothing special get the default one. Adding a resource with rules of its own is adding
its module under ``<group>/`` and one line to :data:`STRATEGIES`.
"""

from __future__ import annotations

from functools import cache

from skiff.api import errors
from skiff.api.resources import ResourceInfo

from ..apiextensions.crd import CustomResourceDefinitionStrategy
from .admissionregistration.policies import (
    ValidatingAdmissionPolicyBindingStrategy,
    ValidatingAdmissionPolicyStrategy,
)
from .admissionregistration.webhooks import WebhookConfigurationStrategy
from .apiregistration.apiservice import APIServiceStrategy
from .apps.controllerrevision import ControllerRevisionStrategy
from .apps.workloads import ReplicationControllerStrategy, WorkloadStrategy
from .autoscaling.horizontalpodautoscaler import HorizontalPodAutoscalerStrategy
from .batch.cronjob import CronJobStrategy
from .batch.job import JobStrategy
from .certificates.csr import CertificateSigningRequestStrategy
from .coordination.lease import LeaseStrategy
from .core.configmap import ConfigMapStrategy, SecretStrategy
from .core.endpoints import EndpointsStrategy
from .core.event import EventStrategy
from .core.namespace import NamespaceStrategy
from .core.node import NodeStrategy
from .core.persistentvolume import PersistentVolumeClaimStrategy, PersistentVolumeStrategy
from .core.pod import PodStrategy, PodTemplateStrategy
from .core.quota import LimitRangeStrategy, ResourceQuotaStrategy
from .core.service import ServiceStrategy
from .core.serviceaccount import ServiceAccountStrategy
from .discovery.endpointslice import EndpointSliceStrategy
from .flowcontrol.flowschema import FlowSchemaStrategy
from .flowcontrol.prioritylevelconfiguration import PriorityLevelConfigurationStrategy
from .networking.ingress import IngressClassStrategy, IngressStrategy
from .networking.networkpolicy import NetworkPolicyStrategy
from .node.runtimeclass import RuntimeClassStrategy
from .policy.poddisruptionbudget import PodDisruptionBudgetStrategy
from .rbac.roles import RoleBindingStrategy, RoleStrategy
from .scheduling.priorityclass import PriorityClassStrategy
from .storage.storageclass import StorageClassStrategy
from .strategy import GenericStore, Strategy, Subresource

# (group, plural) → strategy class; any other resource uses Strategy itself.
STRATEGIES: dict[tuple[str, str], type[Strategy]] = {
    ("", "configmaps"): ConfigMapStrategy,
    ("", "endpoints"): EndpointsStrategy,
    ("", "events"): EventStrategy,
    ("", "limitranges"): LimitRangeStrategy,
    ("", "namespaces"): NamespaceStrategy,
    ("", "nodes"): NodeStrategy,
    ("", "persistentvolumeclaims"): PersistentVolumeClaimStrategy,
    ("", "persistentvolumes"): PersistentVolumeStrategy,
    ("", "pods"): PodStrategy,
    ("", "podtemplates"): PodTemplateStrategy,
    ("", "replicationcontrollers"): ReplicationControllerStrategy,
    ("", "resourcequotas"): ResourceQuotaStrategy,
    ("", "secrets"): SecretStrategy,
    ("", "services"): ServiceStrategy,
    ("", "serviceaccounts"): ServiceAccountStrategy,
    ("admissionregistration.k8s.io", "mutatingwebhookconfigurations"): (
        WebhookConfigurationStrategy
    ),
    ("admissionregistration.k8s.io", "validatingwebhookconfigurations"): (
        WebhookConfigurationStrategy
    ),
    ("admissionregistration.k8s.io", "validatingadmissionpolicies"): (
        ValidatingAdmissionPolicyStrategy
    ),
    ("admissionregistration.k8s.io", "validatingadmissionpolicybindings"): (
        ValidatingAdmissionPolicyBindingStrategy
    ),
    ("apiextensions.k8s.io", "customresourcedefinitions"): CustomResourceDefinitionStrategy,
    ("apiregistration.k8s.io", "apiservices"): APIServiceStrategy,
    ("apps", "controllerrevisions"): ControllerRevisionStrategy,
    ("apps", "daemonsets"): WorkloadStrategy,
    ("apps", "deployments"): WorkloadStrategy,
    ("apps", "replicasets"): WorkloadStrategy,
    ("apps", "statefulsets"): WorkloadStrategy,
    ("autoscaling", "horizontalpodautoscalers"): HorizontalPodAutoscalerStrategy,
    ("batch", "cronjobs"): CronJobStrategy,
    ("batch", "jobs"): JobStrategy,
    ("certificates.k8s.io", "certificatesigningrequests"): CertificateSigningRequestStrategy,
    ("coordination.k8s.io", "leases"): LeaseStrategy,
    ("discovery.k8s.io", "endpointslices"): EndpointSliceStrategy,
    ("events.k8s.io", "events"): EventStrategy,
    ("flowcontrol.apiserver.k8s.io", "flowschemas"): FlowSchemaStrategy,
    ("flowcontrol.apiserver.k8s.io", "prioritylevelconfigurations"): (
        PriorityLevelConfigurationStrategy
    ),
    ("networking.k8s.io", "ingressclasses"): IngressClassStrategy,
    ("networking.k8s.io", "ingresses"): IngressStrategy,
    ("networking.k8s.io", "networkpolicies"): NetworkPolicyStrategy,
    ("node.k8s.io", "runtimeclasses"): RuntimeClassStrategy,
    ("policy", "poddisruptionbudgets"): PodDisruptionBudgetStrategy,
    ("rbac.authorization.k8s.io", "clusterrolebindings"): RoleBindingStrategy,
    ("rbac.authorization.k8s.io", "clusterroles"): RoleStrategy,
    ("rbac.authorization.k8s.io", "rolebindings"): RoleBindingStrategy,
    ("rbac.authorization.k8s.io", "roles"): RoleStrategy,
    ("scheduling.k8s.io", "priorityclasses"): PriorityClassStrategy,
    ("storage.k8s.io", "storageclasses"): StorageClassStrategy,
}


CUSTOM: dict[ResourceInfo, Strategy] = {}
"""The strategies of the custom resources served now (kept by
:mod:`skiff.apiserver.apiextensions`)."""


def strategy_for(info: ResourceInfo) -> Strategy:
    """The strategy of ``info`` (one instance per resource)."""
    if info.custom:
        strategy = CUSTOM.get(info)
        if strategy is None:
            raise errors.ApiError(
                404,
                errors.Reason.NOT_FOUND,
                f"the server could not find the requested resource ({info.plural})",
            )
        return strategy
    return _builtin(info)


@cache
def _builtin(info: ResourceInfo) -> Strategy:
    return STRATEGIES.get((info.group, info.plural), Strategy)(info)


__all__ = ["CUSTOM", "STRATEGIES", "GenericStore", "Strategy", "Subresource", "strategy_for"]
